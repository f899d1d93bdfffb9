"""The simulator's shared state: config, token and publish records, and SimState.

What TikTok documents (docs/tiktok-api.md):
- OAuth access tokens expire (`expires_in`, 2 h in the Nov 2026 docs) and refresh tokens
  too (`refresh_expires_in`, 180 days); a refresh rotates the refresh token, and the old
  one stops working.
- Rate limits per user access token, per minute: the three inits share 6, status_fetch
  30, creator_info 20; over the limit is 429 `rate_limit_exceeded`.  The Display API's
  rate-limit page gives /v2/user/info/, /v2/video/list/ and /v2/video/query/ 600 each
  ("set and enforced separately", one-minute sliding window, 429 rate_limit_exceeded).
- Caps: about 15 Direct Posts a day per creator (`spam_risk_too_many_posts`), at most 5
  unfinished inbox drafts per user in 24 h (`spam_risk_too_many_pending_share`), and a
  per-app daily cap of active posting creators (`reached_active_user_cap`).
- An unaudited app ("Direct Post API - Developer Guidelines"): content is restricted to
  SELF_ONLY, every posting account must be private at the time of posting
  (`unaudited_client_can_only_post_to_private_accounts`), and at most 5 users may post
  in a 24 hour window.
- Processing is asynchronous: PULL_FROM_URL is PROCESSING_DOWNLOAD, FILE_UPLOAD is
  PROCESSING_UPLOAD, then a Direct Post is PUBLISH_COMPLETE (its
  `publicaly_available_post_id` filled only after moderation, so it can be empty at first)
  and an inbox upload SEND_TO_USER_INBOX; FAILED carries a `fail_reason`.

What this module does: Config holds the settings (command-line defaults, changed through
POST /_sim/config; `audited` false makes the app unaudited, `active_user_cap` caps the
creators posting in 24 h; `webhook_url`, null by default, turns on webhooks.py's deliveries;
`check_media`, false by default, turns on checker.py's media checks and needs ffprobe).
TokenRecord, RefreshRecord and Publish are the records; a Publish works out its status
lazily from the clock (`progress`), so nothing has to run for a publish to advance.
SimState holds users, tokens, publishes, pending faults, rate windows and the request log,
all guarded by one lock (`state.lock`), with per-user indexes so per-user questions never
scan every token or publish.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from . import probe
from .common import (DAY, DEFAULT_SCOPES, DIRECT, FILE, INBOX, MAX_LOG_ENTRIES, POST_ID_BASE,
                     RNG, SIMULATED_PULL_BYTES, ST_COMPLETE, ST_DOWNLOAD, ST_FAILED, ST_INBOX,
                     ST_UPLOAD, ControlError, is_int, is_number, now, token_hash)

# Which endpoints share which per-token rate-limit bucket.
RATE_GROUPS = {"video_init": "init", "inbox_video_init": "init", "content_init": "init",
               "status_fetch": "status_fetch", "creator_info": "creator_info",
               "user_info": "user_info", "video_list": "video_list",
               "video_query": "video_query"}
# TikTok: "Unaudited API Clients can allow up to 5 users to post in a 24 hour window."
UNAUDITED_ACTIVE_USER_CAP = 5
DEFAULT_RATE_LIMITS = {"init": 6, "status_fetch": 30, "creator_info": 20,
                       "user_info": 600, "video_list": 600, "video_query": 600}


# Whether a value is an absolute http(s) URL with a host (webhook targets, pull rewrites).
def http_url_ok(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


class Config:
    """Simulator settings: defaults come from the command line; /_sim/config edits them."""

    # Build the default settings from command-line options.
    def __init__(self, latency_ms: float = 0, processing_seconds: float = 3,
                 rate_limits: bool = True, check_media: bool = False):
        self.defaults = {
            "latency_ms": latency_ms,
            "processing_seconds": processing_seconds,
            "rate_limits": rate_limits,
            "rate_limit_per_minute": dict(DEFAULT_RATE_LIMITS),
            "rate_limit_window_seconds": 60,
            "verified_url_prefixes": ["https://verified.example/", "https://cdn.vibescaling.test/"],
            # An unaudited app (audited false) may only post SELF_ONLY to private
            # accounts, for at most UNAUDITED_ACTIVE_USER_CAP creators a day.
            "audited": True,
            # Creators with a Direct Post in the last 24 h the app may have; null is no
            # cap (then an unaudited app has UNAUDITED_ACTIVE_USER_CAP).
            "active_user_cap": None,
            "auto_users": True,
            "client_key": "sim_client_key",
            "client_secret": "sim_client_secret",
            "access_expires_in": 7200,
            "refresh_expires_in": 15552000,
            "upload_url_ttl_seconds": 3600,
            "pending_share_limit": 5,
            "upload_base_url": None,
            "webhook_url": None,
            # TikTok's Video Object: a cover_image_url "has a TTL of 6 hours".
            "cover_url_ttl_seconds": 6 * 3600,
            # Media checks (checker.py).  Off by default: load tests and the extension's
            # tests send synthetic bytes that are not video and would all fail them.
            "check_media": check_media,
            "check_media_max_bytes": 256 * 1024 * 1024,
            "pull_url_rewrites": {},
        }
        self.values = copy.deepcopy(self.defaults)

    # Restore the command-line defaults.
    def reset(self) -> None:
        self.values = copy.deepcopy(self.defaults)

    # Read one setting.
    def __getitem__(self, key):
        return self.values[key]

    # Apply a partial update after validating every key; raises ControlError.
    def update(self, changes: dict) -> None:
        if not isinstance(changes, dict):
            raise ControlError("config body must be a JSON object")
        unknown = sorted(set(changes) - set(self.values))
        if unknown:
            raise ControlError(f"unknown config keys: {', '.join(unknown)}")
        staged = copy.deepcopy(self.values)
        for key, value in changes.items():
            self._apply(staged, key, value)
        self.values = staged

    # Validate and store one setting into the staged copy.
    @staticmethod
    def _apply(staged: dict, key: str, value) -> None:
        if key in ("latency_ms", "processing_seconds", "upload_url_ttl_seconds",
                   "rate_limit_window_seconds", "cover_url_ttl_seconds"):
            if not is_number(value) or value < 0:
                raise ControlError(f"{key} must be a non-negative number")
        elif key in ("access_expires_in", "refresh_expires_in", "pending_share_limit",
                     "check_media_max_bytes"):
            if not is_int(value) or value < 0:
                raise ControlError(f"{key} must be a non-negative integer")
        elif key == "active_user_cap":
            if value is not None and (not is_int(value) or value < 0):
                raise ControlError("active_user_cap must be null or a non-negative integer")
        elif key in ("audited", "auto_users", "check_media"):
            if not isinstance(value, bool):
                raise ControlError(f"{key} must be a boolean")
            if key == "check_media" and value and not probe.available():
                raise ControlError("check_media needs ffprobe on PATH (Debian: apt-get "
                                   "install ffmpeg)")
        elif key == "pull_url_rewrites":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and k and http_url_ok(v) for k, v in value.items()):
                raise ControlError("pull_url_rewrites maps URL prefixes to http:// or "
                                   "https:// URL prefixes")
        elif key in ("client_key", "client_secret"):
            if not isinstance(value, str) or not value:
                raise ControlError(f"{key} must be a non-empty string")
        elif key == "upload_base_url":
            if value is not None and not isinstance(value, str):
                raise ControlError("upload_base_url must be a string or null")
        elif key == "webhook_url":
            if value is not None and not http_url_ok(value):
                raise ControlError("webhook_url must be null or an http:// or https:// URL")
        elif key == "verified_url_prefixes":
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise ControlError("verified_url_prefixes must be a list of strings")
        elif key in ("rate_limits", "rate_limit_per_minute"):
            if isinstance(value, bool) and key == "rate_limits":
                staged[key] = value
                return
            if not isinstance(value, dict):
                raise ControlError(f"{key} must be a boolean or an object of limits")
            for group, limit in value.items():
                if group not in DEFAULT_RATE_LIMITS or not is_int(limit) or limit < 0:
                    raise ControlError(
                        f"rate limits: keys {sorted(DEFAULT_RATE_LIMITS)}, values integers >= 0")
            staged["rate_limit_per_minute"].update(value)
            if key == "rate_limits":
                staged["rate_limits"] = True
            return
        staged[key] = value

    # The app's cap of creators posting in 24 h: active_user_cap, else 5 for an
    # unaudited app, else None (no cap).
    def effective_active_user_cap(self) -> int | None:
        if self.values["active_user_cap"] is not None:
            return self.values["active_user_cap"]
        return None if self.values["audited"] else UNAUDITED_ACTIVE_USER_CAP

    # All settings as a JSON-ready dict.
    def as_dict(self) -> dict:
        return copy.deepcopy(self.values)



@dataclass
class TokenRecord:
    """An access token: whose it is and whether it still works."""
    open_id: str | None
    expires_at: float | None = None
    valid: bool = True
    refresh_token: str | None = None
    created_at: float = field(default_factory=now)

    # True when the token can still be used.
    def usable(self, at: float) -> bool:
        return self.valid and self.open_id is not None and (
            self.expires_at is None or at < self.expires_at)


@dataclass
class RefreshRecord:
    """A refresh token; rotation marks the old one invalid."""
    open_id: str
    access_token: str
    expires_at: float | None = None
    valid: bool = True

    # True when the refresh token can still be used.
    def usable(self, at: float) -> bool:
        return self.valid and (self.expires_at is None or at < self.expires_at)


@dataclass
class Publish:
    """One publish (video or photo, direct or inbox) and its simulated progress."""
    publish_id: str
    open_id: str
    endpoint: str
    source: str                      # PULL_FROM_URL | FILE_UPLOAD
    mode: str                        # DIRECT_POST | MEDIA_UPLOAD
    media_type: str                  # VIDEO | PHOTO
    created_at: float
    processing_seconds: float
    title: str | None = None
    description: str | None = None
    privacy_level: str | None = None
    video_url: str | None = None
    photo_images: list | None = None
    video_size: int | None = None
    chunk_size: int | None = None
    total_chunk_count: int | None = None
    upload_id: str | None = None
    upload_token: str | None = None
    upload_expires_at: float | None = None
    uploaded_bytes: int = 0
    uploaded_crc32: int = 0          # zlib.crc32 of all accepted chunk bytes, in order
    chunks: list = field(default_factory=list)          # accepted [first, last] ranges
    content_types: list = field(default_factory=list)   # Content-Type of each accepted chunk
    upload_completed_at: float | None = None
    planned_fail_reason: str | None = None
    post_id: int | None = None
    cancelled: bool = False
    forced_status: str | None = None
    forced_fail_reason: str | None = None
    forced_post_ids: list | None = None
    forced_at: float | None = None    # when POST /_sim/publishes/<id> forced the status
    taken_down_ids: set = field(default_factory=set)    # post ids no longer public
    # Media checks (checker.py; only with config check_media): None (not checked),
    # "pending", "done" or "skipped" (over check_media_max_bytes), and what they found.
    media_check: str | None = None
    media_fail_reason: str | None = None
    media_info: dict | None = None    # duration, width, height, fps, codec, format
    media_checked_at: float | None = None
    media_error: str | None = None    # why the check failed or was skipped, for /_sim/
    pulled_bytes: int | None = None   # bytes really downloaded by a media check
    spool_path: str | None = None     # FILE_UPLOAD bytes kept for the check

    # Current (status, fail_reason, visible post ids) at time `at`.  A post id taken
    # down through the control API is left out: TikTok no longer lists it as public.
    def progress(self, at: float) -> tuple[str, str | None, list]:
        status, fail_reason, post_ids = self.raw_progress(at)
        if self.taken_down_ids:
            post_ids = [i for i in post_ids if i not in self.taken_down_ids]
        return status, fail_reason, post_ids

    # (status, fail_reason, post ids) at time `at`, takedowns not applied.
    def raw_progress(self, at: float) -> tuple[str, str | None, list]:
        if self.forced_status:
            if self.forced_status == ST_FAILED:
                return ST_FAILED, self.forced_fail_reason or "internal", []
            if self.forced_status == ST_COMPLETE:
                ids = self.forced_post_ids
                if ids is None:
                    ids = [self.post_id] if self.post_id is not None else []
                return ST_COMPLETE, None, list(ids)
            return self.forced_status, None, []
        if self.cancelled:
            return ST_FAILED, "publish_cancelled", []
        if self.source == FILE and self.upload_completed_at is None:
            return ST_UPLOAD, None, []
        busy = ST_UPLOAD if self.source == FILE else ST_DOWNLOAD
        done_at = self.processing_done_at()
        if done_at is None or at < done_at:
            return busy, None, []
        if self.planned_fail_reason:
            return ST_FAILED, self.planned_fail_reason, []
        if self.media_fail_reason:
            return ST_FAILED, self.media_fail_reason, []
        if self.mode == INBOX:
            return ST_INBOX, None, []
        # Moderation takes another processing_seconds before the post id shows.
        visible = at >= done_at + self.processing_seconds and self.post_id is not None
        return ST_COMPLETE, None, ([self.post_id] if visible else [])

    # When processing ends (epoch s): processing_seconds after the pull started or the last
    # chunk arrived, and not before a media check (checker.py) has finished; None while
    # the upload or the check is still under way.
    def processing_done_at(self) -> float | None:
        started = self.upload_completed_at if self.source == FILE else self.created_at
        if started is None or self.media_check == "pending":
            return None
        done_at = started + self.processing_seconds
        if self.media_checked_at is not None:
            done_at = max(done_at, self.media_checked_at)
        return done_at

    # When the post was published (epoch s; the Display API's create_time): the forced
    # moment for a forced PUBLISH_COMPLETE, else when processing ended.
    def published_at(self) -> float | None:
        if self.forced_status == ST_COMPLETE:
            return self.forced_at
        return self.processing_done_at()

    # Bytes TikTok has pulled so far (PULL_FROM_URL only).
    def downloaded_bytes(self, at: float) -> int:
        status, _, _ = self.progress(at)
        if status == ST_FAILED:
            return 0
        if status != ST_DOWNLOAD and self.pulled_bytes is not None:
            return self.pulled_bytes
        if status != ST_DOWNLOAD or self.processing_seconds <= 0:
            return SIMULATED_PULL_BYTES
        fraction = min(1.0, (at - self.created_at) / self.processing_seconds)
        return int(SIMULATED_PULL_BYTES * fraction)

    # JSON view for /_sim/publishes.
    def describe(self, at: float) -> dict:
        status, fail_reason, post_ids = self.progress(at)
        return {
            "publish_id": self.publish_id, "open_id": self.open_id, "endpoint": self.endpoint,
            "source": self.source, "mode": self.mode, "media_type": self.media_type,
            "status": status, "fail_reason": fail_reason, "title": self.title,
            "description": self.description, "privacy_level": self.privacy_level,
            "video_url": self.video_url, "photo_images": self.photo_images,
            "created_at": self.created_at, "processing_seconds": self.processing_seconds,
            "video_size": self.video_size, "chunk_size": self.chunk_size,
            "total_chunk_count": self.total_chunk_count, "uploaded_bytes": self.uploaded_bytes,
            "uploaded_crc32": self.uploaded_crc32,
            "chunks": [list(c) for c in self.chunks],
            "content_type": self.content_types[-1] if self.content_types else None,
            "content_types": list(self.content_types),
            "upload_completed_at": self.upload_completed_at, "post_ids": post_ids,
            "assigned_post_id": self.post_id,
            "taken_down_post_ids": sorted(self.taken_down_ids),
            "media_check": None if self.media_check is None else {
                "state": self.media_check, "fail_reason": self.media_fail_reason,
                "info": self.media_info, "error": self.media_error,
                "checked_at": self.media_checked_at, "pulled_bytes": self.pulled_bytes},
        }



class SimState:
    """Users, tokens, publishes, faults, rate windows and the request log."""

    # Create empty state around a config.
    def __init__(self, config: Config):
        self.lock = threading.RLock()
        self.config = config
        self.request_seq = 0          # never reset, so ?since= keeps working
        self.fault_seq = 0
        self.reset()

    # Clear everything except the request sequence counter; restore config defaults.
    def reset(self) -> None:
        with self.lock:
            self.config.reset()
            self.profiles: dict[str, dict] = {}          # open_id -> profile
            self.tokens: dict[str, TokenRecord] = {}     # access token -> record (via put_token)
            # Indexes so per-user questions need not scan every token / publish:
            self.token_order: dict[str, int] = {}        # token -> position in self.tokens
            self.user_tokens: dict[str, set] = {}        # open_id -> its tokens
            self.user_publishes: dict[str, list] = {}    # open_id -> its publishes, oldest first
            self.refresh_tokens: dict[str, RefreshRecord] = {}
            self.auth_codes: dict[str, str] = {}         # registered code -> open_id
            self.used_codes: set[str] = set()
            self.refresh_counts: dict[str, int] = {}
            self.publishes: dict[str, Publish] = {}      # publish id -> publish (via add_publish)
            self.uploads: dict[str, str] = {}            # upload id -> publish id
            self.request_log: deque = deque(maxlen=MAX_LOG_ENTRIES)
            self.faults: list = []                       # pending faults.Fault, in queue order
            self.rate_windows: dict[tuple[str, str], deque] = {}
            self.post_counter = 0
            # video id (int) -> metrics a test set through POST /_sim/videos/<id>
            self.video_metrics: dict[int, dict] = {}

    # ---- users and tokens -------------------------------------------------

    # A default profile for an open_id.
    @staticmethod
    def default_profile(open_id: str) -> dict:
        return {
            "open_id": open_id,
            "union_id": "union_" + hashlib.sha256(open_id.encode()).hexdigest()[:12],
            "scopes": list(DEFAULT_SCOPES),
            "private_account": False,
            "privacy_level_options": None,
            "comment_disabled": False,
            "duet_disabled": False,
            "stitch_disabled": False,
            "max_video_post_duration_sec": 600,
            "nickname": f"Sim Creator {open_id}",
            "username": f"sim_{open_id}".lower(),
            "avatar_url": f"https://p16-sim.tiktokcdn.example/avatar/{open_id}.jpeg",
            "cannot_post": None,
            "banned": False,
            "daily_post_cap": 15,
            "follower_count": 0,          # user info (user.info.stats)
            "following_count": 0,
        }

    # Look up the profile behind a bearer token, creating an auto user if allowed.
    def resolve_token(self, token: str | None) -> dict | None:
        if not token:
            return None
        record = self.tokens.get(token)
        if record is None:
            if not self.config["auto_users"] or token.startswith("invalid"):
                return None
            open_id = "auto_" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]
            self.profiles.setdefault(open_id, self.default_profile(open_id))
            record = TokenRecord(open_id=open_id)
            self.put_token(token, record)
        if not record.usable(now()):
            return None
        return self.profiles.get(record.open_id)

    # The open_id behind a bearer token, without creating anything (for fault matching):
    # None for a missing, unknown-and-invalid or unusable token.
    def token_open_id(self, token: str | None) -> str | None:
        if not token:
            return None
        record = self.tokens.get(token)
        if record is None:
            if not self.config["auto_users"] or token.startswith("invalid"):
                return None
            return "auto_" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]
        return record.open_id if record.usable(now()) else None

    # Issue a fresh access/refresh token pair for a user; returns both tokens.
    def issue_tokens(self, open_id: str) -> tuple[str, str]:
        at = now()
        access = "act." + secrets.token_urlsafe(30)
        refresh = "rft." + secrets.token_urlsafe(30)
        self.put_token(access, TokenRecord(
            open_id=open_id, expires_at=at + self.config["access_expires_in"],
            refresh_token=refresh))
        self.refresh_tokens[refresh] = RefreshRecord(
            open_id=open_id, access_token=access,
            expires_at=at + self.config["refresh_expires_in"])
        return access, refresh

    # Store (or replace) the record of an access token, keeping the per-user index.
    def put_token(self, token: str, record: TokenRecord) -> None:
        old = self.tokens.get(token)
        if old is None:
            self.token_order[token] = len(self.token_order)
        elif old.open_id != record.open_id and old.open_id in self.user_tokens:
            self.user_tokens[old.open_id].discard(token)
        self.tokens[token] = record
        if record.open_id is not None:
            self.user_tokens.setdefault(record.open_id, set()).add(token)

    # A user's access tokens, in the order of self.tokens.
    def tokens_of(self, open_id: str) -> list[str]:
        return sorted(self.user_tokens.get(open_id, ()), key=self.token_order.__getitem__)

    # Latest access token record of a user (or None).
    def latest_token(self, open_id: str) -> tuple[str | None, TokenRecord | None]:
        best = (None, None)
        for tok in self.tokens_of(open_id):
            rec = self.tokens[tok]
            if best[1] is None or rec.created_at >= best[1].created_at:
                best = (tok, rec)
        return best

    # ---- rate limits ------------------------------------------------------

    # Record a call in the token's sliding window; False when over the limit.
    def rate_limit_allows(self, token: str, endpoint: str) -> bool:
        group = RATE_GROUPS.get(endpoint)
        if group is None or not self.config["rate_limits"]:
            return True
        limit = self.config["rate_limit_per_minute"][group]
        window_s = self.config["rate_limit_window_seconds"]
        at = now()
        window = self.rate_windows.setdefault((token_hash(token, 32), group), deque())
        while window and window[0] <= at - window_s:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(at)
        return True

    # ---- publishes ------------------------------------------------------

    # A fresh, unused publish id with TikTok's prefix.
    def new_publish_id(self, prefix: str) -> str:
        while True:
            pid = f"{prefix}~v2.{7000000000000000000 + RNG.randrange(10**18)}"
            if pid not in self.publishes:
                return pid

    # Store a new publish (and index it under its user).
    def add_publish(self, publish: Publish) -> None:
        self.publishes[publish.publish_id] = publish
        self.user_publishes.setdefault(publish.open_id, []).append(publish)

    # A user's publishes, oldest first.
    def publishes_of(self, open_id: str) -> list:
        return self.user_publishes.get(open_id, [])

    # Next 19-digit post id.
    def next_post_id(self) -> int:
        self.post_counter += 1
        return POST_ID_BASE + self.post_counter

    # Direct Posts created by a user in the last 24 h.
    def direct_posts_today(self, open_id: str) -> int:
        since = now() - DAY
        return sum(1 for p in self.publishes_of(open_id)
                   if p.mode == DIRECT and p.created_at > since)

    # Inbox drafts of a user in the last 24 h that are not failed or posted.
    def pending_shares(self, open_id: str) -> int:
        at = now()
        count = 0
        for p in self.publishes_of(open_id):
            if p.mode == INBOX and p.created_at > at - DAY:
                status, _, _ = p.progress(at)
                if status not in (ST_FAILED, ST_COMPLETE):
                    count += 1
        return count

    # Distinct users with a Direct Post in the last 24 h (the app's active user cap).
    def active_posters_today(self) -> set[str]:
        since = now() - DAY
        return {p.open_id for p in self.publishes.values()
                if p.mode == DIRECT and p.created_at > since}

    # ---- request log ----------------------------------------------------

    # Append one entry to the request log and return it.
    def log_request(self, entry: dict) -> dict:
        self.request_seq += 1
        at = now()
        entry = {"seq": self.request_seq, "time": at,
                 "time_iso": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
                 + f".{int(at * 1000) % 1000:03d}Z", **entry}
        self.request_log.append(entry)
        return entry
