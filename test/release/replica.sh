#!/usr/bin/env bash
# Replicas and failover, inside a throwaway primary (test/release/run.sh):
# a streaming standby made with pg_basebackup refuses every call to TikTok
# with 25006 naming the primary (and never hangs waiting for a worker it
# cannot start); after the primary stops and the standby is promoted, its
# pg_cron scheduler resumes and the posts that fell due during the switch
# go out once each.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/check.sh
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

createdb vs_replica
export PGDATABASE=vs_replica
q >/dev/null <<SQL
ALTER DATABASE vs_replica SET vibescaling.api_base_url TO 'http://127.0.0.1:$VS_SIM_PORT';
CREATE EXTENSION vibescaling CASCADE;
CREATE EXTENSION pg_cron;
SQL

read -r version cluster datadir < <(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $1, $2, $6 }')
conf=/etc/postgresql/$version/$cluster
[ -d "$conf" ] || conf=$PG_CLUSTER_CONF_ROOT/$version/$cluster
sport=$((PGPORT + 100))
work=$(mktemp -d /tmp/vs-standby.XXXXXX)
chown postgres: "$work"
sdata=$work/data
as_pg() { su postgres -s /bin/sh -c "$1"; }
# The standby never outlives the test, whatever happens.
trap 'as_pg "pg_ctl -D \"$sdata\" -m immediate stop" >/dev/null 2>&1; rm -rf "$work"' EXIT
standby() { psql -X -qAt -h localhost -p "$sport" "$@"; }

q -f test/fixtures/setup.sql >/dev/null
run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
acct=$(q -c "SELECT vs_test.new_account('replica_$run')")
draft=$(q -c "SELECT vs_test.new_video('on the standby')")
published=$(q -c "SELECT vs_test.new_video('published')")
q -c "SELECT vibescaling.publish_post('$published', '$acct', 'SELF_ONLY')" >/dev/null

# The standby.
as_pg "pg_basebackup -D '$sdata' -R -X stream -c fast -h '${PGHOST:-/var/run/postgresql}' -p $PGPORT -U ${PGUSER:-postgres}" \
  || check "pg_basebackup made a standby" ok failed
as_pg "pg_ctl -D '$sdata' -l '$work/log' -w -t 60 -o \"-c config_file=$conf/postgresql.conf -c data_directory=$sdata -c hba_file=$conf/pg_hba.conf -c ident_file=$conf/pg_ident.conf -c external_pid_file= -c port=$sport -c unix_socket_directories=$work -c hot_standby=on\" start" >/dev/null \
  || { check "the standby started" ok failed; cat "$work/log"; finish_checks replica; exit 1; }
for _ in $(seq 1 60); do
  [ "$(standby -c "SELECT count(*) FROM vibescaling.posts WHERE id = '$published'" 2>/dev/null)" = 1 ] \
    && [ "$(standby -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null)" = streaming ] && break
  sleep 0.5
done
check "the standby is in recovery and has the primary's posts" t "$(standby -c "SELECT pg_is_in_recovery()")"
calls_before=$(q -c "SELECT count(*) FROM vs_test.sim_requests('replica_$run')")

# What a standby says.
error_of() { standby -c "$1" 2>&1 >/dev/null | head -n 1; }
state_of() { standby -v ON_ERROR_STOP=1 -c "\\set VERBOSITY verbose" -c "$1" 2>&1 >/dev/null | grep -oE 'ERROR:  [0-9A-Z]{5}' | head -n 1 | cut -c9-; }
check "publish_post on a standby fails with 25006" 25006 "$(state_of "SELECT vibescaling.publish_post('$draft', '$acct', 'SELF_ONLY')")"
message=$(error_of "SELECT vibescaling.publish_post('$draft', '$acct', 'SELF_ONLY')")
check "... naming the primary ($message)" yes "$(echo "$message" | grep -q "standby of .*:$PGPORT" && echo yes || echo no)"
check "the dispatcher on a standby fails with 25006" 25006 "$(state_of "CALL vibescaling.dispatch_due_posts()")"
check "publish_status on a standby fails with 25006 (no wait for a worker it cannot start)" 25006 \
      "$(timeout 30 psql -X -qAt -h localhost -p "$sport" -c '\set VERBOSITY verbose' \
           -c "SELECT vibescaling.publish_status('$published')" 2>&1 >/dev/null | grep -oE 'ERROR:  [0-9A-Z]{5}' | head -n 1 | cut -c9-)"
check "creator_info on a standby fails with 25006" 25006 "$(state_of "SELECT vibescaling.creator_info('$acct')")"
check "... and TikTok received nothing from the standby" "$calls_before" "$(q -c "SELECT count(*) FROM vs_test.sim_requests('replica_$run')")"

# Failover: posts fall due while the primary is gone; the promoted standby's scheduler sends them.
q >/dev/null <<SQL
SELECT vibescaling.enable_scheduler('* * * * *');
CREATE TABLE public.switch_posts AS
SELECT (vibescaling.schedule_post(vs_test.new_video('due in the switch ' || i), now() + interval '10 minutes',
                                  '$acct', 'SELF_ONLY') #>> '{data,id}')::uuid AS id
  FROM generate_series(1, 3) i;
SET session_replication_role = replica;
UPDATE vibescaling.posts SET scheduled_at = now() + interval '20 seconds' WHERE id IN (SELECT id FROM public.switch_posts);
SQL
lsn=$(q -c "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 60); do
  [ "$(standby -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && break
  sleep 0.5
done
pg_ctlcluster "$version" "$cluster" stop -m fast
as_pg "pg_ctl -D '$sdata' -w promote" >/dev/null
check "the standby is promoted" f "$(standby -c "SELECT pg_is_in_recovery()")"
posted=0
for _ in $(seq 1 150); do
  posted=$(standby -c "SELECT count(*) FROM vibescaling.posts WHERE id IN (SELECT id FROM public.switch_posts) AND status = 'posted'")
  [ "$posted" = 3 ] && break
  sleep 1
done
check "after the promotion pg_cron's dispatcher published the 3 posts due during the switch" 3 "$posted"
check "... each with one init at TikTok" "3 1" \
      "$(standby -c "SELECT count(DISTINCT l.post_id) || ' ' || max(n) FROM (SELECT post_id, count(*) n FROM vibescaling.dispatch_logs
                      WHERE endpoint = 'video_init' AND post_id IN (SELECT id FROM public.switch_posts) GROUP BY post_id) l")"
check "... as TikTok saw it (4 inits for the account in all: 1 before, 3 after)" 4 \
      "$(standby -c "SELECT count(*) FROM vs_test.sim_requests('replica_$run', 'video_init')")"
check "the promoted server publishes on demand too" posted \
      "$(standby -c "SELECT vibescaling.publish_post('$draft', '$acct', 'SELF_ONLY') IS NOT NULL" >/dev/null; standby -c "SELECT status FROM vibescaling.posts WHERE id = '$draft'")"

pg_ctlcluster "$version" "$cluster" start 2>/dev/null || true
finish_checks replica
