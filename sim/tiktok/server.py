"""The HTTP server: routing, latency, faults, the request log, and the command line.

What TikTok documents (docs/tiktok-api.md):
- Base URL `https://open.tiktokapis.com`; the endpoints and their methods:
    POST /v2/post/publish/creator_info/query/     POST /v2/post/publish/video/init/
    POST /v2/post/publish/inbox/video/init/       POST /v2/post/publish/content/init/
    POST /v2/post/publish/status/fetch/           POST /v2/post/publish/cancel/
    POST /v2/oauth/token/                         POST /v2/oauth/revoke/
    GET  /v2/user/info/                           PUT  <upload_url> (chunks)
    POST /v2/video/list/                          POST /v2/video/query/  (Display API)
- Every /v2/post/publish/* reply carries `error.log_id`, which TikTok support asks for.

What this module does: SimHTTPServer (one thread per connection, listen backlog 4096)
and SimHandler (HTTP/1.1 keep-alive, one send() per reply).  Paths must match exactly,
trailing slash included; anything else is 404 `not_found` in the envelope.  A TikTok call
goes: read the body, sleep `latency_ms` (outside the state lock), take a queued fault,
run the handler family (publish.py, status.py, oauth.py, display.py; uploads.py for chunk
PUTs) under
the state lock, log the call (secrets redacted, bearer tokens never), reply.  /_sim/media/
is streamed here from uploads.py's plan, and the rest of /_sim/ goes to control.py.
The server owns the WebhookSender (webhooks.py), whose threads run only once webhooks are
configured, and the MediaChecker (checker.py), whose threads run only once config
check_media has a check to run; it stops both when it closes.

    python3 sim/tiktok_sim.py --port 18443 [--host 127.0.0.1] [--latency-ms 0]
        [--processing-seconds 3] [--no-rate-limits] [--check-media] [--quiet] [--verbose]

prints `tiktok_sim listening on http://HOST:PORT` once listening (`--port 0` picks a free
port) and stops cleanly, exit 0, on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .common import (ENDPOINT_NAMES, MAX_JSON_BODY, OAUTH_ENDPOINTS, UPLOAD_READ_TIMEOUT,
                     ApiError, OAuthError, now, redact, redact_path)
from .checker import MediaChecker
from .control import ControlApi
from .display import DisplayApi
from .faults import Fault, fault_reply, take_fault
from . import probe
from .oauth import OAuthApi
from .publish import PublishApi
from .state import Config, SimState
from .status import StatusApi
from .uploads import MEDIA_PREFIX, UploadHandler, media_error, media_pieces, media_plan
from .webhooks import WebhookSender
from .wire import Reply, Request, envelope_reply, oauth_reply

# (method, path) -> logical endpoint name used by the request log and faults.
ROUTES = {
    ("POST", "/v2/post/publish/creator_info/query/"): "creator_info",
    ("POST", "/v2/post/publish/video/init/"): "video_init",
    ("POST", "/v2/post/publish/inbox/video/init/"): "inbox_video_init",
    ("POST", "/v2/post/publish/content/init/"): "content_init",
    ("POST", "/v2/post/publish/status/fetch/"): "status_fetch",
    ("POST", "/v2/post/publish/cancel/"): "cancel",
    ("POST", "/v2/oauth/token/"): "oauth_token",
    ("POST", "/v2/oauth/revoke/"): "oauth_revoke",
    ("GET", "/v2/user/info/"): "user_info",
    ("POST", "/v2/video/list/"): "video_list",
    ("POST", "/v2/video/query/"): "video_query",
}
UPLOAD_PATH_RE = re.compile(r"^/upload/([A-Za-z0-9_-]+)$")
# Every logical endpoint but "upload" and "media" has exactly one route.
assert sorted(set(ROUTES.values()) | {"upload", "media"}) == ENDPOINT_NAMES


class SimHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that carries the simulator state and the handler families."""
    daemon_threads = True
    allow_reuse_address = True
    # listen() backlog (socketserver's default is 5): a burst of hundreds of simultaneous
    # connects must not overflow the accept queue, or the kernel drops SYNs/ACKs and
    # clients stall 1 s and more on retransmits.  The kernel caps it at
    # net.core.somaxconn (4096 on current Linux).
    request_queue_size = 4096

    # Bind and attach state, handler families, the endpoint table and output options.
    def __init__(self, address, state: SimState, verbose: bool = False, quiet: bool = False):
        super().__init__(address, SimHandler)
        self.state = state
        self.webhooks = WebhookSender(state)
        self.checker = MediaChecker(state)
        publish = PublishApi(state, self.checker)
        status = StatusApi(state)
        oauth = OAuthApi(state, self.webhooks)
        display = DisplayApi(state)
        # Logical endpoint name (ROUTES' values) -> handler.
        self.endpoints = {
            "creator_info": publish.creator_info,
            "video_init": publish.video_init,
            "inbox_video_init": publish.inbox_video_init,
            "content_init": publish.content_init,
            "status_fetch": status.status_fetch,
            "cancel": status.cancel,
            "oauth_token": oauth.oauth_token,
            "oauth_revoke": oauth.oauth_revoke,
            "user_info": oauth.user_info,
            "video_list": display.video_list,
            "video_query": display.video_query,
        }
        self.uploads = UploadHandler(state, self.checker)
        self.control = ControlApi(state, self.webhooks, self.checker)
        self.verbose = verbose
        self.quiet = quiet

    # Run the handler of a routed endpoint (caller holds state.lock); raised errors
    # become TikTok's replies.
    def run_endpoint(self, req: Request) -> Reply:
        try:
            return self.endpoints[req.endpoint](req)
        except ApiError as err:
            return envelope_reply(err.http_status, {}, err.code, err.message)
        except OAuthError as err:
            return oauth_reply(err.http_status, {"error": err.error,
                                                 "error_description": err.description})

    # Close the socket, stop the webhook threads and the media checks.
    def server_close(self) -> None:
        super().server_close()
        self.webhooks.close()
        self.checker.close()


