#!/usr/bin/env bash
# api/nginx.conf, checked: nginx runs it (TLS swapped for a plain local port)
# in front of a stand-in for PostgREST that echoes each request's method,
# path, query and the headers nginx sets; each documented path must arrive
# as the PostgREST request docs/http-api.md says. Prints "nginx: N passed, 0 failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${VS_NGINX_PORT:-18481}
backend=${VS_NGINX_BACKEND_PORT:-18482}
work=$(mktemp -d)
pass=0 fail=0
echo_pid=
cleanup() {
  [ -f "$work/nginx.pid" ] && nginx -s stop -c "$work/nginx.conf" -p "$work" 2>/dev/null || true
  [ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The stand-in for PostgREST: answers every request with what it received.
cat >"$work/echo.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Echo(BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        out = json.dumps({"method": self.command, "path": self.path, "body": body,
                          "x_post_id": self.headers.get("X-Post-Id"), "accept": self.headers.get("Accept"),
                          "prefer": self.headers.get("Prefer"), "authorization": self.headers.get("Authorization")}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
    do_GET = do_POST = do_PATCH = do_DELETE = answer
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
PY
python3 "$work/echo.py" "$backend" &
echo_pid=$!

# The shipped server block, on a plain port, pointing at the stand-in.
scripts/nginx-local.sh "$work" "$port" "$backend" test-webhook-role-jwt
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$backend/" && break; sleep 0.1; done

# check NAME CURL_ARGS... -- PYTHON_CONDITION on the echoed request r
check() {
  local name=$1; shift
  local args=() cond
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  cond=$2
  local got
  got=$(curl -s "${args[@]}")
  if python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if ($cond) else 1)" "$got" 2>/dev/null; then
    echo "ok - $name"; pass=$((pass + 1))
  else
    echo "not ok - $name: got $got"; fail=$((fail + 1))
  fi
}
id=0b5a8a36-1c1e-4d5e-9d3c-2f1e7f9a0c11
base="http://127.0.0.1:$port"
check "POST /api/v1/posts/:id/publish -> POST /rpc/publish_post, post id in X-Post-Id" \
  -X POST -H 'Content-Type: application/json' -d '{"tiktok_account_id":"x","privacy_level":"SELF_ONLY"}' "$base/api/v1/posts/$id/publish" -- \
  "r['method'] == 'POST' and r['path'] == '/rpc/publish_post' and r['x_post_id'] == '$id' and 'privacy_level' in r['body']"
check "GET /api/v1/posts/:id/publish-status -> GET /rpc/publish_status, post id in X-Post-Id" \
  "$base/api/v1/posts/$id/publish-status" -- \
  "r['method'] == 'GET' and r['path'] == '/rpc/publish_status' and r['x_post_id'] == '$id'"
check "PATCH /api/v1/posts/:id -> PATCH /posts?id=eq.:id, one object returned" \
  -X PATCH -H 'Content-Type: application/json' -d '{"status":"scheduled"}' "$base/api/v1/posts/$id" -- \
  "r['method'] == 'PATCH' and r['path'] == '/posts?id=eq.$id' and r['accept'] == 'application/vnd.pgrst.object+json' and r['prefer'] == 'return=representation'"
check "a client's own X-Post-Id is dropped" \
  -H "X-Post-Id: $id" "$base/api/v1/posts" -- "r['path'] == '/posts' and r['x_post_id'] is None"
check "GET /api/v1/posts -> GET /posts (with the query string)" \
  "$base/api/v1/posts?status=eq.draft" -- "r['method'] == 'GET' and r['path'] == '/posts?status=eq.draft'"
check "POST /webhooks/tiktok -> POST /rpc/handle_webhook with the webhook role's JWT" \
  -X POST -d '{"event":"x"}' "$base/webhooks/tiktok" -- \
  "r['path'] == '/rpc/handle_webhook' and r['authorization'].startswith('Bearer ') and r['body'] == '{\"event\":\"x\"}'"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base/api/v1/posts/$id/publish")
if [ "$code" = 403 ]; then echo "ok - other methods on the publish path are refused (403)"; pass=$((pass + 1));
else echo "not ok - DELETE on the publish path answered $code"; fail=$((fail + 1)); fi

echo "nginx: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
