"""TikTok's media rules, checked with ffprobe: does a video or photo pass, and if not why.

What TikTok documents (Content Posting API, "Media Transfer Guide"; docs/tiktok-api.md):
- Videos: formats MP4 (recommended), WebM, MOV; codecs H.264 (recommended), H.265, VP8,
  VP9; frame rate 23 to 60 FPS; picture size at least 360 and at most 4096 pixels for
  both height and width; duration at most the creator's max_video_post_duration_sec
  (creator_info); at most 4 GB.
- Photos: WebP or JPEG; picture size "Maximum 1080p" (TikTok says no more; this module
  reads it as a portrait or landscape 1080p frame: the short side at most 1080 pixels and
  the long side at most 1920); at most 20 MB each.
- A publish that fails them ends FAILED with `fail_reason` file_format_check_failed,
  duration_check_failed, frame_rate_check_failed or picture_size_check_failed.  TikTok
  names no reason for a photo over 20 MB: this simulator says picture_size_check_failed.

What this module does: ffprobe() runs `ffprobe -v error -show_streams -show_format -of
json` on a file; check_video() and check_photo() apply the rules in that order (format
and codec, then duration, frame rate, picture size) and return (fail_reason or None,
what was measured).  Unreadable input, no video stream, an unknown frame rate or
duration: file_format_check_failed.  The container is told apart beyond ffprobe's
demuxer name: MOV and MP4 by the `ftyp` major brand (3GPP, audio-only and Motion JPEG
2000 brands are not MP4), WebM and Matroska by the EBML DocType, which must be "webm".
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction

VIDEO_CODECS = {"h264": "H.264", "hevc": "H.265", "vp8": "VP8", "vp9": "VP9"}
MIN_FPS, MAX_FPS = 23, 60
MIN_SIDE, MAX_SIDE = 360, 4096
PHOTO_SHORT_MAX, PHOTO_LONG_MAX = 1080, 1920
PHOTO_MAX_BYTES = 20 * 1024 * 1024
# ffprobe's image demuxers and decoders for TikTok's two photo formats.
PHOTO_FORMATS = {("jpeg_pipe", "mjpeg"): "JPEG", ("image2", "mjpeg"): "JPEG",
                 ("webp_pipe", "webp"): "WebP", ("image2", "webp"): "WebP"}
# ftyp major brands of the mov/mp4 demuxer that are not MP4 or MOV video files.
NOT_MP4_BRANDS = ("3g", "M4A ", "M4B ", "M4P ", "mjp2")
PROBE_TIMEOUT = 60.0

FORMAT = "file_format_check_failed"
DURATION = "duration_check_failed"
FRAME_RATE = "frame_rate_check_failed"
PICTURE_SIZE = "picture_size_check_failed"


# Whether ffprobe can be run (config check_media needs it).
def available() -> bool:
    return shutil.which("ffprobe") is not None


# ffprobe's JSON for a file, or None when it cannot read it.
def ffprobe(path: str) -> dict | None:
    try:
        done = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path],
            capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


# The first real video stream (not cover art) of a probe, or None.
def video_stream(probe: dict) -> dict | None:
    for stream in probe.get("streams") or []:
        if (stream.get("codec_type") == "video"
                and not (stream.get("disposition") or {}).get("attached_pic")):
            return stream
    return None


# A "num/den" rate as a Fraction, or None for a missing or zero one.
def rate(text) -> Fraction | None:
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


# A float from ffprobe's text fields, or None.
def number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


# The EBML DocType of a Matroska-family file ("webm", "matroska"), or None.
def ebml_doctype(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    at = head.find(b"\x42\x82")                     # the DocType element's id
    if at < 0 or at + 2 >= len(head):
        return None
    first = head[at + 2]
    width = next((n for n in range(1, 9) if first & (0x80 >> (n - 1))), None)
    if width is None:
        return None
    size = first & (0xFF >> width)
    for byte in head[at + 3:at + 2 + width]:        # the rest of the size's bytes
        size = (size << 8) | byte
    start = at + 2 + width
    return head[start:start + size].decode("ascii", "replace").rstrip("\x00")


# The container as TikTok names it ("MP4", "MOV", "WebM"), or None when not one of them.
def container(path: str, probe: dict) -> str | None:
    fmt = probe.get("format") or {}
    names = set(str(fmt.get("format_name", "")).split(","))
    if "mp4" in names or "mov" in names:
        brand = str((fmt.get("tags") or {}).get("major_brand", "qt  "))
        if brand.startswith(NOT_MP4_BRANDS):
            return None
        return "MOV" if brand == "qt  " else "MP4"
    if "webm" in names or "matroska" in names:
        return "WebM" if ebml_doctype(path) == "webm" else None
    return None


# Check a video against TikTok's rules: (fail_reason or None, what was measured).
def check_video(path: str, max_duration_sec: float) -> tuple[str | None, dict]:
    probe = ffprobe(path)
    if probe is None:
        return FORMAT, {"error": "ffprobe could not read the file"}
    stream = video_stream(probe)
    kind = container(path, probe)
    fmt = probe.get("format") or {}
    info = {"format": kind or fmt.get("format_name"),
            "codec": stream.get("codec_name") if stream else None}
    if stream is None or kind is None or info["codec"] not in VIDEO_CODECS:
        return FORMAT, info
    duration = number(fmt.get("duration"))
    if duration is None:
        duration = number(stream.get("duration"))
    fps = rate(stream.get("avg_frame_rate")) or rate(stream.get("r_frame_rate"))
    width, height = stream.get("width"), stream.get("height")
    info.update(duration=duration, fps=float(fps) if fps else None, width=width,
                height=height)
    if duration is None or fps is None or not width or not height:
        return FORMAT, info
    if duration > max_duration_sec:
        return DURATION, info
    if not MIN_FPS <= fps <= MAX_FPS:
        return FRAME_RATE, info
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        return PICTURE_SIZE, info
    return None, info


# Check one photo of `size` bytes: (fail_reason or None, what was measured).
def check_photo(path: str, size: int) -> tuple[str | None, dict]:
    info = {"bytes": size}
    if size > PHOTO_MAX_BYTES:
        return PICTURE_SIZE, info
    probe = ffprobe(path)
    stream = video_stream(probe) if probe else None
    if stream is None:
        return FORMAT, info
    fmt_name = str((probe.get("format") or {}).get("format_name", ""))
    kind = PHOTO_FORMATS.get((fmt_name, stream.get("codec_name")))
    width, height = stream.get("width"), stream.get("height")
    info.update(format=kind or fmt_name, codec=stream.get("codec_name"), width=width,
                height=height)
    if kind is None or not width or not height:
        return FORMAT, info
    if min(width, height) > PHOTO_SHORT_MAX or max(width, height) > PHOTO_LONG_MAX:
        return PICTURE_SIZE, info
    return None, info
