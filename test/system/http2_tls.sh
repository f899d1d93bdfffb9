#!/usr/bin/env bash
# TLS and HTTP/2 to "TikTok", end to end: nghttpx (nghttp2's proxy) serves
# https with a throwaway certificate and HTTP/2 (ALPN), and forwards to the
# simulator. 40 due posts over 40 accounts are dispatched through it with
# vibescaling.ca_file trusting that certificate and max_concurrent_requests 8:
# all must be published, their 80 calls must travel as HTTP/2 streams over
# (almost) one connection, i.e. one TLS handshake instead of 80; without the
# certificate trusted, nothing may be sent; single publish_post calls reuse
# the connection too. Runs inside the test cluster
# (scripts/test-in-cluster.sh); PG* point at it, VS_SIM_PORT at the simulator.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${VS_H2_PORT:-18491}
sim="http://127.0.0.1:${VS_SIM_PORT:-18443}"
work=$(mktemp -d)
chmod 755 "$work"
proxy_pid=
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
  [[ ${PGDATABASE:-} == vs_http2_* ]] && dropdb --if-exists "$PGDATABASE" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; fail=$((fail + 1)); }

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 644 "$work/cert.pem" "$work/key.pem"
nghttpx --conf=/dev/null --frontend="127.0.0.1,$port" --backend="127.0.0.1,${VS_SIM_PORT:-18443}" --workers=1 \
  --accesslog-file="$work/access.log" --accesslog-format='$alpn $method $path $status' \
  --errorlog-file="$work/error.log" "$work/key.pem" "$work/cert.pem" &
proxy_pid=$!
for _ in $(seq 1 50); do curl -s --cacert "$work/cert.pem" -o /dev/null "https://127.0.0.1:$port/_sim/health" && break; sleep 0.1; done

run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
# A database of its own: the dispatcher must see only this test's posts.
export PGDATABASE="vs_http2_$run"
createdb "$PGDATABASE"
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION vibescaling CASCADE' -f test/fixtures/setup.sql >/dev/null
result=$(psql -X -q -At -v ON_ERROR_STOP=1 -v run="$run" -v sim="$sim" -v h2="https://127.0.0.1:$port" \
              -v ca="$work/cert.pem" <<'SQL'
SET client_min_messages = warning;
SET vibescaling.api_base_url = :'sim';
-- Accounts and posts through the plain simulator (the test helpers use curl without the CA).
CREATE TEMP TABLE h2 AS
SELECT i, vs_test.new_account(format('h2_%s_%s', :'run', i)) AS acct FROM generate_series(1, 41) i;
ALTER TABLE h2 ADD COLUMN post uuid;
UPDATE h2 SET post = (vibescaling.schedule_post(vs_test.new_video('h2 ' || i), now() + interval '10 minutes', acct,
                                                'SELF_ONLY') #>> '{data,id}')::uuid;
-- One post first, with the proxy's certificate NOT trusted: nothing may go out.
UPDATE vibescaling.posts SET scheduled_at = scheduled_at + interval '1 hour'
 WHERE id IN (SELECT post FROM h2 WHERE i <= 40);
SET vibescaling.api_base_url = :'h2';
SET vibescaling.max_concurrent_requests = 8;
-- One session: the connection figures are this backend's pool.
SET vibescaling.dispatch_sessions = 1;
CALL vibescaling.dispatch_due_posts(now() + interval '11 minutes');
SELECT 'untrusted ' || p.status || ' ' || coalesce(l.error_message, '')
  FROM vibescaling.posts p
  JOIN LATERAL (SELECT error_message FROM vibescaling.dispatch_logs WHERE post_id = p.id ORDER BY id DESC LIMIT 1) l ON true
 WHERE p.id = (SELECT post FROM h2 WHERE i = 41);
-- Then the 40 others, trusting it (the first one is set aside).
SELECT vibescaling.cancel_post((SELECT post FROM h2 WHERE i = 41)) IS NOT NULL AS cancelled \gset
SET vibescaling.ca_file = :'ca';
SELECT vibescaling.http_pool_stats() AS p0 \gset
CALL vibescaling.dispatch_due_posts(now() + interval '2 hours');
SELECT vibescaling.http_pool_stats() AS p1 \gset
SELECT 'posted ' || count(*) FILTER (WHERE p.status = 'posted') FROM vibescaling.posts p WHERE p.id IN (SELECT post FROM h2 WHERE i <= 40);
SELECT 'transfers ' || ((:'p1'::jsonb->>'transfers')::bigint - (:'p0'::jsonb->>'transfers')::bigint);
SELECT 'connections ' || ((:'p1'::jsonb->>'connections_opened')::bigint - (:'p0'::jsonb->>'connections_opened')::bigint);
-- Single calls (publish_post: creator_info, then the init) ride the same connection.
SELECT count(vibescaling.publish_post(vs_test.new_video('single ' || i), (SELECT acct FROM h2 WHERE h2.i = 1),
                                      'SELF_ONLY')) AS singles FROM generate_series(1, 3) i \gset
SELECT vibescaling.http_pool_stats() AS p2 \gset
SELECT 'single ' || ((:'p2'::jsonb->>'transfers')::bigint - (:'p1'::jsonb->>'transfers')::bigint) || ' '
       || ((:'p2'::jsonb->>'connections_opened')::bigint - (:'p1'::jsonb->>'connections_opened')::bigint);
SQL
)
echo "$result" | sed 's/^/# /'

untrusted=$(grep '^untrusted ' <<<"$result")
if [[ $untrusted == "untrusted scheduled "* ]] && grep -qiE 'certificate|SSL' <<<"$untrusted"; then
  ok "with the certificate not trusted the call fails (TLS verification on) and the post stays scheduled"
else
  not_ok "untrusted certificate: $untrusted"
fi
if grep -qx 'posted 40' <<<"$result"; then ok "trusting it (vibescaling.ca_file), all 40 posts are published over https"; else not_ok "posted: $result"; fi
if grep -qx 'transfers 80' <<<"$result"; then ok "80 calls (creator_info + init per post)"; else not_ok "transfers: $result"; fi
conns=$(grep -oP '^connections \K[0-9]+' <<<"$result")
if [ "$conns" -le 2 ]; then ok "over $conns connection(s): one TLS handshake, not 80 (HTTP/2 multiplexing)"; else not_ok "connections: $conns"; fi
if grep -qx 'single 6 0' <<<"$result"; then
  ok "3 single publish_post calls (6 calls) reuse that connection: no new handshake"
else
  not_ok "single calls: $(grep '^single' <<<"$result")"
fi
h2_calls=$(grep -cE '^h2 POST /v2/post/publish/(creator_info/query|video/init)/ 200$' "$work/access.log" || true)
if [ "$h2_calls" -eq 86 ]; then ok "the proxy saw all 86 calls as HTTP/2 (ALPN h2)"; else not_ok "HTTP/2 calls in the proxy's log: $h2_calls"; fi

echo "http2: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
