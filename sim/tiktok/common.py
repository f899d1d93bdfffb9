"""Constants, small helpers and error types shared by every part of the simulator.

What TikTok documents (docs/tiktok-api.md):
- Scopes: `user.info.basic`, `video.publish` (Direct Post), `video.upload` (inbox);
  the Display API adds `video.list` (a creator's public videos), and user info fields need
  `user.info.profile` (username, bio, profile link, verified) or `user.info.stats`
  (follower, following, likes and video counts).
- Privacy levels: a public account is offered PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS,
  SELF_ONLY; a private one FOLLOWER_OF_CREATOR, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY.
- Publish statuses: PROCESSING_UPLOAD, PROCESSING_DOWNLOAD, SEND_TO_USER_INBOX,
  PUBLISH_COMPLETE, FAILED; sources PULL_FROM_URL and FILE_UPLOAD; post modes
  DIRECT_POST and MEDIA_UPLOAD.
- Post ids have 19 digits, beyond 2**53.
- Replies carry `error.log_id` (e.g. "202411..."), which TikTok support asks for.
- Titles are measured in UTF-16 code units.

What this module does: holds those constants, the logical endpoint names faults and the
request log use, the helpers (time, log ids, token hashes, type checks, redaction of
secrets) and the three exceptions handlers raise: ApiError (answered in TikTok's
envelope), OAuthError (OAuth's flat form) and ControlError (the /_sim/ control API).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time

MB = 1024 * 1024
GB = 1024 * MB
DAY = 24 * 3600

SCOPE_BASIC = "user.info.basic"
SCOPE_PUBLISH = "video.publish"
SCOPE_UPLOAD = "video.upload"
SCOPE_PROFILE = "user.info.profile"
SCOPE_STATS = "user.info.stats"
SCOPE_VIDEO_LIST = "video.list"
# What a user grants unless a test says otherwise: what vibescaling's consent URL asks for
# (the extension's tests check this exact list).  video.list and the user.info.* extras
# must be granted explicitly, through POST /_sim/users {"scopes": [...]}.
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

POST_ID_BASE = 7300000000000000000          # 19 digits, well beyond 2**53
SIMULATED_PULL_BYTES = 4 * MB               # size reported while "downloading"
MAX_JSON_BODY = 8 * MB
MAX_LOG_ENTRIES = 20000
UPLOAD_READ_TIMEOUT = 60.0

# Logical endpoint names, as the request log and faults know them: the routed TikTok
# endpoints (server.ROUTES checks it has exactly these), "upload" (chunk PUTs) and
# "media" (the synthetic video source under the control API; a "*" fault skips it).
ENDPOINT_NAMES = sorted({"creator_info", "video_init", "inbox_video_init", "content_init",
                         "status_fetch", "cancel", "oauth_token", "oauth_revoke",
                         "user_info", "video_list", "video_query"} | {"upload", "media"})
OAUTH_ENDPOINTS = ("oauth_token", "oauth_revoke")

# Request-body keys whose values never reach the request log.
REDACTED_KEYS = {"client_secret", "refresh_token", "code", "token", "access_token",
                 "upload_token"}

# Non-secret randomness (log ids, publish ids): no getrandom() syscall per call, which
# under load also means one GIL hand-off less per request.  Tokens still use secrets.
RNG = random.Random(os.urandom(32))


# Current wall-clock time in seconds.
def now() -> float:
    return time.time()


# A TikTok-style log_id: UTC timestamp followed by random hex.
def make_log_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{RNG.getrandbits(80):020X}"


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
