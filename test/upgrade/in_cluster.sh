#!/usr/bin/env bash
# test/upgrade/run.sh inside its throwaway cluster (PG* point at it).
set -uo pipefail
cd "$(dirname "$0")/../.."

. test/lib/check.sh
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }
old_version=$(ls src/sql/releases/ | sed -n 's/^vibescaling--\([0-9.]*\)\.sql$/\1/p' | sort -V | head -n 1)
new_version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" vibescaling.control)
sim="http://127.0.0.1:$VS_SIM_PORT"

# --- The old release, with data: what a team has when it upgrades.
createdb vs_upgraded
createdb vs_fresh
for db in vs_upgraded vs_fresh; do
  q -d "$db" -c "ALTER DATABASE $db SET vibescaling.api_base_url TO '$sim'" >/dev/null
done
q -d vs_upgraded -c "CREATE EXTENSION vibescaling VERSION '$old_version' CASCADE; CREATE EXTENSION pg_cron" >/dev/null
export PGDATABASE=vs_upgraded
q -f test/fixtures/setup.sql >/dev/null
run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
q >/dev/null <<SQL
SELECT vibescaling.setup_api_roles();
SELECT vibescaling.enable_scheduler();
CREATE TABLE public.before_upgrade AS
SELECT vs_test.new_account('up_' || i || '_$run') AS acct FROM generate_series(1, 3) i;
-- Drafts, a posted post, a failed one, a scheduled one (for later), an upload from a large object.
SELECT vs_test.new_video('draft ' || i) FROM generate_series(1, 5) i;
SELECT vibescaling.publish_post(vs_test.new_video('posted'), acct, 'SELF_ONLY') FROM public.before_upgrade LIMIT 1;
SELECT vibescaling.schedule_post(vs_test.new_video('scheduled'), now() + interval '10 minutes',
                                 (SELECT acct FROM public.before_upgrade OFFSET 1 LIMIT 1), 'SELF_ONLY');
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('upload', vs_test.new_lo(1048576));
-- Old history: a year-old call, and a draft whose init's outcome is unknown
-- (it must never be sent again, whatever the logs' retention does).
INSERT INTO vibescaling.dispatch_logs (trigger, endpoint, outcome, created_at)
VALUES ('manual', 'creator_info', 'success', now() - interval '1 year');
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, outcome_unknown, created_at)
SELECT vs_test.new_video('unknown outcome'), acct, 'manual', 'video_init', 'failure', true, now() - interval '200 days'
  FROM public.before_upgrade LIMIT 1;
-- Another one an operator settled (not on TikTok): before 0.1.7 the
-- decision was a 'settlement' row of the log.
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, outcome_unknown, created_at)
SELECT vs_test.new_video('settled unknown outcome'), acct, 'manual', 'video_init', 'failure', true, now() - interval '200 days'
  FROM public.before_upgrade LIMIT 1;
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, error_code, created_at)
SELECT p.id, (SELECT acct FROM public.before_upgrade LIMIT 1), 'manual', 'settlement', 'success', 'not_on_tiktok',
       now() - interval '199 days'
  FROM vibescaling.posts p WHERE p.caption = 'settled unknown outcome';
-- A webhook delivered before the upgrade (TikTok may redeliver it after).
CREATE TABLE public.webhook_body AS
SELECT jsonb_build_object('client_key', 'sim_client_key', 'event', 'post.publish.complete',
                          'create_time', extract(epoch FROM now())::bigint, 'user_openid', 'up_1_$run',
                          'content', '{"publish_id": "v_pub_upgrade_$run"}')::text AS body;
CREATE FUNCTION public.deliver() RETURNS jsonb LANGUAGE sql AS \$\$
    SELECT vibescaling.handle_webhook(b.body, format('t=%s,s=%s', t,
               encode(hmac(convert_to(t || '.' || b.body, 'UTF8'),
                           convert_to(current_setting('vibescaling.client_secret'), 'UTF8'), 'sha256'), 'hex')))
      FROM public.webhook_body b, CAST(extract(epoch FROM now()) AS bigint) t
