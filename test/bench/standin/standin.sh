#!/usr/bin/env bash
# Starts, stops and reads the nginx TikTok stand-in (nginx.conf.in beside this
# script) on 127.0.0.1:PORT, answering every call after LATENCY_MS.
#   standin.sh start PORT LATENCY_MS   # fresh state dir and access log; prints the worker's pid
#   standin.sh stop PORT               # graceful stop: nginx flushes its buffered access log
#   standin.sh counts PORT             # JSON: requests per endpoint, total, connections, non-200s
# PORT must be in 18460-18469 (other ports on the benchmark machine belong to
# other people's tests). State lives in /tmp/vibescaling-standin-PORT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: standin.sh start PORT LATENCY_MS | stop PORT | counts PORT}
port=${2:?PORT required}
if [ "$port" -lt 18460 ] || [ "$port" -gt 18469 ]; then
  echo "standin.sh: port $port is outside 18460-18469" >&2
  exit 2
fi
dir=/tmp/vibescaling-standin-$port

# Prints the pid of nginx's (single) worker process, once it has started.
worker_pid() {
  local master
  master=$(cat "$dir/nginx.pid")
  for _ in $(seq 100); do
    local w
    w=$(pgrep -P "$master" | head -1 || true)
    if [ -n "$w" ]; then
      echo "$w"
      return 0
    fi
    sleep 0.05
  done
  echo "standin.sh: no nginx worker under master $master" >&2
  return 1
}

case $cmd in
  start)
    latency_ms=${3:?LATENCY_MS required}
    if [ -f "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null; then
      echo "standin.sh: already running on $port (pid $(cat "$dir/nginx.pid"))" >&2
      exit 1
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    latency_s=$(awk -v ms="$latency_ms" 'BEGIN { printf "%.3f", ms / 1000 }')
    sed -e "s|@PORT@|$port|g" -e "s|@LATENCY_S@|$latency_s|g" -e "s|@DIR@|$dir|g" \
        "$here/nginx.conf.in" >"$dir/nginx.conf"
    # -e: the startup error log goes to the state dir too, not /var/log/nginx.
    nginx -q -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    for _ in $(seq 100); do
      if curl -s -o /dev/null "http://127.0.0.1:$port/ping"; then
        break
      fi
      sleep 0.05
    done
    worker_pid
    ;;
  stop)
    if [ -f "$dir/nginx.pid" ]; then
      master=$(cat "$dir/nginx.pid")
      # QUIT: finish requests, flush the access log buffer, exit.
      kill -QUIT "$master" 2>/dev/null || true
      for _ in $(seq 200); do
        kill -0 "$master" 2>/dev/null || break
        sleep 0.05
      done
      if kill -0 "$master" 2>/dev/null; then
        echo "standin.sh: nginx $master did not stop" >&2
        exit 1
      fi
    fi
    ;;
  counts)
    # The /ping line of "start" is not a TikTok call: left out.
    awk '$3 != "/ping" {
           n[$3]++; total++; conns[$6] = 1
           if ($4 != 200) bad[$3 " " $4]++
         }
         END {
           printf "{\"total\": %d, \"by_endpoint\": {", total
           sep = ""; for (u in n) { printf "%s\"%s\": %d", sep, u, n[u]; sep = ", " }
           c = 0; for (k in conns) c++
           printf "}, \"connections\": %d, \"not_200\": {", c
           sep = ""; for (k in bad) { printf "%s\"%s\": %d", sep, k, bad[k]; sep = ", " }
           print "}}"
         }' "$dir/access.log"
    ;;
  *)
    echo "standin.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
