#!/usr/bin/env bash
# Defect 1: privilege escalation through the search_path. The attacker is
# the database's owner, not a superuser. It plants, in schema public,
# look-alikes of every function, aggregate and operator the extension's
# code names (same signatures, and more specific overloads of the
# polymorphic and variadic ones, e.g. cardinality(uuid[]),
# uuid[] || uuid[], jsonb_build_object(text x 8)), each of which records
# that it ran and in what context. It then sets its database's search_path
# to public, pg_catalog, so that public comes first even before pg_catalog
# for every session that does not pin its own: pg_cron's jobs, the
# extension's background workers, and callers.
#
# Then every entry point runs: the SQL API (as a caller with that
# search_path), the HTTP API's functions (as PostgREST runs them), the
# dispatchers and status poller called directly and run by pg_cron, the
# log writer and token refresher workers. A look-alike that ran inside
# the extension's code (its context has a caller below it) is a hijack.
# A control proves the trap works: an unpinned function of the attacker's
# own does trip it.
set -uo pipefail
cd "$(dirname "$0")/../.."

. test/lib/check.sh
# As the superuser with a safe search_path (set-up and assertions).
q() { PGOPTIONS='-c search_path=pg_catalog,public' psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }
# As a caller who takes the database's search_path (public first).
hostile() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

db=$PGDATABASE
run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')

