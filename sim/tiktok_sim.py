#!/usr/bin/env python3
"""Loopback simulator of TikTok's Content Posting API, OAuth v2 and user info.

Answers as described in docs/tiktok-api.md (envelope, status codes,
error codes, TikTok's field spelling).  Python 3.11 standard library only.

    python3 sim/tiktok_sim.py --port 18443 [--host 127.0.0.1] [--latency-ms 0]
        [--processing-seconds 3] [--no-rate-limits] [--quiet] [--verbose]

A control API under /_sim/ (no auth) drives users, config, faults and shows
the request log and publishes (with the CRC32 of uploaded bytes); it also serves
synthetic video files for download tests at /_sim/media/<name>?size=N&type=...
See sim/README.md.  Its calls:

    GET  /_sim/health                  POST /_sim/reset
    GET  /_sim/config                  POST /_sim/config {...}
    GET  /_sim/users                   POST /_sim/users {access_token, ...profile}
    POST /_sim/users/<open_id> {...}   (update an existing user; not for open_id "bulk")
    POST /_sim/users/bulk {"count": N, "prefix": P, "scopes": [...]}   (scopes optional)
         creates or replaces N users at once (N <= 100000, P = [A-Za-z0-9_-]{1,40}):
         user i (1..N) has open_id "P-i", access_token "act.P-i", refresh_token
         "rft.P-i" and default profile and token lifetimes, exactly as POST /_sim/users
         with those fields makes it; answers {"ok": true, "created": N}; bad input 400
    GET|POST|DELETE /_sim/faults       GET|DELETE /_sim/requests?endpoint=&open_id=&...
    GET  /_sim/publishes[/<id>]        POST /_sim/publishes/<id> {status?, ...}
    GET|HEAD /_sim/media/<name>?size=N&type=mp4|mov|webm

Capacity: one thread per connection, listen backlog 4096 (capped by
net.core.somaxconn); latency sleeps run outside the state lock.  The request log
keeps the last MAX_LOG_ENTRIES (20000) calls.  sim/load_probe.py measures a
creator_info + video_init burst over many keep-alive connections.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import ipaddress
import json
import os
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
import zlib
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

MB = 1024 * 1024
GB = 1024 * MB
DAY = 24 * 3600

SCOPE_BASIC = "user.info.basic"
SCOPE_PUBLISH = "video.publish"
SCOPE_UPLOAD = "video.upload"
DEFAULT_SCOPES = [SCOPE_BASIC, SCOPE_PUBLISH, SCOPE_UPLOAD]

PUBLIC_OPTIONS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
PRIVATE_OPTIONS = ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
ALL_PRIVACY_LEVELS = set(PUBLIC_OPTIONS) | set(PRIVATE_OPTIONS)

CANNOT_POST_CODES = ("spam_risk_too_many_posts", "spam_risk_user_banned_from_posting",
                     "reached_active_user_cap")

ST_UPLOAD = "PROCESSING_UPLOAD"
ST_DOWNLOAD = "PROCESSING_DOWNLOAD"
ST_INBOX = "SEND_TO_USER_INBOX"
ST_COMPLETE = "PUBLISH_COMPLETE"
ST_FAILED = "FAILED"
ALL_STATUSES = (ST_UPLOAD, ST_DOWNLOAD, ST_INBOX, ST_COMPLETE, ST_FAILED)
FINAL_STATUSES = (ST_INBOX, ST_COMPLETE, ST_FAILED)

PULL = "PULL_FROM_URL"
FILE = "FILE_UPLOAD"
DIRECT = "DIRECT_POST"
INBOX = "MEDIA_UPLOAD"

VIDEO_MIME_TYPES = ("video/mp4", "video/quicktime", "video/webm")
POST_ID_BASE = 7300000000000000000          # 19 digits, well beyond 2**53
SIMULATED_PULL_BYTES = 4 * MB               # size reported while "downloading"
MAX_JSON_BODY = 8 * MB
MAX_LOG_ENTRIES = 20000
UPLOAD_READ_TIMEOUT = 60.0

# (method, path) -> logical endpoint name used by the request log and faults.
ROUTES = {
    ("POST", "/v2/post/publish/creator_info/query/"): "creator_info",
    ("POST", "/v2/post/publish/video/init/"): "video_init",
    ("POST", "/v2/post/publish/inbox/video/init/"): "inbox_video_init",
    ("POST", "/v2/post/publish/content/init/"): "content_init",
    ("POST", "/v2/post/publish/status/fetch/"): "status_fetch",
    ("POST", "/v2/post/publish/cancel/"): "cancel",
    ("POST", "/v2/oauth/token/"): "oauth_token",
    ("POST", "/v2/oauth/revoke/"): "oauth_revoke",
    ("GET", "/v2/user/info/"): "user_info",
}
UPLOAD_PATH_RE = re.compile(r"^/upload/([A-Za-z0-9_-]+)$")
MEDIA_PREFIX = "/_sim/media/"
# "media" is the synthetic video source under the control API; a "*" fault skips it.
ENDPOINT_NAMES = sorted(set(ROUTES.values()) | {"upload", "media"})
OAUTH_ENDPOINTS = ("oauth_token", "oauth_revoke")

# Which endpoints share which per-token rate-limit bucket.
RATE_GROUPS = {"video_init": "init", "inbox_video_init": "init", "content_init": "init",
               "status_fetch": "status_fetch", "creator_info": "creator_info"}
DEFAULT_RATE_LIMITS = {"init": 6, "status_fetch": 30, "creator_info": 20}

USER_INFO_FIELDS = ("open_id", "union_id", "avatar_url", "avatar_url_100", "avatar_large_url",
                    "display_name", "username", "bio_description", "profile_deep_link",
                    "is_verified", "follower_count", "following_count", "likes_count",
                    "video_count")

REDACTED_KEYS = {"client_secret", "refresh_token", "code", "token", "access_token",
                 "upload_token"}

FAULT_ACTIONS = ("error", "drop", "slow", "html", "malformed", "empty", "array", "huge",
                 "binary", "wrongtypes")

# Size of the body a "huge" fault answers: past any sane reply limit (6 MiB).
HUGE_BODY_BYTES = 6 * 1024 * 1024

# Synthetic media (GET/HEAD /_sim/media/<name>?size=N&type=...): a header per type,
# then byte i = (i * 31 + 7) & 0xFF.  Served in 64 KiB pieces, never held whole.
MEDIA_HEADERS = {
    "mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41",    # 24 bytes
    "mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ",         # 20 bytes
    "webm": b"\x1a\x45\xdf\xa3\x00\x00\x00\x00",                     # 8 bytes
}
MEDIA_CONTENT_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
MEDIA_MAX_SIZE = 8 * GB
MEDIA_PIECE = 64 * 1024
# The pattern repeats every 256 bytes, so one piece plus a period covers any offset.
_MEDIA_PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(MEDIA_PIECE + 256))

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


# Non-secret randomness (log ids, publish ids): no getrandom() syscall per call, which
# under load also means one GIL hand-off less per request.  Tokens still use secrets.
_RNG = random.Random(os.urandom(32))


# Current wall-clock time in seconds.
def now() -> float:
    return time.time()


# A TikTok-style log_id: UTC timestamp followed by random hex.
def make_log_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{_RNG.getrandbits(80):020X}"


# Short sha256 prefix of a secret, safe to show and log.
def token_hash(token: str, length: int = 16) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:length]


# Length of a string in UTF-16 code units, as TikTok counts title length.
def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# True for a JSON integer (bool is excluded even though it is an int in Python).
def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# True for a JSON number (int or float, not bool).
def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


# Copy of a request body with secrets replaced by "***" (recursively).
def redact(value):
    if isinstance(value, dict):
        return {k: ("***" if k in REDACTED_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# Request path with the upload token query value hidden.
def redact_path(path: str) -> str:
    return re.sub(r"(upload_token=)[^&]*", r"\1***", path)


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


# Bytes [offset, offset + length) of a synthetic media file (length <= MEDIA_PIECE).
def media_bytes(kind: str, offset: int, length: int) -> bytes:
    if length > MEDIA_PIECE:
        raise ValueError("media_bytes serves at most one 64 KiB piece")
    start = offset % 256
    piece = _MEDIA_PATTERN[start:start + length]
    header = MEDIA_HEADERS[kind]
    if offset < len(header):
        overlay = header[offset:offset + length]
        piece = overlay + piece[len(overlay):]
    return piece


# Parse a Range header against a size: None (serve whole), (first, last), or "416".
def parse_byte_range(value: str | None, size: int):
    if value is None:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None                   # other units and multi-range: ignored (200, whole body)
    match = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if not match or match.groups() == ("", ""):
        return "416"
    first_text, last_text = match.groups()
    if first_text == "":              # suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "416"
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return "416"
    return first, min(last, size - 1)


# --------------------------------------------------------------------------
# Errors raised by endpoint handlers
# --------------------------------------------------------------------------


class ApiError(Exception):
    """A TikTok error answered in the JSON envelope."""

    # Remember HTTP status, error.code and message.
    def __init__(self, http_status: int, code: str, message: str = ""):
        super().__init__(message or code)
        self.http_status = http_status
        self.code = code
        self.message = message or code


class OAuthError(Exception):
    """An OAuth error answered as flat {"error", "error_description", "log_id"}."""

    # Remember HTTP status, error and description.
    def __init__(self, http_status: int, error: str, description: str):
        super().__init__(description)
        self.http_status = http_status
        self.error = error
        self.description = description


class ControlError(Exception):
    """A bad control API request (answered 400 or 404)."""

    # Remember the message and HTTP status.
    def __init__(self, message: str, http_status: int = 400):
        super().__init__(message)
        self.http_status = http_status


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


class Config:
    """Simulator settings: defaults come from the command line; /_sim/config edits them."""

    # Build the default settings from command-line options.
    def __init__(self, latency_ms: float = 0, processing_seconds: float = 3,
                 rate_limits: bool = True):
        self.defaults = {
            "latency_ms": latency_ms,
            "processing_seconds": processing_seconds,
            "rate_limits": rate_limits,
            "rate_limit_per_minute": dict(DEFAULT_RATE_LIMITS),
            "rate_limit_window_seconds": 60,
            "verified_url_prefixes": ["https://verified.example/", "https://cdn.vibescaling.test/"],
            "unaudited": False,
            "unaudited_user_cap": 5,
            "auto_users": True,
            "client_key": "sim_client_key",
            "client_secret": "sim_client_secret",
            "access_expires_in": 7200,
            "refresh_expires_in": 15552000,
            "upload_url_ttl_seconds": 3600,
            "pending_share_limit": 5,
            "upload_base_url": None,
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
                   "rate_limit_window_seconds"):
            if not is_number(value) or value < 0:
                raise ControlError(f"{key} must be a non-negative number")
        elif key in ("access_expires_in", "refresh_expires_in", "unaudited_user_cap",
                     "pending_share_limit"):
            if not is_int(value) or value < 0:
                raise ControlError(f"{key} must be a non-negative integer")
        elif key in ("unaudited", "auto_users"):
            if not isinstance(value, bool):
                raise ControlError(f"{key} must be a boolean")
        elif key in ("client_key", "client_secret"):
            if not isinstance(value, str) or not value:
                raise ControlError(f"{key} must be a non-empty string")
        elif key == "upload_base_url":
            if value is not None and not isinstance(value, str):
                raise ControlError("upload_base_url must be a string or null")
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

    # All settings as a JSON-ready dict.
    def as_dict(self) -> dict:
        return copy.deepcopy(self.values)


# --------------------------------------------------------------------------
# State records
# --------------------------------------------------------------------------


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

    # Current (status, fail_reason, visible post ids) at time `at`.
    def progress(self, at: float) -> tuple[str, str | None, list]:
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
        if self.source == FILE:
            if self.upload_completed_at is None:
                return ST_UPLOAD, None, []
            started, busy = self.upload_completed_at, ST_UPLOAD
        else:
            started, busy = self.created_at, ST_DOWNLOAD
        elapsed = at - started
        if elapsed < self.processing_seconds:
            return busy, None, []
        if self.planned_fail_reason:
            return ST_FAILED, self.planned_fail_reason, []
        if self.mode == INBOX:
            return ST_INBOX, None, []
        visible = elapsed >= 2 * self.processing_seconds and self.post_id is not None
        return ST_COMPLETE, None, ([self.post_id] if visible else [])

    # Bytes TikTok has pulled so far (PULL_FROM_URL only).
    def downloaded_bytes(self, at: float) -> int:
        status, _, _ = self.progress(at)
        if status == ST_FAILED:
            return 0
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
        }


@dataclass
class Fault:
    """A pending injected fault for the next `count` calls of an endpoint."""
    fault_id: int
    endpoint: str
    count: int = 1
    action: str = "error"
    http_status: int = 500
    error_code: str = "internal_error"
    message: str = "simulated fault"
    delay_ms: float = 0
    retry_after: int | None = None
    after_processing: bool = False
    skip: int = 0                    # matching calls still to let through before applying
    open_id: str | None = None       # only calls whose bearer token belongs to this user

    # Whether a call to this endpoint (by this user, if known) concerns the fault
    # ("*" covers all but "media").
    def matches(self, endpoint: str, open_id: str | None = None) -> bool:
        if self.open_id is not None and self.open_id != open_id:
            return False
        return self.endpoint == endpoint or (self.endpoint == "*" and endpoint != "media")

    # JSON view for /_sim/faults.
    def describe(self) -> dict:
        return {"id": self.fault_id, "endpoint": self.endpoint, "count": self.count,
                "skip": self.skip,
                "action": self.action, "http_status": self.http_status,
                "error_code": self.error_code, "message": self.message,
                "delay_ms": self.delay_ms, "retry_after": self.retry_after,
                "after_processing": self.after_processing, "open_id": self.open_id}


# --------------------------------------------------------------------------
# Simulator state (everything guarded by one lock)
# --------------------------------------------------------------------------


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
            self.faults: list[Fault] = []
            self.rate_windows: dict[tuple[str, str], deque] = {}
            self.post_counter = 0

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
            pid = f"{prefix}~v2.{7000000000000000000 + _RNG.randrange(10**18)}"
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

    # Distinct users with a Direct Post in the last 24 h (unaudited app cap).
    def active_posters_today(self) -> set[str]:
        since = now() - DAY
        return {p.open_id for p in self.publishes.values()
                if p.mode == DIRECT and p.created_at > since}

    # ---- faults ---------------------------------------------------------

    # Take one use of the first armed fault matching an endpoint.  Every matching fault
    # still skipping counts this call as one of the calls it lets through.
    def take_fault(self, endpoint: str, open_id: str | None = None) -> Fault | None:
        matching = [f for f in self.faults if f.matches(endpoint, open_id) and f.count > 0]
        chosen = next((f for f in matching if f.skip <= 0), None)
        for fault in matching:
            if fault.skip > 0:
                fault.skip -= 1
        if chosen is None:
            return None
        chosen.count -= 1
        taken = copy.copy(chosen)
        if chosen.count <= 0:
            self.faults.remove(chosen)
        return taken

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


# --------------------------------------------------------------------------
# A request as the endpoint handlers see it, and the reply they produce
# --------------------------------------------------------------------------


@dataclass
class Request:
    """One incoming TikTok API request."""
    method: str
    path: str
    query: dict
    headers: object
    endpoint: str | None
    host_header: str
    raw_body: bytes = b""
    rfile: object = None
    set_read_timeout: object = None
    open_id: str | None = None
    publish_id: str | None = None
    log_body: object = None
    received: float = 0.0       # when it arrived (epoch s), before its body, latency and faults

    # The bearer token from the Authorization header, or None.
    def bearer_token(self) -> str | None:
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    # The body parsed as a JSON object; raises invalid_param otherwise.
    def json_object(self, allow_empty: bool = False) -> dict:
        if not self.raw_body.strip():
            if allow_empty:
                return {}
            raise ApiError(400, "invalid_param", "request body must be a JSON object")
        try:
            body = json.loads(self.raw_body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "invalid_param", "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_param", "request body must be a JSON object")
        return body

    # The body parsed as an x-www-form-urlencoded form (first value per key).
    def form(self) -> dict:
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request",
                             "Content-Type must be application/x-www-form-urlencoded")
        try:
            text = self.raw_body.decode("utf-8")
        except UnicodeDecodeError:
            raise OAuthError(400, "invalid_request", "body is not UTF-8") from None
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass
class Reply:
    """What to send back (or, with drop=True, to close the socket without a reply)."""
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict = field(default_factory=dict)
    error_code: str | None = None
    log_id: str | None = None
    drop: bool = False
    close: bool = False
    effect_error_code: str | None = None


# An envelope reply: {"data": ..., "error": {"code", "message", "log_id"}}.
def envelope_reply(status: int, data: dict, code: str = "ok", message: str = "") -> Reply:
    log_id = make_log_id()
    body = {"data": data, "error": {"code": code, "message": message, "log_id": log_id}}
    return Reply(status, json.dumps(body).encode("utf-8"), error_code=code, log_id=log_id,
                 headers={"X-Tt-Logid": log_id})


# A flat OAuth reply (success body or {"error", "error_description", "log_id"}).
def oauth_reply(status: int, body: dict | None) -> Reply:
    log_id = make_log_id()
    if body is None:
        return Reply(status, b"", error_code="ok", log_id=log_id, headers={"X-Tt-Logid": log_id})
    if "error" in body:
        body = {**body, "log_id": log_id}
    return Reply(status, json.dumps(body).encode("utf-8"),
                 error_code=body.get("error", "ok"), log_id=log_id,
                 headers={"X-Tt-Logid": log_id})


# --------------------------------------------------------------------------
# TikTok endpoints
# --------------------------------------------------------------------------


class TikTokApi:
    """Implements the TikTok endpoints on top of SimState (callers hold state.lock)."""

    # Keep the shared state.
    def __init__(self, state: SimState):
        self.state = state

    # Run the handler for an endpoint and turn raised errors into replies.
    def handle(self, req: Request) -> Reply:
        handler = getattr(self, "ep_" + req.endpoint)
        try:
            return handler(req)
        except ApiError as err:
            return envelope_reply(err.http_status, {}, err.code, err.message)
        except OAuthError as err:
            return oauth_reply(err.http_status, {"error": err.error,
                                                 "error_description": err.description})

    # ---- shared checks --------------------------------------------------

    # Authenticate, rate-limit and scope-check a call; returns the user's profile.
    def authorize(self, req: Request, scopes_any: tuple[str, ...]) -> dict:
        token = req.bearer_token()
        profile = self.state.resolve_token(token)
        if profile is None:
            raise ApiError(401, "access_token_invalid",
                           "The access token is invalid or not found in the request.")
        req.open_id = profile["open_id"]
        if not self.state.rate_limit_allows(token, req.endpoint):
            raise ApiError(429, "rate_limit_exceeded",
                           "The API rate limit was exceeded. Please try again later.")
        if not any(scope in profile["scopes"] for scope in scopes_any):
            raise ApiError(401, "scope_not_authorized",
                           f"The user did not authorize the scope required: {'/'.join(scopes_any)}")
        return profile

    # The privacy options TikTok offers this creator.
    @staticmethod
    def privacy_options(profile: dict) -> list[str]:
        if profile.get("privacy_level_options"):
            return list(profile["privacy_level_options"])
        return list(PRIVATE_OPTIONS if profile["private_account"] else PUBLIC_OPTIONS)

    # The reason this creator cannot Direct Post right now, or None.
    def cannot_post_reason(self, profile: dict) -> str | None:
        if profile["banned"]:
            return "spam_risk_user_banned_from_posting"
        if profile["cannot_post"]:
            return profile["cannot_post"]
        if self.state.direct_posts_today(profile["open_id"]) >= profile["daily_post_cap"]:
            return "spam_risk_too_many_posts"
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

    # Reject Direct Posts the creator/app may not make now (ban, cap, unaudited rules).
    def check_direct_post_allowed(self, profile: dict, privacy: str) -> None:
        reason = self.cannot_post_reason(profile)
        if reason:
            raise ApiError(403, reason, f"The creator cannot post now: {reason}")
        if self.state.config["unaudited"]:
            if privacy != "SELF_ONLY" or not profile["private_account"]:
                raise ApiError(403, "unaudited_client_can_only_post_to_private_accounts",
                               "Unaudited clients can only post SELF_ONLY to private accounts")
            posters = self.state.active_posters_today()
            if (profile["open_id"] not in posters
                    and len(posters) >= self.state.config["unaudited_user_cap"]):
                raise ApiError(403, "reached_active_user_cap",
                               "The unaudited app reached its daily cap of posting users")

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
        state.add_publish(publish)
        req.publish_id = publish.publish_id
        return publish, data

    # Find a publish the caller may see, by the body's publish_id.
    def owned_publish(self, req: Request, profile: dict) -> Publish:
        body = req.json_object()
        publish_id = body.get("publish_id")
        if not isinstance(publish_id, str) or not publish_id:
            raise ApiError(400, "invalid_param", "publish_id is required")
        req.publish_id = publish_id
        publish = self.state.publishes.get(publish_id)
        if publish is None:
            raise ApiError(400, "invalid_publish_id", "The publish_id does not exist")
        if publish.open_id != profile["open_id"]:
            raise ApiError(400, "token_not_authorized_for_specified_publish_id",
                           "The access token is not authorized for this publish_id")
        return publish

    # ---- endpoints ------------------------------------------------------

    # POST /v2/post/publish/creator_info/query/
    def ep_creator_info(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH,))
        req.json_object(allow_empty=True)
        reason = self.cannot_post_reason(profile)
        if reason:
            return envelope_reply(200, {}, reason, f"The creator cannot post now: {reason}")
        return envelope_reply(200, {
            "creator_avatar_url": profile["avatar_url"],
            "creator_username": profile["username"],
            "creator_nickname": profile["nickname"],
            "privacy_level_options": self.privacy_options(profile),
            "comment_disabled": profile["comment_disabled"],
            "duet_disabled": profile["duet_disabled"],
            "stitch_disabled": profile["stitch_disabled"],
            "max_video_post_duration_sec": profile["max_video_post_duration_sec"],
        })

    # POST /v2/post/publish/video/init/ (Direct Post a video)
    def ep_video_init(self, req: Request) -> Reply:
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
    def ep_inbox_video_init(self, req: Request) -> Reply:
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
    def ep_content_init(self, req: Request) -> Reply:
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

    # POST /v2/post/publish/status/fetch/
    def ep_status_fetch(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH, SCOPE_UPLOAD))
        publish = self.owned_publish(req, profile)
        at = now()
        status, fail_reason, post_ids = publish.progress(at)
        data = {"status": status}
        if status == ST_FAILED:
            data["fail_reason"] = fail_reason
        data["publicaly_available_post_id"] = post_ids
        if publish.source == FILE:
            data["uploaded_bytes"] = publish.uploaded_bytes
        else:
            data["downloaded_bytes"] = publish.downloaded_bytes(at)
        return envelope_reply(200, data)

    # POST /v2/post/publish/cancel/ (only an in-flight PULL_FROM_URL can be cancelled)
    def ep_cancel(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH, SCOPE_UPLOAD))
        publish = self.owned_publish(req, profile)
        status, _, _ = publish.progress(now())
        if publish.source != PULL or status in FINAL_STATUSES:
            raise ApiError(400, "publish_not_cancellable",
                           f"The publish cannot be cancelled in status {status}")
        publish.cancelled = True
        return envelope_reply(200, {})

    # GET /v2/user/info/?fields=...
    def ep_user_info(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_BASIC,))
        fields = [f.strip() for f in req.query.get("fields", [""])[0].split(",") if f.strip()]
        if not fields:
            raise ApiError(400, "invalid_param", "fields is required")
        unknown = [f for f in fields if f not in USER_INFO_FIELDS]
        if unknown:
            raise ApiError(400, "invalid_param", f"unknown fields: {','.join(unknown)}")
        source = {
            "open_id": profile["open_id"], "union_id": profile["union_id"],
            "avatar_url": profile["avatar_url"], "avatar_url_100": profile["avatar_url"],
            "avatar_large_url": profile["avatar_url"], "display_name": profile["nickname"],
            "username": profile["username"], "bio_description": "",
            "profile_deep_link": f"https://www.tiktok.com/@{profile['username']}",
            "is_verified": False, "follower_count": 0, "following_count": 0,
            "likes_count": 0, "video_count": 0,
        }
        return envelope_reply(200, {"user": {f: source[f] for f in fields}})

    # POST /v2/oauth/token/ (code exchange and refresh, flat JSON replies)
    def ep_oauth_token(self, req: Request) -> Reply:
        form = req.form()
        self.check_client(form)
        grant = form.get("grant_type", "")
        if grant == "authorization_code":
            open_id = self.redeem_code(form.get("code", ""))
        elif grant == "refresh_token":
            open_id = self.rotate_refresh(form.get("refresh_token", ""))
        else:
            raise OAuthError(400, "unsupported_grant_type",
                             "grant_type must be authorization_code or refresh_token")
        req.open_id = open_id
        access, refresh = self.state.issue_tokens(open_id)
        profile = self.state.profiles[open_id]
        return oauth_reply(200, {
            "access_token": access,
            "expires_in": self.state.config["access_expires_in"],
            "open_id": open_id,
            "refresh_token": refresh,
            "refresh_expires_in": self.state.config["refresh_expires_in"],
            "scope": ",".join(profile["scopes"]),
            "token_type": "Bearer",
        })

    # Reject calls whose client_key/client_secret do not match the config.
    def check_client(self, form: dict) -> None:
        config = self.state.config
        if (form.get("client_key") != config["client_key"]
                or form.get("client_secret") != config["client_secret"]):
            raise OAuthError(401, "invalid_client", "Client key or secret is invalid.")

    # Redeem a single-use authorization code; returns the user's open_id.
    def redeem_code(self, code: str) -> str:
        state = self.state
        if not code or code in state.used_codes:
            raise OAuthError(400, "invalid_grant", "Authorization code is expired or invalid.")
        if code in state.auth_codes:
            open_id = state.auth_codes.pop(code)
        elif re.fullmatch(r"code-[A-Za-z0-9_.\-]+", code):
            open_id = code[len("code-"):]
        else:
            raise OAuthError(400, "invalid_grant", "Authorization code is expired or invalid.")
        state.used_codes.add(code)
        state.profiles.setdefault(open_id, state.default_profile(open_id))
        return open_id

    # Rotate a refresh token: the old one stops working; returns the open_id.
    def rotate_refresh(self, refresh: str) -> str:
        record = self.state.refresh_tokens.get(refresh)
        if record is None or not record.usable(now()):
            raise OAuthError(400, "invalid_grant", "Refresh token is invalid or expired.")
        record.valid = False
        counts = self.state.refresh_counts
        counts[record.open_id] = counts.get(record.open_id, 0) + 1
        self.state.profiles.setdefault(record.open_id, self.state.default_profile(record.open_id))
        return record.open_id

    # POST /v2/oauth/revoke/ (the token and its refresh token stop working)
    def ep_oauth_revoke(self, req: Request) -> Reply:
        form = req.form()
        self.check_client(form)
        token = form.get("token", "")
        if not token:
            raise OAuthError(400, "invalid_request", "token is required")
        state = self.state
        record = state.tokens.get(token)
        if record is not None:
            record.valid = False
            req.open_id = record.open_id
            if record.refresh_token in state.refresh_tokens:
                state.refresh_tokens[record.refresh_token].valid = False
        elif token in state.refresh_tokens:
            refresh = state.refresh_tokens[token]
            refresh.valid = False
            req.open_id = refresh.open_id
            if refresh.access_token in state.tokens:
                state.tokens[refresh.access_token].valid = False
        else:
            # Unknown token: remember it as revoked so auto_users never adopts it.
            state.put_token(token, TokenRecord(open_id=None, valid=False))
        return oauth_reply(200, None)


# --------------------------------------------------------------------------
# Chunk upload (PUT /upload/<id>), streaming and outside the lock while reading
# --------------------------------------------------------------------------


class UploadHandler:
    """Validates and counts FILE_UPLOAD chunks without keeping the bytes."""

    CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")

    # Keep the shared state.
    def __init__(self, state: SimState):
        self.state = state

    # Handle one chunk: validate headers, stream-count the body, record progress.
    def handle(self, req: Request, upload_id: str) -> Reply:
        length = self.content_length(req)
        try:
            with self.state.lock:
                publish, first, last, total = self.check_before_body(req, upload_id, length)
                base_crc = publish.uploaded_crc32
        except ApiError as err:
            return self.reject(req, err, length)
        received, crc = self.read_and_count(req, length, base_crc)
        if received != length:
            reply = self.error_reply(ApiError(400, "invalid_param",
                                              "body shorter than Content-Length"))
            reply.close = True
            return reply
        with self.state.lock:
            # uploaded_bytes only grows, so an unchanged value also means an unchanged CRC.
            if publish.uploaded_bytes != first:
                return self.error_reply(ApiError(416, "range_not_satisfiable",
                                                 "concurrent chunk upload"),
                                        publish)
            publish.uploaded_bytes += received
            publish.uploaded_crc32 = crc
            publish.chunks.append([first, last])
            publish.content_types.append(req.headers.get("Content-Type", "").strip())
            done = publish.uploaded_bytes == total
            if done:
                publish.upload_completed_at = now()
        reply = Reply(201 if done else 206, b"", error_code="ok")
        reply.headers["Content-Range"] = f"bytes 0-{last}/{total}"
        return reply

    # Parsed Content-Length, or None when missing/invalid.
    @staticmethod
    def content_length(req: Request) -> int | None:
        value = req.headers.get("Content-Length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value.strip())

    # All checks that need no body; returns (publish, first, last, total) or raises ApiError.
    def check_before_body(self, req: Request, upload_id: str,
                          length: int | None) -> tuple[Publish, int, int, int]:
        state = self.state
        publish_id = state.uploads.get(upload_id)
        publish = state.publishes.get(publish_id) if publish_id else None
        token = req.query.get("upload_token", [""])[0]
        if publish is None or not token or not secrets.compare_digest(
                token.encode(), (publish.upload_token or "").encode()):
            raise ApiError(404, "not_found", "Unknown upload")
        req.publish_id, req.open_id = publish.publish_id, publish.open_id
        if publish.upload_completed_at is None and now() >= publish.upload_expires_at:
            raise ApiError(403, "upload_url_expired", "The upload URL has expired")
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in VIDEO_MIME_TYPES:
            raise ApiError(400, "invalid_param",
                           "Content-Type must be video/mp4, video/quicktime or video/webm")
        if length is None:
            raise ApiError(400, "invalid_param", "Content-Length is required")
        match = self.CONTENT_RANGE_RE.match(req.headers.get("Content-Range", "").strip())
        if not match:
            raise ApiError(400, "invalid_param", "Content-Range must be 'bytes FIRST-LAST/TOTAL'")
        first, last, total = map(int, match.groups())
        if last < first or last >= total or last - first + 1 != length:
            raise ApiError(400, "invalid_param", "Content-Range does not match Content-Length")
        if publish.upload_completed_at is not None:
            raise ApiError(416, "range_not_satisfiable", "The upload is already complete")
        if first != publish.uploaded_bytes or total != publish.video_size:
            raise ApiError(416, "range_not_satisfiable",
                           f"expected bytes starting at {publish.uploaded_bytes} "
                           f"of {publish.video_size}")
        self.check_chunk_length(publish, first, last, length)
        return publish, first, last, total

    # Enforce chunk_size for every chunk and the remainder for the last one.
    @staticmethod
    def check_chunk_length(publish: Publish, first: int, last: int, length: int) -> None:
        index = first // publish.chunk_size
        is_last = index >= publish.total_chunk_count - 1
        if is_last:
            if last != publish.video_size - 1:
                raise ApiError(400, "invalid_param",
                               "the last chunk must run to the end of the video")
        elif length != publish.chunk_size:
            raise ApiError(400, "invalid_param",
                           f"chunk {index + 1} must be exactly chunk_size bytes")

    # Read the body in pieces; returns (bytes that arrived, zlib.crc32 continued from crc).
    @staticmethod
    def read_and_count(req: Request, length: int, crc: int = 0) -> tuple[int, int]:
        received = 0
        try:
            if req.set_read_timeout:
                req.set_read_timeout(UPLOAD_READ_TIMEOUT)
            while received < length:
                piece = req.rfile.read(min(256 * 1024, length - received))
                if not piece:
                    break
                received += len(piece)
                crc = zlib.crc32(piece, crc)
        except (OSError, socket.timeout):
            pass
        return received, crc

    # Read and discard a body; True when all of it arrived (the connection stays usable).
    @classmethod
    def discard(cls, req: Request, length: int | None) -> bool:
        return length is not None and cls.read_and_count(req, length)[0] == length

    # Fill in publish_id/open_id for the log when the upload URL is valid (no other checks).
    def identify(self, req: Request, upload_id: str) -> None:
        with self.state.lock:
            publish = self.state.publishes.get(self.state.uploads.get(upload_id) or "")
            token = req.query.get("upload_token", [""])[0]
            if publish is not None and token and secrets.compare_digest(
                    token.encode(), (publish.upload_token or "").encode()):
                req.publish_id, req.open_id = publish.publish_id, publish.open_id

    # Answer an error, draining the body first so the connection stays usable.
    def reject(self, req: Request, err: ApiError, length: int | None) -> Reply:
        reply = self.error_reply(err)
        if not self.discard(req, length):
            reply.close = True
        return reply

    # An envelope error reply for the upload endpoint (with progress when known).
    @staticmethod
    def error_reply(err: ApiError, publish: Publish | None = None) -> Reply:
        reply = envelope_reply(err.http_status, {}, err.code, err.message)
        if publish is not None and err.http_status == 416:
            reply.headers["Content-Range"] = f"bytes */{publish.video_size}"
        return reply


# --------------------------------------------------------------------------
# Synthetic media source (GET/HEAD /_sim/media/<name>)
# --------------------------------------------------------------------------


@dataclass
class MediaPlan:
    """What a media request will get: a ready error reply, or a byte range to stream."""
    log_body: dict
    reply: Reply | None = None
    status: int = 200
    kind: str = "mp4"
    first: int = 0
    last: int = -1
    headers: dict = field(default_factory=dict)


# A small JSON error reply from the media source.
def media_error(status: int, message: str, headers: dict | None = None,
                close: bool = False) -> Reply:
    body = json.dumps({"ok": False, "error": message}).encode("utf-8")
    return Reply(status, body, headers=dict(headers or {}), close=close,
                 error_code="range_not_satisfiable" if status == 416 else "invalid_param")


# Validate a media request and work out status, headers and byte range.
def media_plan(method: str, path: str, query: dict, range_header: str | None) -> MediaPlan:
    name = unquote(path[len(MEDIA_PREFIX):])
    kind = query.get("type", [""])[0].lower()
    if not kind:
        suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        kind = suffix if suffix in MEDIA_HEADERS else "mp4"
    size_text = query.get("size", [""])[0]
    log_body = {"name": name, "type": kind, "size": None, "range": range_header,
                "bytes_sent": 0}
    plan = MediaPlan(log_body=log_body, kind=kind)
    if method not in ("GET", "HEAD"):
        plan.reply = media_error(405, "the media source answers GET and HEAD only",
                                 {"Allow": "GET, HEAD"})
        return plan
    if not name:
        plan.reply = media_error(404, "a media name is required: /_sim/media/<name>")
        return plan
    if kind not in MEDIA_HEADERS:
        plan.reply = media_error(400, f"type must be one of {sorted(MEDIA_HEADERS)}")
        return plan
    if not (size_text.isascii() and size_text.isdigit()) or int(size_text) > MEDIA_MAX_SIZE:
        plan.reply = media_error(400, f"size must be an integer from 0 to {MEDIA_MAX_SIZE}")
        return plan
    size = int(size_text)
    log_body["size"] = size
    common = {"Content-Type": MEDIA_CONTENT_TYPES[kind], "Accept-Ranges": "bytes",
              "ETag": f'"sim-{kind}-{size}"', "Cache-Control": "no-store"}
    byte_range = parse_byte_range(range_header, size)
    if byte_range == "416":
        plan.reply = media_error(416, f"range not satisfiable for {size} bytes",
                                 {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{size}"})
        return plan
    if byte_range is None:
        plan.first, plan.last = 0, size - 1
    else:
        plan.status = 206
        plan.first, plan.last = byte_range
        common["Content-Range"] = f"bytes {plan.first}-{plan.last}/{size}"
    common["Content-Length"] = str(plan.last - plan.first + 1)
    plan.headers = common
    return plan


# --------------------------------------------------------------------------
# Fault replies
# --------------------------------------------------------------------------


# A "huge" fault's body: a well-formed, ok-looking envelope of HUGE_BODY_BYTES bytes
# (its data padded with an array of strings), so only its size is wrong.
def huge_body() -> bytes:
    head = json.dumps({"error": {"code": "ok", "message": "", "log_id": make_log_id()},
                       "data": {"publish_id": "v_pub_url~v2.huge"}})[:-2]
    head += ', "padding": ['
    item = '"' + "x" * 1022 + '", '                       # 1026 bytes per element
    count = (HUGE_BODY_BYTES - len(head) - 8) // len(item)
    body = head + item * count + '"end"]}}'
    return (body + " " * (HUGE_BODY_BYTES - len(body))).encode("ascii")


# A "binary" fault's body: JSON-looking text with invalid UTF-8 (a lone continuation
# byte, an overlong form, a UTF-16 surrogate, 0xFF/0xFE) and a NUL early on (inside what
# a client would quote in an error message), then every byte value and 4 KiB of
# deterministic pseudo-random bytes.
def _binary_body() -> bytes:
    head = (b'{"data": {"publish_id": "v_pub_url~v2.\xff\xfe"}, "error": {"code": "ok\x80", '
            b'"message": "\xc0\xaf \x00 \xed\xa0\x80 \xf8\x88\x80\x80\x80", "log_id": "\xc3\x28"}}')
    noise, x = bytearray(), 2463534242
    for _ in range(4096):                                 # xorshift32
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        noise.append(x & 0xFF)
    return head + bytes(range(256)) + bytes(noise)


BINARY_BODY = _binary_body()


# The reply a fault sends instead of the real one (drop = no reply at all).
def fault_reply(fault: Fault, endpoint: str) -> Reply:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.action == "drop":
        return Reply(0, drop=True, error_code=None)
    if fault.action == "error":
        if endpoint in OAUTH_ENDPOINTS:
            reply = oauth_reply(fault.http_status, {"error": fault.error_code,
                                                    "error_description": fault.message})
        else:
            reply = envelope_reply(fault.http_status, {}, fault.error_code, fault.message)
        reply.headers.update(headers)
        return reply
    if fault.action == "html":
        html = (f"<html><head><title>{fault.http_status} Error</title></head><body>"
                f"<h1>{fault.http_status} Error</h1><p>{fault.message}</p>"
                "<hr><center>simulated gateway</center></body></html>")
        return Reply(fault.http_status, html.encode("utf-8"), "text/html; charset=UTF-8",
                     headers, error_code=None)
    if fault.action == "malformed":
        return Reply(200, b'{"data": {"publish_id": "v_pub_url~v2.12', headers=headers,
                     error_code=None)
    if fault.action == "empty":
        return Reply(200, b"", headers=headers, error_code=None)
    if fault.action == "array":
        body = [{"data": {"publish_id": "v_pub_url~v2.array"},
                 "error": {"code": "ok", "message": "", "log_id": make_log_id()}}]
        return Reply(200, json.dumps(body).encode("utf-8"), headers=headers, error_code=None)
    if fault.action == "huge":
        return Reply(200, huge_body(), headers=headers, error_code=None)
    if fault.action == "binary":
        return Reply(200, BINARY_BODY, headers=headers, error_code=None)
    if fault.action == "wrongtypes":
        code = "ok" if fault.error_code == "ok" else 7
        body = {"data": {"publish_id": 12345},
                "error": {"code": code, "message": None, "log_id": []}}
        return Reply(200, json.dumps(body).encode("utf-8"), headers=headers, error_code=None)
    raise ValueError(f"no reply for fault action {fault.action}")


# --------------------------------------------------------------------------
# Control API (/_sim/...)
# --------------------------------------------------------------------------

PROFILE_FIELD_TYPES = {
    "open_id": str, "union_id": str, "scopes": (list, str), "private_account": bool,
    "privacy_level_options": (list, type(None)), "comment_disabled": bool,
    "duet_disabled": bool, "stitch_disabled": bool, "max_video_post_duration_sec": int,
    "nickname": str, "username": str, "avatar_url": str, "cannot_post": (str, type(None)),
    "banned": bool, "daily_post_cap": int,
}
BULK_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
MAX_BULK_USERS = 100000
TOKEN_FIELDS = {"access_token", "refresh_token", "auth_code", "token_valid", "expires_at",
                "expires_in", "refresh_expires_at"}


class ControlApi:
    """The /_sim/ endpoints: health, reset, config, users, faults, requests, publishes."""

    # Keep the shared state.
    def __init__(self, state: SimState):
        self.state = state

    # Route a control request; returns (HTTP status, JSON body).
    def handle(self, method: str, path: str, query: dict, raw_body: bytes) -> tuple[int, dict]:
        try:
            body = self.parse_body(raw_body) if method in ("POST", "PUT", "PATCH") else None
            with self.state.lock:
                return self.route(method, path.rstrip("/") or "/", query, body)
        except ControlError as err:
            return err.http_status, {"ok": False, "error": str(err)}

    # Parse a control request body (empty means {}).
    @staticmethod
    def parse_body(raw: bytes):
        if not raw.strip():
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ControlError("body is not valid JSON") from None

    # Dispatch on method and path.
    def route(self, method: str, path: str, query: dict, body) -> tuple[int, dict]:
        state = self.state
        if path == "/_sim/health" and method == "GET":
            return 200, {"ok": True}
        if path == "/_sim/reset" and method == "POST":
            state.reset()
            return 200, {"ok": True}
        if path == "/_sim/config":
            if method == "POST":
                state.config.update(body)
            if method in ("GET", "POST"):
                return 200, state.config.as_dict()
        if path == "/_sim/users":
            if method == "GET":
                return 200, {"users": self.list_users()}
            if method == "POST":
                return 200, self.put_user(body)
        if path == "/_sim/users/bulk" and method == "POST":
            return 200, self.bulk_users(body)
        if path.startswith("/_sim/users/") and method == "POST":
            return 200, self.update_user(unquote(path[len("/_sim/users/"):]), body)
        if path == "/_sim/faults":
            if method == "GET":
                return 200, {"faults": [f.describe() for f in state.faults]}
            if method == "POST":
                items = body if isinstance(body, list) else [body]
                added = [self.add_fault(item).describe() for item in items]
                return 200, added[0] if not isinstance(body, list) else {"faults": added}
            if method == "DELETE":
                state.faults.clear()
                return 200, {"ok": True}
        if path == "/_sim/requests":
            if method == "GET":
                return 200, {"requests": self.list_requests(query)}
            if method == "DELETE":
                state.request_log.clear()
                return 200, {"ok": True}
        if path == "/_sim/publishes" and method == "GET":
            at = now()
            return 200, {"publishes": [p.describe(at) for p in state.publishes.values()]}
        if path.startswith("/_sim/publishes/"):
            publish_id = unquote(path[len("/_sim/publishes/"):])
            publish = state.publishes.get(publish_id)
            if publish is None:
                raise ControlError(f"unknown publish {publish_id}", 404)
            if method == "POST":
                self.force_publish(publish, body)
            if method in ("GET", "POST"):
                return 200, publish.describe(now())
        raise ControlError(f"no control endpoint {method} {path}", 404)

    # ---- users ------------------------------------------------------------

    # Validate profile fields from a control request body.
    @staticmethod
    def check_profile_fields(body: dict) -> None:
        unknown = sorted(set(body) - set(PROFILE_FIELD_TYPES) - TOKEN_FIELDS)
        if unknown:
            raise ControlError(f"unknown user fields: {', '.join(unknown)}")
        for key, types in PROFILE_FIELD_TYPES.items():
            if key not in body:
                continue
            bad_int = types is int and not is_int(body[key])
            if bad_int or not isinstance(body[key], types):
                raise ControlError(f"bad type for user field {key}")
        if body.get("cannot_post") not in (None, *CANNOT_POST_CODES):
            raise ControlError(f"cannot_post must be null or one of {CANNOT_POST_CODES}")
        for key in ("expires_at", "expires_in", "refresh_expires_at"):
            if key in body and body[key] is not None and not is_number(body[key]):
                raise ControlError(f"{key} must be a number")
        if "token_valid" in body and not isinstance(body["token_valid"], bool):
            raise ControlError("token_valid must be a boolean")
        options = body.get("privacy_level_options")
        if options is not None and (not options or not set(options) <= ALL_PRIVACY_LEVELS):
            raise ControlError("privacy_level_options must be a non-empty list of privacy levels")

    # Copy profile fields from a body into a profile.
    @staticmethod
    def apply_profile_fields(profile: dict, body: dict) -> None:
        for key in PROFILE_FIELD_TYPES:
            if key in body and key != "open_id":
                value = body[key]
                if key == "scopes" and isinstance(value, str):
                    value = [s.strip() for s in value.split(",") if s.strip()]
                profile[key] = copy.deepcopy(value)

    # Apply token fields (validity, expiry, refresh token, auth code) for a user.
    def apply_token_fields(self, open_id: str, access_token: str | None, body: dict) -> None:
        state = self.state
        records = ([state.tokens[access_token]] if access_token
                   else [state.tokens[t] for t in state.tokens_of(open_id)])
        for record in records:
            if "token_valid" in body:
                record.valid = bool(body["token_valid"])
            if "expires_at" in body:
                record.expires_at = body["expires_at"]
            if "expires_in" in body:
                record.expires_at = now() + body["expires_in"]
        if body.get("refresh_token"):
            refresh = body["refresh_token"]
            target = access_token or state.latest_token(open_id)[0] or ""
            state.refresh_tokens[refresh] = RefreshRecord(
                open_id=open_id, access_token=target, expires_at=body.get("refresh_expires_at"))
            if target in state.tokens:
                state.tokens[target].refresh_token = refresh
        if body.get("auth_code"):
            state.auth_codes[body["auth_code"]] = open_id
            state.used_codes.discard(body["auth_code"])

    # POST /_sim/users: create or replace a user identified by its access token.
    def put_user(self, body) -> dict:
        if not isinstance(body, dict):
            raise ControlError("user body must be a JSON object")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ControlError("access_token is required")
        self.check_profile_fields(body)
        existing = self.state.tokens.get(token)
        open_id = body.get("open_id") or (existing.open_id if existing and existing.open_id
                                          else "user_" + token_hash(token, 8))
        self.store_user(open_id, token, body)
        return self.describe_user(open_id)

    # Create or replace one user behind an access token (body fields already checked).
    def store_user(self, open_id: str, token: str, body: dict) -> None:
        state = self.state
        profile = state.default_profile(open_id)
        self.apply_profile_fields(profile, body)
        state.profiles[open_id] = profile
        state.put_token(token, TokenRecord(open_id=open_id))
        self.apply_token_fields(open_id, token, body)

    # POST /_sim/users/bulk {count, prefix, scopes?}: users <prefix>-1 .. <prefix>-<count>,
    # each exactly as POST /_sim/users {"open_id": "<prefix>-<i>", "access_token":
    # "act.<prefix>-<i>", "refresh_token": "rft.<prefix>-<i>", "scopes": ...} makes it.
    def bulk_users(self, body) -> dict:
        if not isinstance(body, dict):
            raise ControlError("bulk body must be a JSON object")
        unknown = sorted(set(body) - {"count", "prefix", "scopes"})
        if unknown:
            raise ControlError(f"unknown bulk fields: {', '.join(unknown)}")
        count = body.get("count")
        if not is_int(count) or not 1 <= count <= MAX_BULK_USERS:
            raise ControlError(f"count must be an integer from 1 to {MAX_BULK_USERS}")
        prefix = body.get("prefix")
        if not isinstance(prefix, str) or not BULK_PREFIX_RE.fullmatch(prefix):
            raise ControlError("prefix must be 1 to 40 characters of [A-Za-z0-9_-]")
        fields = {"scopes": body["scopes"]} if "scopes" in body else {}
        self.check_profile_fields(fields)
        if isinstance(fields.get("scopes"), list) and not all(
                isinstance(scope, str) for scope in fields["scopes"]):
            raise ControlError("scopes must be a list of strings or a comma-separated string")
        for i in range(1, count + 1):
            name = f"{prefix}-{i}"
            self.store_user(name, "act." + name, {**fields, "refresh_token": "rft." + name})
        return {"ok": True, "created": count}

    # POST /_sim/users/<open_id>: merge fields into an existing user.
    def update_user(self, open_id: str, body) -> dict:
        if not isinstance(body, dict):
            raise ControlError("user body must be a JSON object")
        profile = self.state.profiles.get(open_id)
        if profile is None:
            raise ControlError(f"unknown user {open_id}", 404)
        if "access_token" in body or "open_id" in body:
            raise ControlError("use POST /_sim/users to change access_token or open_id")
        self.check_profile_fields(body)
        self.apply_profile_fields(profile, body)
        self.apply_token_fields(open_id, None, body)
        return self.describe_user(open_id)

    # Public view of one user (tokens only as hashes).
    def describe_user(self, open_id: str) -> dict:
        state = self.state
        profile = copy.deepcopy(state.profiles[open_id])
        token, record = state.latest_token(open_id)
        at = now()
        profile.update({
            "token_hash": token_hash(token) if token else None,
            "token_valid": record.usable(at) if record else False,
            "expires_at": record.expires_at if record else None,
            "tokens": [{"token_hash": token_hash(t), "valid": state.tokens[t].usable(at),
                        "expires_at": state.tokens[t].expires_at}
                       for t in state.tokens_of(open_id)],
            "refresh_count": state.refresh_counts.get(open_id, 0),
            "direct_posts_24h": state.direct_posts_today(open_id),
            "pending_shares": state.pending_shares(open_id),
            "publishes": len(state.publishes_of(open_id)),
        })
        return profile

    # GET /_sim/users
    def list_users(self) -> list[dict]:
        return [self.describe_user(open_id) for open_id in self.state.profiles]

    # ---- faults, requests, publishes ------------------------------------

    # POST /_sim/faults: validate and queue one fault.
    def add_fault(self, body) -> Fault:
        if not isinstance(body, dict):
            raise ControlError("fault must be a JSON object")
        allowed = {"endpoint", "count", "action", "http_status", "error_code", "message",
                   "delay_ms", "retry_after", "after_processing", "skip", "open_id"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ControlError(f"unknown fault fields: {', '.join(unknown)}")
        endpoint = body.get("endpoint")
        if endpoint != "*" and endpoint not in ENDPOINT_NAMES:
            raise ControlError(f"endpoint must be '*' or one of {ENDPOINT_NAMES}")
        action = body.get("action", "error")
        if action not in FAULT_ACTIONS:
            raise ControlError(f"action must be one of {FAULT_ACTIONS}")
        count = body.get("count", 1)
        status = body.get("http_status", 500)
        if not is_int(count) or count < 1:
            raise ControlError("count must be a positive integer")
        skip = body.get("skip", 0)
        if not is_int(skip) or skip < 0:
            raise ControlError("skip must be a non-negative integer")
        if not is_int(status) or not 100 <= status <= 599:
            raise ControlError("http_status must be an HTTP status code")
        delay = body.get("delay_ms", 0)
        if not is_number(delay) or delay < 0:
            raise ControlError("delay_ms must be a non-negative number")
        open_id = body.get("open_id")
        if open_id is not None and (not isinstance(open_id, str) or not open_id):
            raise ControlError("open_id must be a non-empty string")
        retry_after = body.get("retry_after")
        if retry_after is not None and (not is_int(retry_after) or retry_after < 0):
            raise ControlError("retry_after must be a non-negative integer")
        self.state.fault_seq += 1
        fault = Fault(fault_id=self.state.fault_seq, endpoint=endpoint, count=count,
                      action=action, http_status=status,
                      error_code=str(body.get("error_code", "internal_error")),
                      message=str(body.get("message", "simulated fault")), delay_ms=delay,
                      retry_after=retry_after,
                      after_processing=bool(body.get("after_processing", False)), skip=skip,
                      open_id=open_id)
        self.state.faults.append(fault)
        return fault

    # GET /_sim/requests with optional endpoint, open_id, publish_id, since filters.
    def list_requests(self, query: dict) -> list[dict]:
        # First value of a query parameter, or None.
        def arg(name):
            return query.get(name, [None])[0]
        since = arg("since")
        try:
            since = int(since) if since not in (None, "") else None
        except ValueError:
            raise ControlError("since must be an integer") from None
        result = []
        for entry in self.state.request_log:
            if since is not None and entry["seq"] <= since:
                continue
            if arg("endpoint") and entry["endpoint"] != arg("endpoint"):
                continue
            if arg("open_id") and entry["open_id"] != arg("open_id"):
                continue
            if arg("publish_id") and entry["publish_id"] != arg("publish_id"):
                continue
            result.append(entry)
        return result

    # POST /_sim/publishes/<id>: force a state, a planned failure or a processing time.
    def force_publish(self, publish: Publish, body) -> None:
        if not isinstance(body, dict):
            raise ControlError("body must be a JSON object")
        unknown = sorted(set(body) - {"status", "fail_reason", "post_ids", "processing_seconds"})
        if unknown:
            raise ControlError(f"unknown fields: {', '.join(unknown)}")
        status = body.get("status")
        if status is not None and status not in ALL_STATUSES:
            raise ControlError(f"status must be one of {ALL_STATUSES}")
        post_ids = body.get("post_ids")
        if post_ids is not None and (not isinstance(post_ids, list)
                                     or not all(is_int(i) for i in post_ids)):
            raise ControlError("post_ids must be a list of integers")
        if "processing_seconds" in body:
            if not is_number(body["processing_seconds"]) or body["processing_seconds"] < 0:
                raise ControlError("processing_seconds must be a non-negative number")
            publish.processing_seconds = body["processing_seconds"]
        if status is not None:
            publish.forced_status = status
            publish.forced_fail_reason = body.get("fail_reason")
            publish.forced_post_ids = post_ids
            if status == ST_COMPLETE and publish.post_id is None and post_ids is None:
                publish.post_id = self.state.next_post_id()
        elif "fail_reason" in body:
            publish.planned_fail_reason = body["fail_reason"]


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class SimHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that carries the simulator state."""
    daemon_threads = True
    allow_reuse_address = True
    # listen() backlog (socketserver's default is 5): a burst of hundreds of simultaneous
    # connects must not overflow the accept queue, or the kernel drops SYNs/ACKs and
    # clients stall 1 s and more on retransmits.  The kernel caps it at
    # net.core.somaxconn (4096 on current Linux).
    request_queue_size = 4096

    # Bind and attach state, APIs and output options.
    def __init__(self, address, state: SimState, verbose: bool = False, quiet: bool = False):
        super().__init__(address, SimHandler)
        self.state = state
        self.api = TikTokApi(state)
        self.uploads = UploadHandler(state)
        self.control = ControlApi(state)
        self.verbose = verbose
        self.quiet = quiet


