"""creator_info and the three init endpoints: video, inbox video, content (photos).

What TikTok documents (docs/tiktok-api.md):
- `POST /v2/post/publish/creator_info/query/` (scope video.publish, 20 calls a minute per
  token): `creator_avatar_url, creator_username, creator_nickname, privacy_level_options,
  comment_disabled, duet_disabled, stitch_disabled, max_video_post_duration_sec`.  HTTP
  200 with `spam_risk_too_many_posts`, `spam_risk_user_banned_from_posting` or
  `reached_active_user_cap` means the creator cannot post now.
- `POST /v2/post/publish/video/init/` (Direct Post, video.publish):
  `post_info {title <= 2200 UTF-16 units, privacy_level (required, one of creator_info's
  options), disable_duet/comment/stitch, video_cover_timestamp_ms, brand_content_toggle,
  brand_organic_toggle, is_aigc}` and `source_info` PULL_FROM_URL `{video_url}` or
  FILE_UPLOAD `{video_size, chunk_size, total_chunk_count}`; `data.publish_id`
  (`v_pub_url~v2...`, `v_pub_file~v2...`) and for FILE_UPLOAD an `upload_url` valid an
  hour.  Branded content cannot be SELF_ONLY (this simulator answers 400 invalid_param);
  a privacy level not offered is 403 `privacy_level_option_mismatch`.
- `POST /v2/post/publish/inbox/video/init/` (video.upload): `source_info` only; at most 5
  unfinished drafts per user in 24 h (403 `spam_risk_too_many_pending_share`).
- `POST /v2/post/publish/content/init/` (photos): `post_mode` DIRECT_POST or MEDIA_UPLOAD,
  `media_type` PHOTO, PULL_FROM_URL only, 1 to 35 `photo_images`, `photo_cover_index`
  required; title <= 90 UTF-16 units, description <= 4000.
- FILE_UPLOAD chunk rules: under 5 MB one chunk; otherwise chunks of 5 to 64 MB,
  total_chunk_count = floor(video_size / chunk_size), the last chunk up to 128 MB, at
  most 1000 chunks, at most 4 GB.
- PULL_FROM_URL: https, a host name (no IP), a verified domain or URL prefix, else 403
  `url_ownership_unverified`.
- Caps: a daily Direct Post cap per creator (`spam_risk_too_many_posts`); a daily cap of
  active posting creators per app (`reached_active_user_cap`); an unaudited app posts
  only SELF_ONLY to private accounts (`unaudited_client_can_only_post_to_private_accounts`)
  for at most 5 users in 24 h.  TikTok's docs do not say what creator_info offers an
  unaudited app; this simulator offers only SELF_ONLY there (config `audited` false).

What this module does: PublishApi validates each init in TikTok's order, creates the
Publish record (a 19-digit post id for Direct Posts, an upload URL for FILE_UPLOAD),
hands it to the media checker (checker.py; it acts only with config check_media) and
answers in the envelope.  Simulator markers in a media URL: `sim_fail=<reason>` makes the
publish end FAILED with that reason, `sim_processing_seconds=N` sets its processing time.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from urllib.parse import quote, urlsplit

from .common import (DIRECT, FILE, GB, INBOX, MB, PRIVATE_OPTIONS, PUBLIC_OPTIONS, PULL,
                     SCOPE_PUBLISH, SCOPE_UPLOAD, ApiError, is_int, now, utf16_len)
from .state import Publish
from .wire import EndpointFamily, Reply, Request, envelope_reply


# True when the host is an IP literal (v4, v6, or a bare integer form).
def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    # Forms such as "2130706433" or "0x7f.1" resolve to IPs in many clients.
    labels = host.lower().rstrip(".").split(".")
    return all(re.fullmatch(r"0x[0-9a-f]*|[0-9]+", label) for label in labels)


# Whether an https URL falls under one verified prefix or domain entry.
def url_is_verified(url: str, prefixes: list[str]) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme != "https" or not host or is_ip_literal(host):
        return False
    if parts.username is not None or parts.password is not None:
        return False
    for entry in prefixes:
        if "://" in entry:
            entry_parts = urlsplit(entry)
            if entry_parts.path in ("", "/") and not entry.endswith("/"):
                # "https://example.com" without a path names a whole domain.
                if _host_in_domain(host, entry_parts.hostname or ""):
                    return True
            elif url.startswith(entry):
                return True
        elif _host_in_domain(host, entry):
            return True
    return False


# Whether host equals domain or is one of its subdomains.
def _host_in_domain(host: str, domain: str) -> bool:
    domain = domain.lower().strip(".")
    host = host.lower()
    return bool(domain) and (host == domain or host.endswith("." + domain))


# The reason requested by a "sim_fail=<reason>" marker in a URL, if any.
def sim_fail_reason(url) -> str | None:
    if not isinstance(url, str):
        return None
    match = re.search(r"sim_fail=([A-Za-z0-9_]+)", url)
    return match.group(1) if match else None


# A per-publish processing time requested by "sim_processing_seconds=N" in a URL.
def sim_processing_override(url) -> float | None:
    if not isinstance(url, str):
        return None
    match = re.search(r"sim_processing_seconds=([0-9]+(?:\.[0-9]+)?)", url)
    return float(match.group(1)) if match else None



# Check FILE_UPLOAD sizes against TikTok's chunk rules; returns an error text or None.
def chunk_rule_violation(video_size, chunk_size, total_chunk_count) -> str | None:
    if not (is_int(video_size) and is_int(chunk_size) and is_int(total_chunk_count)):
        return "video_size, chunk_size and total_chunk_count must be integers"
    if video_size <= 0 or chunk_size <= 0 or total_chunk_count <= 0:
        return "video_size, chunk_size and total_chunk_count must be positive"
    if video_size > 4 * GB:
        return "video_size exceeds 4 GB"
    if video_size < 5 * MB:
        if chunk_size != video_size or total_chunk_count != 1:
            return "a video under 5 MB must be sent as one chunk with chunk_size = video_size"
        return None
    if not 5 * MB <= chunk_size <= 64 * MB:
        return "chunk_size must be between 5 MB and 64 MB"
    if total_chunk_count != video_size // chunk_size:
        return "total_chunk_count must be floor(video_size / chunk_size)"
    if not 1 <= total_chunk_count <= 1000:
        return "total_chunk_count must be between 1 and 1000"
    if video_size - (total_chunk_count - 1) * chunk_size > 128 * MB:
        return "the last chunk exceeds 128 MB"
    return None



class PublishApi(EndpointFamily):
    """creator_info and the three inits (handlers run with state.lock held)."""

    # Keep the shared state and the media checker (checker.MediaChecker, or None).
    def __init__(self, state, checker=None):
        super().__init__(state)
        self.checker = checker

    # ---- endpoints ------------------------------------------------------

    # POST /v2/post/publish/creator_info/query/
    def creator_info(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH,))
        req.json_object(allow_empty=True)
        reason = self.cannot_post_reason(profile)
        if reason:
            return envelope_reply(200, {}, reason, f"The creator cannot post now: {reason}")
        options = self.privacy_options(profile)
        if not self.state.config["audited"]:
            options = [o for o in options if o == "SELF_ONLY"]
        return envelope_reply(200, {
            "creator_avatar_url": profile["avatar_url"],
            "creator_username": profile["username"],
            "creator_nickname": profile["nickname"],
            "privacy_level_options": options,
            "comment_disabled": profile["comment_disabled"],
            "duet_disabled": profile["duet_disabled"],
            "stitch_disabled": profile["stitch_disabled"],
            "max_video_post_duration_sec": profile["max_video_post_duration_sec"],
        })

    # POST /v2/post/publish/video/init/ (Direct Post a video)
    def video_init(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH,))
        body = req.json_object()
        post_info = body.get("post_info", {})
        if not isinstance(post_info, dict):
            raise ApiError(400, "invalid_param", "post_info must be an object")
        privacy = self.check_direct_post_info(profile, post_info,
                                              ("comment", "duet", "stitch"), 2200)
        source = self.parse_video_source(body)
        self.check_direct_post_allowed(profile, privacy)
        kind = "video_url" if source["source"] == PULL else "video_file"
        _, data = self.create_publish(req, profile, prefix_kind=kind, mode=DIRECT,
                                      media_type="VIDEO", source=source,
                                      title=post_info.get("title", ""), privacy_level=privacy)
        return envelope_reply(200, data)

    # POST /v2/post/publish/inbox/video/init/ (upload a video draft to the inbox)
    def inbox_video_init(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_UPLOAD,))
        body = req.json_object()
        post_info = body.get("post_info", {})
        if not isinstance(post_info, dict):
            raise ApiError(400, "invalid_param", "post_info must be an object")
        title = post_info.get("title")
        source = self.parse_video_source(body)
        self.check_inbox_allowed(profile)
        kind = "video_url" if source["source"] == PULL else "video_file"
        _, data = self.create_publish(req, profile, prefix_kind=kind, mode=INBOX,
                                      media_type="VIDEO", source=source,
                                      title=title if isinstance(title, str) else None)
        return envelope_reply(200, data)

    # POST /v2/post/publish/content/init/ (photo post, direct or to the inbox)
    def content_init(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH, SCOPE_UPLOAD))
        body = req.json_object()
        mode = body.get("post_mode")
        if mode not in (DIRECT, INBOX):
            raise ApiError(400, "invalid_param", "post_mode must be DIRECT_POST or MEDIA_UPLOAD")
        needed = SCOPE_PUBLISH if mode == DIRECT else SCOPE_UPLOAD
        if needed not in profile["scopes"]:
            raise ApiError(401, "scope_not_authorized",
                           f"The user did not authorize the scope required: {needed}")
        if body.get("media_type") != "PHOTO":
            raise ApiError(400, "invalid_param", "media_type must be PHOTO")
        post_info = body.get("post_info", {})
        if not isinstance(post_info, dict):
            raise ApiError(400, "invalid_param", "post_info must be an object")
        description = post_info.get("description", "")
        if not isinstance(description, str) or utf16_len(description) > 4000:
            raise ApiError(400, "invalid_param",
                           "post_info.description must be a string of at most 4000 UTF-16 units")
        images, cover = self.parse_photo_source(body)
        if mode == DIRECT:
            privacy = self.check_direct_post_info(profile, post_info, ("comment",), 90)
            self.check_direct_post_allowed(profile, privacy)
        else:
            title = post_info.get("title", "")
            if not isinstance(title, str) or utf16_len(title) > 90:
                raise ApiError(400, "invalid_param",
                               "post_info.title must be a string of at most 90 UTF-16 units")
            privacy = None
            self.check_inbox_allowed(profile)
        _, data = self.create_publish(
            req, profile, prefix_kind="photo_url", mode=mode, media_type="PHOTO",
            source={"source": PULL}, title=post_info.get("title", ""),
            description=description, privacy_level=privacy, photo_images=images)
        return envelope_reply(200, data)


    # Validate a photo source_info; returns (images, cover index).
    def parse_photo_source(self, body: dict) -> tuple[list, int]:
        source_info = body.get("source_info")
        if not isinstance(source_info, dict):
            raise ApiError(400, "invalid_param", "source_info is required")
        if source_info.get("source") != PULL:
            raise ApiError(400, "invalid_param", "photos support only source PULL_FROM_URL")
        images = source_info.get("photo_images")
        if (not isinstance(images, list) or not 1 <= len(images) <= 35
                or not all(isinstance(u, str) and u for u in images)):
            raise ApiError(400, "invalid_param", "photo_images must list 1 to 35 URLs")
        cover = source_info.get("photo_cover_index")
        if not is_int(cover) or not 0 <= cover < len(images):
            raise ApiError(400, "invalid_param",
                           "photo_cover_index is required and must index photo_images")
        prefixes = self.state.config["verified_url_prefixes"]
        if not all(url_is_verified(u, prefixes) for u in images):
            raise ApiError(403, "url_ownership_unverified",
                           "A photo URL domain or prefix is not verified for this app")
        return list(images), cover

    # ---- checks shared by the inits -------------------------------------

    # The privacy options of this creator's account (creator_info narrows them to
    # SELF_ONLY for an unaudited app; the inits check against these, so that a public
    # privacy level from an unaudited app gets TikTok's unaudited error).
    @staticmethod
    def privacy_options(profile: dict) -> list[str]:
        if profile.get("privacy_level_options"):
            return list(profile["privacy_level_options"])
        return list(PRIVATE_OPTIONS if profile["private_account"] else PUBLIC_OPTIONS)

    # The reason this creator cannot Direct Post right now, or None.  The app's active
    # user cap refuses only creators without a Direct Post in the last 24 h.
    def cannot_post_reason(self, profile: dict) -> str | None:
        if profile["banned"]:
            return "spam_risk_user_banned_from_posting"
        if profile["cannot_post"]:
            return profile["cannot_post"]
        posts = self.state.direct_posts_today(profile["open_id"])
        if posts >= profile["daily_post_cap"]:
            return "spam_risk_too_many_posts"
        cap = self.state.config.effective_active_user_cap()
        if cap is not None and posts == 0 and len(self.state.active_posters_today()) >= cap:
            return "reached_active_user_cap"
        return None

    # Validate post_info fields common to video and photo Direct Posts.
    def check_direct_post_info(self, profile: dict, post_info: dict,
                               toggles: tuple[str, ...], title_max: int) -> str:
        title = post_info.get("title", "")
        if not isinstance(title, str):
            raise ApiError(400, "invalid_param", "post_info.title must be a string")
        if utf16_len(title) > title_max:
            raise ApiError(400, "invalid_param",
                           f"post_info.title exceeds {title_max} UTF-16 code units")
        for key in ("disable_comment", "disable_duet", "disable_stitch", "brand_content_toggle",
                    "brand_organic_toggle", "is_aigc", "auto_add_music"):
            if key in post_info and not isinstance(post_info[key], bool):
                raise ApiError(400, "invalid_param", f"post_info.{key} must be a boolean")
        if "video_cover_timestamp_ms" in post_info and not (
                is_int(post_info["video_cover_timestamp_ms"])
                and post_info["video_cover_timestamp_ms"] >= 0):
            raise ApiError(400, "invalid_param",
                           "post_info.video_cover_timestamp_ms must be a non-negative integer")
        privacy = post_info.get("privacy_level")
        if not isinstance(privacy, str) or privacy not in self.privacy_options(profile):
            raise ApiError(403, "privacy_level_option_mismatch",
                           "privacy_level is missing or not among the creator's options")
        if post_info.get("brand_content_toggle") is True and privacy == "SELF_ONLY":
            raise ApiError(400, "invalid_param",
                           "Branded content cannot be posted with privacy level SELF_ONLY")
        for toggle in toggles:
            if profile[f"{toggle}_disabled"] and post_info.get(f"disable_{toggle}") is not True:
                raise ApiError(400, "invalid_param",
                               f"the creator has disabled {toggle}s: disable_{toggle} must be true")
        return privacy

    # Reject Direct Posts the creator/app may not make now (ban, caps, unaudited rules).
    def check_direct_post_allowed(self, profile: dict, privacy: str) -> None:
        reason = self.cannot_post_reason(profile)
        if reason:
            raise ApiError(403, reason, f"The creator cannot post now: {reason}")
        if not self.state.config["audited"]:
            if privacy != "SELF_ONLY" or not profile["private_account"]:
                raise ApiError(403, "unaudited_client_can_only_post_to_private_accounts",
                               "Unaudited clients can only post SELF_ONLY to private accounts")

    # Reject inbox uploads over the pending-share limit (or from banned users).
    def check_inbox_allowed(self, profile: dict) -> None:
        if profile["banned"]:
            raise ApiError(403, "spam_risk_user_banned_from_posting", "The user is banned")
        if self.state.pending_shares(profile["open_id"]) >= self.state.config["pending_share_limit"]:
            raise ApiError(403, "spam_risk_too_many_pending_share",
                           "Too many unfinished inbox drafts in the last 24 hours")

    # Validate a video source_info; returns the normalized source description.
    def parse_video_source(self, body: dict) -> dict:
        source_info = body.get("source_info")
        if not isinstance(source_info, dict):
            raise ApiError(400, "invalid_param", "source_info is required")
        source = source_info.get("source")
        if source == PULL:
            url = source_info.get("video_url")
            if not isinstance(url, str) or not url:
                raise ApiError(400, "invalid_param", "source_info.video_url is required")
            if not url_is_verified(url, self.state.config["verified_url_prefixes"]):
                raise ApiError(403, "url_ownership_unverified",
                               "The video_url domain or prefix is not verified for this app")
            return {"source": PULL, "video_url": url}
        if source == FILE:
            sizes = (source_info.get("video_size"), source_info.get("chunk_size"),
                     source_info.get("total_chunk_count"))
            problem = chunk_rule_violation(*sizes)
            if problem:
                raise ApiError(400, "invalid_param", problem)
            return {"source": FILE, "video_size": sizes[0], "chunk_size": sizes[1],
                    "total_chunk_count": sizes[2]}
        raise ApiError(400, "invalid_param", "source_info.source must be PULL_FROM_URL or FILE_UPLOAD")

    # Create and store a publish; for FILE_UPLOAD also create its upload URL.
    def create_publish(self, req: Request, profile: dict, *, prefix_kind: str, mode: str,
                       media_type: str, source: dict, **details) -> tuple[Publish, dict]:
        state, config = self.state, self.state.config
        prefix = {"video_url": "v_pub_url", "video_file": "v_pub_file",
                  "photo_url": "p_pub_url"}[prefix_kind]
        urls = [source.get("video_url")] + list(details.get("photo_images") or [])
        fail = next((r for r in map(sim_fail_reason, urls) if r), None)
        override = next((s for s in map(sim_processing_override, urls) if s is not None), None)
        publish = Publish(
            publish_id=state.new_publish_id(prefix), open_id=profile["open_id"],
            endpoint=req.endpoint, source=source["source"], mode=mode, media_type=media_type,
            created_at=now(),
            processing_seconds=override if override is not None else config["processing_seconds"],
            video_url=source.get("video_url"), video_size=source.get("video_size"),
            chunk_size=source.get("chunk_size"), total_chunk_count=source.get("total_chunk_count"),
            planned_fail_reason=fail, **details)
        if mode == DIRECT:
            publish.post_id = state.next_post_id()
        data = {"publish_id": publish.publish_id}
        if publish.source == FILE:
            publish.upload_id = "u" + secrets.token_hex(12)
            publish.upload_token = secrets.token_urlsafe(24)
            publish.upload_expires_at = publish.created_at + config["upload_url_ttl_seconds"]
            base = config["upload_base_url"] or f"http://{req.host_header}"
            data["upload_url"] = (f"{base.rstrip('/')}/upload/{publish.upload_id}"
                                  f"?upload_token={quote(publish.upload_token)}")
            state.uploads[publish.upload_id] = publish.publish_id
        if self.checker is not None:
            self.checker.prepare(publish, profile)
        state.add_publish(publish)
        req.publish_id = publish.publish_id
        return publish, data
