#!/usr/bin/env bash
# Starts or stops the TikTok simulator in the background.
#   scripts/sim.sh start   # listens on 127.0.0.1:$VS_SIM_PORT (default 18443)
#   scripts/sim.sh stop
#   scripts/sim.sh ensure  # start it unless one already answers on the port;
#                          # prints "started" or "running" (stop only what you started)
# Extra simulator flags can be passed in VS_SIM_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${VS_SIM_PORT:-18443}
state=${VS_SIM_STATE:-/tmp/vibescaling-sim-$port}

case "${1:-}" in
  start)
    if [ -f "$state.pid" ] && kill -0 "$(cat "$state.pid")" 2>/dev/null; then
      echo "sim: already running (pid $(cat "$state.pid"))"; exit 0
    fi
    # shellcheck disable=SC2086
    nohup python3 sim/tiktok_sim.py --host 127.0.0.1 --port "$port" --processing-seconds 2 ${VS_SIM_ARGS:-} \
      >"$state.log" 2>&1 &
    echo $! >"$state.pid"
    for _ in $(seq 1 100); do
      if curl -sf "http://127.0.0.1:$port/_sim/health" >/dev/null; then
        echo "sim: listening on http://127.0.0.1:$port (log $state.log)"; exit 0
      fi
      sleep 0.1
    done
    echo "sim: did not start; log follows" >&2; cat "$state.log" >&2; exit 1
    ;;
  ensure)
    if curl -sf "http://127.0.0.1:$port/_sim/health" >/dev/null 2>&1; then
      echo running
    else
      "$0" start >/dev/null || exit 1
      echo started
    fi
    ;;
  stop)
    if [ -f "$state.pid" ]; then
      kill "$(cat "$state.pid")" 2>/dev/null || true
      rm -f "$state.pid"
    fi
    ;;
  *)
    echo "usage: $0 start|stop|ensure" >&2; exit 2
    ;;
esac
