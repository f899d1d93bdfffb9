"""Fault injection (every action, skip, count, per-user faults, after_processing) and
latency (sim/tiktok/faults.py, applied by sim/tiktok/server.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import hashlib
import http.client
import json
import time
from urllib.parse import urlsplit

from sim.tests.helpers import MB, SimTestCase


class FaultTests(SimTestCase):
    """Fault injection and latency."""

    # Queue a fault.
    def fault(self, **spec):
        status, _, body = self.call("POST", "/_sim/faults", body=spec)
        self.assertEqual(status, 200, body)
        return body

    # An error fault replaces N replies, with Retry-After when asked, then stops.
    def test_error_fault_count_and_retry_after(self):
        self.fault(endpoint="creator_info", count=2, http_status=503, error_code="internal_error",
                   retry_after=7)
        for _ in range(2):
            status, resp, body = self.api("/v2/post/publish/creator_info/query/", {})
            self.assertEnvelope((status, resp, body), 503, "internal_error")
            self.assertEqual(resp.getheader("Retry-After"), "7")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}), 200, "ok")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"], [])
        log = self.requests_log(endpoint="creator_info")
        self.assertEqual([e["fault"] for e in log], ["error", "error", None])

    # Faults can be listed and cleared; bad specs are rejected.
    def test_fault_listing(self):
        self.fault(endpoint="*", count=3, action="empty")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"][0]["count"], 3)
        self.assertEqual(self.call("DELETE", "/_sim/faults")[0], 200)
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"], [])
        self.assertEqual(self.call("POST", "/_sim/faults", body={"endpoint": "nope"})[0], 400)
        self.assertEqual(self.call("POST", "/_sim/faults",
                                   body={"endpoint": "cancel", "action": "explode"})[0], 400)
        for bad in (-1, 1.5, "2", True):
            self.assertEqual(self.call("POST", "/_sim/faults",
                                       body={"endpoint": "cancel", "skip": bad})[0], 400)

    # skip lets K matching calls through, then the fault applies to `count` calls.
    def test_skip(self):
        self.fault(endpoint="creator_info", skip=1, count=2, http_status=503)
        self.fault(endpoint="status_fetch", skip=5)          # other endpoints do not count
        codes = [self.api("/v2/post/publish/creator_info/query/", {})[0] for _ in range(4)]
        self.assertEqual(codes, [200, 503, 503, 200])
        faults = self.call("GET", "/_sim/faults")[2]["faults"]
        self.assertEqual([(f["endpoint"], f["skip"]) for f in faults], [("status_fetch", 5)])
        # A skipping fault counts calls another fault answered: skip 1 hits the 2nd call.
        self.call("DELETE", "/_sim/faults")
        self.fault(endpoint="creator_info", skip=1, http_status=502)
        self.fault(endpoint="creator_info", http_status=504)
        codes = [self.api("/v2/post/publish/creator_info/query/", {})[0] for _ in range(3)]
        self.assertEqual(codes, [504, 502, 200])

    # drop closes the socket without any reply, and has no effect.
    def test_drop(self):
        self.fault(endpoint="video_init", action="drop")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(self.call("GET", "/_sim/publishes")[2]["publishes"], [])
        entry = self.requests_log(endpoint="video_init")[0]
        self.assertEqual((entry["fault"], entry["http_status"]), ("drop", None))

    # A call answered by a fault before any processing is logged with the caller's open_id.
    def test_faulted_call_names_the_caller(self):
        self.user(token="tok_a", open_id="alice")
        self.fault(endpoint="creator_info", http_status=503)
        self.fault(endpoint="video_init", action="drop")
        self.fault(endpoint="creator_info", action="html", http_status=502)
        self.fault(endpoint="oauth_token", http_status=500, error_code="server_error")
        self.api("/v2/post/publish/creator_info/query/", {})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.api("/v2/post/publish/video/init/", self.video_body())
        self.api("/v2/post/publish/creator_info/query/", {}, token="tok_unknown")
        self.form("/v2/oauth/token/", {"grant_type": "refresh_token", "refresh_token": "x"})
        auto = "auto_" + hashlib.sha256(b"tok_unknown").hexdigest()[:8]
        self.assertEqual([(e["endpoint"], e["fault"], e["open_id"]) for e in self.requests_log()],
                         [("creator_info", "error", "alice"), ("video_init", "drop", "alice"),
                          ("creator_info", "html", auto), ("oauth_token", "error", None)])

    # after_processing: the publish is created, but the reply is lost.
    def test_drop_after_processing(self):
        self.fault(endpoint="video_init", action="drop", after_processing=True)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.api("/v2/post/publish/video/init/", self.video_body())
        publishes = self.call("GET", "/_sim/publishes")[2]["publishes"]
        self.assertEqual(len(publishes), 1)
        entry = self.requests_log(endpoint="video_init")[0]
        self.assertEqual(entry["publish_id"], publishes[0]["publish_id"])
        self.assertEqual(entry["effect_error_code"], "ok")
        self.wait_status(publishes[0]["publish_id"], "PUBLISH_COMPLETE")

    # slow delays the reply but answers normally.
    def test_slow(self):
        self.fault(endpoint="status_fetch", action="slow", delay_ms=300)
        pid = self.init_pull()
        start = time.time()
        self.status_of(pid)
        self.assertGreaterEqual(time.time() - start, 0.29)

    # html, malformed and empty replies.
    def test_bad_bodies(self):
        self.fault(endpoint="video_init", action="html", http_status=502)
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 502)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/html"))
        self.assertIn(b"<html>", body)
        self.fault(endpoint="video_init", action="malformed")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        self.fault(endpoint="video_init", action="empty")
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, body, resp.getheader("Content-Length")), (200, b"", "0"))
        self.assertEqual(self.call("GET", "/_sim/publishes")[2]["publishes"], [])

    # array, huge, binary and wrongtypes replies: 200, each wrong in its own way, no effect.
    def test_garbage_bodies(self):
        self.fault(endpoint="video_init", action="array")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 200)
        self.assertIsInstance(body, list)
        self.assertEqual(body[0]["error"]["code"], "ok")

        self.fault(endpoint="video_init", action="huge")
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, resp.getheader("Content-Length")), (200, str(6 * MB)))
        self.assertIsInstance(body, dict)                      # parsed: valid JSON, only too big
        self.assertEqual((body["error"]["code"], body["data"]["publish_id"]), ("ok", "v_pub_url~v2.huge"))

        self.fault(endpoint="video_init", action="binary")
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("application/json"))
        self.assertIsInstance(body, bytes)
        with self.assertRaises(UnicodeDecodeError):
            body.decode("utf-8")
        self.assertIn(b"\x00", body[:200])
        self.assertEqual(body[:200], self.api_raw_after_fault("binary")[:200])    # deterministic

        self.fault(endpoint="video_init", action="wrongtypes")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, body), (200, {"data": {"publish_id": 12345},
                                                "error": {"code": 7, "message": None, "log_id": []}}))
        self.fault(endpoint="video_init", action="wrongtypes", error_code="ok")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, body), (200, {"data": {"publish_id": 12345},
                                                "error": {"code": "ok", "message": None, "log_id": []}}))

        self.assertEqual(self.call("GET", "/_sim/publishes")[2]["publishes"], [])
        log = self.requests_log(endpoint="video_init")
        self.assertEqual([e["fault"] for e in log],
                         ["array", "huge", "binary", "binary", "wrongtypes", "wrongtypes"])
        # The log takes a publish_id from a reply only when it is a string.
        self.assertEqual([e["publish_id"] for e in log],
                         [None, "v_pub_url~v2.huge", None, None, None, None])

    # A fault with open_id only hits calls made with that user's token (auto users too).
    def test_fault_for_one_user(self):
        self.user(token="tok_a", open_id="alice")
        self.user(token="tok_b", open_id="bob")
        self.fault(endpoint="creator_info", open_id="bob", count=2, http_status=503)
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_a"),
                            200, "ok")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_b"),
                            503, "internal_error")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"][0]["open_id"], "bob")
        auto = "auto_" + hashlib.sha256(b"tok_auto").hexdigest()[:8]
        self.fault(endpoint="creator_info", open_id=auto, http_status=502)
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_auto"),
                            502, "internal_error")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_b"),
                            503, "internal_error")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"], [])
        for bad in ("", 7, ["bob"]):
            self.assertEqual(self.call("POST", "/_sim/faults",
                                       body={"endpoint": "cancel", "open_id": bad})[0], 400)

    # The raw body of one video_init answered by a fault with this action.
    def api_raw_after_fault(self, action):
        self.fault(endpoint="video_init", action=action)
        return self.api("/v2/post/publish/video/init/", self.video_body())[2]

    # Faults on OAuth use the flat OAuth error format; on upload they hit PUT.
    def test_oauth_and_upload_faults(self):
        self.fault(endpoint="oauth_token", http_status=500, error_code="internal_error")
        status, _, body = self.form("/v2/oauth/token/", {"client_key": "sim_client_key",
                                                         "client_secret": "sim_client_secret",
                                                         "grant_type": "authorization_code",
                                                         "code": "code-f"})
        self.assertEqual((status, body["error"]), (500, "internal_error"))
        data = self.assertEnvelope(self.api("/v2/post/publish/video/init/", {
            "post_info": {"privacy_level": "SELF_ONLY"},
            "source_info": {"source": "FILE_UPLOAD", "video_size": 10, "chunk_size": 10,
                            "total_chunk_count": 1}}), 200, "ok")
        parts = urlsplit(data["upload_url"])
        path = f"{parts.path}?{parts.query}"
        self.fault(endpoint="upload", http_status=503)
        headers = {"Content-Type": "video/mp4", "Content-Range": "bytes 0-9/10"}
        self.assertEqual(self.call("PUT", path, raw=b"0123456789", headers=headers)[0], 503)
        self.assertEqual(self.call("PUT", path, raw=b"0123456789", headers=headers)[0], 201)

    # latency_ms delays every TikTok call but not the control API; the log
    # tells when a call arrived (received) from when it was answered (time).
    def test_latency(self):
        self.config(latency_ms=400)
        start = time.time()
        self.api("/v2/post/publish/creator_info/query/", {})
        self.assertGreaterEqual(time.time() - start, 0.39)
        entry = self.requests_log()[-1]
        self.assertLessEqual(start, entry["received"])
        self.assertGreaterEqual(entry["time"] - entry["received"], 0.39)
        self.assertLess(entry["received"] - start, 0.2)
        start = time.time()
        self.call("GET", "/_sim/health")
        self.assertLess(time.time() - start, 0.35)