class SimHandler(BaseHTTPRequestHandler):
    """Per-connection request handler: parses HTTP, applies latency/faults, logs."""
    protocol_version = "HTTP/1.1"
    # Send each reply as soon as it is written: with Nagle on, a keep-alive
    # client waits ~40 ms for the delayed ACK on every reused connection.
    disable_nagle_algorithm = True
    server_version = "tiktok_sim/1.0"

    # The Server header value.
    def version_string(self) -> str:
        return self.server_version

    # GET requests.
    def do_GET(self):
        self.dispatch("GET")

    # POST requests.
    def do_POST(self):
        self.dispatch("POST")

    # PUT requests.
    def do_PUT(self):
        self.dispatch("PUT")

    # HEAD requests (only the synthetic media source has a body to leave out).
    def do_HEAD(self):
        self.dispatch("HEAD")

    # DELETE requests.
    def do_DELETE(self):
        self.dispatch("DELETE")

    # PATCH requests.
    def do_PATCH(self):
        self.dispatch("PATCH")

    # Per-request logging to stderr only with --verbose.
    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.server.verbose:
            sys.stderr.write("tiktok_sim: %s - %s\n" % (self.address_string(), format % args))

    # Route to the control API or the TikTok API.
    def dispatch(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            if url.path.startswith(MEDIA_PREFIX):
                self.handle_media(method, url.path, query)
            elif url.path == "/_sim" or url.path.startswith("/_sim/"):
                raw = self.read_body()
                if raw is None:
                    self.send_json(400, {"ok": False, "error": "bad body"}, close=True)
                    return
                status, body = self.server.control.handle(method, url.path, query, raw)
                self.send_json(status, body)
            else:
                self.handle_tiktok(method, url.path, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # keep serving; report the bug
            if not self.server.quiet:
                traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self.send_json(500, {"ok": False, "error": f"simulator bug: {exc!r}"}, close=True)
            except OSError:
                pass

    # The logical endpoint for a method and path (None when unknown).
    @staticmethod
    def endpoint_for(method: str, path: str) -> tuple[str | None, str | None]:
        if (method, path) in ROUTES:
            return ROUTES[(method, path)], None
        match = UPLOAD_PATH_RE.match(path)
        if match and method == "PUT":
            return "upload", match.group(1)
        return None, None

    # Serve one TikTok API call: body, latency, fault, handler, log, reply.
    def handle_tiktok(self, method: str, path: str, query: dict) -> None:
        received = now()
        server = self.server
        state = server.state
        endpoint, upload_id = self.endpoint_for(method, path)
        req = Request(method=method, path=path, query=query, headers=self.headers,
                      endpoint=endpoint, host_header=self.host_header(), rfile=self.rfile,
                      set_read_timeout=self.set_read_timeout, received=received)
        if endpoint != "upload":
            raw = self.read_body()
            if raw is None:
                reply = envelope_reply(400, {}, "invalid_param", "unreadable request body")
                reply.close = True
                self.finish_tiktok(req, reply, None)
                return
            req.raw_body = raw
        req.log_body = self.loggable_body(req)
        latency = state.config["latency_ms"]
        caller = fault = None
        if endpoint and state.faults:     # checked without the lock: no faults, no lock here
            with state.lock:
                caller = state.token_open_id(req.bearer_token())
                fault = take_fault(state, endpoint, caller)
        if latency:
            time.sleep(latency / 1000.0)
        if fault and fault.delay_ms:
            time.sleep(fault.delay_ms / 1000.0)
        if endpoint is None:
            reply = envelope_reply(404, {}, "not_found", f"No such endpoint: {method} {path}")
        elif fault and fault.action != "slow" and not fault.after_processing:
            if endpoint == "upload":
                # The chunk is read and thrown away: nothing is counted, so the client can
                # resend the same range.
                server.uploads.identify(req, upload_id)
                drained = UploadHandler.discard(req, UploadHandler.content_length(req))
            else:
                # The handler never runs, so name the caller here: the log shows whose
                # call the fault answered (None without a usable bearer token).
                req.open_id = caller
            reply = fault_reply(fault, endpoint)
            if endpoint == "upload" and not drained:
                reply.close = True
        else:
            if endpoint == "upload":
                reply = server.uploads.handle(req, upload_id)
            elif fault is None:
                # The common case: run the handler and log the call in one critical section.
                with state.lock:
                    reply = server.run_endpoint(req)
                    self.log_call(req, reply, None)
                self.send_reply(reply)
                return
            else:
                with state.lock:
                    reply = server.run_endpoint(req)
            if fault and fault.action != "slow":
                real_code = reply.error_code
                reply = fault_reply(fault, endpoint)
                reply.effect_error_code = real_code
        self.finish_tiktok(req, reply, fault)

    # Serve GET/HEAD /_sim/media/<name>?size=N&type=mp4|mov|webm (no latency, no rate
    # limits; faults with endpoint "media" apply).
    def handle_media(self, method: str, path: str, query: dict) -> None:
        state = self.server.state
        req = Request(method=method, path=path, query=query, headers=self.headers,
                      endpoint="media", host_header=self.host_header(), received=now())
        if self.read_body() is None:
            self.finish_tiktok(req, media_error(400, "unreadable request body", close=True), None)
            return
        plan = media_plan(method, path, query, self.headers.get("Range"))
        req.log_body = plan.log_body
        with state.lock:
            fault = take_fault(state, "media")
        if fault and fault.delay_ms:
            time.sleep(fault.delay_ms / 1000.0)
        if fault and fault.action != "slow":
            self.finish_tiktok(req, fault_reply(fault, "media"), fault)
            return
        if plan.reply is not None:
            self.finish_tiktok(req, plan.reply, fault)
            return
        entry = self.finish_tiktok(req, Reply(plan.status, error_code=None), fault,
                                   send=False)
        self.send_response(plan.status)
        for name, value in plan.headers.items():
            self.send_header(name, value)
        self.end_headers()
        sent = 0
        try:
            if method == "GET":
                self.connection.settimeout(UPLOAD_READ_TIMEOUT)
                for piece in media_pieces(plan):
                    self.wfile.write(piece)
                    sent += len(piece)
            self.wfile.flush()
        except OSError:                   # client went away or stopped reading
            self.close_connection = True
        finally:
            with state.lock:
                entry["body"]["bytes_sent"] = sent

    # Log the call, then send the reply (or drop the connection); returns the log entry.
    def finish_tiktok(self, req: Request, reply: Reply, fault: Fault | None,
                      send: bool = True) -> dict:
        entry = self.log_call(req, reply, fault)
        if send:
            self.send_reply(reply)
        return entry

    # Append a call to the request log (takes the state lock); returns the log entry.
    def log_call(self, req: Request, reply: Reply, fault: Fault | None) -> dict:
        entry = {
            "method": req.method, "path": redact_path(self.path), "endpoint": req.endpoint,
            "open_id": req.open_id, "http_status": None if reply.drop else reply.status,
            "error_code": reply.error_code, "log_id": reply.log_id,
            "publish_id": req.publish_id or self.publish_id_from(reply),
            "body": req.log_body, "fault": fault.action if fault else None,
            "received": req.received,
        }
        if fault and fault.after_processing:
            entry["effect_error_code"] = reply.effect_error_code
        with self.server.state.lock:
            return self.server.state.log_request(entry)

    # Send a reply, or for a "drop" close the connection without one.
    def send_reply(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_raw(reply.status, reply.body, reply.content_type, reply.headers,
                      close=reply.close)

    # The publish id named in a JSON reply body, if any.
    @staticmethod
    def publish_id_from(reply: Reply) -> str | None:
        if b'"publish_id"' not in reply.body:       # skip parsing replies that cannot name one
            return None
        try:
            publish_id = json.loads(reply.body)["data"]["publish_id"]
        except (ValueError, KeyError, TypeError):
            return None
        return publish_id if isinstance(publish_id, str) else None

    # What the request log shows of a body (parsed, secrets redacted).
    @staticmethod
    def loggable_body(req: Request):
        if req.endpoint == "upload":
            return {"content_range": req.headers.get("Content-Range"),
                    "content_type": req.headers.get("Content-Type"),
                    "content_length": req.headers.get("Content-Length")}
        if not req.raw_body:
            return None
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        text = req.raw_body.decode("utf-8", errors="replace")
        if ctype == "application/x-www-form-urlencoded" or req.endpoint in OAUTH_ENDPOINTS:
            try:
                return redact(json.loads(text))
            except json.JSONDecodeError:
                form = parse_qs(text, keep_blank_values=True)
                return redact({k: v[0] for k, v in form.items()})
        try:
            return redact(json.loads(text))
        except json.JSONDecodeError:
            return {"unparsed": text[:2000]}

    # The host:port clients used to reach us (for upload URLs).
    def host_header(self) -> str:
        host = self.headers.get("Host")
        if host:
            return host
        addr, port = self.server.server_address[:2]
        if addr in ("0.0.0.0", "::", ""):
            addr = "127.0.0.1"
        return f"{addr}:{port}"

    # Set a read timeout on the client socket (used for streaming uploads).
    def set_read_timeout(self, seconds: float) -> None:
        self.connection.settimeout(seconds)

    # Read a whole request body (Content-Length or chunked); None on error/oversize.
    def read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        value = self.headers.get("Content-Length")
        if value is None:
            return b""
        if not value.strip().isdigit() or int(value) > MAX_JSON_BODY:
            return None
        length = int(value)
        data = self.rfile.read(length) if length else b""
        return data if len(data) == length else None

    # Read a chunked transfer-encoded body; None on error/oversize.
    def read_chunked(self) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_JSON_BODY:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(16)

    # Send a JSON reply.
    def send_json(self, status: int, body: dict, close: bool = False) -> None:
        self.send_raw(status, json.dumps(body).encode("utf-8"),
                      "application/json; charset=UTF-8", {}, close)

    # Send a reply with Content-Length (and Connection: close when asked).
    def send_raw(self, status: int, body: bytes, content_type: str, headers: dict,
                 close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        send_body = body and self.command != "HEAD"
        if self.request_version != "HTTP/0.9":
            # What end_headers() does, with the body in the same write: one send() per reply.
            self._headers_buffer.append(b"\r\n")
            if send_body:
                self._headers_buffer.append(body)
            self.flush_headers()
        elif send_body:                   # HTTP/0.9: no status line or headers, body only
            self.wfile.write(body)
        self.wfile.flush()


# Build a server (not yet serving) from options; port 0 picks a free port.
def make_server(host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0,
                processing_seconds: float = 3, rate_limits: bool = True,
                verbose: bool = False, quiet: bool = False,
                check_media: bool = False) -> SimHTTPServer:
    config = Config(latency_ms=latency_ms, processing_seconds=processing_seconds,
                    rate_limits=rate_limits, check_media=check_media)
    return SimHTTPServer((host, port), SimState(config), verbose=verbose, quiet=quiet)


# Parse the command line.
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="TikTok Content Posting API simulator")
    parser.add_argument("--port", type=int, default=18443)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--processing-seconds", type=float, default=3)
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--check-media", action="store_true",
                        help="check uploaded and pulled media with ffprobe (config "
                             "check_media)")
    parser.add_argument("--quiet", action="store_true", help="print only the listening line")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


# Run the server until SIGTERM/SIGINT.
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.check_media and not probe.available():
        print("tiktok_sim: --check-media needs ffprobe on PATH (Debian: apt-get install "
              "ffmpeg)", file=sys.stderr)
        return 2
    server = make_server(args.host, args.port, args.latency_ms, args.processing_seconds,
                         not args.no_rate_limits, args.verbose, args.quiet,
                         args.check_media)
    host, port = server.server_address[:2]

    # Stop serving from a helper thread (shutdown() must not run in serve_forever's thread).
    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"tiktok_sim listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    if not args.quiet:
        print("tiktok_sim stopped", flush=True)
    return 0
