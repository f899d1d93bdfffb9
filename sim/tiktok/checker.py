"""Media checks after an init: TikTok checks what it received and fails the publish if
the media breaks its rules.

What TikTok documents (docs/tiktok-api.md): an accepted init is only the start; after
the upload or pull, TikTok checks the media, and a publish can still end FAILED with
file_format_check_failed, duration_check_failed (over creator_info's
max_video_post_duration_sec), frame_rate_check_failed or picture_size_check_failed, or
video_pull_failed / photo_pull_failed when it cannot download the URL; status/fetch
shows it and the post.publish.failed webhook says so.

What this module does (only with config `check_media`, false by default: the load tests
and the extension's own tests upload synthetic bytes that are not video, see uploads.py's
/_sim/media/, and would all fail):
- At init (prepare, with state.lock held) a FILE_UPLOAD of at most
  `check_media_max_bytes` gets a spool file that uploads.py writes each accepted chunk
  into; a bigger one is not checked (media_check "skipped").  A PULL_FROM_URL starts its
  check at once: fetch.py downloads the video (up to check_media_max_bytes, else
  "skipped") or each photo (up to 20 MB, past that picture_size_check_failed).
- When the last chunk arrives (upload_done) the upload's check starts.
- A check runs on a small thread pool, never under the state lock: probe.py's rules on
  the bytes, the creator's max_video_post_duration_sec as it stands when the check is
  queued.  It records media_check "done" (or "skipped"), the fail_reason, what it
  measured and when it finished on the publish; state.Publish.progress holds the
  publish in PROCESSING_* until then, and fails it with that reason afterwards.  The
  webhook ticker reports the outcome like any other.
- Spool and download files live in one temporary directory; a check deletes its file
  when done, POST /_sim/reset deletes the spools of uploads still under way, and the
  server's shutdown removes the directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from . import fetch, probe
from .common import FILE, now
from .state import Publish, SimState

WORKERS = 4                          # checks at once (each runs ffprobe, or downloads)


class MediaChecker:
    """Queues and runs media checks; owns the spool files."""

    # Nothing starts until a check is needed.
    def __init__(self, state: SimState):
        self.state = state
        self.lock = threading.Lock()             # guards the fields below
        self.pool: ThreadPoolExecutor | None = None
        self.directory: str | None = None
        self.spools: set[str] = set()            # spool files not yet probed
        self.closed = False

    # ---- called with state.lock held ----------------------------------------

    # Set up the check of a new publish when check_media is on.
    def prepare(self, publish: Publish, profile: dict) -> None:
        config = self.state.config
        if not config["check_media"]:
            return
        if publish.source == FILE:
            if publish.video_size > config["check_media_max_bytes"]:
                publish.media_check = "skipped"
                publish.media_error = "video_size is over check_media_max_bytes"
                return
            fd, publish.spool_path = tempfile.mkstemp(prefix="upload-", dir=self.workdir())
            os.close(fd)
            with self.lock:
                self.spools.add(publish.spool_path)
            return
        publish.media_check = "pending"
        rewrites = dict(config["pull_url_rewrites"])
        if publish.media_type == "PHOTO":
            self.submit(self.check_photos, publish, list(publish.photo_images), rewrites)
        else:
            self.submit(self.check_pulled_video, publish, publish.video_url, rewrites,
                        config["check_media_max_bytes"],
                        profile["max_video_post_duration_sec"])

    # The last chunk of an upload with a spool arrived: check it.
    def upload_done(self, publish: Publish) -> None:
        if publish.spool_path is None:
            return
        publish.media_check = "pending"
        profile = self.state.profiles.get(publish.open_id) or {}
        self.submit(self.check_uploaded_video, publish, publish.spool_path,
                    profile.get("max_video_post_duration_sec", 0))

    # The spool could not be written (disk full): give up checking this upload.
    def abandon(self, publish: Publish, error: str) -> None:
        path, publish.spool_path = publish.spool_path, None
        self.forget(path)
        publish.media_check, publish.media_error = "skipped", error

    # POST /_sim/reset: delete the spools of uploads still under way.
    def reset(self) -> None:
        with self.lock:
            spools, self.spools = self.spools, set()
        for path in spools:
            remove(path)

    # ---- called without state.lock ---------------------------------------------

    # Stop the pool and remove the directory (server shutdown).
    def close(self) -> None:
        with self.lock:
            self.closed = True
            pool, directory = self.pool, self.directory
            self.spools.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    # The temporary directory for spools and downloads (made on first use).
    def workdir(self) -> str:
        with self.lock:
            if self.directory is None:
                self.directory = tempfile.mkdtemp(prefix="tiktok_sim-media-")
            return self.directory

    # Run a check on the pool.
    def submit(self, job, *args) -> None:
        with self.lock:
            if self.closed:
                return
            if self.pool is None:
                self.pool = ThreadPoolExecutor(max_workers=WORKERS,
                                               thread_name_prefix="tiktok_sim-media-check")
            self.pool.submit(job, *args)

    # Forget a spool file and delete it.
    def forget(self, path: str | None) -> None:
        if path is None:
            return
        with self.lock:
            self.spools.discard(path)
        remove(path)

    # ---- the checks (pool threads) ------------------------------------------------

    # Probe an uploaded video's spool file.
    def check_uploaded_video(self, publish: Publish, path: str, max_duration: float) -> None:
        try:
            reason, info = probe.check_video(path, max_duration)
        finally:
            self.forget(path)
        self.finish(publish, reason, info)

    # Download a pulled video, then probe it.
    def check_pulled_video(self, publish: Publish, url: str, rewrites: dict, limit: int,
                           max_duration: float) -> None:
        got = fetch.fetch(url, rewrites, limit, self.workdir())
        if got.error:
            self.finish(publish, "video_pull_failed", None, error=got.error)
            return
        try:
            if got.over_limit:
                self.finish(publish, None, None, pulled=got.size, state="skipped",
                            error="the download is over check_media_max_bytes")
                return
            reason, info = probe.check_video(got.path, max_duration)
        finally:
            remove(got.path)
        self.finish(publish, reason, info, pulled=got.size)

    # Download and probe each photo; the first one that fails decides.
    def check_photos(self, publish: Publish, urls: list, rewrites: dict) -> None:
        infos, pulled = [], 0
        for url in urls:
            got = fetch.fetch(url, rewrites, probe.PHOTO_MAX_BYTES, self.workdir())
            if got.error:
                self.finish(publish, "photo_pull_failed", {"photos": infos}, error=got.error)
                return
            pulled += got.size
            try:
                reason, info = probe.check_photo(got.path, got.size)
            finally:
                remove(got.path)
            infos.append(info)
            if reason:
                self.finish(publish, reason, {"photos": infos}, pulled=pulled)
                return
        self.finish(publish, None, {"photos": infos}, pulled=pulled)

    # Record a check's outcome on its publish.
    def finish(self, publish: Publish, reason: str | None, info: dict | None,
               pulled: int | None = None, state: str = "done",
               error: str | None = None) -> None:
        with self.state.lock:
            publish.media_check, publish.media_fail_reason = state, reason
            publish.media_info, publish.media_error = info, error
            publish.pulled_bytes = pulled
            publish.media_checked_at = now()
            publish.spool_path = None


# Delete a file if it is there.
def remove(path: str | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
