#!/usr/bin/env bash
# The part of upload_memory.sh that runs inside the throwaway cluster.
set -euo pipefail
size_mb=$1
chunk_mb=$2
sim="http://127.0.0.1:$VS_SIM_PORT"
export PGDATABASE=vs_membench
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

q "CREATE EXTENSION vibescaling CASCADE" >/dev/null
q "ALTER DATABASE vs_membench SET vibescaling.api_base_url = '$sim'" >/dev/null
curl -s -o /dev/null -X POST "$sim/_sim/users" -d '{"access_token": "act.membench", "open_id": "membench", "daily_post_cap": 1000000}'
acct=$(q "SELECT vibescaling.add_account('membench', 'act.membench')")

echo "creating a ${size_mb} MB large object..."
lo=$(q "SELECT lo_from_bytea(0, '\\x000000186674797069736f6d0000020069736f6d6d703431'::bytea)")
q "SELECT count(lo_put($lo, 24 + (i * 64 * 1048576)::bigint,
                       substring(convert_to(repeat('vibescaling-', 5592406), 'SQL_ASCII') FROM 1 FOR
                                 least(64 * 1048576, $size_mb * 1048576 - 24 - i * 64 * 1048576)::integer)))
     FROM generate_series(0, ($size_mb * 1048576 - 25) / (64 * 1048576)) i" >/dev/null
post=$(q "INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('memory benchmark', $lo) RETURNING id")

# The publishing session: idle for a second (the baseline), then the upload.
PGAPPNAME=membench psql -X -qAt -c "SELECT pg_sleep(1)" \
  -c "SET vibescaling.upload_chunk_size_mb = $chunk_mb" \
  -c "SELECT clock_timestamp()" \
  -c "SELECT vibescaling.publish_post('$post', '$acct', 'SELF_ONLY')" \
  -c "SELECT clock_timestamp()" >/tmp/membench.out 2>&1 &
client=$!
pid=""
while [ -z "$pid" ]; do pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'membench'"); done
base=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
peak=$base
while kill -0 $client 2>/dev/null && [ -r /proc/$pid/status ]; do
  now=$(awk '/RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  [ "${now:-0}" -gt "$peak" ] && peak=$now
  sleep 0.02
done
wait $client
grep -q '"publish_id"' /tmp/membench.out || { cat /tmp/membench.out; exit 1; }
secs=$(python3 - <<PY
import datetime
lines = [l for l in open('/tmp/membench.out').read().split('\n') if l[:2] == '20']
t0, t1 = (datetime.datetime.fromisoformat(l.replace(' ', 'T')) for l in lines[:2])
print(round((t1 - t0).total_seconds(), 2))
PY
)
chunks=$(q "SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = '$post' AND endpoint = 'upload_chunk'")
echo "video: ${size_mb} MB from a large object, ${chunk_mb} MB chunks, ${chunks} chunk PUTs"
echo "backend private memory (RssAnon): baseline $((base / 1024)) MB, peak $((peak / 1024)) MB, rise $(((peak - base) / 1024)) MB"
echo "upload: ${secs} s, $(python3 -c "print(round($size_mb / $secs, 1))") MB/s"
