#!/usr/bin/env bash
# The campaign benchmark (issue: "schedule 100,000 targets and dispatch a
# day of them with the simulator's caps on"): ACCOUNTS simulator accounts
# with weekly posting slots in four IANA zones; POSTS posts each, scheduled
# through the three campaign paths (schedule_targets: one draft to every
# account; add_to_queue: the account's next free slot; repeat_post: daily
# recurrences); the same posts by plain INSERTs into an application's table
# beside it; then whole UTC days of the plan dispatched against the
# simulator with its caps on, each checked against the simulator's own
# record. Prints the tables (scheduling throughput and database CPU per
# post and path, what the checks cost, dispatcher CPU per post, the checks)
# and exits non-zero if a check fails. See docs/benchmarks.md.
#   test/bench/campaign.sh [POSTS] [ACCOUNTS]        (defaults 1000 and 100)
#   env VS_CAMPAIGN_DAYS  the days to dispatch and how (default
#                         "1:cadence 2:cadence 3:cadence 4:burst": three days
#                         as pg_cron's 5-minute job would run them, then one
#                         all at once)
#       VS_CAMPAIGN_PACE  seconds of real time per 5-minute cadence run (default 1)
#       VS_CAMPAIGN_QUEUE_SAMPLE  how many add_to_queue calls run with JIT as the
#                         server has it (default 500); the rest run with JIT off
#                         in their session and are reported on a row of their own
#       VS_SIM_PORT       the simulator's port (default 18482)
#       VS_CAMPAIGN_PATCH an SQL file run as the superuser after the set-up,
#                         before the measured steps: to measure a proposed
#                         change (say, a CREATE OR REPLACE FUNCTION) without
#                         installing it; the output says so
# Uses the vibescaling installed on the machine (no make install): it says
# which build, and fails (exit 3) if it was reinstalled between the
# cluster's start and the set-up's CREATE EXTENSION.
set -euo pipefail
cd "$(dirname "$0")/../.."
posts=${1:-1000}
accounts=${2:-100}

for tool in pg_virtualenv psql python3 curl; do
  command -v "$tool" >/dev/null || { echo "campaign.sh: $tool is not installed" >&2; exit 1; }
done

export VS_CAMPAIGN_POSTS=$posts VS_CAMPAIGN_ACCOUNTS=$accounts
export VS_CAMPAIGN_DAYS=${VS_CAMPAIGN_DAYS-1:cadence 2:cadence 3:cadence 4:burst}
export VS_CAMPAIGN_PACE=${VS_CAMPAIGN_PACE:-1}
export VS_CAMPAIGN_QUEUE_SAMPLE=${VS_CAMPAIGN_QUEUE_SAMPLE:-500}
if [ -n "${VS_CAMPAIGN_PATCH:-}" ]; then
  VS_CAMPAIGN_PATCH=$(realpath "$VS_CAMPAIGN_PATCH")
  export VS_CAMPAIGN_PATCH
fi
export VS_SIM_PORT=${VS_SIM_PORT:-18482}
export VS_SIM_STATE=/tmp/vibescaling-campaign-sim-$VS_SIM_PORT
VS_SIM_ARGS="--quiet" scripts/sim.sh start >/dev/null
trap 'scripts/sim.sh stop' EXIT
export VS_CAMPAIGN_SIM_PID
VS_CAMPAIGN_SIM_PID=$(cat "$VS_SIM_STATE.pid")

# Checksums of the installed extension (library, control file, SQL scripts).
# On a shared machine someone may reinstall it meanwhile. What a run
# measures is the library the cluster preloaded when it started and the SQL
# script CREATE EXTENSION read in the set-up: both must be one build (exit 3
# otherwise); a reinstall after the set-up changes nothing the cluster runs.
installed() {
  sha256sum "$(pg_config --pkglibdir)/vibescaling.so" "$(pg_config --sharedir)"/extension/vibescaling[.-]*
}
version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$(pg_config --sharedir)/extension/vibescaling.control")
script="$(pg_config --sharedir)/extension/vibescaling--$version.sql"
# The commit of this tree's history whose src/sql the installed script is
# (the Makefile concatenates src/sql/*.sql in name order), among the last 60
# that changed src/sql; empty if none.
installed_commit() {
  local want c f
  want=$(sha256sum <"$script" | cut -d' ' -f1)
  for c in $(git log --format=%h -60 -- src/sql); do
    if [ "$(git ls-tree --name-only "$c" src/sql/ | grep '\.sql$' | LC_ALL=C sort |
            while read -r f; do git show "$c:$f"; done | sha256sum | cut -d' ' -f1)" = "$want" ]; then
      echo "$c"
      return
    fi
  done
}
commit=$(installed_commit)
if [ -n "$commit" ]; then
  same="src/sql of $(git log -1 --format='%h (%cI, %s)' "$commit")"
else
  same="not the src/sql of any of this tree's last 60 commits that changed it"
fi
if cat src/sql/*.sql | cmp -s - "$script"; then
  same="$same, as in this tree"
fi
echo "vibescaling $version installed: vibescaling--$version.sql $(sha256sum "$script" | cut -c1-12)…, $same;" \
     "vibescaling.so $(sha256sum "$(pg_config --pkglibdir)/vibescaling.so" | cut -c1-12)…" >&2
before=$(installed)
export VS_CAMPAIGN_INSTALLED_AT_SETUP
VS_CAMPAIGN_INSTALLED_AT_SETUP=$(mktemp)
rc=0
scripts/pg-cluster.sh vs_campaign test/bench/campaign_in_cluster.sh || rc=$?
at_setup=$(cat "$VS_CAMPAIGN_INSTALLED_AT_SETUP")
rm -f "$VS_CAMPAIGN_INSTALLED_AT_SETUP"
if [ -n "$at_setup" ] && [ "$at_setup" != "$before" ]; then
  echo "WARNING: the installed vibescaling changed between the cluster's start and CREATE EXTENSION: the run" \
       "mixed two builds. Run it again." >&2
  diff <(echo "$before") <(echo "$at_setup") >&2 || true
  exit 3
fi
if [ "$(installed)" != "$before" ]; then
  echo "note: vibescaling was reinstalled after the set-up; the run kept the build it had loaded" >&2
else
  echo "installed vibescaling unchanged during the benchmark" >&2
fi
exit "$rc"
