"""The control API under /_sim/ (no auth, JSON): how tests drive the simulator.

What TikTok documents: nothing; TikTok has no such API.  The control API exists so tests
can set up what TikTok's documentation describes (docs/tiktok-api.md): creators with
private accounts, disabled interactions, missing scopes, daily caps or bans; expired or
revoked tokens; publishes forced to a status, a fail_reason or post ids; videos taken
down by moderation and restored (TikTok then sends post.publish.no_longer_publicaly_
available / post.publish.publicly_available), and their metrics; faults; and so they
can read what a client really sent (the request log never holds a token).

What this module does: ControlApi routes these calls (all under the state lock) and
answers (HTTP status, JSON body):

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
    GET|DELETE /_sim/webhooks?event=&publish_id=   (deliveries, see webhooks.py)
    GET  /_sim/videos[?open_id=]       GET  /_sim/videos/<video id>
    POST /_sim/videos/<video id> {"public"?: bool, "view_count"?: int|null, ...}
         takes a public video down ({"public": false}: it leaves video.list and
         publicaly_available_post_id, and webhooks send
         post.publish.no_longer_publicaly_available) or makes it public again
         ({"public": true}: post.publish.publicly_available); pins view_count,
         like_count, comment_count or share_count (null lets it grow again)

Errors answer {"ok": false, "error": ...} with 400 (bad input) or 404 (unknown path,
user or publish).  GET|HEAD /_sim/media/<name> is served by the server with uploads.py.
"""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import unquote

from .common import (ALL_PRIVACY_LEVELS, ALL_STATUSES, CANNOT_POST_CODES, ST_COMPLETE,
                     ControlError, is_int, is_number, now, token_hash)
from .faults import queue_fault
from .state import Publish, RefreshRecord, SimState, TokenRecord
from .videos import METRIC_FIELDS, Video, all_videos, find_video, metrics
from .webhooks import WebhookSender

PROFILE_FIELD_TYPES = {
    "open_id": str, "union_id": str, "scopes": (list, str), "private_account": bool,
    "privacy_level_options": (list, type(None)), "comment_disabled": bool,
    "duet_disabled": bool, "stitch_disabled": bool, "max_video_post_duration_sec": int,
    "nickname": str, "username": str, "avatar_url": str, "cannot_post": (str, type(None)),
    "banned": bool, "daily_post_cap": int, "follower_count": int, "following_count": int,
}
BULK_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
MAX_BULK_USERS = 100000
TOKEN_FIELDS = {"access_token", "refresh_token", "auth_code", "token_valid", "expires_at",
                "expires_in", "refresh_expires_at"}



class ControlApi:
    """The /_sim/ endpoints: health, reset, config, users, faults, requests, publishes,
    webhooks."""

    # Keep the shared state, the webhook sender and the media checker.
    def __init__(self, state: SimState, webhooks: WebhookSender, checker=None):
        self.state = state
        self.webhooks = webhooks
        self.checker = checker

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
            self.webhooks.reset()
            if self.checker is not None:
                self.checker.reset()
            return 200, {"ok": True}
        if path == "/_sim/config":
            if method == "POST":
                state.config.update(body)
                self.webhooks.sync()
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
                added = [queue_fault(state, item).describe() for item in items]
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
        if path == "/_sim/webhooks":
            if method == "GET":
                return 200, {"webhooks": self.webhooks.deliveries(query)}
            if method == "DELETE":
                self.webhooks.clear()
                return 200, {"ok": True}
        if path == "/_sim/videos" and method == "GET":
            open_id = query.get("open_id", [""])[0]
            at = now()
            return 200, {"videos": [self.describe_video(video, public, at)
                                    for video, public in all_videos(state, at)
                                    if not open_id or video.publish.open_id == open_id]}
        if path.startswith("/_sim/videos/") and method in ("GET", "POST"):
            return 200, self.video(unquote(path[len("/_sim/videos/"):]), method, body)
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
        for key in ("follower_count", "following_count"):
            if key in body and body[key] < 0:
                raise ControlError(f"{key} must not be negative")
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

    # ---- requests, publishes --------------------------------------------

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

    # ---- videos (the Display API's view) --------------------------------------

    # GET or POST /_sim/videos/<video id>: read, take down, restore, pin metrics.
    def video(self, text_id: str, method: str, body) -> dict:
        if not (text_id.isascii() and text_id.isdigit()):
            raise ControlError("a video id is the post id, digits only", 404)
        at = now()
        found = find_video(self.state, int(text_id), at)
        if found is None:
            raise ControlError(f"no published video {text_id} (is it a complete, "
                               "PUBLIC_TO_EVERYONE video Direct Post?)", 404)
        video, public = found
        if method == "POST":
            public = self.change_video(video, public, body)
        return self.describe_video(video, public, at)

    # Apply POST /_sim/videos/<id> {public?, metrics?}; returns whether it is public now.
    def change_video(self, video: Video, public: bool, body) -> bool:
        if not isinstance(body, dict):
            raise ControlError("body must be a JSON object")
        unknown = sorted(set(body) - {"public", *METRIC_FIELDS})
        if unknown:
            raise ControlError(f"unknown fields: {', '.join(unknown)}")
        if "public" in body and not isinstance(body["public"], bool):
            raise ControlError("public must be a boolean")
        for key in METRIC_FIELDS:
            value = body.get(key)
            if key in body and value is not None and (not is_int(value) or value < 0):
                raise ControlError(f"{key} must be a non-negative integer or null")
        pinned = self.state.video_metrics.setdefault(video.video_id, {})
        for key in METRIC_FIELDS:
            if key in body:
                if body[key] is None:
                    pinned.pop(key, None)
                else:
                    pinned[key] = body[key]
        if not pinned:
            del self.state.video_metrics[video.video_id]
        if "public" in body:
            # The webhook ticker sees the post id leave or come back, and sends the event.
            public = body["public"]
            if public:
                video.publish.taken_down_ids.discard(video.video_id)
            else:
                video.publish.taken_down_ids.add(video.video_id)
        return public

    # JSON view of a video for /_sim/videos.
    def describe_video(self, video: Video, public: bool, at: float) -> dict:
        publish = video.publish
        return {"id": str(video.video_id), "publish_id": publish.publish_id,
                "open_id": publish.open_id, "public": public,
                "create_time": int(video.posted_at), "title": publish.title,
                "metrics": metrics(self.state, video, at),
                "pinned_metrics": dict(self.state.video_metrics.get(video.video_id, {}))}

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
            at = now()
            # A post already published keeps its publish time (the Display API's
            # create_time) when only its post ids are forced.
            was_complete = publish.raw_progress(at)[0] == ST_COMPLETE
            publish.forced_at = publish.published_at() if was_complete else at
            publish.forced_status = status
            publish.forced_fail_reason = body.get("fail_reason")
            publish.forced_post_ids = post_ids
            if status == ST_COMPLETE and publish.post_id is None and post_ids is None:
                publish.post_id = self.state.next_post_id()
        elif "fail_reason" in body:
            publish.planned_fail_reason = body["fail_reason"]
