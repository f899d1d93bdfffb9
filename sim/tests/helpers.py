"""Shared pieces of the simulator's tests: SimTestCase (one in-process simulator per
test class, reset before each test, HTTP helpers) and reference media bytes.

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import http.client
import json
import os
import threading
import time
import unittest
import zlib
from urllib.parse import urlencode

from sim.tiktok.server import make_server

PROCESSING = 0.3          # seconds of simulated processing in these tests
VERIFIED_URL = "https://verified.example/clip.mp4"
PHOTO_URL = "https://cdn.vibescaling.test/p/1.jpg"
MB = 1024 * 1024
GiB = 1024 * MB

# Expected media headers, written out independently of the simulator's constants.
MEDIA_HEADERS = {
    "mp4": bytes([0, 0, 0, 0x18]) + b"ftypisom" + bytes([0, 0, 2, 0]) + b"isommp41",
    "mov": bytes([0, 0, 0, 0x14]) + b"ftypqt  " + bytes([0, 0, 2, 0]) + b"qt  ",
    "webm": bytes([0x1A, 0x45, 0xDF, 0xA3, 0, 0, 0, 0]),
}


# Reference bytes [first, last] of a synthetic media file (slow; for small spans only).
def expected_media(kind, first, last):
    header = MEDIA_HEADERS[kind]
    return bytes(header[i] if i < len(header) else (i * 31 + 7) & 0xFF
                 for i in range(first, last + 1))


# Reference CRC32 of a whole synthetic media file, built from its 256-byte period.
def expected_media_crc(kind, size):
    header = MEDIA_HEADERS[kind][:size]
    period = bytes((i * 31 + 7) & 0xFF for i in range(256))
    block = period * 4096                   # 1 MiB, starting at a multiple of 256
    crc = zlib.crc32(header)
    offset = len(header)
    if offset < size:                       # the rest of the first 256-byte period
        head = period[offset:min(256, size)]
        crc = zlib.crc32(head, crc)
        offset += len(head)
    while offset < size:
        piece = block[:size - offset]
        crc = zlib.crc32(piece, crc)
        offset += len(piece)
    return crc
# The command-line entry point, as scripts and docs run it.
SIM_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "tiktok_sim.py")


class SimTestCase(unittest.TestCase):
    """Starts one simulator for the module; every test begins from /_sim/reset."""

    # Start the server in a background thread.
    @classmethod
    def setUpClass(cls):
        cls.server = make_server("127.0.0.1", 0, processing_seconds=PROCESSING, quiet=True)
        cls.port = cls.server.server_address[1]
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    # Stop the server.
    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    # Reset all simulator state before each test.
    def setUp(self):
        status, _, body = self.call("POST", "/_sim/reset")
        self.assertEqual((status, body), (200, {"ok": True}))

    # ---- HTTP helpers ------------------------------------------------------

    # One HTTP request on a fresh connection; returns (status, headers, parsed body).
    def call(self, method, path, body=None, token=None, headers=None, raw=None, conn=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json; charset=UTF-8")
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type", "")
            parsed = payload
            if payload and ctype.startswith("application/json"):
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = payload
            return resp.status, resp, parsed
        finally:
            if own:
                conn.close()

    # POST a JSON body to a TikTok endpoint with a bearer token.
    def api(self, path, body, token="tok_a"):
        return self.call("POST", path, body=body, token=token)

    # POST a form to an OAuth endpoint.
    def form(self, path, fields):
        return self.call("POST", path, raw=urlencode(fields).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

    # Assert an envelope reply with the given HTTP status and error.code; returns data.
    def assertEnvelope(self, result, status, code):
        got_status, _, body = result
        self.assertIsInstance(body, dict, body)
        self.assertEqual((got_status, body["error"]["code"]), (status, code), body)
        self.assertIn("log_id", body["error"])
        self.assertTrue(body["error"]["log_id"])
        self.assertIn("message", body["error"])
        return body["data"]

    # Create a user through the control API.
    def user(self, token="tok_a", **fields):
        status, _, body = self.call("POST", "/_sim/users", body={"access_token": token, **fields})
        self.assertEqual(status, 200, body)
        return body

    # Change config through the control API.
    def config(self, **values):
        status, _, body = self.call("POST", "/_sim/config", body=values)
        self.assertEqual(status, 200, body)
        return body

    # A valid Direct Post video init body.
    @staticmethod
    def video_body(privacy="PUBLIC_TO_EVERYONE", url=VERIFIED_URL, **post_info):
        return {"post_info": {"title": "hello #sim", "privacy_level": privacy, **post_info},
                "source_info": {"source": "PULL_FROM_URL", "video_url": url}}

    # Init a Direct Post from a URL; returns publish_id.
    def init_pull(self, token="tok_a", url=VERIFIED_URL, privacy="PUBLIC_TO_EVERYONE"):
        data = self.assertEnvelope(self.api("/v2/post/publish/video/init/",
                                            self.video_body(privacy, url), token), 200, "ok")
        return data["publish_id"]

    # Fetch a publish's status data.
    def status_of(self, publish_id, token="tok_a"):
        return self.assertEnvelope(self.api("/v2/post/publish/status/fetch/",
                                            {"publish_id": publish_id}, token), 200, "ok")

    # Poll until a publish reaches a status (or fail the test).
    def wait_status(self, publish_id, wanted, token="tok_a", timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.status_of(publish_id, token)
            if data["status"] == wanted:
                return data
            time.sleep(0.05)
        self.fail(f"{publish_id} never reached {wanted}; last {data}")

    # Requests in the simulator's log, optionally filtered.
    def requests_log(self, **filters):
        query = ("?" + urlencode(filters)) if filters else ""
        return self.call("GET", "/_sim/requests" + query)[2]["requests"]
