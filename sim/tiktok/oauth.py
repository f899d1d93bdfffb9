"""OAuth v2 (token, refresh, revoke) and user info.

What TikTok documents (docs/tiktok-api.md):
- `POST /v2/oauth/token/`, form-encoded.  Code exchange: `client_key, client_secret, code,
  grant_type=authorization_code, redirect_uri`; refresh: `client_key, client_secret,
  grant_type=refresh_token, refresh_token`.  Success is flat JSON (no envelope):
  `access_token, expires_in, open_id, refresh_token, refresh_expires_in, scope (comma list
  of what the user granted), token_type "Bearer"`.  The refresh token rotates: once a new
  one is issued the old one stops working.  Failure:
  `{"error": "invalid_grant", "error_description": "...", "log_id": "..."}` (400 family).
- `POST /v2/oauth/revoke/` form `client_key, client_secret, token`; success is an empty
  body.  When a user's authorization ends, TikTok sends the webhook
  `authorization.removed` (content `reason` 0 to 5; 5 = the developer revoked it).
- `GET /v2/user/info/?fields=...` ("Get User Info", Display API) answers in the envelope,
  the fields under `data.user`.  Each field has its scope: user.info.basic for open_id,
  union_id, avatar_url, avatar_url_100, avatar_large_url, display_name; user.info.profile
  for bio_description, profile_deep_link, is_verified, username; user.info.stats for
  follower_count, following_count, likes_count, video_count.  A field whose scope the
  token lacks is 400 `scope_permission_missed` ("some fields need additional scopes",
  TikTok's v2 error list).  600 calls a minute per token (429 rate_limit_exceeded).

What this module does: OAuthApi checks the configured client (`client_key` /
`client_secret`, defaults sim_client_key / sim_client_secret), redeems single-use codes
(`code-<open_id>` works for any open_id), rotates refresh tokens, revokes a token with its
pair (and, when webhooks are on, queues `authorization.removed` with reason 5), and
answers user info from the profile: follower_count and following_count are profile
fields (0 unless a test sets them), video_count counts the creator's public videos and
likes_count sums their like_count, both as the Display API shows them (videos.py).  A
token with none of the user.info.* scopes is 401 scope_not_authorized; an unknown field
stays 400 invalid_param, as before.
"""

from __future__ import annotations

import re

from .common import SCOPE_BASIC, SCOPE_PROFILE, SCOPE_STATS, ApiError, OAuthError, now
from .state import TokenRecord
from .videos import metrics, public_videos
from .wire import EndpointFamily, Reply, Request, envelope_reply, oauth_reply

# Each user info field and the scope TikTok's "Get User Info" lists for it.
USER_INFO_FIELDS = {
    "open_id": SCOPE_BASIC, "union_id": SCOPE_BASIC, "avatar_url": SCOPE_BASIC,
    "avatar_url_100": SCOPE_BASIC, "avatar_large_url": SCOPE_BASIC,
    "display_name": SCOPE_BASIC, "bio_description": SCOPE_PROFILE,
    "profile_deep_link": SCOPE_PROFILE, "is_verified": SCOPE_PROFILE,
    "username": SCOPE_PROFILE, "follower_count": SCOPE_STATS,
    "following_count": SCOPE_STATS, "likes_count": SCOPE_STATS, "video_count": SCOPE_STATS,
}

# authorization.removed reason for a revoke through the API: "Developer revoke authorization".
REVOKE_REASON = 5


class OAuthApi(EndpointFamily):
    """oauth_token, oauth_revoke and user_info (handlers run with state.lock held)."""

    # Keep the shared state and the webhook sender (None: no webhooks).
    def __init__(self, state, webhooks=None):
        super().__init__(state)
        self.webhooks = webhooks

    # POST /v2/oauth/token/ (code exchange and refresh, flat JSON replies)
    def oauth_token(self, req: Request) -> Reply:
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
    def oauth_revoke(self, req: Request) -> Reply:
        form = req.form()
        self.check_client(form)
        token = form.get("token", "")
        if not token:
            raise OAuthError(400, "invalid_request", "token is required")
        state = self.state
        record = state.tokens.get(token)
        removed = False                  # whether a working grant ended here
        if record is not None:
            removed = record.valid
            record.valid = False
            req.open_id = record.open_id
            if record.refresh_token in state.refresh_tokens:
                removed = removed or state.refresh_tokens[record.refresh_token].valid
                state.refresh_tokens[record.refresh_token].valid = False
        elif token in state.refresh_tokens:
            refresh = state.refresh_tokens[token]
            removed = refresh.valid
            refresh.valid = False
            req.open_id = refresh.open_id
            if refresh.access_token in state.tokens:
                removed = removed or state.tokens[refresh.access_token].valid
                state.tokens[refresh.access_token].valid = False
        else:
            # Unknown token: remember it as revoked so auto_users never adopts it.
            state.put_token(token, TokenRecord(open_id=None, valid=False))
        if removed and req.open_id is not None and self.webhooks is not None:
            self.webhooks.authorization_removed(req.open_id, REVOKE_REASON)
        return oauth_reply(200, None)

    # GET /v2/user/info/?fields=...
    def user_info(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_BASIC, SCOPE_PROFILE, SCOPE_STATS))
        fields = [f.strip() for f in req.query.get("fields", [""])[0].split(",") if f.strip()]
        if not fields:
            raise ApiError(400, "invalid_param", "fields is required")
        unknown = [f for f in fields if f not in USER_INFO_FIELDS]
        if unknown:
            raise ApiError(400, "invalid_param", f"unknown fields: {','.join(unknown)}")
        missing = sorted({USER_INFO_FIELDS[f] for f in fields} - set(profile["scopes"]))
        if missing:
            raise ApiError(400, "scope_permission_missed",
                           f"Some fields need additional scopes: {','.join(missing)}")
        source = {
            "open_id": profile["open_id"], "union_id": profile["union_id"],
            "avatar_url": profile["avatar_url"], "avatar_url_100": profile["avatar_url"],
            "avatar_large_url": profile["avatar_url"], "display_name": profile["nickname"],
            "username": profile["username"], "bio_description": "",
            "profile_deep_link": f"https://www.tiktok.com/@{profile['username']}",
            "is_verified": False, "follower_count": profile["follower_count"],
            "following_count": profile["following_count"],
        }
        if "video_count" in fields or "likes_count" in fields:
            at = now()
            videos = public_videos(self.state, profile["open_id"], at)
            source["video_count"] = len(videos)
            source["likes_count"] = sum(metrics(self.state, v, at)["like_count"]
                                        for v in videos)
        return envelope_reply(200, {"user": {f: source[f] for f in fields}})
