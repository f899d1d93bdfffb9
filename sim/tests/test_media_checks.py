"""Media checks after an init (config check_media): FILE_UPLOAD and PULL_FROM_URL videos
and pulled photos are probed with ffprobe and fail with TikTok's fail_reason
(sim/tiktok/checker.py, probe.py, fetch.py, the spool in uploads.py).

The media are made at test time with ffmpeg (Debian package ffmpeg); without it these
tests are skipped.  A local http.server serves them for pulls, through the config's
pull_url_rewrites.

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from sim.tests.helpers import MB, SimTestCase
from sim.tests.test_webhooks import Receiver

HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
SOURCE = "testsrc=size={size}:rate={fps}"

# name -> ffmpeg arguments after "-y" (output name appended); all tiny and fast to make.
VIDEOS = {
    "ok.mp4": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=30), "-t", "1",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "ok.mov": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=24), "-t", "1",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "ok.webm": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=30), "-t", "1",
                "-c:v", "libvpx", "-deadline", "realtime"],
    "fps90.mp4": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=90), "-t", "1",
                  "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "fps15.mp4": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=15), "-t", "1",
                  "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "small.mp4": ["-f", "lavfi", "-i", SOURCE.format(size="200x356", fps=30), "-t", "1",
                  "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "wide.mp4": ["-f", "lavfi", "-i", SOURCE.format(size="4104x360", fps=30), "-t", "0.2",
                 "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "long.mp4": ["-f", "lavfi", "-i", SOURCE.format(size="360x640", fps=30), "-t", "3",
                 "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "h264.mkv": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=30), "-t", "1",
                 "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "mpeg4.avi": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=30), "-t", "1",
                  "-c:v", "mpeg4"],
    "mpeg4.mp4": ["-f", "lavfi", "-i", SOURCE.format(size="720x1280", fps=30), "-t", "1",
                  "-c:v", "mpeg4"],
    # About 13 MB of lossless noise: three chunks of 5 MB, the last one bigger.
    "big.mp4": ["-f", "lavfi", "-i", "nullsrc=s=720x1280:r=30,geq=random(1)*255:128:128",
                "-t", "0.3", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
                "-pix_fmt", "yuv420p"],
}
PHOTOS = {
    "ok.jpg": ["-f", "lavfi", "-i", "testsrc=size=1080x1920", "-frames:v", "1"],
    "land.jpg": ["-f", "lavfi", "-i", "testsrc=size=1920x1080", "-frames:v", "1"],
    "ok.webp": ["-f", "lavfi", "-i", "testsrc=size=1080x1920", "-frames:v", "1",
                "-c:v", "libwebp"],
    "big.jpg": ["-f", "lavfi", "-i", "testsrc=size=1440x2560", "-frames:v", "1"],
    "wide.webp": ["-f", "lavfi", "-i", "testsrc=size=2000x720", "-frames:v", "1",
                  "-c:v", "libwebp"],
    "still.png": ["-f", "lavfi", "-i", "testsrc=size=720x1280", "-frames:v", "1"],
}


class MediaServer:
    """Serves files of a directory on a free loopback port; /moved/... redirects."""

    # Start serving `directory`.
    def __init__(self, directory):
        class Handler(BaseHTTPRequestHandler):
            """GET a file, a redirect, or 404."""

            # Answer one GET.
            def do_GET(self):
                name = urlsplit(self.path).path.lstrip("/")
                if name.startswith("moved/"):
                    self.send_response(302)
                    self.send_header("Location", "/" + name[len("moved/"):])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = os.path.join(directory, os.path.basename(name))
                if not name or not os.path.isfile(path):
                    self.send_error(404)
                    return
                with open(path, "rb") as handle:
                    data = handle.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            # No access log on stderr.
            def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    # Stop serving.
    def close(self):
        self.server.shutdown()
        self.server.server_close()


@unittest.skipUnless(HAVE_FFMPEG, "needs ffmpeg and ffprobe (Debian package ffmpeg)")
class MediaCheckTests(SimTestCase):
    """check_media on: what passes, and each fail_reason."""

    # Make every test file once, and serve them.
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.media_dir = tempfile.mkdtemp(prefix="sim-media-test-")
        for name, args in {**VIDEOS, **PHOTOS}.items():
            subprocess.run(["ffmpeg", "-v", "error", "-y", *args,
                            os.path.join(cls.media_dir, name)], check=True, timeout=60)
        with open(os.path.join(cls.media_dir, "junk.mp4"), "wb") as handle:
            handle.write(bytes((i * 31 + 7) & 0xFF for i in range(100000)))
        with open(os.path.join(cls.media_dir, "huge.jpg"), "wb") as handle:
            handle.write(b"\xff\xd8\xff" + b"\0" * (20 * MB))          # just over 20 MB
        cls.media = MediaServer(cls.media_dir)

    # Stop serving and delete the files.
    @classmethod
    def tearDownClass(cls):
        cls.media.close()
        shutil.rmtree(cls.media_dir, ignore_errors=True)
        super().tearDownClass()

    # check_media on, pulls of https://verified.example/ served locally, room for polls.
    def setUp(self):
        super().setUp()
        self.config(check_media=True, rate_limits=False,
                    pull_url_rewrites={"https://verified.example/": self.media.base,
                                       "https://cdn.vibescaling.test/p/": self.media.base})
        self.user("tok_a", open_id="ou_a")

    # The bytes of a test file.
    def read(self, name):
        with open(os.path.join(self.media_dir, name), "rb") as handle:
            return handle.read()

    # Upload a file as a FILE_UPLOAD Direct Post in chunks of `chunk`; returns publish_id.
    def upload(self, data, chunk=None, token="tok_a"):
        size = len(data)
        chunk = chunk or size
        count = max(1, size // chunk)
        data_init = self.assertEnvelope(self.api("/v2/post/publish/video/init/", {
            "post_info": {"title": "checked", "privacy_level": "PUBLIC_TO_EVERYONE"},
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
                            "total_chunk_count": count}}, token), 200, "ok")
        parts = urlsplit(data_init["upload_url"])
        path = f"{parts.path}?{parts.query}"
        for index in range(count):
            first = index * chunk
            last = size - 1 if index == count - 1 else first + chunk - 1
            status, _, body = self.call("PUT", path, raw=data[first:last + 1], headers={
                "Content-Type": "video/mp4", "Content-Range": f"bytes {first}-{last}/{size}"})
            self.assertEqual(status, 201 if index == count - 1 else 206, body)
        return data_init["publish_id"]

    # Init a PULL_FROM_URL Direct Post of a served file; returns publish_id.
    def pull(self, name, token="tok_a"):
        return self.init_pull(token=token, url=f"https://verified.example/{name}")

    # Init a photo Direct Post of served files; returns publish_id.
    def photos(self, *names):
        return self.assertEnvelope(self.api("/v2/post/publish/content/init/", {
            "post_info": {"title": "pics", "privacy_level": "PUBLIC_TO_EVERYONE"},
            "post_mode": "DIRECT_POST", "media_type": "PHOTO",
            "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 0,
                            "photo_images": [f"https://cdn.vibescaling.test/p/{n}"
                                             for n in names]}}), 200, "ok")["publish_id"]

    # Wait for a final status; returns (status, fail_reason or None).
    def outcome(self, publish_id, token="tok_a", timeout=15.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.status_of(publish_id, token)
            if data["status"] in ("PUBLISH_COMPLETE", "FAILED", "SEND_TO_USER_INBOX"):
                return data["status"], data.get("fail_reason")
            time.sleep(0.05)
        self.fail(f"{publish_id} did not finish: {data}")

    # The publish as /_sim/publishes shows it.
    def described(self, publish_id):
        return self.call("GET", f"/_sim/publishes/{publish_id}")[2]

    # Uploaded videos: MP4, MOV and WebM pass; each broken rule fails with its reason.
    def test_uploads(self):
        expected = {
            "ok.mp4": None, "ok.mov": None, "ok.webm": None,
            "fps90.mp4": "frame_rate_check_failed", "fps15.mp4": "frame_rate_check_failed",
            "small.mp4": "picture_size_check_failed", "wide.mp4": "picture_size_check_failed",
            "h264.mkv": "file_format_check_failed", "mpeg4.avi": "file_format_check_failed",
            "mpeg4.mp4": "file_format_check_failed", "junk.mp4": "file_format_check_failed",
        }
        pids = {name: self.upload(self.read(name)) for name in expected}
        for name, reason in expected.items():
            with self.subTest(name=name):
                want = ("FAILED", reason) if reason else ("PUBLISH_COMPLETE", None)
                self.assertEqual(self.outcome(pids[name]), want)
        check = self.described(pids["ok.webm"])["media_check"]
        self.assertEqual((check["state"], check["info"]["format"], check["info"]["codec"],
                          check["info"]["width"], check["info"]["height"]),
                         ("done", "WebM", "vp8", 720, 1280))
        self.assertEqual(self.described(pids["fps90.mp4"])["media_check"]["info"]["fps"], 90)

    # A video in three chunks is checked as one file: the spool keeps each chunk at its
    # offset; the checked size shows in video.list.
    def test_chunked_upload_and_display_fields(self):
        data = self.read("big.mp4")
        self.assertGreater(len(data), 10 * MB)
        pid = self.upload(data, chunk=5 * MB)
        self.assertEqual(self.outcome(pid), ("PUBLISH_COMPLETE", None))
        self.assertEqual(self.described(pid)["media_check"]["info"]["codec"], "h264")
        self.assertEqual(os.listdir(self.server.checker.directory), [])    # spool deleted
        self.user("tok_a", open_id="ou_a", scopes=["video.publish", "video.list"])
        deadline = time.time() + 5
        while time.time() < deadline:
            status, _, body = self.call("POST", "/v2/video/list/?fields=duration,width,height",
                                        body={}, token="tok_a")
            if body["data"]["videos"]:
                break
            time.sleep(0.05)
        self.assertEqual(body["data"]["videos"], [{"duration": 0, "width": 720,
                                                   "height": 1280}])

    # The duration limit is the creator's max_video_post_duration_sec.
    def test_duration_is_per_creator(self):
        self.user("tok_s", open_id="ou_s", max_video_post_duration_sec=2)
        short_max = self.upload(self.read("long.mp4"), token="tok_s")
        default_max = self.upload(self.read("long.mp4"))
        pulled = self.pull("long.mp4", token="tok_s")
        self.assertEqual(self.outcome(short_max, "tok_s"), ("FAILED", "duration_check_failed"))
        self.assertEqual(self.outcome(default_max), ("PUBLISH_COMPLETE", None))
        self.assertEqual(self.outcome(pulled, "tok_s"), ("FAILED", "duration_check_failed"))

    # Pulled videos are downloaded and checked; unreachable, missing or redirected URLs
    # fail with video_pull_failed.
    def test_pulled_videos(self):
        ok = self.pull("ok.mp4")
        fast = self.pull("fps90.mp4")
        missing = self.pull("missing.mp4")
        moved = self.pull("moved/ok.mp4")
        self.assertEqual(self.outcome(ok), ("PUBLISH_COMPLETE", None))
        self.assertEqual(self.status_of(ok)["downloaded_bytes"], len(self.read("ok.mp4")))
        self.assertEqual(self.outcome(fast), ("FAILED", "frame_rate_check_failed"))
        self.assertEqual(self.outcome(missing), ("FAILED", "video_pull_failed"))
        self.assertEqual(self.outcome(moved), ("FAILED", "video_pull_failed"))
        self.assertIn("HTTP 302", self.described(moved)["media_check"]["error"])
        self.config(pull_url_rewrites={"https://verified.example/": "http://127.0.0.1:9/"})
        refused = self.pull("ok.mp4")
        self.assertEqual(self.outcome(refused), ("FAILED", "video_pull_failed"))

    # Photos: JPEG and WebP up to 1080x1920 either way pass; PNG, over 1080p, over 20 MB
    # or unreachable fail; the first bad photo decides.
    def test_photos(self):
        cases = {
            ("ok.jpg", "land.jpg", "ok.webp"): ("PUBLISH_COMPLETE", None),
            ("ok.jpg", "still.png"): ("FAILED", "file_format_check_failed"),
            ("big.jpg",): ("FAILED", "picture_size_check_failed"),
            ("wide.webp",): ("FAILED", "picture_size_check_failed"),
            ("huge.jpg",): ("FAILED", "picture_size_check_failed"),
            ("ok.jpg", "nope.jpg"): ("FAILED", "photo_pull_failed"),
            ("ok.mp4",): ("FAILED", "file_format_check_failed"),
        }
        pids = {names: self.photos(*names) for names in cases}
        for names, want in cases.items():
            with self.subTest(photos=names):
                self.assertEqual(self.outcome(pids[names]), want)
        infos = self.described(pids[("ok.jpg", "land.jpg", "ok.webp")])["media_check"]["info"]
        self.assertEqual([(p["format"], p["width"], p["height"]) for p in infos["photos"]],
                         [("JPEG", 1080, 1920), ("JPEG", 1920, 1080), ("WebP", 1080, 1920)])

    # A failed check sends post.publish.failed with its reason.
    def test_failed_check_webhook(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        self.config(webhook_url=receiver.url)
        pid = self.upload(self.read("fps90.mp4"))
        self.assertEqual(self.outcome(pid), ("FAILED", "frame_rate_check_failed"))
        deadline = time.time() + 5
        while time.time() < deadline and not receiver.events():
            time.sleep(0.02)
        event, body, _, _ = receiver.events()[0]
        self.assertEqual(event, "post.publish.failed")
        self.assertIn('"reason": "frame_rate_check_failed"', body["content"])
        self.assertIn(pid, body["content"])

    # Over check_media_max_bytes nothing is kept or checked: the publish goes on as
    # without checks.  Inbox uploads are checked too.
    def test_size_limit_and_inbox(self):
        self.config(check_media_max_bytes=1000)
        pid = self.upload(self.read("junk.mp4"))
        self.assertEqual(self.outcome(pid), ("PUBLISH_COMPLETE", None))
        self.assertEqual(self.described(pid)["media_check"]["state"], "skipped")
        pulled = self.pull("fps90.mp4")
        self.assertEqual(self.outcome(pulled), ("PUBLISH_COMPLETE", None))
        self.assertEqual(self.described(pulled)["media_check"]["state"], "skipped")
        self.config(check_media_max_bytes=256 * MB)
        inbox = self.assertEnvelope(self.api("/v2/post/publish/inbox/video/init/", {
            "source_info": {"source": "PULL_FROM_URL",
                            "video_url": "https://verified.example/small.mp4"}}), 200, "ok")
        self.assertEqual(self.outcome(inbox["publish_id"]),
                         ("FAILED", "picture_size_check_failed"))

    # /_sim/reset deletes the spool of an upload still under way.
    def test_reset_deletes_spools(self):
        data = self.read("big.mp4")
        body = self.assertEnvelope(self.api("/v2/post/publish/video/init/", {
            "post_info": {"title": "x", "privacy_level": "SELF_ONLY"},
            "source_info": {"source": "FILE_UPLOAD", "video_size": len(data),
                            "chunk_size": 5 * MB, "total_chunk_count": len(data) // (5 * MB)}}),
            200, "ok")
        parts = urlsplit(body["upload_url"])
        status, _, _ = self.call("PUT", f"{parts.path}?{parts.query}", raw=data[:5 * MB],
                                 headers={"Content-Type": "video/mp4",
                                          "Content-Range": f"bytes 0-{5 * MB - 1}/{len(data)}"})
        self.assertEqual(status, 206)
        self.assertEqual(len(os.listdir(self.server.checker.directory)), 1)
        self.call("POST", "/_sim/reset")
        self.assertEqual(os.listdir(self.server.checker.directory), [])


class MediaCheckConfigTests(SimTestCase):
    """The switches: off by default, validated."""

    # check_media is off by default, so synthetic bytes complete as they always did.
    def test_off_by_default(self):
        config = self.call("GET", "/_sim/config")[2]
        self.assertEqual((config["check_media"], config["check_media_max_bytes"],
                          config["pull_url_rewrites"]), (False, 256 * MB, {}))
        body = self.assertEnvelope(self.api("/v2/post/publish/video/init/", {
            "post_info": {"title": "x", "privacy_level": "SELF_ONLY"},
            "source_info": {"source": "FILE_UPLOAD", "video_size": 10, "chunk_size": 10,
                            "total_chunk_count": 1}}), 200, "ok")
        parts = urlsplit(body["upload_url"])
        self.call("PUT", f"{parts.path}?{parts.query}", raw=b"not video!",
                  headers={"Content-Type": "video/mp4", "Content-Range": "bytes 0-9/10"})
        self.wait_status(body["publish_id"], "PUBLISH_COMPLETE")
        self.assertIsNone(self.call("GET", f"/_sim/publishes/{body['publish_id']}")[2]
                          ["media_check"])

    # Bad values are refused with 400.
    def test_validation(self):
        for bad in ({"check_media": "yes"}, {"check_media_max_bytes": -1},
                    {"pull_url_rewrites": []}, {"pull_url_rewrites": {"https://a/": "ftp://b/"}},
                    {"pull_url_rewrites": {"": "http://b/"}}):
            with self.subTest(body=bad):
                self.assertEqual(self.call("POST", "/_sim/config", body=bad)[0], 400)
