"""HTTP behaviour: routing of unknown paths, keep-alive, many connections at once, and
the command line (sim/tiktok/server.py, sim/tiktok_sim.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import http.client
import json
import signal
import subprocess
import sys
import time

from sim.tests.helpers import SIM_SCRIPT, SimTestCase


class RoutingTests(SimTestCase):
    """Paths that match no route."""

    # Unknown paths answer 404 with the envelope.
    def test_unknown_path(self):
        self.assertEnvelope(self.call("GET", "/v2/nothing/"), 404, "not_found")
        self.assertEnvelope(self.call("GET", "/v2/post/publish/video/init/", token="t"),
                            404, "not_found")


class HttpBehaviourTests(SimTestCase):
    """Keep-alive, Content-Length, process lifecycle."""

    # Several requests share one HTTP/1.1 connection; Content-Length is always sent.
    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        for _ in range(3):
            status, resp, _ = self.call("POST", "/v2/post/publish/creator_info/query/", body={},
                                        token="tok_a", conn=conn)
            self.assertEqual(status, 200)
            self.assertEqual(resp.version, 11)
            self.assertIsNotNone(resp.getheader("Content-Length"))
        status, resp, _ = self.call("GET", "/_sim/health", conn=conn)
        self.assertIsNotNone(resp.getheader("Content-Length"))
        conn.close()

    # 300 connections opened at once are all accepted (listen backlog well above
    # socketserver's 5: no dropped SYN, so no 1 s retransmit), then all served at once.
    def test_many_concurrent_connections(self):
        self.assertGreaterEqual(self.server.request_queue_size, 1024)
        self.call("POST", "/_sim/users/bulk", body={"count": 300, "prefix": "conn"})
        conns, slowest = [], 0.0
        try:
            for _ in range(300):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                started = time.monotonic()
                conn.connect()
                slowest = max(slowest, time.monotonic() - started)
                conns.append(conn)
            for i, conn in enumerate(conns, 1):
                conn.request("POST", "/v2/post/publish/creator_info/query/", body=b"{}",
                             headers={"Authorization": f"Bearer act.conn-{i}",
                                      "Content-Type": "application/json"})
            replies = []
            for conn in conns:
                resp = conn.getresponse()
                replies.append((resp.status, json.loads(resp.read())["error"]["code"]))
        finally:
            for conn in conns:
                conn.close()
        self.assertEqual(replies, [(200, "ok")] * 300)
        self.assertLess(slowest, 0.9)
        self.assertEqual(len(self.requests_log(endpoint="creator_info")), 300)

    # The script prints its listening line and exits 0 on SIGTERM.
    def test_cli_sigterm(self):
        proc = subprocess.Popen([sys.executable, SIM_SCRIPT, "--port", "0", "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertRegex(line, r"^tiktok_sim listening on http://127\.0\.0\.1:\d+$")
            port = int(line.rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/_sim/health")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=5), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