\$\$;
SELECT public.deliver();
SQL
# The log rows from before the update (the old scheduler's cron jobs may add
# status polls at any minute while the test runs).
logs_last_id=$(q -c "SELECT coalesce(max(id), 0) FROM vibescaling.dispatch_logs")
counts="SELECT (SELECT count(*) FROM vibescaling.tiktok_accounts) || '/' || (SELECT count(*) FROM vibescaling.posts)
        || '/' || (SELECT count(*) FROM vibescaling.dispatch_logs WHERE id <= $logs_last_id)
        || '/' || (SELECT count(*) FROM vibescaling.publish_records)
        || '/' || (SELECT count(*) FROM cron.job WHERE jobname LIKE 'vibescaling-%')"
before=$(q -c "$counts")
tokens_before=$(q -c "SELECT string_agg(vibescaling._unseal(access_token_enc), ',' ORDER BY id) FROM vibescaling.tiktok_accounts")
sched=$(q -c "SELECT id FROM vibescaling.posts WHERE caption = 'scheduled'")

# --- A package upgrade: the new library, a restart (it is preloaded), then the update.
# Until the update the old catalog runs on the new library: every C symbol
# any released script names must still be in it (docs/operations.md).
lib=$(pg_config --pkglibdir)/vibescaling.so
# The library's symbols read once: "nm | grep -q" per symbol fails at
# random under pipefail (grep leaves early, nm gets SIGPIPE).
symbols=$(nm -D --defined-only "$lib" | awk '{print $NF}')
missing=$(grep -ohE "AS 'MODULE_PATHNAME', '[a-z_0-9]+'" src/sql/releases/*.sql "$(pg_config --sharedir)/extension/vibescaling--$new_version.sql" \
            | sed -E "s/.*'([a-z_0-9]+)'$/\1/" | sort -u \
            | while read -r sym; do grep -qxF "$sym" <<<"$symbols" || echo "$sym"; done | paste -sd' ')
check "every C function any released script names is in the library" "" "$missing"
read -r version cluster < <(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $1, $2 }')
pg_ctlcluster "$version" "$cluster" restart
check "the old catalog works on the new library after the restart" t \
      "$(q -c "SELECT vibescaling.http_pool_stats() ? 'transfers' AND vibescaling._unseal(vibescaling._seal('x')) = 'x'")"
# The old catalog's _tiktok_call and _tiktok_call_many return jsonb (0.1.5's
# return _call_result rows, through new symbols): the old symbols keep it.
acct1=$(q -c "SELECT acct FROM public.before_upgrade LIMIT 1")
check "... its _tiktok_call and _tiktok_call_many still answer jsonb (the old symbols' contract)" "true/true/ok" \
      "$(q -c "SELECT (vibescaling._tiktok_call('creator_info', '$acct1', NULL, 'manual', '{}')->>'ok')
                      || '/' || (vibescaling._tiktok_call_many(jsonb_build_array(jsonb_build_object(
                                   'endpoint', 'creator_info', 'tiktok_account_id', '$acct1', 'trigger', 'manual')))->0->>'ok')
                      || '/' || (vibescaling._tiktok_call('creator_info', '$acct1', NULL, 'manual', '{}')->>'error_code')")"

# --- The update.
check "ALTER EXTENSION vibescaling UPDATE from $old_version" "$new_version" \
      "$(q -c "ALTER EXTENSION vibescaling UPDATE" -c "SELECT extversion FROM pg_extension WHERE extname = 'vibescaling'")"
# What the release notes ask of a DBA after the update.
q -c "SELECT vibescaling.setup_api_roles()" >/dev/null
after=$(q -c "$counts")
before_logs_plus_probe=$(( $(echo "$after" | cut -d/ -f3) + 1 ))
check "every row is still there (accounts/posts/dispatch_logs/publish_records/cron jobs: $before; the log's settlement row moved out, +6 jobs: vibescaling-uploads, -logs, -analytics, -settle, -metrics, -recur)" \
      "$(echo "$before" | awk -F/ '{ print $1 "/" $2 "/" $3 - 1 "/" $4 "/" $5 + 6 }')" "$after"
check "the operator's decision of the old log is a row of vibescaling.settlements now" "operator false 1" \
      "$(q -c "SELECT s.decided_by || ' ' || s.on_tiktok || ' ' || count(*) OVER ()
                 FROM vibescaling.settlements s JOIN vibescaling.posts p ON p.id = s.post_id
                WHERE p.caption = 'settled unknown outcome'")"
check "... and no settlement row is left in dispatch_logs" 0 \
      "$(q -c "SELECT count(*) FROM vibescaling.dispatch_logs WHERE endpoint = 'settlement'")"
check "unknown_outcomes lists the unsettled draft, not the settled one" "unknown outcome" \
      "$(q -c "SELECT string_agg(caption, ',') FROM vibescaling.unknown_outcomes")"
check "the settled post may be published again (its init was settled)" "" \
      "$(q -c "SELECT e.state FROM vibescaling.posts p, vibescaling._earlier_init(p.id) e WHERE p.caption = 'settled unknown outcome'")"
check "the published post's record is still followed: not unconfirmed, publish_id kept" 1 \
      "$(q -c "SELECT count(*) FROM vibescaling.publish_records WHERE publish_id IS NOT NULL AND status <> 'unconfirmed'")"
check "the Analytics page's rollup takes in the old log: as many calls as the log holds (but webhooks)" \
      "$(q -c "SELECT count(*) FROM vibescaling.dispatch_logs WHERE endpoint <> 'webhook'")" \
      "$(q -c "SELECT vibescaling.roll_up_analytics() IS NOT NULL" >/dev/null
         q -c "SELECT sum((c->>'calls')::bigint) FROM jsonb_array_elements(
                 vibescaling.analytics(now() - interval '400 days', now())->'calls') c")"
check "dispatch_logs and webhook_events are partitioned; the old rows are one partition each, outside the extension" \
      "dispatch_logs:p:2 webhook_events:p:2" \
      "$(q -c "SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid)
                                  || CASE WHEN EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_depend d ON d.objid = i.inhrelid
                                                        AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
                                                        WHERE i.inhparent = c.oid AND i.inhrelid::regclass::text NOT LIKE '%default')
                                          THEN ' (an old partition is a member)' ELSE '' END, ' ' ORDER BY c.relname)
                 FROM pg_class c WHERE c.oid IN ('vibescaling.dispatch_logs'::regclass, 'vibescaling.webhook_events'::regclass)")"
check "the old partition is not readable by the API roles (it would bypass row level security)" f \
      "$(q -c "SELECT has_table_privilege('vibescaling_user', p.partition, 'SELECT') FROM vibescaling._log_partition_bounds('vibescaling.dispatch_logs') p")"
check "... which read the new table (setup_api_roles granted it)" t \
      "$(q -c "SELECT has_table_privilege('vibescaling_user', 'vibescaling.dispatch_logs', 'SELECT')")"
check "new ids continue after the old ones" t \
      "$(q -c "INSERT INTO vibescaling.dispatch_logs (trigger, endpoint, outcome) VALUES ('manual', 'probe', 'success') RETURNING id > (SELECT max(id) FROM vibescaling.dispatch_logs WHERE endpoint <> 'probe')")"
check "maintain_logs runs on the upgraded logs (the weeks ahead get partitions; the old rows stay)" "$before_logs_plus_probe" \
      "$(q -c "CALL vibescaling.maintain_logs()" -c "SELECT count(*) FROM vibescaling.dispatch_logs WHERE id <= $logs_last_id OR endpoint = 'probe'")"
check "a post's created_at is no later than its first logged call (the update moved the unknown-outcome draft's back)" 0 \
      "$(q -c "SELECT count(*) FROM vibescaling.posts p WHERE p.created_at > (SELECT min(l.created_at) FROM vibescaling.dispatch_logs l WHERE l.post_id = p.id)")"
check "the draft whose init's outcome is unknown still cannot be sent again" 55000 \
      "$(q -c "DO \$\$ BEGIN PERFORM vibescaling.publish_post(p.id, (SELECT acct FROM public.before_upgrade LIMIT 1), 'SELF_ONLY')
                            FROM vibescaling.posts p WHERE p.caption = 'unknown outcome';
                          EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END \$\$" 2>&1 | sed -n 's/.*NOTICE: *//p')"
check "a webhook delivered before the upgrade and redelivered after it is a duplicate" true \
      "$(q -c "SELECT public.deliver() #> '{data,duplicate}'")"
check "tokens still decrypt, unchanged" "$tokens_before" \
      "$(q -c "SELECT string_agg(vibescaling._unseal(access_token_enc), ',' ORDER BY id) FROM vibescaling.tiktok_accounts")"
check "the post from a large object set before the upgrade keeps the owner's rights (source_role)" 1 \
      "$(q -c "SELECT count(*) FROM vibescaling.posts WHERE caption = 'upload' AND source_role IS NOT NULL")"
q -c "SELECT vs_test.make_due('$sched')" >/dev/null
q -c "CALL vibescaling.dispatch_due_posts()" >/dev/null
check "a post scheduled before the upgrade is dispatched after it" posted \
      "$(q -c "SELECT status FROM vibescaling.posts WHERE id = '$sched'")"
check "... with one init" 1 "$(q -c "SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = '$sched' AND endpoint = 'video_init'")"

# --- The upgraded schema equals a fresh install's.
q -d vs_fresh -c "CREATE EXTENSION vibescaling CASCADE; SELECT vibescaling.setup_api_roles()" >/dev/null
# pg_dump leaves out an extension's members; detach them (in these throwaway databases) to dump them.
# The logs' dated partitions are data (an upgrade's old rows, maintain_logs' weeks): left out.
schema_of() {
  q -d "$1" >/dev/null <<'SQL'
SELECT format('DROP TABLE %s', p.partition) FROM vibescaling._log_tables() t, vibescaling._log_partition_bounds(t.parent) p
\gexec
SQL
  q -d "$1" -c "DELETE FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
                  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'vibescaling')" >/dev/null
  # One block per object (pg_dump heads each with "-- Name: ..."), sorted: the
  # order pg_dump picks among objects whose dependencies allow several
  # depends on their creation order, which an upgrade changes. Comments,
  # blank lines, \\restrict lines (a random key of each dump) and the
  # default_tablespace/access method SETs (before whichever table comes
  # first) are dropped.
  pg_dump -s -n vibescaling -n vibescaling_api "$1" | python3 -c '
import sys
blocks, cur = [], []
for line in sys.stdin:
    if line.startswith("-- Name: ") and cur:
        blocks.append("".join(cur)); cur = []
    if line.startswith("--") or not line.strip() or line.startswith(("\\restrict", "\\unrestrict", "SET default_")):
        continue
    cur.append(line)
blocks.append("".join(cur))
sys.stdout.write("".join(sorted(blocks)))'
}
ext_of() {
  q -d "$1" -c "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text), extrelocatable, extnamespace::regnamespace
                  FROM pg_extension, unnest(extconfig) c WHERE extname = 'vibescaling' GROUP BY 2, 3"
}
check "the extension's configuration tables (pg_dump keeps their data) are the same" "$(ext_of vs_fresh)" "$(ext_of vs_upgraded)"
schema_of vs_upgraded >/tmp/vs_schema_upgraded.sql
schema_of vs_fresh >/tmp/vs_schema_fresh.sql
check "pg_dump -s of the upgraded schema equals a fresh install's ($(wc -l </tmp/vs_schema_fresh.sql) lines)" "" \
      "$(diff /tmp/vs_schema_fresh.sql /tmp/vs_schema_upgraded.sql | head -c 3000)"
rm -f /tmp/vs_schema_upgraded.sql /tmp/vs_schema_fresh.sql
finish_checks upgrade
