#!/usr/bin/env python3
"""Receives TikTok's webhooks for a test and hands each to the database.

The simulator POSTs webhooks to a URL (its config key webhook_url), as TikTok does.
In production PostgREST receives them (POST /rpc/handle_webhook); a system test that
runs no PostgREST uses this relay instead: it answers 200 at once and writes, for each
delivery, one `SELECT vibescaling.handle_webhook(body, signature)` to a single psql
session (the PG* variables say which database), the body hex-encoded so that no byte of
it is ever read as SQL. handle_webhook does all the checking (signature, timestamp,
dedupe), exactly as it does behind PostgREST.

    test/lib/webhook_relay.py PORT      (prints "ready" once listening; stops on SIGTERM)
"""

import http.server
import signal
import subprocess
import sys
import threading

MAX_BODY = 65536     # handle_webhook refuses more; so does TikTok's size


# Writes each delivery's SQL to psql, one at a time.
class Relay:
    def __init__(self):
        self.psql = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-o", "/dev/null"],
                                     stdin=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.count = 0

    # Queues one delivery for handle_webhook.
    def hand_over(self, body: bytes, signature: str) -> None:
        # The signature header is t=<digits>,s=<hex>: anything else is sent as an empty one
        # (handle_webhook refuses it, as it would refuse the original).
        if not all(c.isalnum() or c in "=," for c in signature):
            signature = ""
        line = ("SELECT vibescaling.handle_webhook(convert_from(decode('%s', 'hex'), 'UTF8'), '%s');\n"
                % (body.hex(), signature))
        with self.lock:
            self.psql.stdin.write(line)
            self.psql.stdin.flush()
            self.count += 1

    def close(self) -> None:
        self.psql.stdin.close()
        self.psql.wait(timeout=30)


class Handler(http.server.BaseHTTPRequestHandler):
    relay: Relay = None

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_response(413)
            self.end_headers()
            return
        body = self.rfile.read(length)
        self.relay.hand_over(body, self.headers.get("TikTok-Signature") or "")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    port = int(sys.argv[1])
    Handler.relay = Relay()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready", flush=True)
    server.serve_forever()
    Handler.relay.close()
    print(f"relayed {Handler.relay.count} webhooks", flush=True)


if __name__ == "__main__":
    main()
