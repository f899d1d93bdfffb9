"""FILE_UPLOAD chunk PUTs, and the synthetic media files under /_sim/media/.

What TikTok documents (docs/tiktok-api.md):
- Each chunk is `PUT <upload_url>` (the URL from init, used whole with its query string,
  valid one hour) with `Content-Range: bytes FIRST-LAST/TOTAL`, `Content-Length` and
  `Content-Type: video/mp4` (or video/quicktime, video/webm); no Authorization header.
  Chunks go in order.
- Reply `206 Partial Content` while more is expected, `201 Created` after the last; the
  reply's `Content-Range` reports progress.  Errors: 400 bad headers or length, 403
  upload URL expired, 404 unknown upload, 416 range does not match progress, 5xx retry
  this chunk.
- Chunk sizes: chunk_size for every chunk but the last, which runs to the end of the video.
- TikTok pulls PULL_FROM_URL media itself; it documents nothing about the source server.

What this module does: UploadHandler checks a chunk's headers before reading its body,
streams the body without keeping it (counting bytes and the running CRC32 /_sim/publishes
shows), and takes the state lock only around the checks and the bookkeeping.  Only when
the publish has a spool file (config check_media, see checker.py) are the bytes also
written there, each at its offset in the video; the last chunk then starts the check.  The media
half is the simulator's own download source for tests: media_plan validates
GET/HEAD /_sim/media/<name>?size=N&type=mp4|mov|webm and works out the status, headers and
byte range (one Range of bytes; 416 when unsatisfiable); media_pieces produces the
deterministic bytes (a header per type, then byte i = (i * 31 + 7) & 0xFF) 64 KiB at a
time, so an 8 GiB file is never held in memory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote

from .common import GB, UPLOAD_READ_TIMEOUT, ApiError, now
from .state import Publish, SimState
from .wire import Reply, Request, envelope_reply

VIDEO_MIME_TYPES = ("video/mp4", "video/quicktime", "video/webm")
MEDIA_PREFIX = "/_sim/media/"

# Synthetic media (GET/HEAD /_sim/media/<name>?size=N&type=...): a header per type,
# then byte i = (i * 31 + 7) & 0xFF.  Served in 64 KiB pieces, never held whole.
MEDIA_HEADERS = {
    "mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41",    # 24 bytes
    "mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ",         # 20 bytes
    "webm": b"\x1a\x45\xdf\xa3\x00\x00\x00\x00",                     # 8 bytes
}
MEDIA_CONTENT_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
MEDIA_MAX_SIZE = 8 * GB
MEDIA_PIECE = 64 * 1024
# The pattern repeats every 256 bytes, so one piece plus a period covers any offset.
_MEDIA_PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(MEDIA_PIECE + 256))


class Spool:
    """Writes one chunk into a publish's spool file at the chunk's offset in the video.

    Positional writes need no state lock: a chunk only counts once the handler accepts
    it, and a chunk sent again (after an error) rewrites the same bytes.  A write error
    (disk full) is kept, and the handler then gives up the check (checker.abandon).
    """

    # Open the spool file for one chunk starting at `offset`.
    def __init__(self, path: str, offset: int):
        self.offset = offset
        self.error: str | None = None
        try:
            self.fd: int | None = os.open(path, os.O_WRONLY)
        except OSError as exc:
            self.fd, self.error = None, f"spool: {exc}"

    # Write the next piece of the chunk.
    def write(self, piece: bytes) -> None:
        if self.fd is None:
            return
        try:
            view = memoryview(piece)
            while view:
                written = os.pwrite(self.fd, view, self.offset)
                self.offset += written
                view = view[written:]
        except OSError as exc:
            self.error = f"spool: {exc}"
            self.close()

    # Close the file (the bytes stay for the check).
    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class UploadHandler:
    """Validates and counts FILE_UPLOAD chunks without keeping the bytes."""

    CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")

    # Keep the shared state and the media checker (checker.MediaChecker, or None).
    def __init__(self, state: SimState, checker=None):
        self.state = state
        self.checker = checker

    # Handle one chunk: validate headers, stream-count the body, record progress.
    def handle(self, req: Request, upload_id: str) -> Reply:
        length = self.content_length(req)
        try:
            with self.state.lock:
                publish, first, last, total = self.check_before_body(req, upload_id, length)
                base_crc = publish.uploaded_crc32
                spool = Spool(publish.spool_path, first) if publish.spool_path else None
        except ApiError as err:
            return self.reject(req, err, length)
        received, crc = self.read_and_count(req, length, base_crc, spool)
        if received != length:
            reply = self.error_reply(ApiError(400, "invalid_param",
                                              "body shorter than Content-Length"))
            reply.close = True
            return reply
        with self.state.lock:
            # uploaded_bytes only grows, so an unchanged value also means an unchanged CRC.
            if publish.uploaded_bytes != first:
                return self.error_reply(ApiError(416, "range_not_satisfiable",
                                                 "concurrent chunk upload"),
                                        publish)
            publish.uploaded_bytes += received
            publish.uploaded_crc32 = crc
            publish.chunks.append([first, last])
            publish.content_types.append(req.headers.get("Content-Type", "").strip())
            done = publish.uploaded_bytes == total
            if spool is not None and spool.error and publish.spool_path and self.checker:
                self.checker.abandon(publish, spool.error)
            if done:
                publish.upload_completed_at = now()
                if publish.spool_path and self.checker is not None:
                    self.checker.upload_done(publish)
        reply = Reply(201 if done else 206, b"", error_code="ok")
        reply.headers["Content-Range"] = f"bytes 0-{last}/{total}"
        return reply

    # Parsed Content-Length, or None when missing/invalid.
    @staticmethod
    def content_length(req: Request) -> int | None:
        value = req.headers.get("Content-Length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value.strip())

    # All checks that need no body; returns (publish, first, last, total) or raises ApiError.
    def check_before_body(self, req: Request, upload_id: str,
                          length: int | None) -> tuple[Publish, int, int, int]:
        state = self.state
        publish_id = state.uploads.get(upload_id)
        publish = state.publishes.get(publish_id) if publish_id else None
        token = req.query.get("upload_token", [""])[0]
        if publish is None or not token or not secrets.compare_digest(
                token.encode(), (publish.upload_token or "").encode()):
            raise ApiError(404, "not_found", "Unknown upload")
        req.publish_id, req.open_id = publish.publish_id, publish.open_id
        if publish.upload_completed_at is None and now() >= publish.upload_expires_at:
            raise ApiError(403, "upload_url_expired", "The upload URL has expired")
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in VIDEO_MIME_TYPES:
            raise ApiError(400, "invalid_param",
                           "Content-Type must be video/mp4, video/quicktime or video/webm")
        if length is None:
            raise ApiError(400, "invalid_param", "Content-Length is required")
        match = self.CONTENT_RANGE_RE.match(req.headers.get("Content-Range", "").strip())
        if not match:
            raise ApiError(400, "invalid_param", "Content-Range must be 'bytes FIRST-LAST/TOTAL'")
        first, last, total = map(int, match.groups())
        if last < first or last >= total or last - first + 1 != length:
            raise ApiError(400, "invalid_param", "Content-Range does not match Content-Length")
        if publish.upload_completed_at is not None:
            raise ApiError(416, "range_not_satisfiable", "The upload is already complete")
        if first != publish.uploaded_bytes or total != publish.video_size:
            raise ApiError(416, "range_not_satisfiable",
                           f"expected bytes starting at {publish.uploaded_bytes} "
                           f"of {publish.video_size}")
        self.check_chunk_length(publish, first, last, length)
        return publish, first, last, total

    # Enforce chunk_size for every chunk and the remainder for the last one.
    @staticmethod
    def check_chunk_length(publish: Publish, first: int, last: int, length: int) -> None:
        index = first // publish.chunk_size
        is_last = index >= publish.total_chunk_count - 1
        if is_last:
            if last != publish.video_size - 1:
                raise ApiError(400, "invalid_param",
                               "the last chunk must run to the end of the video")
        elif length != publish.chunk_size:
            raise ApiError(400, "invalid_param",
                           f"chunk {index + 1} must be exactly chunk_size bytes")

    # Read the body in pieces (also into the spool, if any); returns (bytes that arrived,
    # zlib.crc32 continued from crc).
    @staticmethod
    def read_and_count(req: Request, length: int, crc: int = 0,
                       spool: Spool | None = None) -> tuple[int, int]:
        received = 0
        try:
            if req.set_read_timeout:
                req.set_read_timeout(UPLOAD_READ_TIMEOUT)
            while received < length:
                piece = req.rfile.read(min(256 * 1024, length - received))
                if not piece:
                    break
                if spool is not None:
                    spool.write(piece)
                received += len(piece)
                crc = zlib.crc32(piece, crc)
        except (OSError, socket.timeout):
            pass
        finally:
            if spool is not None:
                spool.close()
        return received, crc

    # Read and discard a body; True when all of it arrived (the connection stays usable).
    @classmethod
    def discard(cls, req: Request, length: int | None) -> bool:
        return length is not None and cls.read_and_count(req, length)[0] == length

    # Fill in publish_id/open_id for the log when the upload URL is valid (no other checks).
    def identify(self, req: Request, upload_id: str) -> None:
        with self.state.lock:
            publish = self.state.publishes.get(self.state.uploads.get(upload_id) or "")
            token = req.query.get("upload_token", [""])[0]
            if publish is not None and token and secrets.compare_digest(
                    token.encode(), (publish.upload_token or "").encode()):
                req.publish_id, req.open_id = publish.publish_id, publish.open_id

    # Answer an error, draining the body first so the connection stays usable.
    def reject(self, req: Request, err: ApiError, length: int | None) -> Reply:
        reply = self.error_reply(err)
        if not self.discard(req, length):
            reply.close = True
        return reply

    # An envelope error reply for the upload endpoint (with progress when known).
    @staticmethod
    def error_reply(err: ApiError, publish: Publish | None = None) -> Reply:
        reply = envelope_reply(err.http_status, {}, err.code, err.message)
        if publish is not None and err.http_status == 416:
            reply.headers["Content-Range"] = f"bytes */{publish.video_size}"
        return reply


# Bytes [offset, offset + length) of a synthetic media file (length <= MEDIA_PIECE).
def media_bytes(kind: str, offset: int, length: int) -> bytes:
    if length > MEDIA_PIECE:
        raise ValueError("media_bytes serves at most one 64 KiB piece")
    start = offset % 256
    piece = _MEDIA_PATTERN[start:start + length]
    header = MEDIA_HEADERS[kind]
    if offset < len(header):
        overlay = header[offset:offset + length]
        piece = overlay + piece[len(overlay):]
    return piece


# Parse a Range header against a size: None (serve whole), (first, last), or "416".
def parse_byte_range(value: str | None, size: int):
    if value is None:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None                   # other units and multi-range: ignored (200, whole body)
    match = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if not match or match.groups() == ("", ""):
        return "416"
    first_text, last_text = match.groups()
    if first_text == "":              # suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "416"
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return "416"
    return first, min(last, size - 1)


@dataclass
class MediaPlan:
    """What a media request will get: a ready error reply, or a byte range to stream."""
    log_body: dict
    reply: Reply | None = None
    status: int = 200
    kind: str = "mp4"
    first: int = 0
    last: int = -1
    headers: dict = field(default_factory=dict)


# A small JSON error reply from the media source.
def media_error(status: int, message: str, headers: dict | None = None,
                close: bool = False) -> Reply:
    body = json.dumps({"ok": False, "error": message}).encode("utf-8")
    return Reply(status, body, headers=dict(headers or {}), close=close,
                 error_code="range_not_satisfiable" if status == 416 else "invalid_param")


# Validate a media request and work out status, headers and byte range.
def media_plan(method: str, path: str, query: dict, range_header: str | None) -> MediaPlan:
    name = unquote(path[len(MEDIA_PREFIX):])
    kind = query.get("type", [""])[0].lower()
    if not kind:
        suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        kind = suffix if suffix in MEDIA_HEADERS else "mp4"
    size_text = query.get("size", [""])[0]
    log_body = {"name": name, "type": kind, "size": None, "range": range_header,
                "bytes_sent": 0}
    plan = MediaPlan(log_body=log_body, kind=kind)
    if method not in ("GET", "HEAD"):
        plan.reply = media_error(405, "the media source answers GET and HEAD only",
                                 {"Allow": "GET, HEAD"})
        return plan
    if not name:
        plan.reply = media_error(404, "a media name is required: /_sim/media/<name>")
        return plan
    if kind not in MEDIA_HEADERS:
        plan.reply = media_error(400, f"type must be one of {sorted(MEDIA_HEADERS)}")
        return plan
    if not (size_text.isascii() and size_text.isdigit()) or int(size_text) > MEDIA_MAX_SIZE:
        plan.reply = media_error(400, f"size must be an integer from 0 to {MEDIA_MAX_SIZE}")
        return plan
    size = int(size_text)
    log_body["size"] = size
    common = {"Content-Type": MEDIA_CONTENT_TYPES[kind], "Accept-Ranges": "bytes",
              "ETag": f'"sim-{kind}-{size}"', "Cache-Control": "no-store"}
    byte_range = parse_byte_range(range_header, size)
    if byte_range == "416":
        plan.reply = media_error(416, f"range not satisfiable for {size} bytes",
                                 {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{size}"})
        return plan
    if byte_range is None:
        plan.first, plan.last = 0, size - 1
    else:
        plan.status = 206
        plan.first, plan.last = byte_range
        common["Content-Range"] = f"bytes {plan.first}-{plan.last}/{size}"
    common["Content-Length"] = str(plan.last - plan.first + 1)
    plan.headers = common
    return plan


# The body of a planned GET, piece by piece (at most MEDIA_PIECE bytes each).
def media_pieces(plan: MediaPlan):
    offset, end = plan.first, plan.last + 1
    while offset < end:
        piece = media_bytes(plan.kind, offset, min(MEDIA_PIECE, end - offset))
        yield piece
        offset += len(piece)
