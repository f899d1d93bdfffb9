"""The synthetic media source GET/HEAD /_sim/media/<name> (sim/tiktok/uploads.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import http.client
import time

from sim.tests.helpers import MB, GiB, MEDIA_HEADERS, SimTestCase, expected_media


class MediaTests(SimTestCase):
    """The synthetic video source: GET/HEAD /_sim/media/<name>."""

    # One request on a raw connection; returns (status, response, body bytes).
    def get(self, path, headers=None, method="GET", conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp, resp.read()
        finally:
            if own:
                conn.close()

    # Queue a fault through the control API.
    def fault(self, **spec):
        status, _, body = self.call("POST", "/_sim/faults", body=spec)
        self.assertEqual(status, 200, body)
        return body

    # Each type: right Content-Type, header bytes, then the pattern (across 64 KiB pieces).
    def test_header_and_bytes_per_type(self):
        size = 3 * 65536 + 1001
        for kind, ctype in (("mp4", "video/mp4"), ("mov", "video/quicktime"),
                            ("webm", "video/webm")):
            with self.subTest(kind=kind):
                status, resp, body = self.get(f"/_sim/media/v?size={size}&type={kind}")
                self.assertEqual(status, 200)
                self.assertEqual(resp.getheader("Content-Type"), ctype)
                self.assertEqual(resp.getheader("Accept-Ranges"), "bytes")
                self.assertEqual(resp.getheader("Content-Length"), str(size))
                self.assertIsNone(resp.getheader("Content-Range"))
                self.assertEqual(body, expected_media(kind, 0, size - 1))
                header = MEDIA_HEADERS[kind]
                self.assertEqual(body[:len(header)], header)
                self.assertEqual(body[len(header)], (len(header) * 31 + 7) & 0xFF)
        self.assertEqual(expected_media("mp4", 0, 7), b"\x00\x00\x00\x18ftyp")
        self.assertEqual(expected_media("mov", 8, 11), b"qt  ")

    # The type comes from ?type=, else from the name's extension, else mp4; bytes are stable.
    def test_type_defaults_and_determinism(self):
        self.assertEqual(self.get("/_sim/media/a.webm?size=10")[1].getheader("Content-Type"),
                         "video/webm")
        self.assertEqual(self.get("/_sim/media/a.MOV?size=10")[1].getheader("Content-Type"),
                         "video/quicktime")
        self.assertEqual(self.get("/_sim/media/a?size=10")[1].getheader("Content-Type"),
                         "video/mp4")
        self.assertEqual(self.get("/_sim/media/a.webm?size=10&type=mp4")[1]
                         .getheader("Content-Type"), "video/mp4")
        first = self.get("/_sim/media/one.mp4?size=70000")[2]
        second = self.get("/_sim/media/other-name.mp4?size=90000")[2]
        self.assertEqual(first, second[:70000])
        status, _, body = self.get("/_sim/media/short?size=5&type=mp4")
        self.assertEqual((status, body), (200, MEDIA_HEADERS["mp4"][:5]))
        status, resp, body = self.get("/_sim/media/empty?size=0")
        self.assertEqual((status, body, resp.getheader("Content-Length")), (200, b"", "0"))

    # Single ranges give 206 + Content-Range; bad ones 416 with bytes */N.
    def test_ranges(self):
        size = 200000
        base = f"/_sim/media/r.mov?size={size}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        cases = [("bytes=0-99", 0, 99), ("bytes=10-30", 10, 30),
                 ("bytes=65530-65545", 65530, 65545), ("bytes=199990-", 199990, size - 1),
                 ("bytes=199990-300000", 199990, size - 1), ("bytes=-16", size - 16, size - 1),
                 ("bytes=199999-199999", 199999, 199999)]
        for header, first, last in cases:
            with self.subTest(range=header):
                status, resp, body = self.get(base, {"Range": header}, conn=conn)
                self.assertEqual(status, 206)
                self.assertEqual(resp.getheader("Content-Range"), f"bytes {first}-{last}/{size}")
                self.assertEqual(resp.getheader("Content-Length"), str(last - first + 1))
                self.assertEqual(resp.getheader("Content-Type"), "video/quicktime")
                self.assertEqual(body, expected_media("mov", first, last))
        for header in ("bytes=200000-", "bytes=250000-250010", "bytes=-0", "bytes=9-3",
                       "bytes=x-y"):
            with self.subTest(range=header):
                status, resp, _ = self.get(base, {"Range": header}, conn=conn)
                self.assertEqual(status, 416)
                self.assertEqual(resp.getheader("Content-Range"), f"bytes */{size}")
        # The connection is still usable after the 416 replies (keep-alive).
        status, _, body = self.get(base, {"Range": "bytes=0-3"}, conn=conn)
        self.assertEqual((status, body), (206, MEDIA_HEADERS["mov"][:4]))
        conn.close()
        self.assertEqual(self.get("/_sim/media/e?size=0", {"Range": "bytes=0-"})[0], 416)
        # Multi-range and other units are ignored: the whole file.
        status, _, body = self.get("/_sim/media/m?size=100", {"Range": "bytes=0-1,5-6"})
        self.assertEqual((status, len(body)), (200, 100))
        status, _, body = self.get("/_sim/media/m?size=100", {"Range": "items=0-1"})
        self.assertEqual((status, len(body)), (200, 100))

    # HEAD: the same headers (incl. for a Range), no body; sizes up to 8 GiB.
    def test_head_and_large_sizes(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        status, resp, body = self.get(f"/_sim/media/big.webm?size={8 * GiB}", method="HEAD",
                                      conn=conn)
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(resp.getheader("Content-Length"), str(8 * GiB))
        self.assertEqual(resp.getheader("Content-Type"), "video/webm")
        self.assertEqual(resp.getheader("Accept-Ranges"), "bytes")
        status, resp, body = self.get("/_sim/media/big.mp4?size=1000", {"Range": "bytes=100-"},
                                      method="HEAD", conn=conn)
        self.assertEqual((status, body), (206, b""))
        self.assertEqual(resp.getheader("Content-Range"), "bytes 100-999/1000")
        self.assertEqual(resp.getheader("Content-Length"), "900")
        status, resp, _ = self.get("/_sim/media/big.mp4?size=1000", {"Range": "bytes=1000-"},
                                   method="HEAD", conn=conn)
        self.assertEqual((status, resp.getheader("Content-Range")), (416, "bytes */1000"))
        # The tail of an 8 GiB file, past 2**32, on the same connection.
        first, last = 8 * GiB - 70000, 8 * GiB - 1
        status, resp, body = self.get(f"/_sim/media/big.mp4?size={8 * GiB}",
                                      {"Range": f"bytes={first}-"}, conn=conn)
        conn.close()
        self.assertEqual(status, 206)
        self.assertEqual(resp.getheader("Content-Range"), f"bytes {first}-{last}/{8 * GiB}")
        self.assertEqual(body, expected_media("mp4", first, last))
        self.assertEqual(self.get(f"/_sim/media/x?size={8 * GiB + 1}")[0], 400)
        for query in ("", "?size=-1", "?size=abc", "?size=10&type=avi"):
            self.assertEqual(self.get("/_sim/media/x" + query)[0], 400, query)
        self.assertEqual(self.call("POST", "/_sim/media/x?size=10", body={})[0], 405)

    # A client that stops reading a huge file does not hang the server; the log shows it.
    def test_streams_without_buffering(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", f"/_sim/media/huge.mp4?size={8 * GiB}")
        resp = conn.getresponse()
        self.assertEqual(resp.getheader("Content-Length"), str(8 * GiB))
        chunk = resp.read(MB)
        self.assertEqual(chunk[:64], expected_media("mp4", 0, 63))
        conn.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            entry = self.requests_log(endpoint="media")[0]
            if entry["body"]["bytes_sent"]:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(entry["body"]["bytes_sent"], MB)
        self.assertLess(entry["body"]["bytes_sent"], 8 * GiB)
        self.assertEqual(self.call("GET", "/_sim/health")[0], 200)

    # Media calls are logged as "media", skip latency and "*" faults, and take media faults.
    def test_log_latency_and_faults(self):
        self.config(latency_ms=400)
        self.fault(endpoint="*", action="drop")
        start = time.time()
        status, _, _ = self.get("/_sim/media/l.mp4?size=10", {"Range": "bytes=2-"})
        self.assertLess(time.time() - start, 0.35)
        self.assertEqual(status, 206)
        self.assertEqual(len(self.call("GET", "/_sim/faults")[2]["faults"]), 1)  # "*" untouched
        self.call("DELETE", "/_sim/faults")
        entry = self.requests_log(endpoint="media")[0]
        self.assertEqual((entry["method"], entry["endpoint"], entry["http_status"],
                          entry["fault"]), ("GET", "media", 206, None))
        self.assertEqual(entry["body"], {"name": "l.mp4", "type": "mp4", "size": 10,
                                         "range": "bytes=2-", "bytes_sent": 8})
        self.fault(endpoint="media", action="drop", skip=1)
        self.assertEqual(self.get("/_sim/media/l.mp4?size=10")[0], 200)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.get("/_sim/media/l.mp4?size=10")
        self.fault(endpoint="media", http_status=503, retry_after=2)
        status, resp, _ = self.get("/_sim/media/l.mp4?size=10", method="HEAD")
        self.assertEqual((status, resp.getheader("Retry-After")), (503, "2"))
        self.fault(endpoint="media", action="slow", delay_ms=200)
        start = time.time()
        status, _, body = self.get("/_sim/media/l.mp4?size=10")
        self.assertGreaterEqual(time.time() - start, 0.19)
        self.assertEqual((status, len(body)), (200, 10))
        log = self.requests_log(endpoint="media")
        self.assertEqual([(e["fault"], e["http_status"]) for e in log[1:]],
                         [(None, 200), ("drop", None), ("error", 503), ("slow", 200)])