# The names the extension's code calls: from its SQL bodies, and from the
# SQL its C code sends through SPI.
c_names=$(grep -ohE '"[^"]*"' src/pg/*.cpp | grep -oE '\b[a-z_][a-z0-9_]*\(' | tr -d '(' | sort -u | paste -sd, -)

# --- The victim's data, made safely before the trap is laid.
acct=$(q -c "SELECT vs_test.new_account('hijack_$run')")
draft=$(q -c "SELECT vs_test.new_video()")
sched=$(q -c "SELECT vibescaling.schedule_post(vs_test.new_video(), now() + interval '6 minutes', '$acct', 'SELF_ONLY') #>> '{data,id}'")
lo=$(q -c "SELECT vs_test.new_lo(1048576)")
upload=$(q -c "SELECT vibescaling.schedule_post(vs_test.new_video(), now() + interval '6 minutes', '$acct', 'SELF_ONLY', mode => 'inbox') #>> '{data,id}'")
q -c "UPDATE vibescaling.posts SET video_url = NULL, video_lo = $lo WHERE id = '$upload'" >/dev/null
cancel=$(q -c "SELECT vibescaling.schedule_post(vs_test.new_video(), now() + interval '1 day', '$acct', 'SELF_ONLY') #>> '{data,id}'")
published=$(q -c "SELECT vs_test.new_video()")
q -c "SELECT vibescaling.publish_post('$published', '$acct', 'SELF_ONLY')" >/dev/null
q -c "SELECT vibescaling.setup_api_roles()" >/dev/null
q -c "UPDATE vibescaling.tiktok_accounts SET owner = 'hijack-tenant' WHERE id = '$acct';
      UPDATE vibescaling.posts SET owner = 'hijack-tenant' WHERE tiktok_account_id = '$acct' OR id = '$draft'" >/dev/null
# Make the scheduled posts due now (bypassing the 5-minute rule, as time would).
q -c "SET session_replication_role = replica;
      UPDATE vibescaling.posts SET scheduled_at = now() - interval '1 minute' WHERE id IN ('$sched', '$upload')" >/dev/null

# --- The attacker: the database's owner, an ordinary role.
q >/dev/null <<SQL
CREATE ROLE vs_evil_owner LOGIN;
ALTER DATABASE "$db" OWNER TO vs_evil_owner;
ALTER SCHEMA public OWNER TO vs_evil_owner;
-- An application owner is usually let see the extension's types.
GRANT USAGE ON SCHEMA vibescaling TO vs_evil_owner;
SQL

q -v c_names="$c_names" >/dev/null <<'SQL'
SET ROLE vs_evil_owner;
CREATE TABLE public.hijacked (fn text, ctx text, usr text, at timestamptz DEFAULT pg_catalog.clock_timestamp());
GRANT INSERT, SELECT ON public.hijacked TO PUBLIC;

-- Records a call of a look-alike: its name, the call stack, the role.
CREATE FUNCTION public.hijack_note(fn text) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    v_ctx text;
BEGIN
    GET DIAGNOSTICS v_ctx = PG_CONTEXT;
    INSERT INTO public.hijacked (fn, ctx, usr) VALUES (fn, v_ctx, current_user::text);
END
$$;

-- The names to imitate: what the extension's bodies and its C code call.
CREATE TEMP TABLE used_names AS
SELECT DISTINCT m[1] AS name
  FROM pg_catalog.pg_proc p,
       pg_catalog.regexp_matches(p.prosrc, '([a-z_][a-z0-9_]*)\s*\(', 'g') m
 WHERE p.pronamespace IN ('vibescaling'::regnamespace, 'vibescaling_api'::regnamespace)
UNION
SELECT pg_catalog.unnest(pg_catalog.string_to_array(:'c_names', ','));

-- A look-alike of each pg_catalog function of those names, same arguments.
DO $do$
DECLARE
    f record;
    v_ret text;
    v_body text;
    v_made integer := 0;
BEGIN
    FOR f IN
        SELECT p.oid, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
               p.prorettype, p.proretset, p.prokind
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace
           AND p.proname IN (SELECT name FROM used_names)
           AND p.prokind = 'f'
    LOOP
        v_ret := pg_catalog.format_type(f.prorettype, NULL);
        v_body := pg_catalog.format('BEGIN PERFORM public.hijack_note(%L); RETURN%s; END',
                                    f.proname || '(' || f.args || ')',
                                    CASE WHEN f.proretset OR f.prorettype = 'void'::regtype THEN '' ELSE ' NULL' END);
        BEGIN
            EXECUTE pg_catalog.format('CREATE FUNCTION public.%I(%s) RETURNS %s%s LANGUAGE plpgsql AS %L',
                                      f.proname, f.args, CASE WHEN f.proretset THEN 'SETOF ' ELSE '' END, v_ret, v_body);
            v_made := v_made + 1;
        EXCEPTION WHEN OTHERS THEN
            NULL;   -- pseudo-types plpgsql cannot take ("any", internal, cstring, ...)
        END;
    END LOOP;
    RAISE NOTICE 'look-alike functions: %', v_made;
END
$do$;

-- More specific overloads of polymorphic and variadic functions: these
-- win even with the default search_path ("$user", public).
CREATE FUNCTION public.cardinality(uuid[]) RETURNS integer LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('cardinality(uuid[])'); RETURN NULL; END$$;
CREATE FUNCTION public.array_cat(uuid[], uuid[]) RETURNS uuid[] LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('array_cat(uuid[],uuid[])'); RETURN NULL; END$$;
CREATE OPERATOR public.|| (LEFTARG = uuid[], RIGHTARG = uuid[], FUNCTION = public.array_cat);
CREATE FUNCTION public.array_append(uuid[], uuid) RETURNS uuid[] LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('array_append(uuid[],uuid)'); RETURN NULL; END$$;
CREATE OPERATOR public.|| (LEFTARG = uuid[], RIGHTARG = uuid, FUNCTION = public.array_append);
CREATE FUNCTION public.jsonb_populate_record(vibescaling.dispatch_logs, jsonb) RETURNS vibescaling.dispatch_logs
    LANGUAGE plpgsql AS $$BEGIN PERFORM public.hijack_note('jsonb_populate_record(dispatch_logs,jsonb)'); RETURN NULL; END$$;
DO $do$
BEGIN
    FOR n IN 1 .. 6 LOOP
        EXECUTE pg_catalog.format(
            'CREATE FUNCTION public.jsonb_build_object(%s) RETURNS jsonb LANGUAGE plpgsql AS %L',
            pg_catalog.array_to_string(pg_catalog.array_fill('text'::text, ARRAY[2 * n]), ', '),
            pg_catalog.format('BEGIN PERFORM public.hijack_note(%L); RETURN NULL; END',
                              'jsonb_build_object(text x ' || 2 * n || ')'));
    END LOOP;
END
$do$;
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('format(text,text)'); RETURN NULL; END$$;
CREATE FUNCTION public.concat(text, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('concat(text,text)'); RETURN NULL; END$$;
CREATE FUNCTION public.unnest(uuid[]) RETURNS SETOF uuid LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('unnest(uuid[])'); RETURN; END$$;
CREATE FUNCTION public.array_length(uuid[], integer) RETURNS integer LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('array_length(uuid[],integer)'); RETURN NULL; END$$;
CREATE FUNCTION public.jsonb_agg_step(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('jsonb_agg(jsonb)'); RETURN $1; END$$;
CREATE AGGREGATE public.jsonb_agg(jsonb) (SFUNC = public.jsonb_agg_step, STYPE = jsonb);
CREATE FUNCTION public.count_step(bigint) RETURNS bigint LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.hijack_note('count(*)'); RETURN $1; END$$;
CREATE AGGREGATE public.count(*) (SFUNC = public.count_step, STYPE = bigint, INITCOND = '0');

-- A look-alike of each pg_catalog operator the code may use, same operand types.
DO $do$
DECLARE
    o record;
    v_fn text;
    v_made integer := 0;
BEGIN
    FOR o IN
        SELECT op.oid, op.oprname, op.oprleft, op.oprright, op.oprresult
          FROM pg_catalog.pg_operator op
         WHERE op.oprnamespace = 'pg_catalog'::regnamespace
           AND op.oprname IN ('=', '<>', '<', '<=', '>', '>=', '||', '->', '->>', '#>', '#>>', '-', '+', '*', '/',
                              '~', '!~', '~*', '!~*', '@>', '<@', '?', '&&', '#', '|', '&', '%', '^')
           AND op.oprleft <> 0 AND op.oprright <> 0
    LOOP
        v_fn := 'hijack_op_' || o.oid;
        BEGIN
            EXECUTE pg_catalog.format('CREATE FUNCTION public.%I(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
                                      v_fn, pg_catalog.format_type(o.oprleft, NULL), pg_catalog.format_type(o.oprright, NULL),
                                      pg_catalog.format_type(o.oprresult, NULL),
                                      pg_catalog.format('BEGIN PERFORM public.hijack_note(%L); RETURN NULL; END',
                                                        'operator ' || o.oprname || '(' || pg_catalog.format_type(o.oprleft, NULL)
                                                        || ', ' || pg_catalog.format_type(o.oprright, NULL) || ')'));
            EXECUTE pg_catalog.format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.%I)',
                                      o.oprname, pg_catalog.format_type(o.oprleft, NULL),
                                      pg_catalog.format_type(o.oprright, NULL), v_fn);
            v_made := v_made + 1;
        EXCEPTION WHEN OTHERS THEN
            IF v_made = 0 THEN
                RAISE NOTICE 'operator % not imitated: %', o.oprname, SQLERRM;
            END IF;
        END;
    END LOOP;
    RAISE NOTICE 'look-alike operators: %', v_made;
END
$do$;
SQL
lookalikes=$(q -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prosrc LIKE '%hijack_note(%'")
ops=$(q -c "SELECT count(*) FROM pg_operator WHERE oprnamespace = 'public'::regnamespace")
check "the attacker planted look-alikes ($lookalikes functions, $ops operators)" yes \
      "$([ "$lookalikes" -gt 100 ] && [ "$ops" -gt 300 ] && echo yes || echo no)"

# The control: a function without a pinned search_path trips the trap,
# under the database's search_path and under the default one.
q -c "CREATE FUNCTION public.unpinned_probe(a uuid[]) RETURNS integer LANGUAGE plpgsql AS \$\$BEGIN RETURN cardinality(a || a); END\$\$;" >/dev/null
q -c "ALTER DATABASE \"$db\" SET search_path = public, pg_catalog" >/dev/null
hostile -c "SELECT public.unpinned_probe(ARRAY[gen_random_uuid()])" >/dev/null
check "control: an unpinned function called with the attacker's search_path runs the look-alikes" yes \
      "$([ "$(q -c "SELECT count(*) FROM public.hijacked WHERE ctx LIKE '%unpinned_probe%'")" -gt 0 ] && echo yes || echo no)"
PGOPTIONS='-c search_path="$user",public' psql -X -qAt -c "SELECT public.unpinned_probe(ARRAY[gen_random_uuid()])" >/dev/null
check "control: ... and with the default search_path too (cardinality(uuid[]), uuid[] || uuid[])" yes \
      "$([ "$(q -c "SELECT count(*) FROM public.hijacked WHERE ctx LIKE '%unpinned_probe%' AND fn IN ('cardinality(uuid[])', 'array_cat(uuid[],uuid[])')")" -ge 2 ] && echo yes || echo no)"
q -c "TRUNCATE public.hijacked" >/dev/null

# --- Every entry point, as a caller with the attacker's search_path.
hostile >/dev/null 2>&1 <<SQL
SELECT vibescaling.creator_info('$acct'::uuid);
SELECT vibescaling.publish_post('$draft'::uuid, '$acct'::uuid, 'SELF_ONLY');
SELECT vibescaling.publish_status('$published'::uuid);
SELECT vibescaling.reschedule_post('$cancel'::uuid, '2100-01-01 00:00:00+00'::timestamptz);
SELECT vibescaling.cancel_post('$cancel'::uuid);
SELECT vibescaling.authorize_url('https://app.example/cb', 'state');
SELECT vibescaling.connect_account('code-hijack2_$run', 'https://app.example/cb');
SELECT vibescaling.refresh_expiring_tokens('100 years'::interval);
SELECT vibescaling.handle_webhook('{"event": "x"}', 't=1,s=0000000000000000000000000000000000000000000000000000000000000000');
SELECT vibescaling.handle_webhook('{"event": "x"}', NULL);
SELECT vibescaling.poll_publish_statuses();
SELECT vibescaling.http_pool_stats();
SELECT vibescaling.add_account('hijack3_$run', 'act.hijack3', 'rft.hijack3');
CALL vibescaling.dispatch_due_posts();
CALL vibescaling.dispatch_due_uploads();
CALL vibescaling.maintain_logs();
SQL
# The HTTP API, as PostgREST runs it (role switch, claims, the statement).
hostile >/dev/null 2>&1 <<SQL
BEGIN;
SELECT pg_catalog.set_config('role', 'vibescaling_user', true);
SELECT pg_catalog.set_config('request.jwt.claims', '{"role": "vibescaling_user", "sub": "hijack-tenant"}', true);
SELECT vibescaling_api.creator_info('$acct'::uuid);
SELECT vibescaling_api.publish_status('$published'::uuid);
INSERT INTO vibescaling_api.posts (caption, video_url) VALUES ('api draft', 'https://verified.example/a.mp4');
SELECT * FROM vibescaling_api.posts;
SELECT * FROM vibescaling_api.dispatch_logs;
SELECT * FROM vibescaling_api.dispatch_stats;
SELECT * FROM vibescaling_api.accounts;
COMMIT;
BEGIN;
SELECT pg_catalog.set_config('role', 'vibescaling_webhook', true);
SELECT pg_catalog.set_config('request.headers', '{"tiktok-signature": "t=1,s=00"}', true);
SELECT vibescaling_api.handle_webhook('{"event": "x"}'::json);
COMMIT;
SQL

# --- pg_cron, which runs its jobs as the superuser that scheduled them.
q -c "SELECT vibescaling.enable_scheduler('* * * * *')" >/dev/null
q -c "SELECT cron.schedule('vibescaling-refresh', '* * * * *', 'SELECT vibescaling.refresh_expiring_tokens(''100 years'')')" >/dev/null
q -c "SELECT cron.schedule('vibescaling-logs', '* * * * *', 'CALL vibescaling.maintain_logs()')" >/dev/null
jobs_ok=no
for _ in $(seq 1 150); do
  n=$(q -c "SELECT count(DISTINCT j.jobname) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
            WHERE j.jobname IN ('vibescaling-dispatch', 'vibescaling-uploads', 'vibescaling-refresh', 'vibescaling-poll-status',
                                'vibescaling-logs')
              AND d.status IN ('succeeded', 'failed')")
  if [ "$n" -ge 5 ]; then jobs_ok=yes; break; fi
  sleep 1
done
check "pg_cron ran the dispatch, uploads, refresh, status and logs jobs under the attacker's search_path" yes "$jobs_ok"
check "... and they succeeded" "" "$(q -c "SELECT string_agg(DISTINCT j.jobname || ': ' || d.return_message, '; ')
                                            FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                                           WHERE j.jobname LIKE 'vibescaling-%' AND d.status = 'failed'")"
q -c "SELECT vibescaling.disable_scheduler()" >/dev/null

check "the due scheduled post was published under the attacker's search_path" posted \
      "$(q -c "SELECT status || coalesce(': ' || last_error, '') FROM vibescaling.posts WHERE id = '$sched'")"
check "... and so was the upload from a large object" posted \
      "$(q -c "SELECT status || coalesce(': ' || last_error, '') FROM vibescaling.posts WHERE id = '$upload'")"
check "... and the manual publish" posted "$(q -c "SELECT status FROM vibescaling.posts WHERE id = '$draft'")"
check "the token refresher worker refreshed tokens" yes \
      "$([ "$(q -c "SELECT count(*) FROM vibescaling.dispatch_logs WHERE trigger = 'refresh' AND outcome = 'success'")" -gt 0 ] && echo yes || echo no)"

# A look-alike that ran with a caller below it (not the test's own top-level statement).
hijacks=$(q -c "SELECT count(*) FROM public.hijacked WHERE ctx LIKE '%' || chr(10) || '%'")
check "no look-alike ran inside the extension (pg_cron jobs, workers, API, SQL API)" 0 "$hijacks"
if [ "$hijacks" != 0 ]; then
  q -c "SELECT fn, usr, replace(ctx, chr(10), ' <- ') FROM public.hijacked WHERE ctx LIKE '%' || chr(10) || '%' LIMIT 20"
fi

# Put the database back for whatever runs after.
q >/dev/null <<SQL
ALTER DATABASE "$db" RESET search_path;
ALTER DATABASE "$db" OWNER TO CURRENT_USER;
ALTER SCHEMA public OWNER TO pg_database_owner;
REVOKE USAGE ON SCHEMA vibescaling FROM vs_evil_owner;
SQL
finish_checks security_hijack
