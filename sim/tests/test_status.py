"""Publish status fetch, simulated progress and cancel (sim/tiktok/status.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import http.client
import json
import time

from sim.tests.helpers import VERIFIED_URL, SimTestCase


class StatusAndCancelTests(SimTestCase):
    """Asynchronous status progress, failures, ownership, cancel."""

    # A Direct Post goes PROCESSING_DOWNLOAD -> PUBLISH_COMPLETE -> post id visible.
    def test_direct_post_progress(self):
        self.config(processing_seconds=0.6)      # a wide window between COMPLETE and the id
        pid = self.init_pull()
        first = self.status_of(pid)
        self.assertEqual(first["status"], "PROCESSING_DOWNLOAD")
        self.assertEqual(first["publicaly_available_post_id"], [])
        self.assertNotIn("fail_reason", first)
        self.assertIn("downloaded_bytes", first)
        done = self.wait_status(pid, "PUBLISH_COMPLETE")
        self.assertEqual(done["publicaly_available_post_id"], [])
        time.sleep(0.65)
        status, resp, raw = self.call("POST", "/v2/post/publish/status/fetch/",
                                      body={"publish_id": pid}, token="tok_a")
        ids = raw["data"]["publicaly_available_post_id"]
        self.assertEqual(len(ids), 1)
        self.assertGreater(ids[0], 2 ** 53)
        self.assertEqual(len(str(ids[0])), 19)
        # The raw JSON text carries the id as an exact integer literal.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("POST", "/v2/post/publish/status/fetch/", body=json.dumps({"publish_id": pid}),
                     headers={"Authorization": "Bearer tok_a"})
        text = conn.getresponse().read().decode()
        conn.close()
        self.assertIn(f'"publicaly_available_post_id": [{ids[0]}]', text)

    # sim_fail in the URL ends FAILED with that reason, still HTTP 200 ok.
    def test_sim_fail(self):
        pid = self.init_pull(url=VERIFIED_URL + "?sim_fail=video_pull_failed")
        data = self.wait_status(pid, "FAILED")
        self.assertEqual(data["fail_reason"], "video_pull_failed")
        self.assertEqual(data["publicaly_available_post_id"], [])

    # Unknown and foreign publish ids answer 400 with the matching codes.
    def test_status_errors(self):
        pid = self.init_pull("tok_owner")
        self.assertEnvelope(self.api("/v2/post/publish/status/fetch/",
                                     {"publish_id": "v_pub_url~v2.1"}), 400, "invalid_publish_id")
        self.assertEnvelope(self.api("/v2/post/publish/status/fetch/", {"publish_id": pid},
                                     "tok_other"),
                            400, "token_not_authorized_for_specified_publish_id")
        self.status_of(pid, "tok_owner")

    # Cancel an in-flight pull; a final publish is not cancellable.
    def test_cancel(self):
        self.config(processing_seconds=30)
        pid = self.init_pull()
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": pid}), 200, "ok")
        data = self.status_of(pid)
        self.assertEqual((data["status"], data["fail_reason"]), ("FAILED", "publish_cancelled"))
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": pid}),
                            400, "publish_not_cancellable")
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": "nope"}),
                            400, "invalid_publish_id")

    # Per-publish processing time via sim_processing_seconds in the URL.
    def test_per_publish_processing(self):
        self.config(processing_seconds=60)
        pid = self.init_pull(url=VERIFIED_URL + "?sim_processing_seconds=0")
        self.assertEqual(self.status_of(pid)["status"], "PUBLISH_COMPLETE")
