#!/usr/bin/env bash
# Issue 13's burst, against a cheap stand-in, beside an application worker:
# N due posts of N accounts dispatched (a) by vibescaling
# (CALL vibescaling.dispatch_due_posts()) and (b) by a Node.js worker
# (test/bench/node_worker), both against the nginx TikTok stand-in
# (test/bench/standin) at 250 ms a call, at concurrency 512 and 1024, each
# run in a fresh database of one throwaway cluster. Prints a table: wall
# time against the physical limit ceil(N/C) x 2 x latency, database CPU per
# post (every process of the cluster), the Node process's CPU per post, calls
# per post and requests as the stand-in logged them, posts posted.
#   test/bench/burst_vs_worker.sh [N]     (default 10000; e.g. 1000 for a quick run)
# Uses the vibescaling installed on the machine (no make install): it says
# which version, and fails (exit 3) if it was reinstalled meanwhile.
# Stand-in port: VS_STANDIN_PORT (18460-18469, default 18460).
set -euo pipefail
cd "$(dirname "$0")/../.."
posts=${1:-10000}

for tool in nginx node npm pg_virtualenv psql; do
  command -v "$tool" >/dev/null || { echo "burst_vs_worker.sh: $tool is not installed" >&2; exit 1; }
done
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || {
  echo "burst_vs_worker.sh: nginx's echo module is missing (apt-get install libnginx-mod-http-echo)" >&2; exit 1; }

# The worker's one dependency (pg), exactly as package-lock.json pins it.
(cd test/bench/node_worker && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

export VS_BVW_POSTS=$posts
export VS_BVW_LATENCY_MS=250
export VS_BVW_CONCURRENCIES="512 1024"
export VS_STANDIN_PORT=${VS_STANDIN_PORT:-18460}
# Stops the stand-in if a run was interrupted with it up.
trap 'test/bench/standin/standin.sh stop "$VS_STANDIN_PORT" || true' EXIT

# Checksums of the installed extension (library, control file, SQL scripts):
# on a shared machine someone may reinstall it mid-benchmark, and then the
# runs measured different builds.
installed() {
  sha256sum "$(pg_config --pkglibdir)/vibescaling.so" "$(pg_config --sharedir)"/extension/vibescaling[.-]*
}
before=$(installed)
rc=0
scripts/pg-cluster.sh vs_bvw test/bench/burst_vs_worker_in_cluster.sh || rc=$?
if [ "$(installed)" != "$before" ]; then
  echo "WARNING: the installed vibescaling changed during the benchmark; its runs may have measured" \
       "different builds. Run it again." >&2
  diff <(echo "$before") <(installed) >&2 || true
  exit 3
fi
echo "installed vibescaling unchanged during the benchmark ($(sha256sum "$(pg_config --pkglibdir)/vibescaling.so" | cut -c1-12)… vibescaling.so)"
exit "$rc"
