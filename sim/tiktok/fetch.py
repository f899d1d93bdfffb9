"""Downloads PULL_FROM_URL media for the media checks, as TikTok's servers would pull it.

What TikTok documents (docs/tiktok-api.md, "PULL_FROM_URL rules"): TikTok downloads the
video or photos itself; the URL must be https, must not redirect and must name a host
(no IP); TikTok gives up after an hour, and the publish fails with video_pull_failed or
photo_pull_failed.

What this module does: fetch() GETs one URL into a temporary file, only for the media
checks (config check_media; without it the simulator only pretends to pull).  The init
already required a verified https URL with a host name; before downloading, the config's
`pull_url_rewrites` ({"https://verified.example/": "http://127.0.0.1:8123/"}, longest
matching prefix first) may point it at a test's own server, over http or https.  A
redirect, any status but 200, a refused or dropped connection, or FETCH_TIMEOUT seconds
without data is a failed pull.  Reading stops one byte past `limit`: the caller then knows
the file is too big without the rest of it ever arriving.
"""

from __future__ import annotations

import http.client
import os
import socket
import tempfile
from dataclasses import dataclass
from urllib.parse import urlsplit

FETCH_TIMEOUT = 30.0                 # seconds to connect, or between two reads
PIECE = 256 * 1024


@dataclass
class Fetched:
    """What a pull got: a file of `size` bytes, or an error (then no file)."""
    path: str | None = None
    size: int = 0
    over_limit: bool = False
    error: str | None = None


# The URL to download once the configured rewrites apply (longest prefix wins).
def rewrite(url: str, rewrites: dict) -> str:
    for prefix in sorted(rewrites, key=len, reverse=True):
        if url.startswith(prefix):
            return rewrites[prefix] + url[len(prefix):]
    return url


# Download a URL into a new file in `directory`, reading at most limit + 1 bytes.
def fetch(url: str, rewrites: dict, limit: int, directory: str) -> Fetched:
    target = rewrite(url, rewrites)
    try:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return Fetched(error=f"cannot pull {target!r}: not an http(s) URL")
        connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                            else http.client.HTTPConnection)
        conn = connection_class(parts.hostname, parts.port, timeout=FETCH_TIMEOUT)
    except ValueError as exc:
        return Fetched(error=f"cannot pull {target!r}: {exc}")
    fd, path = tempfile.mkstemp(prefix="pull-", dir=directory)
    size = 0
    try:
        path_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path_query, headers={"User-Agent": "tiktok_sim/1.0 (pull)"})
        response = conn.getresponse()
        if response.status != 200:
            # TikTok's rule: the URL must not redirect, so a 3xx fails like a 404.
            return Fetched(error=f"GET {target} answered HTTP {response.status}")
        with os.fdopen(fd, "wb") as out:
            fd = None
            while size <= limit:
                piece = response.read(min(PIECE, limit + 1 - size))
                if not piece:
                    break
                out.write(piece)
                size += len(piece)
        expected = response.length if response.length is not None else 0
        if size <= limit and expected > 0:
            return Fetched(error=f"GET {target}: connection closed after {size} bytes")
        result = Fetched(path=path, size=size, over_limit=size > limit)
        path = None                               # the caller owns the file now
        return result
    except (OSError, socket.timeout, http.client.HTTPException) as exc:
        return Fetched(error=f"GET {target}: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
        if fd is not None:
            os.close(fd)
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass
