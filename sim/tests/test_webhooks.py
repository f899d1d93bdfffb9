"""Webhook deliveries: events, body, TikTok-Signature, retries, the /_sim/webhooks record
(sim/tiktok/webhooks.py).  A local http.server receives the events.

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import urlencode

from sim.tests.helpers import PHOTO_URL, VERIFIED_URL, SimTestCase
from sim.tiktok import webhooks

SECRET = "sim_client_secret"


class Receiver:
    """A webhook endpoint on a free loopback port that records what arrives."""

    # Start serving; `replies` are the statuses to answer, in order (then 200).
    def __init__(self):
        self.lock = threading.Lock()
        self.received = []               # (path, TikTok-Signature, raw body)
        self.replies = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            """Records one POST and answers the next planned status."""

            # Record the delivery, then answer.
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append((self.path, self.headers.get("TikTok-Signature"),
                                              body))
                    status = receiver.replies.pop(0) if receiver.replies else 200
                    delay = receiver.delay
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            # No access log on stderr.
            def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tiktok?x=1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    # Stop serving.
    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # The events received so far, parsed: [(event, body dict, signature, raw body)].
    def events(self):
        with self.lock:
            items = list(self.received)
        return [(json.loads(raw)["event"], json.loads(raw), sig, raw) for _, sig, raw in items]


class WebhookTests(SimTestCase):
    """Opt-in webhooks: off by default; signed events as publishes change state."""

    # A receiver per test, so no test sees another's deliveries.
    def setUp(self):
        super().setUp()
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)

    # Turn webhooks on, pointing at this test's receiver.
    def enable(self):
        self.assertEqual(self.config(webhook_url=self.receiver.url)["webhook_url"],
                         self.receiver.url)

    # Wait until `check()` is true (or fail).
    def wait_for(self, check, what, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if check():
                return
            time.sleep(0.02)
        self.fail(f"timed out waiting for {what}")

    # Wait for the receiver to hold n events; returns them.
    def wait_events(self, n, timeout=5.0):
        self.wait_for(lambda: len(self.receiver.events()) >= n, f"{n} webhook events", timeout)
        return self.receiver.events()

    # The /_sim/webhooks list (optionally filtered).
    def deliveries(self, **filters):
        query = ("?" + urlencode(filters)) if filters else ""
        status, _, body = self.call("GET", "/_sim/webhooks" + query)
        self.assertEqual(status, 200, body)
        return body["webhooks"]

    # Check a TikTok-Signature header against the raw body; returns its timestamp.
    def assertSigned(self, signature, raw, secret=SECRET):
        self.assertRegex(signature, r"^t=\d+,s=[0-9a-f]{64}$")
        parts = dict(item.split("=", 1) for item in signature.split(","))
        expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + raw,
                            hashlib.sha256).hexdigest()
        self.assertTrue(hmac.compare_digest(parts["s"], expected), "signature mismatch")
        self.assertLess(abs(int(parts["t"]) - time.time()), 10)
        return int(parts["t"])

    # Check the body fields TikTok documents; returns content parsed.
    def assertEventBody(self, body, event, open_id):
        self.assertEqual(list(body), ["client_key", "event", "create_time", "user_openid",
                                      "content"])
        self.assertEqual((body["client_key"], body["event"], body["user_openid"]),
                         ("sim_client_key", event, open_id))
        self.assertIsInstance(body["create_time"], int)
        self.assertLess(abs(body["create_time"] - time.time()), 10)
        self.assertIsInstance(body["content"], str)
        content = json.loads(body["content"])
        self.assertIsInstance(content, dict)
        return content

    # Default: no webhook_url, no ticker, nothing sent or recorded.
    def test_off_by_default(self):
        self.assertIsNone(self.call("GET", "/_sim/config")[2]["webhook_url"])
        self.user(open_id="ou_a")
        pid = self.init_pull()
        self.wait_status(pid, "PUBLISH_COMPLETE")
        time.sleep(0.7)                           # past moderation (2 x processing)
        self.assertEqual(self.deliveries(), [])
        self.assertEqual(self.receiver.events(), [])
        self.assertIsNone(self.server.webhooks.ticker)

    # A Direct Post sends complete, then publicly_available with the 19-digit post id;
    # every delivery is signed with the client secret and recorded as delivered.
    def test_direct_post_complete_and_public(self):
        self.enable()
        self.user(open_id="ou_a")
        pid = self.init_pull()
        events = self.wait_events(2)
        self.assertEqual([e[0] for e in events],
                         ["post.publish.complete", "post.publish.publicly_available"])
        complete = self.assertEventBody(events[0][1], "post.publish.complete", "ou_a")
        self.assertEqual(complete, {"publish_id": pid, "publish_type": "DIRECT_PUBLISH"})
        public = self.assertEventBody(events[1][1], "post.publish.publicly_available", "ou_a")
        post_ids = self.status_of(pid)["publicaly_available_post_id"]
        self.assertEqual(public, {"publish_id": pid, "publish_type": "DIRECT_PUBLISH",
                                  "post_id": str(post_ids[0])})
        self.assertRegex(public["post_id"], r"^\d{19}$")
        for _, _, signature, raw in events:
            self.assertSigned(signature, raw)
        self.assertEqual(self.receiver.received[0][0], "/hooks/tiktok?x=1")
        self.wait_for(lambda: all(d["state"] == "delivered" for d in self.deliveries()),
                      "deliveries recorded as delivered")
        records = self.deliveries()
        self.assertEqual([(d["event"], d["url"], d["status_code"], d["attempts"],
                           d["publish_id"], d["user_openid"]) for d in records],
                         [("post.publish.complete", self.receiver.url, 200, 1, pid, "ou_a"),
                          ("post.publish.publicly_available", self.receiver.url, 200, 1,
                           pid, "ou_a")])
        self.assertEqual(records[0]["body"].encode(), events[0][3])
        self.assertNotIn(SECRET, json.dumps(records))
        self.assertEqual(len(self.deliveries(event="post.publish.complete")), 1)
        self.assertEqual(self.deliveries(publish_id="nope"), [])

    # sim_fail ends in post.publish.failed with the reason; an inbox upload sends
    # inbox_delivered (INBOX_SHARE); a cancel sends failed with publish_cancelled.
    def test_failed_inbox_and_cancel(self):
        self.enable()
        self.user(open_id="ou_a")
        failed = self.init_pull(url=VERIFIED_URL + "?sim_fail=video_pull_failed")
        inbox = self.assertEnvelope(self.api("/v2/post/publish/inbox/video/init/", {
            "source_info": {"source": "PULL_FROM_URL", "video_url": VERIFIED_URL}}),
            200, "ok")["publish_id"]
        self.config(processing_seconds=60)
        cancelled = self.init_pull()
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": cancelled}),
                            200, "ok")
        events = self.wait_events(3)
        got = {}
        for event, body, signature, raw in events:
            self.assertSigned(signature, raw)
            content = self.assertEventBody(body, event, "ou_a")
            got[content["publish_id"]] = (event, content)
        self.assertEqual(got[failed], ("post.publish.failed", {
            "publish_id": failed, "publish_type": "DIRECT_PUBLISH",
            "reason": "video_pull_failed"}))
        self.assertEqual(got[inbox], ("post.publish.inbox_delivered", {
            "publish_id": inbox, "publish_type": "INBOX_SHARE"}))
        self.assertEqual(got[cancelled], ("post.publish.failed", {
            "publish_id": cancelled, "publish_type": "DIRECT_PUBLISH",
            "reason": "publish_cancelled"}))
        time.sleep(0.3)
        self.assertEqual(len(self.receiver.events()), 3)

    # A photo post and a forced state: forcing PUBLISH_COMPLETE with no post ids on a
    # public post sends no_longer_publicaly_available (TikTok's spelling) for its id.
    def test_no_longer_public_through_control(self):
        self.enable()
        self.user(open_id="ou_a")
        body = {"post_info": {"title": "pics", "privacy_level": "PUBLIC_TO_EVERYONE"},
                "post_mode": "DIRECT_POST", "media_type": "PHOTO",
                "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 0,
                                "photo_images": [PHOTO_URL]}}
        pid = self.assertEnvelope(self.api("/v2/post/publish/content/init/", body),
                                  200, "ok")["publish_id"]
        events = self.wait_events(2)
        post_id = json.loads(events[1][1]["content"])["post_id"]
        status, _, reply = self.call("POST", f"/_sim/publishes/{pid}",
                                     body={"status": "PUBLISH_COMPLETE", "post_ids": []})
        self.assertEqual(status, 200, reply)
        events = self.wait_events(3)
        self.assertEqual(events[2][0], "post.publish.no_longer_publicaly_available")
        content = self.assertEventBody(events[2][1], events[2][0], "ou_a")
        self.assertEqual(content, {"publish_id": pid, "publish_type": "DIRECT_PUBLISH",
                                   "post_id": post_id})
        self.assertSigned(events[2][2], events[2][3])
        # And back: a forced post id appears as publicly_available again.
        self.call("POST", f"/_sim/publishes/{pid}",
                  body={"status": "PUBLISH_COMPLETE", "post_ids": [int(post_id)]})
        events = self.wait_events(4)
        self.assertEqual((events[3][0], json.loads(events[3][1]["content"])["post_id"]),
                         ("post.publish.publicly_available", post_id))

    # Revoking a working token sends authorization.removed (reason 5) once; revoking it
    # again, or an unknown token, sends nothing.
    def test_authorization_removed_on_revoke(self):
        self.enable()
        client = {"client_key": "sim_client_key", "client_secret": SECRET}
        status, _, tokens = self.form("/v2/oauth/token/", {
            **client, "grant_type": "authorization_code", "code": "code-ou_r"})
        self.assertEqual(status, 200, tokens)
        for token in (tokens["access_token"], tokens["access_token"], "never_issued"):
            status, _, _ = self.form("/v2/oauth/revoke/", {**client, "token": token})
            self.assertEqual(status, 200)
        events = self.wait_events(1)
        self.assertEqual(events[0][0], "authorization.removed")
        content = self.assertEventBody(events[0][1], "authorization.removed", "ou_r")
        self.assertEqual(content, {"reason": 5})
        self.assertSigned(events[0][2], events[0][3])
        time.sleep(0.3)
        self.assertEqual(len(self.receiver.events()), 1)
        self.assertEqual([d["user_openid"] for d in self.deliveries()], ["ou_r"])

    # A delivery answered 500 is retried with the same body, freshly signed, until 200.
    def test_retry_until_delivered(self):
        self.receiver.replies = [500, 503]
        self.enable()
        self.user(open_id="ou_a")
        with mock.patch.object(webhooks, "RETRY_DELAYS", (0.05, 0.05, 0.05, 0.05)):
            self.init_pull(url=VERIFIED_URL + "?sim_fail=internal")
            self.wait_for(lambda: self.deliveries() and self.deliveries()[0]["state"]
                          == "delivered", "a delivered retry")
        raws = [raw for _, _, _, raw in self.receiver.events()]
        self.assertEqual(len(raws), 3)
        self.assertEqual(len(set(raws)), 1)              # the same body every time
        for _, _, signature, raw in self.receiver.events():
            self.assertSigned(signature, raw)
        record = self.deliveries()[0]
        self.assertEqual((record["event"], record["attempts"], record["status_code"],
                          record["error"]), ("post.publish.failed", 3, 200, None))

    # An unreachable URL: MAX_ATTEMPTS attempts, then the delivery is marked failed.
    def test_gives_up_after_max_attempts(self):
        with socket.socket() as sock:                     # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        self.config(webhook_url=dead)
        self.user(open_id="ou_a")
        with mock.patch.object(webhooks, "RETRY_DELAYS", (0.02, 0.02, 0.02, 0.02)):
            self.init_pull(url=VERIFIED_URL + "?sim_fail=internal")
            self.wait_for(lambda: self.deliveries() and self.deliveries()[0]["state"]
                          == "failed", "a failed delivery")
        record = self.deliveries()[0]
        self.assertEqual((record["url"], record["attempts"], record["status_code"]),
                         (dead, webhooks.MAX_ATTEMPTS, None))
        self.assertIn("Connection", record["error"])

    # A slow receiver never holds up API calls: deliveries run outside the state lock.
    def test_slow_receiver_does_not_block_requests(self):
        self.receiver.delay = 1.5
        self.enable()
        self.user(open_id="ou_a")
        pid = self.init_pull()
        self.wait_events(1)                                # the receiver is now sleeping
        started = time.monotonic()
        for _ in range(5):
            self.status_of(pid)
            self.assertEqual(self.call("GET", "/_sim/webhooks")[0], 200)
        self.assertLess(time.monotonic() - started, 1.0)

    # Publishes that were already final when webhooks were turned on send nothing.
    def test_existing_publishes_are_not_replayed(self):
        self.user(open_id="ou_a")
        pid = self.init_pull()
        self.wait_status(pid, "PUBLISH_COMPLETE")
        time.sleep(0.4)
        self.enable()
        later = self.init_pull()
        events = self.wait_events(2)
        time.sleep(0.3)
        self.assertEqual({json.loads(body["content"])["publish_id"]
                          for _, body, _, _ in self.receiver.events()}, {later})
        self.assertEqual(len(events), 2)

    # webhook_url accepts null or an http(s) URL; reset turns webhooks off and forgets
    # deliveries; DELETE /_sim/webhooks forgets them too.
    def test_config_reset_and_clear(self):
        for bad in ("ftp://example.com/", "not a url", 5, "http://"):
            status, _, body = self.call("POST", "/_sim/config", body={"webhook_url": bad})
            self.assertEqual(status, 400, bad)
            self.assertIn("webhook_url", body["error"])
        self.enable()
        self.user(open_id="ou_a")
        self.init_pull()
        self.wait_events(2)
        self.assertEqual(self.call("DELETE", "/_sim/webhooks")[::2], (200, {"ok": True}))
        self.assertEqual(self.deliveries(), [])
        self.init_pull()
        self.wait_events(4)
        self.assertEqual(len(self.deliveries()), 2)
        self.call("POST", "/_sim/reset")
        self.assertIsNone(self.call("GET", "/_sim/config")[2]["webhook_url"])
        self.assertEqual(self.deliveries(), [])
        self.wait_for(lambda: self.server.webhooks.ticker is None, "the ticker to stop")
        self.user(open_id="ou_a")
        self.init_pull()
        time.sleep(0.8)
        self.assertEqual(self.deliveries(), [])
        self.assertEqual(len(self.receiver.events()), 4)
        self.assertEqual(self.config(webhook_url=None)["webhook_url"], None)

    # The change-to-events rule on its own.
    def test_publish_events_rule(self):
        rule = webhooks.publish_events
        nothing = webhooks.NOTHING_REPORTED
        self.assertEqual(rule(nothing, ("PROCESSING_DOWNLOAD", None, ())), [])
        self.assertEqual(rule(nothing, ("PUBLISH_COMPLETE", None, (7300000000000000001,))),
                         [("post.publish.complete", {}),
                          ("post.publish.publicly_available",
                           {"post_id": "7300000000000000001"})])
        self.assertEqual(rule(("PUBLISH_COMPLETE", None, (1,)), ("FAILED", "internal", ())),
                         [("post.publish.no_longer_publicaly_available", {"post_id": "1"}),
                          ("post.publish.failed", {"reason": "internal"})])
        self.assertEqual(rule(("FAILED", "a", ()), ("FAILED", "b", ())),
                         [("post.publish.failed", {"reason": "b"})])
        self.assertEqual(rule(nothing, ("SEND_TO_USER_INBOX", None, ())),
                         [("post.publish.inbox_delivered", {})])