class SimHandler(BaseHTTPRequestHandler):
    """Per-connection request handler: parses HTTP, applies latency/faults, logs."""
    protocol_version = "HTTP/1.1"
    # Send each reply as soon as it is written: with Nagle on, a keep-alive
    # client waits ~40 ms for the delayed ACK on every reused connection.
    disable_nagle_algorithm = True
    server_version = "tiktok_sim/1.0"

    # The Server header value.
    def version_string(self) -> str:
        return self.server_version

    # GET requests.
    def do_GET(self):
        self.dispatch("GET")

    # POST requests.
    def do_POST(self):
        self.dispatch("POST")

    # PUT requests.
    def do_PUT(self):
        self.dispatch("PUT")

    # HEAD requests (only the synthetic media source has a body to leave out).
    def do_HEAD(self):
        self.dispatch("HEAD")

    # DELETE requests.
    def do_DELETE(self):
        self.dispatch("DELETE")

    # PATCH requests.
    def do_PATCH(self):
        self.dispatch("PATCH")

    # Per-request logging to stderr only with --verbose.
    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.server.verbose:
            sys.stderr.write("tiktok_sim: %s - %s\n" % (self.address_string(), format % args))

    # Route to the control API or the TikTok API.
    def dispatch(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            if url.path.startswith(MEDIA_PREFIX):
                self.handle_media(method, url.path, query)
            elif url.path == "/_sim" or url.path.startswith("/_sim/"):
                raw = self.read_body()
                if raw is None:
                    self.send_json(400, {"ok": False, "error": "bad body"}, close=True)
                    return
                status, body = self.server.control.handle(method, url.path, query, raw)
                self.send_json(status, body)
            else:
                self.handle_tiktok(method, url.path, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # keep serving; report the bug
            if not self.server.quiet:
                traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self.send_json(500, {"ok": False, "error": f"simulator bug: {exc!r}"}, close=True)
            except OSError:
                pass

    # The logical endpoint for a method and path (None when unknown).
    @staticmethod
    def endpoint_for(method: str, path: str) -> tuple[str | None, str | None]:
        if (method, path) in ROUTES:
            return ROUTES[(method, path)], None
        match = UPLOAD_PATH_RE.match(path)
        if match and method == "PUT":
            return "upload", match.group(1)
        return None, None

    # Serve one TikTok API call: body, latency, fault, handler, log, reply.
    def handle_tiktok(self, method: str, path: str, query: dict) -> None:
        received = now()
        server = self.server
        state = server.state
        endpoint, upload_id = self.endpoint_for(method, path)
        req = Request(method=method, path=path, query=query, headers=self.headers,
                      endpoint=endpoint, host_header=self.host_header(), rfile=self.rfile,
                      set_read_timeout=self.set_read_timeout, received=received)
        if endpoint != "upload":
            raw = self.read_body()
            if raw is None:
                reply = envelope_reply(400, {}, "invalid_param", "unreadable request body")
                reply.close = True
                self.finish_tiktok(req, reply, None)
                return
            req.raw_body = raw
        req.log_body = self.loggable_body(req)
        latency = state.config["latency_ms"]
        caller = fault = None
        if endpoint and state.faults:     # checked without the lock: no faults, no lock here
            with state.lock:
                caller = state.token_open_id(req.bearer_token())
                fault = state.take_fault(endpoint, caller)
        if latency:
            time.sleep(latency / 1000.0)
        if fault and fault.delay_ms:
            time.sleep(fault.delay_ms / 1000.0)
        if endpoint is None:
            reply = envelope_reply(404, {}, "not_found", f"No such endpoint: {method} {path}")
        elif fault and fault.action != "slow" and not fault.after_processing:
            if endpoint == "upload":
                # The chunk is read and thrown away: nothing is counted, so the client can
                # resend the same range.
                server.uploads.identify(req, upload_id)
                drained = UploadHandler.discard(req, UploadHandler.content_length(req))
            else:
                # The handler never runs, so name the caller here: the log shows whose
                # call the fault answered (None without a usable bearer token).
                req.open_id = caller
            reply = fault_reply(fault, endpoint)
            if endpoint == "upload" and not drained:
                reply.close = True
        else:
            if endpoint == "upload":
                reply = server.uploads.handle(req, upload_id)
            elif fault is None:
                # The common case: run the handler and log the call in one critical section.
                with state.lock:
                    reply = server.api.handle(req)
                    self.log_call(req, reply, None)
                self.send_reply(reply)
                return
            else:
                with state.lock:
                    reply = server.api.handle(req)
            if fault and fault.action != "slow":
                real_code = reply.error_code
                reply = fault_reply(fault, endpoint)
                reply.effect_error_code = real_code
        self.finish_tiktok(req, reply, fault)

    # Serve GET/HEAD /_sim/media/<name>?size=N&type=mp4|mov|webm (no latency, no rate
    # limits; faults with endpoint "media" apply).
    def handle_media(self, method: str, path: str, query: dict) -> None:
        state = self.server.state
        req = Request(method=method, path=path, query=query, headers=self.headers,
                      endpoint="media", host_header=self.host_header(), received=now())
        if self.read_body() is None:
            self.finish_tiktok(req, media_error(400, "unreadable request body", close=True), None)
            return
        plan = media_plan(method, path, query, self.headers.get("Range"))
        req.log_body = plan.log_body
        with state.lock:
            fault = state.take_fault("media")
        if fault and fault.delay_ms:
            time.sleep(fault.delay_ms / 1000.0)
        if fault and fault.action != "slow":
            self.finish_tiktok(req, fault_reply(fault, "media"), fault)
            return
        if plan.reply is not None:
            self.finish_tiktok(req, plan.reply, fault)
            return
        entry = self.finish_tiktok(req, Reply(plan.status, error_code=None), fault,
                                   send=False)
        self.send_response(plan.status)
        for name, value in plan.headers.items():
            self.send_header(name, value)
        self.end_headers()
        sent = 0
        try:
            if method == "GET":
                self.connection.settimeout(UPLOAD_READ_TIMEOUT)
                offset, end = plan.first, plan.last + 1
                while offset < end:
                    piece = media_bytes(plan.kind, offset, min(MEDIA_PIECE, end - offset))
                    self.wfile.write(piece)
                    offset += len(piece)
                    sent += len(piece)
            self.wfile.flush()
        except OSError:                   # client went away or stopped reading
            self.close_connection = True
        finally:
            with state.lock:
                entry["body"]["bytes_sent"] = sent

    # Log the call, then send the reply (or drop the connection); returns the log entry.
    def finish_tiktok(self, req: Request, reply: Reply, fault: Fault | None,
                      send: bool = True) -> dict:
        entry = self.log_call(req, reply, fault)
        if send:
            self.send_reply(reply)
        return entry

    # Append a call to the request log (takes the state lock); returns the log entry.
    def log_call(self, req: Request, reply: Reply, fault: Fault | None) -> dict:
        entry = {
            "method": req.method, "path": redact_path(self.path), "endpoint": req.endpoint,
            "open_id": req.open_id, "http_status": None if reply.drop else reply.status,
            "error_code": reply.error_code, "log_id": reply.log_id,
            "publish_id": req.publish_id or self.publish_id_from(reply),
            "body": req.log_body, "fault": fault.action if fault else None,
            "received": req.received,
        }
        if fault and fault.after_processing:
            entry["effect_error_code"] = reply.effect_error_code
        with self.server.state.lock:
            return self.server.state.log_request(entry)

    # Send a reply, or for a "drop" close the connection without one.
    def send_reply(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_raw(reply.status, reply.body, reply.content_type, reply.headers,
                      close=reply.close)

    # The publish id named in a JSON reply body, if any.
    @staticmethod
    def publish_id_from(reply: Reply) -> str | None:
        if b'"publish_id"' not in reply.body:       # skip parsing replies that cannot name one
            return None
        try:
            publish_id = json.loads(reply.body)["data"]["publish_id"]
        except (ValueError, KeyError, TypeError):
            return None
        return publish_id if isinstance(publish_id, str) else None

    # What the request log shows of a body (parsed, secrets redacted).
    @staticmethod
    def loggable_body(req: Request):
        if req.endpoint == "upload":
            return {"content_range": req.headers.get("Content-Range"),
                    "content_type": req.headers.get("Content-Type"),
                    "content_length": req.headers.get("Content-Length")}
        if not req.raw_body:
            return None
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        text = req.raw_body.decode("utf-8", errors="replace")
        if ctype == "application/x-www-form-urlencoded" or req.endpoint in OAUTH_ENDPOINTS:
            try:
                return redact(json.loads(text))
            except json.JSONDecodeError:
                form = parse_qs(text, keep_blank_values=True)
                return redact({k: v[0] for k, v in form.items()})
        try:
            return redact(json.loads(text))
        except json.JSONDecodeError:
            return {"unparsed": text[:2000]}

    # The host:port clients used to reach us (for upload URLs).
    def host_header(self) -> str:
        host = self.headers.get("Host")
        if host:
            return host
        addr, port = self.server.server_address[:2]
        if addr in ("0.0.0.0", "::", ""):
            addr = "127.0.0.1"
        return f"{addr}:{port}"

    # Set a read timeout on the client socket (used for streaming uploads).
    def set_read_timeout(self, seconds: float) -> None:
        self.connection.settimeout(seconds)

    # Read a whole request body (Content-Length or chunked); None on error/oversize.
    def read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        value = self.headers.get("Content-Length")
        if value is None:
            return b""
        if not value.strip().isdigit() or int(value) > MAX_JSON_BODY:
            return None
        length = int(value)
        data = self.rfile.read(length) if length else b""
        return data if len(data) == length else None

    # Read a chunked transfer-encoded body; None on error/oversize.
    def read_chunked(self) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_JSON_BODY:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(16)

    # Send a JSON reply.
    def send_json(self, status: int, body: dict, close: bool = False) -> None:
        self.send_raw(status, json.dumps(body).encode("utf-8"),
                      "application/json; charset=UTF-8", {}, close)

    # Send a reply with Content-Length (and Connection: close when asked).
    def send_raw(self, status: int, body: bytes, content_type: str, headers: dict,
                 close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        send_body = body and self.command != "HEAD"
        if self.request_version != "HTTP/0.9":
            # What end_headers() does, with the body in the same write: one send() per reply.
            self._headers_buffer.append(b"\r\n")
            if send_body:
                self._headers_buffer.append(body)
            self.flush_headers()
        elif send_body:                   # HTTP/0.9: no status line or headers, body only
            self.wfile.write(body)
        self.wfile.flush()


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


# Build a server (not yet serving) from options; port 0 picks a free port.
def make_server(host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0,
                processing_seconds: float = 3, rate_limits: bool = True,
                verbose: bool = False, quiet: bool = False) -> SimHTTPServer:
    config = Config(latency_ms=latency_ms, processing_seconds=processing_seconds,
                    rate_limits=rate_limits)
    return SimHTTPServer((host, port), SimState(config), verbose=verbose, quiet=quiet)


# Parse the command line.
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="TikTok Content Posting API simulator")
    parser.add_argument("--port", type=int, default=18443)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--processing-seconds", type=float, default=3)
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="print only the listening line")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


# Run the server until SIGTERM/SIGINT.
def main(argv=None) -> int:
    args = parse_args(argv)
    server = make_server(args.host, args.port, args.latency_ms, args.processing_seconds,
                         not args.no_rate_limits, args.verbose, args.quiet)
    host, port = server.server_address[:2]

    # Stop serving from a helper thread (shutdown() must not run in serve_forever's thread).
    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"tiktok_sim listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    if not args.quiet:
        print("tiktok_sim stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
