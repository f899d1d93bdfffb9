"""Injected faults: what a queued fault matches and the reply it sends instead.

What TikTok documents (docs/tiktok-api.md), which the faults let a client meet on demand:
- `internal_error` is a 5xx, a TikTok fault: retry with backoff; `rate_limit_exceeded`
  is 429: back off (a fault's `retry_after` adds a `Retry-After` header).
- Error codes come in the envelope, OAuth errors in the flat `{"error", ...}` form.
- A timeout after an init was sent is an unknown outcome, not a safe retry (TikTok has no
  idempotency key): `drop` and `after_processing` make one.
TikTok documents no HTML, truncated or mistyped replies; `html`, `malformed`, `empty`,
`array`, `huge`, `binary` and `wrongtypes` stand for what a proxy or a broken reply can
hand any HTTP client.

What this module does: the Fault record, queue_fault (validates a POST /_sim/faults
object and queues it), take_fault (the first armed fault matching a call, honouring
`skip`, `count` and `open_id`) and fault_reply (the reply a fault sends, or a drop).  The
server applies them; sim/README.md lists every field and action.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from .common import (ENDPOINT_NAMES, OAUTH_ENDPOINTS, ControlError, is_int, is_number,
                     make_log_id)
from .wire import Reply, envelope_reply, oauth_reply

FAULT_ACTIONS = ("error", "drop", "slow", "html", "malformed", "empty", "array", "huge",
                 "binary", "wrongtypes")

# Size of the body a "huge" fault answers: past any sane reply limit (6 MiB).
HUGE_BODY_BYTES = 6 * 1024 * 1024


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


# Validate one fault object from POST /_sim/faults and queue it (caller holds state.lock).
def queue_fault(state, body) -> Fault:
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
    state.fault_seq += 1
    fault = Fault(fault_id=state.fault_seq, endpoint=endpoint, count=count,
                  action=action, http_status=status,
                  error_code=str(body.get("error_code", "internal_error")),
                  message=str(body.get("message", "simulated fault")), delay_ms=delay,
                  retry_after=retry_after,
                  after_processing=bool(body.get("after_processing", False)), skip=skip,
                  open_id=open_id)
    state.faults.append(fault)
    return fault


# Take one use of the first armed fault matching an endpoint (caller holds state.lock).
# Every matching fault still skipping counts this call as one of the calls it lets through.
def take_fault(state, endpoint: str, open_id: str | None = None) -> Fault | None:
    matching = [f for f in state.faults if f.matches(endpoint, open_id) and f.count > 0]
    chosen = next((f for f in matching if f.skip <= 0), None)
    for fault in matching:
        if fault.skip > 0:
            fault.skip -= 1
    if chosen is None:
        return None
    chosen.count -= 1
    taken = copy.copy(chosen)
    if chosen.count <= 0:
        state.faults.remove(chosen)
    return taken


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
