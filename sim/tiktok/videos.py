"""A creator's public videos, as TikTok's Display API shows them, derived from publishes.

What TikTok documents (Display API: "List Videos", "Query Videos", "Video Object"):
- /v2/video/list/ returns "the given user's public TikTok video posts, sorted by
  create_time in descending order"; the scope video.list reads "a user's public videos".
- Video Object: `id` (string, "also called item_id"), `create_time` (int64, UTC epoch
  seconds when the video was posted), `cover_image_url` ("a CDN link for the video's
  cover image ... the link has a TTL of 6 hours"), `share_url`, `video_description` and
  `title` (each "Max length: 150"), `duration` (int32, seconds), `height`, `width`,
  `embed_html`, `embed_link`, `like_count`, `comment_count`, `share_count` (int32) and
  `view_count` (int64).  TikTok's example cover URL is signed:
  `...image?x-expires=1659000367&x-signature=...`.
- /v2/video/query/ "can be used to refresh the given videos' cover image URL TTL".
- Post ids are 19-digit numbers beyond 2**53: the Video Object carries them as strings.

What this module does: decides which publishes are public videos and builds their Video
Objects; display.py (the endpoints), oauth.py (user info counts) and control.py
(/_sim/videos) use it.
- A publish yields a video when it is a Direct Post of a video (media_type VIDEO) made
  PUBLIC_TO_EVERYONE, its status is PUBLISH_COMPLETE and a post id shows in its
  `publicaly_available_post_id` (after the simulated moderation, and not while taken down
  through POST /_sim/videos/<id>).  The video id is that post id.  TikTok lists only
  public videos, so SELF_ONLY, friends-only and follower-only posts (and photo posts,
  which TikTok's video endpoints do not mention) never appear.  An init whose reply a
  fault dropped or replaced (`after_processing`) counts like any other: the publish
  exists on "TikTok" all the same, which is how a client learns what happened.
- `create_time`: when processing ended (state.Publish.published_at).
- `title` and `video_description`: the post's post_info.title, cut to 150 characters.
- `duration`, `width`, `height`: what a media check measured (checker.py, config
  check_media), else DEFAULT_DURATION and DEFAULT_SIZE.
- Metrics grow deterministically with the video's age (metrics()), so tests can assert
  that they only grow; POST /_sim/videos/<id> can pin any of them (state.video_metrics).
- `cover_image_url` points at a made-up CDN host and carries `x-expires` (now +
  config cover_url_ttl_seconds, 6 hours by default) and an `x-signature`; every call
  signs anew, as TikTok's refresh through video/query does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import os
from dataclasses import dataclass
from urllib.parse import quote

from .common import DIRECT, ST_COMPLETE
from .state import Publish, SimState

# The Video Object's fields, in TikTok's order.
VIDEO_FIELDS = ("id", "create_time", "cover_image_url", "share_url", "video_description",
                "duration", "height", "width", "title", "embed_html", "embed_link",
                "like_count", "comment_count", "share_count", "view_count")
METRIC_FIELDS = ("view_count", "like_count", "comment_count", "share_count")
TEXT_MAX = 150                       # title and video_description: "Max length: 150"
DEFAULT_DURATION = 15                # seconds, when no media check measured the video
DEFAULT_SIZE = (1080, 1920)          # width, height, likewise
INT32_MAX = 2**31 - 1                # like/comment/share counts are int32
COVER_HOST = "https://p16-sign-sim.tiktokcdn.example"
# Signs cover URLs.  Per process: nothing outside the simulator checks the signature; it
# is there so a client treats the URL as opaque and keeps it whole.
COVER_KEY = os.urandom(32)


@dataclass
class Video:
    """One public video: its id (the post id), its publish and when it was posted."""
    video_id: int
    publish: Publish
    posted_at: float                 # epoch seconds, fractional

    # The Display API's cursor unit: create_time in milliseconds.
    @property
    def posted_ms(self) -> int:
        return int(self.posted_at * 1000)


# Whether a publish is a kind of post the Display API can list (before its status).
def listable(publish: Publish) -> bool:
    return (publish.mode == DIRECT and publish.media_type == "VIDEO"
            and publish.privacy_level == "PUBLIC_TO_EVERYONE")


# The public videos of one creator at time `at`, newest first.
def public_videos(state: SimState, open_id: str, at: float) -> list[Video]:
    videos = []
    for publish in state.publishes_of(open_id):
        if not listable(publish):
            continue
        status, _, post_ids = publish.progress(at)
        posted_at = publish.published_at()
        if status != ST_COMPLETE or posted_at is None:
            continue
        videos.extend(Video(post_id, publish, posted_at) for post_id in post_ids)
    videos.sort(key=lambda v: (v.posted_at, v.video_id), reverse=True)
    return videos


# Every video of every creator, public or taken down, for the control API:
# [(video, public now)], newest first.
def all_videos(state: SimState, at: float) -> list[tuple[Video, bool]]:
    found = []
    for publish in state.publishes.values():
        if not listable(publish):
            continue
        status, _, raw_ids = publish.raw_progress(at)
        posted_at = publish.published_at()
        if status == ST_COMPLETE and posted_at is not None:
            found.extend((Video(post_id, publish, posted_at),
                          post_id not in publish.taken_down_ids) for post_id in raw_ids)
    found.sort(key=lambda item: (item[0].posted_at, item[0].video_id), reverse=True)
    return found


# One video by id, public or taken down: (video, public now), or None.
def find_video(state: SimState, video_id: int, at: float) -> tuple[Video, bool] | None:
    return next((item for item in all_videos(state, at) if item[0].video_id == video_id),
                None)


# view/like/comment/share counts at time `at`: they grow with the video's age at a rate
# taken from its id (so two videos differ), unless a test pinned them.
def metrics(state: SimState, video: Video, at: float) -> dict:
    age = max(0.0, at - video.posted_at)
    views = int(age * (5 + video.video_id % 11))                  # 5 to 15 views a second
    likes = views * (8 + video.video_id % 5) // 100               # 8 to 12 % of views
    values = {"view_count": views, "like_count": min(likes, INT32_MAX),
              "comment_count": min(likes // 10, INT32_MAX),
              "share_count": min(likes // 20, INT32_MAX)}
    values.update(state.video_metrics.get(video.video_id, {}))
    return values


# A signed cover URL that expires cover_url_ttl_seconds from `at`.
def cover_url(video_id: int, ttl: float, at: float) -> str:
    expires = int(at + ttl)
    mac = hmac.new(COVER_KEY, f"{video_id}:{expires}".encode(), hashlib.sha1).digest()
    signature = quote(base64.b64encode(mac).decode(), safe="")
    return (f"{COVER_HOST}/tos-sim-p-0068/{video_id}~tplv-noop.image"
            f"?x-expires={expires}&x-signature={signature}")


# Whether a cover URL made here is intact and not expired at `at` (for tests and tools).
def cover_url_valid(url: str, at: float) -> bool:
    try:
        path, query = url.split("?", 1)
        video_id = int(path.rsplit("/", 1)[1].split("~", 1)[0])
        params = dict(item.split("=", 1) for item in query.split("&"))
        expires = int(params["x-expires"])
    except (ValueError, KeyError, IndexError):
        return False
    return url == cover_url(video_id, expires - at, at) and at < expires


# The Video Object of a video with the requested fields (unknown names already dropped).
def video_object(state: SimState, video: Video, fields: list[str], at: float) -> dict:
    publish, config = video.publish, state.config
    username = state.profiles.get(publish.open_id, {}).get("username", publish.open_id)
    vid = str(video.video_id)
    utm = f"utm_campaign=tt4d_open_api&utm_source={quote(config['client_key'], safe='')}"
    share_url = f"https://www.tiktok.com/@{quote(username, safe='')}/video/{vid}?{utm}"
    caption = (publish.title or "")[:TEXT_MAX]
    info = publish.media_info or {}
    width, height = info.get("width"), info.get("height")
    if not width or not height:
        width, height = DEFAULT_SIZE
    duration = info.get("duration")
    values = {
        "id": vid,
        "create_time": int(video.posted_at),
        "share_url": share_url,
        "video_description": caption,
        "title": caption,
        "duration": int(round(duration)) if duration is not None else DEFAULT_DURATION,
        "height": height,
        "width": width,
        "embed_link": f"https://www.tiktok.com/player/v1/{vid}?music_info=1&description=1&{utm}",
    }
    if "cover_image_url" in fields:
        values["cover_image_url"] = cover_url(video.video_id, config["cover_url_ttl_seconds"],
                                              at)
    if "embed_html" in fields:
        cite = html.escape(f"https://www.tiktok.com/@{username}/video/{vid}")
        values["embed_html"] = (
            f'<blockquote class="tiktok-embed" cite="{cite}" data-video-id="{vid}" '
            f'style="max-width: 605px;min-width: 325px;"><section><a target="_blank" '
            f'href="https://www.tiktok.com/@{html.escape(username)}">@{html.escape(username)}'
            f'</a></section></blockquote>'
            f'<script async src="https://www.tiktok.com/embed.js"></script>')
    if any(f in METRIC_FIELDS for f in fields):
        values.update(metrics(state, video, at))
    return {f: values[f] for f in fields}
