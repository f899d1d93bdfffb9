#!/usr/bin/env bash
# One command for a fresh Debian machine: installs what vibescaling needs,
# builds and installs it, starts the TikTok simulator and a throwaway
# PostgreSQL 15 cluster with pg_cron, and runs the demo (scripts/demo.sql):
# connect an account, publish a video directly, to the inbox and a photo
# post, schedule one and dispatch it, poll status to completion, print the
# dispatch log, a burst, a campaign (one draft to three accounts, a queue
# of posting slots, a repeating post, the caps); then a tenant uses the
# HTTP API through nginx and PostgREST 12 (scripts/demo-api.sh), which
# stays up on a terminal until Enter.
# Usage: scripts/demo.sh   (as root or with sudo rights)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "demo: building and installing the extension"
make -j2 >/dev/null
make install >/dev/null

export VS_SIM_PORT=${VS_SIM_PORT:-18444}
scripts/sim.sh start
trap 'scripts/sim.sh stop' EXIT

scripts/pg-cluster.sh vibescaling_demo scripts/demo-in-cluster.sh
