"""TikTok's webhooks: the simulator POSTs events to a URL when a publish changes state.

What TikTok documents (docs/tiktok-api.md, "Webhooks"):
- Events: `post.publish.complete`, `post.publish.failed` (content `reason`),
  `post.publish.inbox_delivered`, `post.publish.publicly_available` and
  `post.publish.no_longer_publicaly_available` (TikTok's spelling; content `post_id`), and
  `authorization.removed` (content `reason` 0 to 5) when a user's authorization ends.
- Body: `client_key, event, create_time (epoch s), user_openid, content`, where `content`
  is a JSON object serialised as a string: `publish_id`, `publish_type`, and `reason` /
  `post_id` per event.
- Header `TikTok-Signature: t=<unix ts>,s=<hex>`, s = HMAC-SHA256(key = client_secret,
  "<t>.<raw body>"); receivers reject stale timestamps.
- Delivery is at least once, retried up to 72 h, so receivers dedupe.  (TikTok's webhooks
  overview adds that only an HTTP 200 counts as received, and that retries back off
  exponentially.)
- docs/tiktok-api.md does not list `publish_type`'s values; this module sends
  DIRECT_PUBLISH for a Direct Post and INBOX_SHARE for an inbox upload (not checked
  against TikTok; nothing in this repository reads the field).

What this module does (off unless the config key `webhook_url` is set, null by default):
- A ticker thread runs only while `webhook_url` is set.  Every TICK_SECONDS it compares
  each publish's lazily computed progress (state.Publish.progress) with what it last
  reported and queues one event per change: complete, failed, inbox_delivered, a
  publicly_available per post id that appeared, a no_longer_publicaly_available per post
  id that went away.  Publishes that exist when webhooks are turned on count as already
  reported.  POST /_sim/publishes/<id> changes are seen the same way, e.g.
  `{"status": "PUBLISH_COMPLETE", "post_ids": []}` on a public post sends
  no_longer_publicaly_available.
- POST /v2/oauth/revoke/ that ends a working token pair queues `authorization.removed`
  with reason 5 ("developer revoked the authorization").
- Events take `client_key`, `client_secret` and the URL from the config when they are
  queued.  Queueing happens under the state lock and never waits; a sender thread
  delivers them without any lock, re-signing each attempt with a fresh `t` (the body
  stays the same, so a receiver's dedupe works).  A delivery not answered 200 is retried
  after RETRY_DELAYS, MAX_ATTEMPTS attempts in all.
- GET /_sim/webhooks[?event=&publish_id=] lists deliveries (oldest first): id, event, url,
  user_openid, publish_id, create_time, body, state (pending | delivered | failed),
  attempts, status_code (of the last attempt, null when it got no reply), error,
  delivered_at.  DELETE /_sim/webhooks forgets them and drops pending ones; so does
  POST /_sim/reset.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import http.client
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from .common import DIRECT, MAX_LOG_ENTRIES, ST_COMPLETE, ST_FAILED, ST_INBOX, now

EVENT_COMPLETE = "post.publish.complete"
EVENT_FAILED = "post.publish.failed"
EVENT_INBOX = "post.publish.inbox_delivered"
EVENT_PUBLIC = "post.publish.publicly_available"
EVENT_NOT_PUBLIC = "post.publish.no_longer_publicaly_available"
EVENT_AUTH_REMOVED = "authorization.removed"

TICK_SECONDS = 0.1                    # how often the ticker looks for changed publishes
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)   # wait after failed attempt 1, 2, 3, 4
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
SEND_TIMEOUT = 5.0                    # seconds for one attempt (connect, send, reply)

# What a publish looks like before anything was reported: (status, fail_reason, post ids).
NOTHING_REPORTED = (None, None, ())


# The TikTok-Signature header value for a body signed at unix time `timestamp`.
def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body,
                   hashlib.sha256)
    return f"t={timestamp},s={mac.hexdigest()}"


# What a publish shows now, in the form the ticker compares: (status, fail_reason, ids).
def observe(publish, at: float) -> tuple:
    status, fail_reason, post_ids = publish.progress(at)
    return status, fail_reason, tuple(post_ids)


# The events a change from `before` to `after` calls for: [(event, extra content)].
def publish_events(before: tuple, after: tuple) -> list[tuple[str, dict]]:
    old_status, old_reason, old_ids = before
    status, reason, ids = after
    events = [(EVENT_NOT_PUBLIC, {"post_id": str(i)}) for i in old_ids if i not in ids]
    if (status, reason) != (old_status, old_reason):
        if status == ST_COMPLETE:
            events.append((EVENT_COMPLETE, {}))
        elif status == ST_FAILED:
            events.append((EVENT_FAILED, {"reason": reason}))
        elif status == ST_INBOX:
            events.append((EVENT_INBOX, {}))
    events += [(EVENT_PUBLIC, {"post_id": str(i)}) for i in ids if i not in old_ids]
    return events


@dataclass
class Delivery:
    """One event on its way to a webhook URL, and how its attempts went."""
    delivery_id: int
    event: str
    url: str
    user_openid: str | None
    publish_id: str | None
    create_time: int
    body: bytes
    secret: str
    generation: int                  # deliveries of an older generation were cleared
    state: str = "pending"           # pending | delivered | failed
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    delivered_at: float | None = None

    # JSON view for GET /_sim/webhooks (never the secret).
    def describe(self) -> dict:
        return {"id": self.delivery_id, "event": self.event, "url": self.url,
                "user_openid": self.user_openid, "publish_id": self.publish_id,
                "create_time": self.create_time, "body": self.body.decode("utf-8"),
                "state": self.state, "attempts": self.attempts,
                "status_code": self.status_code, "error": self.error,
                "delivered_at": self.delivered_at}


class WebhookSender:
    """Turns publish changes and revokes into signed deliveries, and sends them.

    Lock order: state.lock, then self.cond; the sender thread holds neither while it
    sends, and never takes state.lock.
    """

    # Nothing runs until webhook_url is set and an event is queued.
    def __init__(self, state):
        self.state = state
        self.cond = threading.Condition()        # guards the fields up to `closed`
        self.records: deque = deque(maxlen=MAX_LOG_ENTRIES)
        self.due: list = []                      # heap of (monotonic due time, id, Delivery)
        self.seq = 0
        self.generation = 0
        self.sender: threading.Thread | None = None
        self.closed = False
        self.stopping = threading.Event()
        # Guarded by state.lock:
        self.reported: dict[str, tuple] = {}     # publish id -> last reported observe()
        self.ticker: threading.Thread | None = None

    # ---- called with state.lock held ----------------------------------------

    # Start the ticker when webhook_url is set (it stops by itself once it is null).
    def sync(self) -> None:
        if not self.state.config["webhook_url"] or self.ticker is not None or self.closed:
            return
        at = now()
        self.reported = {pid: observe(p, at) for pid, p in self.state.publishes.items()}
        self.ticker = threading.Thread(target=self.tick_loop, name="tiktok_sim-webhook-ticker",
                                       daemon=True)
        self.ticker.start()

    # Forget reported states and every delivery (after /_sim/reset).
    def reset(self) -> None:
        self.reported = {}
        self.clear()

    # Queue authorization.removed for a user whose grant was revoked.
    def authorization_removed(self, open_id: str, reason: int) -> None:
        self.emit(EVENT_AUTH_REMOVED, open_id, {"reason": reason})

    # Queue an event for the configured URL, if any (never blocks on the network).
    def emit(self, event: str, open_id: str | None, content: dict) -> None:
        config = self.state.config
        url = config["webhook_url"]
        if not url:
            return
        create_time = int(now())
        body = json.dumps({"client_key": config["client_key"], "event": event,
                           "create_time": create_time, "user_openid": open_id,
                           "content": json.dumps(content)}).encode("utf-8")
        with self.cond:
            self.seq += 1
            delivery = Delivery(self.seq, event, url, open_id, content.get("publish_id"),
                                create_time, body, config["client_secret"], self.generation)
            self.records.append(delivery)
            heapq.heappush(self.due, (time.monotonic(), delivery.delivery_id, delivery))
            if self.sender is None and not self.closed:
                self.sender = threading.Thread(target=self.send_loop,
                                               name="tiktok_sim-webhook-sender", daemon=True)
                self.sender.start()
            self.cond.notify()

    # Queue the events of every publish whose observed state changed since last time.
    def scan(self) -> None:
        at = now()
        for publish_id, publish in self.state.publishes.items():
            after = observe(publish, at)
            before = self.reported.get(publish_id, NOTHING_REPORTED)
            if after == before:
                continue
            self.reported[publish_id] = after
            publish_type = "DIRECT_PUBLISH" if publish.mode == DIRECT else "INBOX_SHARE"
            for event, extra in publish_events(before, after):
                self.emit(event, publish.open_id,
                          {"publish_id": publish_id, "publish_type": publish_type, **extra})

    # ---- called with or without state.lock ----------------------------------

    # GET /_sim/webhooks: deliveries, oldest first, optionally filtered.
    def deliveries(self, query: dict) -> list[dict]:
        event = query.get("event", [""])[0]
        publish_id = query.get("publish_id", [""])[0]
        with self.cond:
            return [d.describe() for d in self.records
                    if (not event or d.event == event)
                    and (not publish_id or d.publish_id == publish_id)]

    # DELETE /_sim/webhooks: forget every delivery and drop the pending ones.
    def clear(self) -> None:
        with self.cond:
            self.generation += 1
            self.records.clear()
            self.due.clear()

    # Stop both threads (server shutdown).
    def close(self) -> None:
        self.stopping.set()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # ---- threads ------------------------------------------------------------

    # The ticker: scan every TICK_SECONDS while webhook_url is set, then exit.
    def tick_loop(self) -> None:
        me = threading.current_thread()
        while not self.stopping.wait(TICK_SECONDS):
            with self.state.lock:
                if self.ticker is not me:
                    return
                if not self.state.config["webhook_url"]:
                    self.ticker = None
                    return
                self.scan()

    # The sender: deliver whatever is due, one attempt at a time, rescheduling failures.
    def send_loop(self) -> None:
        while True:
            with self.cond:
                while True:
                    if self.closed:
                        return
                    wait = self.due[0][0] - time.monotonic() if self.due else None
                    if wait is not None and wait <= 0:
                        break
                    self.cond.wait(wait)
                _, _, delivery = heapq.heappop(self.due)
                if delivery.generation != self.generation:
                    continue
                delivery.attempts += 1
            status_code, error = self.post(delivery)
            with self.cond:
                delivery.status_code, delivery.error = status_code, error
                if status_code == 200:
                    delivery.state, delivery.delivered_at = "delivered", now()
                elif delivery.attempts >= MAX_ATTEMPTS:
                    delivery.state = "failed"
                elif delivery.generation == self.generation:
                    retry_at = time.monotonic() + RETRY_DELAYS[delivery.attempts - 1]
                    heapq.heappush(self.due, (retry_at, delivery.delivery_id, delivery))

    # One attempt: POST the body, signed now; returns (HTTP status or None, error text).
    @staticmethod
    def post(delivery: Delivery) -> tuple[int | None, str | None]:
        headers = {"Content-Type": "application/json; charset=UTF-8",
                   "TikTok-Signature": signature(delivery.secret, int(time.time()),
                                                 delivery.body),
                   "User-Agent": "tiktok_sim/1.0"}
        conn = None
        try:
            parts = urlsplit(delivery.url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                                else http.client.HTTPConnection)
            conn = connection_class(parts.hostname, parts.port, timeout=SEND_TIMEOUT)
            conn.request("POST", target, body=delivery.body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status, None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            if conn is not None:
                conn.close()
