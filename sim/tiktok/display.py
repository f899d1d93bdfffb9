"""The Display API's video endpoints: /v2/video/list/ and /v2/video/query/.

What TikTok documents (Display API: "List Videos", "Query Videos", "Rate Limits",
"Error Handling"):
- `POST /v2/video/list/?fields=<comma list>`, scope video.list, JSON body
  `{"cursor": int64, "max_count": int32}`, both optional: max_count "Default is 10.
  Maximum is 20."; cursor is "a UTC Unix timestamp in milli-seconds" and fetches "the
  user's videos posted before the provided timestamp".  The creator's public videos,
  newest first: `data: {videos: [Video Object], cursor: int64, has_more: bool}`; the
  reply's cursor goes into the next request while has_more is true.  TikTok warns it may
  return fewer than max_count videos even when has_more is true.
- `POST /v2/video/query/?fields=<comma list>`, scope video.list, body
  `{"filters": {"video_ids": [string, ...]}}`, "Up to 20 video IDs"; it "verifies that
  the videos belong to the user" and returns `data: {videos: [Video Object]}`.
- `fields` is required ("choose from Video Object's fields"); TikTok's own example asks
  for `id,title,fps` and shows only id and title back, so an unknown name is ignored.
- Each endpoint: 600 requests a minute per token, then 429 `rate_limit_exceeded`; a
  token without video.list: 401 `scope_not_authorized`; a bad request: 400
  `invalid_params` (the v2 error list's spelling: these pages name no other).

What this module does: DisplayApi parses and checks both requests and answers in the
envelope from videos.py's view of the caller's publishes.  A cursor of 0, or none, starts
from the newest video.  Videos posted in the same millisecond are never split across two
pages (a page comes back shorter instead), since a millisecond cursor could not resume
between them.  video/query answers the caller's public videos among the ids, in the
order asked, each once; other creators' videos, unknown ids and videos no longer public
are left out without an error.
"""

from __future__ import annotations

from .common import SCOPE_VIDEO_LIST, ApiError, is_int, now
from .videos import VIDEO_FIELDS, public_videos, video_object
from .wire import EndpointFamily, Reply, Request, envelope_reply

DEFAULT_MAX_COUNT = 10
MAX_COUNT = 20
MAX_QUERY_IDS = 20
INT64_MAX = 2**63 - 1


# A 400 invalid_params error (the Display API's spelling).
def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_params", message)


class DisplayApi(EndpointFamily):
    """video_list and video_query (handlers run with state.lock held)."""

    # POST /v2/video/list/?fields=...
    def video_list(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_VIDEO_LIST,))
        fields = self.requested_fields(req)
        body = self.body(req, allow_empty=True)
        at = now()
        cursor = body.get("cursor")
        if cursor is None or cursor == 0:
            cursor = int(at * 1000)
        elif not is_int(cursor) or not 0 < cursor <= INT64_MAX:
            raise invalid("cursor must be a UTC Unix timestamp in milliseconds")
        max_count = body.get("max_count", DEFAULT_MAX_COUNT)
        if not is_int(max_count) or not 1 <= max_count <= MAX_COUNT:
            raise invalid(f"max_count must be an integer from 1 to {MAX_COUNT}")
        older = [v for v in public_videos(self.state, profile["open_id"], at)
                 if v.posted_ms < cursor]
        page = older[:max_count]
        if len(older) > max_count:
            # Keep a millisecond's videos together: the next page starts below the cursor.
            boundary = older[max_count].posted_ms
            whole = [v for v in page if v.posted_ms != boundary]
            page = whole or page
        next_cursor = page[-1].posted_ms if page else cursor
        return envelope_reply(200, {
            "videos": [video_object(self.state, v, fields, at) for v in page],
            "cursor": next_cursor,
            "has_more": any(v.posted_ms < next_cursor for v in older[len(page):]),
        })

    # POST /v2/video/query/?fields=...
    def video_query(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_VIDEO_LIST,))
        fields = self.requested_fields(req)
        body = self.body(req, allow_empty=False)
        filters = body.get("filters")
        if not isinstance(filters, dict):
            raise invalid("filters is required: {\"video_ids\": [...]}")
        ids = filters.get("video_ids")
        if (not isinstance(ids, list) or not ids
                or not all(isinstance(i, str) and i for i in ids)):
            raise invalid("filters.video_ids must list video ids as strings")
        if len(ids) > MAX_QUERY_IDS:
            raise invalid(f"filters.video_ids takes at most {MAX_QUERY_IDS} ids")
        at = now()
        mine = {str(v.video_id): v for v in public_videos(self.state, profile["open_id"], at)}
        wanted = [mine[i] for i in dict.fromkeys(ids) if i in mine]
        return envelope_reply(200, {
            "videos": [video_object(self.state, v, fields, at) for v in wanted]})

    # The JSON object body, any problem with it answered as invalid_params.
    @staticmethod
    def body(req: Request, allow_empty: bool) -> dict:
        try:
            return req.json_object(allow_empty=allow_empty)
        except ApiError as err:
            raise invalid(err.message) from None

    # The known Video Object fields named by ?fields= (required; unknown names ignored).
    @staticmethod
    def requested_fields(req: Request) -> list[str]:
        names = [f.strip() for f in ",".join(req.query.get("fields", [])).split(",")
                 if f.strip()]
        if not names:
            raise invalid("fields is required: a comma list of Video Object fields")
        return [f for f in dict.fromkeys(names) if f in VIDEO_FIELDS]
