"""FILE_UPLOAD chunk PUTs: the flow, errors, chunk rules, CRC32 of what arrived, and
chunks a fault answers (sim/tiktok/uploads.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import http.client
import zlib
from urllib.parse import urlsplit

from sim.tests.helpers import MB, SimTestCase, expected_media_crc


class UploadTests(SimTestCase):
    """FILE_UPLOAD chunk transfer."""

    # Init a FILE_UPLOAD Direct Post; returns (publish_id, upload path+query).
    def init_file(self, size, chunk, count, endpoint="/v2/post/publish/video/init/"):
        body = {"source_info": {"source": "FILE_UPLOAD", "video_size": size,
                                "chunk_size": chunk, "total_chunk_count": count}}
        if endpoint.endswith("/video/init/") and "inbox" not in endpoint:
            body["post_info"] = {"privacy_level": "SELF_ONLY", "title": "file"}
        data = self.assertEnvelope(self.api(endpoint, body), 200, "ok")
        parts = urlsplit(data["upload_url"])
        return data["publish_id"], f"{parts.path}?{parts.query}"

    # PUT one chunk; returns (status, response).
    def put(self, path, data, first, total, ctype="video/mp4", conn=None, headers=None):
        hdrs = {"Content-Type": ctype,
                "Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}"}
        hdrs.update(headers or {})
        status, resp, _ = self.call("PUT", path, raw=data, headers=hdrs, conn=conn)
        return status, resp

    # Two chunks: 206 then 201 with progress in Content-Range; then processing completes.
    def test_chunked_upload_flow(self):
        size, chunk = 11 * MB + 7, 5 * MB
        pid, path = self.init_file(size, chunk, 2)
        self.assertEqual(self.status_of(pid)["status"], "PROCESSING_UPLOAD")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        status, resp = self.put(path, b"a" * chunk, 0, size, conn=conn)
        self.assertEqual(status, 206)
        self.assertEqual(resp.getheader("Content-Range"), f"bytes 0-{chunk - 1}/{size}")
        self.assertEqual(self.status_of(pid)["uploaded_bytes"], chunk)
        status, resp = self.put(path, b"b" * (size - chunk), chunk, size, ctype="video/quicktime",
                                conn=conn)
        conn.close()
        self.assertEqual(status, 201)
        self.assertEqual(resp.getheader("Content-Range"), f"bytes 0-{size - 1}/{size}")
        data = self.status_of(pid)
        self.assertEqual((data["status"], data["uploaded_bytes"]), ("PROCESSING_UPLOAD", size))
        self.wait_status(pid, "PUBLISH_COMPLETE")

    # Upload errors: 400 headers/length, 404 unknown, 416 range, 403 expired.
    def test_upload_errors(self):
        pid, path = self.init_file(1000, 1000, 1)
        data = b"x" * 1000
        self.assertEqual(self.put(path, data, 0, 1000, ctype="text/plain")[0], 400)
        self.assertEqual(self.put(path, data, 0, 1000,
                                  headers={"Content-Range": "bytes 0-10/1000"})[0], 400)
        self.assertEqual(self.put(path, data, 0, 1000,
                                  headers={"Content-Range": "0-999/1000"})[0], 400)
        self.assertEqual(self.put(path.split("?")[0] + "?upload_token=wrong", data, 0, 1000)[0], 404)
        self.assertEqual(self.put("/upload/unknown?upload_token=x", data, 0, 1000)[0], 404)
        self.assertEqual(self.put(path, data, 0, 999 + 1000)[0], 416)        # TOTAL mismatch
        self.assertEqual(self.put(path, data[:500], 500, 1000)[0], 416)      # not in order
        self.assertEqual(self.put(path, data, 0, 1000)[0], 201)
        self.assertEqual(self.put(path, data, 0, 1000)[0], 416)              # already complete
        self.config(upload_url_ttl_seconds=0)
        _, path2 = self.init_file(1000, 1000, 1)
        self.assertEqual(self.put(path2, data, 0, 1000)[0], 403)

    # Chunks must be exactly chunk_size except the last.
    def test_chunk_length_enforced(self):
        size, chunk = 11 * MB, 5 * MB
        _, path = self.init_file(size, chunk, 2)
        self.assertEqual(self.put(path, b"a" * (chunk - 1), 0, size)[0], 400)

    # The connection stays usable (keep-alive) after an error reply with a body.
    def test_keep_alive_after_error(self):
        _, path = self.init_file(1000, 1000, 1)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000, ctype="text/plain", conn=conn)[0], 400)
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000, conn=conn)[0], 201)
        status, _, body = self.call("GET", "/_sim/health", conn=conn)
        conn.close()
        self.assertEqual((status, body), (200, {"ok": True}))

    # An inbox FILE_UPLOAD ends SEND_TO_USER_INBOX.
    def test_inbox_file_upload(self):
        pid, path = self.init_file(1000, 1000, 1, "/v2/post/publish/inbox/video/init/")
        self.assertRegex(pid, r"^v_pub_file~v2\.\d+$")
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000)[0], 201)
        self.wait_status(pid, "SEND_TO_USER_INBOX")
        # FILE_UPLOAD publishes cannot be cancelled.
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": pid}),
                            400, "publish_not_cancellable")

    # The publish as /_sim/publishes/<id> shows it.
    def publish(self, pid):
        return self.call("GET", f"/_sim/publishes/{pid}")[2]

    # Queue a fault through the control API.
    def fault(self, **spec):
        status, _, body = self.call("POST", "/_sim/faults", body=spec)
        self.assertEqual(status, 200, body)
        return body

    # A 2-chunk upload of media fetched from /_sim/media: CRC, ranges and types recorded.
    def test_crc_of_two_chunk_upload(self):
        size, chunk = 11 * MB + 7, 5 * MB
        status, _, video = self.call("GET", f"/_sim/media/clip.mp4?size={size}")
        self.assertEqual((status, len(video)), (200, size))
        pid, path = self.init_file(size, chunk, 2)
        before = self.publish(pid)
        self.assertEqual((before["uploaded_bytes"], before["uploaded_crc32"], before["chunks"],
                          before["content_type"]), (0, 0, [], None))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.assertEqual(self.put(path, video[:chunk], 0, size, conn=conn)[0], 206)
        mid = self.publish(pid)
        self.assertEqual(mid["uploaded_crc32"], zlib.crc32(video[:chunk]))
        self.assertEqual(mid["chunks"], [[0, chunk - 1]])
        self.assertEqual(self.put(path, video[chunk:], chunk, size, ctype="video/quicktime",
                                  conn=conn)[0], 201)
        conn.close()
        done = self.publish(pid)
        self.assertEqual(done["uploaded_bytes"], size)
        self.assertEqual(done["uploaded_crc32"], zlib.crc32(video))
        self.assertEqual(done["uploaded_crc32"], expected_media_crc("mp4", size))
        self.assertEqual(done["chunks"], [[0, chunk - 1], [chunk, size - 1]])
        self.assertEqual(done["content_type"], "video/quicktime")
        self.assertEqual(done["content_types"], ["video/mp4", "video/quicktime"])
        listed = self.call("GET", "/_sim/publishes")[2]["publishes"][0]
        self.assertEqual(listed["uploaded_crc32"], done["uploaded_crc32"])

    # skip=2 lets the first two chunks through and fails the third, which is not counted.
    def test_fault_skip_fails_third_chunk(self):
        size, chunk = 17 * MB, 5 * MB
        data = bytes(range(256)) * (size // 256)
        pid, path = self.init_file(size, chunk, 3)
        listed = self.fault(endpoint="upload", skip=2, http_status=500)
        self.assertEqual((listed["skip"], listed["count"]), (2, 1))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.assertEqual(self.put(path, data[:chunk], 0, size, conn=conn)[0], 206)
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"][0]["skip"], 1)
        self.assertEqual(self.put(path, data[chunk:2 * chunk], chunk, size, conn=conn)[0], 206)
        status, _ = self.put(path, data[2 * chunk:], 2 * chunk, size, conn=conn)
        self.assertEqual(status, 500)
        self.assertEqual(self.publish(pid)["uploaded_bytes"], 2 * chunk)
        # Same connection, same range again: accepted now that the fault is used up.
        self.assertEqual(self.put(path, data[2 * chunk:], 2 * chunk, size, conn=conn)[0], 201)
        conn.close()
        done = self.publish(pid)
        self.assertEqual((done["uploaded_bytes"], done["uploaded_crc32"]),
                         (size, zlib.crc32(data)))
        self.assertEqual(len(done["chunks"]), 3)
        log = self.requests_log(endpoint="upload")
        self.assertEqual([e["fault"] for e in log], [None, None, "error", None])
        self.assertEqual({e["publish_id"] for e in log}, {pid})

    # drop and error faults on upload read the body but count nothing; the range is resent.
    def test_dropped_and_failed_chunks_not_counted(self):
        size, chunk = 11 * MB, 5 * MB
        data = b"\x5a" * size
        pid, path = self.init_file(size, chunk, 2)
        self.fault(endpoint="upload", action="drop")
        # The body is read before the close, so the client sees a clean EOF, not a reset.
        with self.assertRaises(http.client.RemoteDisconnected):
            self.put(path, data[:chunk], 0, size)
        for http_status in (403, 500):
            self.fault(endpoint="upload", http_status=http_status, error_code="internal_error")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.assertEqual(self.put(path, data[:chunk], 0, size, conn=conn)[0], http_status)
            # The body was drained, so the same keep-alive connection still works.
            self.assertEqual(self.call("GET", "/_sim/health", conn=conn)[0], 200)
            conn.close()
        state = self.publish(pid)
        self.assertEqual((state["uploaded_bytes"], state["uploaded_crc32"], state["chunks"]),
                         (0, 0, []))
        self.assertEqual(self.put(path, data[:chunk], 0, size)[0], 206)
        self.assertEqual(self.put(path, data[chunk:], chunk, size)[0], 201)
        self.assertEqual(self.publish(pid)["uploaded_crc32"], zlib.crc32(data))
        log = self.requests_log(endpoint="upload")
        self.assertEqual([(e["fault"], e["http_status"]) for e in log],
                         [("drop", None), ("error", 403), ("error", 500), (None, 206),
                          (None, 201)])
        self.assertEqual(log[0]["publish_id"], pid)

    # after_processing is the exception: the chunk is counted, only the reply is lost.
    def test_drop_after_processing_counts_chunk(self):
        pid, path = self.init_file(1000, 1000, 1)
        self.fault(endpoint="upload", action="drop", after_processing=True)
        with self.assertRaises(http.client.RemoteDisconnected):
            self.put(path, b"x" * 1000, 0, 1000)
        state = self.publish(pid)
        self.assertEqual((state["uploaded_bytes"], state["uploaded_crc32"]),
                         (1000, zlib.crc32(b"x" * 1000)))
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000)[0], 416)
