#!/usr/bin/env bash
# Dump and restore, inside a throwaway cluster (test/release/run.sh): a
# database that uses vibescaling, dumped with pg_dump -Fc and restored
# with a plain pg_restore into a new database, keeps every row of every
# extension table (with their id sequences) and works at once: a restored
# account publishes, a restored scheduled post is dispatched.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/check.sh
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }
sim="http://127.0.0.1:$VS_SIM_PORT"

# The source: no pg_cron here (pg_cron lives in one database of a cluster only).
createdb vs_source
q -d vs_source -c "ALTER DATABASE vs_source SET vibescaling.api_base_url TO '$sim'" -c "CREATE EXTENSION vibescaling CASCADE" >/dev/null
export PGDATABASE=vs_source
q -f test/fixtures/setup.sql >/dev/null
run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
q >/dev/null <<SQL
SELECT vibescaling.setup_api_roles();
CREATE TABLE public.accts AS SELECT vs_test.new_account('dump_' || i || '_$run') AS acct FROM generate_series(1, 3) i;
SELECT vs_test.new_video('draft ' || i) FROM generate_series(1, 4) i;
SELECT vibescaling.publish_post(vs_test.new_video('posted'), (SELECT acct FROM public.accts LIMIT 1), 'SELF_ONLY');
SELECT vibescaling.schedule_post(vs_test.new_video('scheduled'), now() + interval '10 minutes',
                                 (SELECT acct FROM public.accts OFFSET 1 LIMIT 1), 'SELF_ONLY');
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('from a large object', vs_test.new_lo(1048576));
-- A tenant's post, as PostgREST writes it.
SELECT vs_test.pgrst('vibescaling_user', 'tenant-$run', 'POST', '/posts',
                     \$\$INSERT INTO vibescaling_api.posts (caption, video_url) VALUES ('tenant', 'https://verified.example/t.mp4') RETURNING id\$\$);
-- The logs' weekly partitions (maintain_logs' tables, not the extension's),
-- and an old row kept in the default partition: the unknown-outcome init of
-- a draft made 201 days ago.
CALL vibescaling.maintain_logs();
UPDATE vibescaling.posts SET created_at = now() - interval '201 days' WHERE caption = 'draft 2';
INSERT INTO vibescaling.dispatch_logs (post_id, trigger, endpoint, outcome, outcome_unknown, created_at)
SELECT id, 'manual', 'video_init', 'failure', true, now() - interval '200 days' FROM vibescaling.posts WHERE caption = 'draft 2';
INSERT INTO vibescaling.webhook_events (event, body_sha256) VALUES ('post.publish.complete', md5('$run') || md5('$run'));
SQL
# (creator_info_cache is a cache of TikTok's answers: not dumped, refilled on use.)
tables="tiktok_accounts posts media publish_records dispatch_logs webhook_events webhook_refusals"
counts() {
  for t in $tables; do printf '%s=%s ' "$t" "$(q -d "$1" -c "SELECT count(*) FROM vibescaling.$t")"; done
}
before=$(counts vs_source)
tokens() { q -d "$1" -c "SELECT string_agg(vibescaling._unseal(access_token_enc), ',' ORDER BY open_id) FROM vibescaling.tiktok_accounts"; }
tokens_before=$(tokens vs_source)
partitions() {
  q -d "$1" -c "SELECT string_agg(p.partition::text || ':' || (SELECT count(*) FROM vibescaling.dispatch_logs l WHERE l.tableoid = p.partition)
                                  || ':' || (SELECT count(*) FROM vibescaling.webhook_events e WHERE e.tableoid = p.partition), ' '
                                  ORDER BY p.partition::text)
                  FROM vibescaling.log_partitions p"
}
partitions_before=$(partitions vs_source)
dump=$(mktemp /tmp/vs-dump.XXXXXX)
pg_dump -Fc -d vs_source -f "$dump"

createdb vs_restored
restore_out=$(pg_restore -d vs_restored "$dump" 2>&1 || true)
check "pg_restore into a new database reports no error" 0 "$(grep -c 'error' <<<"$restore_out" || true)"
grep -i -m 5 -A 2 'error' <<<"$restore_out" | sed 's/^/# /' || true
q -d vs_restored -c "ALTER DATABASE vs_restored SET vibescaling.api_base_url TO '$sim'" >/dev/null
export PGDATABASE=vs_restored
check "every row of every extension table is there ($before)" "$before" "$(counts vs_restored)"
check "tokens decrypt to what they were" "$tokens_before" "$(tokens vs_restored)"
check "the logs' partitions are the same, with the same rows ($partitions_before)" "$partitions_before" "$(partitions vs_restored)"
check "maintain_logs runs in the restored database" "" \
      "$(q -c "CALL vibescaling.maintain_logs()" 2>&1 | grep -v 'NOTICE:  vibescaling.maintain_logs: 0 partitions created, 0 dropped')"
draft2=$(q -c "SELECT id FROM vibescaling.posts WHERE caption = 'draft 2'")
check "the restored draft whose init's outcome is unknown is not sent again" 55000 \
      "$(q -c "SELECT vs_test.sqlstate_of(format('SELECT vibescaling.publish_post(%L, %L, ''SELF_ONLY'')', '$draft2',
                                                   (SELECT id FROM vibescaling.tiktok_accounts LIMIT 1)))")"
check "large objects came along" 1 "$(q -c "SELECT count(*) FROM vibescaling.posts p JOIN pg_largeobject_metadata m ON m.oid = p.video_lo")"
check "the id sequences continue where they were" t \
      "$(q -c "SELECT nextval(pg_get_serial_sequence('vibescaling.dispatch_logs', 'id')) > (SELECT max(id) FROM vibescaling.dispatch_logs)")"

# It works at once: a restored account publishes, the restored scheduled post goes out.
acct=$(q -c "SELECT id FROM vibescaling.tiktok_accounts ORDER BY open_id LIMIT 1")
draft=$(q -c "SELECT id FROM vibescaling.posts WHERE caption = 'draft 1'")
check "a restored account publishes a restored draft" posted \
      "$(q -c "SELECT vibescaling.publish_post('$draft', '$acct', 'SELF_ONLY') IS NOT NULL" >/dev/null; q -c "SELECT status FROM vibescaling.posts WHERE id = '$draft'")"
sched=$(q -c "SELECT id FROM vibescaling.posts WHERE caption = 'scheduled'")
q -c "SELECT vs_test.make_due('$sched')" -c "CALL vibescaling.dispatch_due_posts()" >/dev/null
check "the restored scheduled post is dispatched" posted "$(q -c "SELECT status FROM vibescaling.posts WHERE id = '$sched'")"
check "the tenant still sees its post through the API" 1 \
      "$(q -c "SELECT jsonb_array_length(vs_test.pgrst('vibescaling_user', 'tenant-$run', 'GET', '/posts', 'SELECT id FROM vibescaling_api.posts')->'rows')")"
rm -f "$dump"
finish_checks dump_restore
