"""Requests and replies as the endpoint handlers see them, and TikTok's two reply forms.

What TikTok documents (docs/tiktok-api.md):
- Every /v2/post/publish/* reply is the envelope
  `{"data": {...}, "error": {"code": "ok", "message": "", "log_id": "..."}}`; any code but
  "ok" is a failure, whatever the HTTP status.
- OAuth replies are flat JSON without the envelope; a failure is
  `{"error": "invalid_grant", "error_description": "...", "log_id": "..."}`, and a
  successful revoke has an empty body.
- JSON calls carry `Authorization: Bearer <access_token>`; an unknown or revoked token is
  401 `access_token_invalid`, going over a per-token rate limit 429 `rate_limit_exceeded`,
  a missing scope 401 `scope_not_authorized` (checked in that order here).

What this module does: the Request and Reply records the server passes to and from the
handlers, envelope_reply / oauth_reply (both also send the log id as `X-Tt-Logid`), and
EndpointFamily, the base of the per-family handler classes, with the bearer-token,
rate-limit and scope check they share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from .common import ApiError, OAuthError, make_log_id


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


class EndpointFamily:
    """Base of the handler classes: the shared state and the bearer-token check.

    Handlers run with state.lock held (the server takes it) and raise ApiError or
    OAuthError, which the server turns into replies.
    """

    # Keep the shared state.
    def __init__(self, state):
        self.state = state

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
