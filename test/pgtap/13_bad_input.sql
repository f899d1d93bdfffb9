-- Bad input, from both sides: TikTok answering garbage (through real
-- publish_post calls against the simulator), hostile captions and titles
-- that must reach TikTok byte for byte, and every public function and
-- procedure called with NULLs, random ids and wrong types. Nothing may
-- crash the backend, raise internal_error (XX000) or lose a dispatch log.
--
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(79);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT pg_backend_pid() AS pid \gset
SET vs.run = :'run';   -- for the DO blocks

-- Runs a statement; returns code 'ok', or the SQLSTATE, message, detail and hint it raised.
CREATE FUNCTION pg_temp.attempt(stmt text, OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE stmt;
    code := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END
$$;

------------------------------------------------------------------------------
-- 1. TikTok answers video/init with garbage. Each case: a fresh account (the
-- simulator's per-token rate limits), a fault queued for that account only
-- (other sessions may share the simulator), one publish_post. Each must be
-- 08P01 (bad_response) with a message that says what was wrong, the
-- dispatch_logs row must exist, the post must stay a draft, and the same
-- backend must answer the next statement.
------------------------------------------------------------------------------
CREATE TEMP TABLE garbage (
    n int, label text, fault jsonb, http_status int,
    what text,                       -- LIKE pattern: the core's description of the reply
    acct uuid, post uuid, sqlstate text, message text, detail text, hint text);
INSERT INTO garbage (n, label, fault, http_status, what) VALUES
    (1, 'an HTML error page (502)', '{"action": "html", "http_status": 502}', 502,
        'with a body that is not valid JSON: <html>%'),
    (2, 'an empty 200 body', '{"action": "empty"}', 200, 'with an empty body'),
    (3, 'malformed JSON', '{"action": "malformed"}', 200,
        'with a body that is not valid JSON: {"data": {"publish_id": "v_pub_url~v2.12'),
    (4, 'a JSON array instead of an object', '{"action": "array"}', 200,
        'with JSON that is not an object: [{%'),
    (5, 'a 6 MB body', '{"action": "huge"}', 200, 'with a body larger than _ MB'),
    -- The message quotes the start of the body, U+FFFD in place of the invalid bytes.
    (6, 'non-UTF-8 bytes', '{"action": "binary"}', 200,
        'with a body that is not valid JSON: {"data": {"publish_id": "v_pub_url~v2.' || chr(65533) || '%'),
    (7, 'wrong types (error.code 7, message null, log_id [])', '{"action": "wrongtypes"}', 200,
        'with an "error" that has no code: {%"code": 7%');

DO $$
DECLARE
    g record;
    v_open_id text;
    r record;
BEGIN
    FOR g IN SELECT * FROM garbage ORDER BY n LOOP
        v_open_id := format('garbage%s_%s', g.n, current_setting('vs.run'));
        UPDATE garbage SET acct = vs_test.new_account(v_open_id), post = vs_test.new_video() WHERE n = g.n;
        PERFORM vs_test.sim_post('/_sim/faults', g.fault || jsonb_build_object('endpoint', 'video_init', 'open_id', v_open_id));
        SELECT * INTO r FROM pg_temp.attempt(
            (SELECT format('SELECT vibescaling.publish_post(%L, %L, %L)', post, acct, 'SELF_ONLY') FROM garbage WHERE n = g.n));
        UPDATE garbage SET sqlstate = r.code, message = r.message, detail = r.detail, hint = r.hint WHERE n = g.n;
    END LOOP;
END
$$;

-- One row per assertion, case after case.
SELECT t FROM (SELECT * FROM garbage ORDER BY n) g CROSS JOIN LATERAL (VALUES
      (is(sqlstate, '08P01', format('%s → 08P01 (bad_response)', label))),
      (alike(message || E'\n' || detail,
             -- (a reply too large to read leaves the init's outcome unknown: the message says so)
             'TikTok video_init failed: bad_response (log_id %)%' || E'\n'
             || format('http_status=%s error_code=bad_response %% message=TikTok replied HTTP %s ', http_status, http_status)
             || what || '%the outcome is unknown (TikTok may have created the post), so the init will not be resent%',
             format('%s: the message names the call and bad_response, the detail the HTTP status and what was wrong', label))),
      (is(ARRAY(SELECT format('%s %s %s %s %s', l.endpoint, l.http_status, l.outcome, l.error_code,
                              (l.error_message LIKE format('TikTok replied HTTP %s ', g.http_status) || g.what || '%will not be resent')::text)
                  FROM vibescaling.dispatch_logs l WHERE l.post_id = g.post AND l.endpoint = 'video_init'),
          ARRAY[format('video_init %s failure bad_response true', http_status)],
          format('%s: one dispatch_logs row, a failure with the HTTP status, bad_response and the description', label))),
      (is((SELECT status FROM vibescaling.posts p WHERE p.id = g.post), 'draft',
          format('%s: the post is still a draft', label))),
      (is(pg_backend_pid(), :pid, format('%s: the same backend answers the next statement', label)))) v(t);

-- A 200 whose error.code is "ok" but whose data.publish_id is a number: TikTok
-- says it accepted the init, and we cannot name the publish. The statement is
-- refused (08P01), logged as a bad reply of unknown outcome, and not sent again.
SELECT vs_test.new_account('garbage8_' || :'run') AS acct8 \gset
SELECT vs_test.new_video() AS post8 \gset
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'action', 'wrongtypes',
                                                           'error_code', 'ok', 'open_id', 'garbage8_' || :'run')) IS NOT NULL AS queued \gset
SELECT code AS sqlstate, message, coalesce(detail, '') AS detail
  FROM pg_temp.attempt(format('SELECT vibescaling.publish_post(%L, %L, %L)', :'post8', :'acct8', 'SELF_ONLY')) \gset t8_
SELECT is(:'t8_sqlstate'::text, '08P01', '"ok" with a numeric data.publish_id → 08P01');
SELECT alike(:'t8_message' || ' ' || :'t8_detail', '%publish_id%',
             '... and the error says the publish_id is what is wrong');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'post8'), 'draft', '... the post is still a draft');
SELECT is(pg_backend_pid(), :pid, '... the same backend answers the next statement');
-- What dispatch_due_posts does for one post (_publish_locked with trigger
-- 'scheduler'), called directly: CALLing the dispatcher would also take other
-- sessions' due posts.
SELECT vs_test.new_video() AS post9 \gset
SELECT vibescaling.schedule_post(:'post9', now() + interval '1 hour', :'acct8', 'SELF_ONLY') IS NOT NULL AS scheduled \gset
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'action', 'wrongtypes',
                                                           'error_code', 'ok', 'open_id', 'garbage8_' || :'run')) IS NOT NULL AS queued \gset
SELECT is((pg_temp.attempt(format('SELECT vibescaling._publish_locked(%L, %L)', :'post9', 'scheduler'))).code, '08P01',
          '... the dispatcher''s step refuses it too (08P01)');
SELECT is(ARRAY(SELECT format('%s %s %s %s', endpoint, http_status, outcome, error_code)
                  FROM vibescaling.dispatch_logs WHERE post_id = :'post8' AND endpoint = 'video_init'),
          ARRAY['video_init 200 failure bad_response'],
          '... its dispatch_logs row is a failure (bad_response), as the 08P01 says, not a success');
SELECT unalike((pg_temp.attempt(format('SELECT vibescaling.publish_post(%L, %L, %L)', :'post8', :'acct8', 'SELF_ONLY'))).message,
               '%(publish_id <NULL>)%',
               '... publishing it again is not refused as "already sent to TikTok (publish_id <NULL>)"');
SELECT isnt((pg_temp.attempt(format('SELECT vibescaling._publish_locked(%L, %L)', :'post9', 'scheduler'))).code, '23502',
            '... and the dispatcher''s next run on such a post does not "reconcile" the missing publish_id into a not-null violation (23502)');
SELECT (pg_temp.attempt(format('SELECT vibescaling.cancel_post(%L)', :'post9'))).code AS cleanup \gset

------------------------------------------------------------------------------
-- 2. Hostile captions and titles are published, and TikTok receives exactly
-- the same string (the simulator's request log, post_info.title/description).
------------------------------------------------------------------------------
CREATE TEMP TABLE captions (n int, label text, caption text, outcome text, sent text);
INSERT INTO captions (n, label, caption) VALUES
    (1, 'single quotes', $c$It's a 'quoted' caption, ''doubled'' and a lone '$c$),
    (2, 'double quotes', $c$She said "hi", "" and \"escaped\" and a lone "$c$),
    (3, 'backslashes', $c$back\slash \n \t \u0041 \\ \" \x00 \$c$),
    (4, 'newlines, CR and tabs', E'line 1\nline 2\r\n\tindented\rcarriage\n\n\t'),
    (5, 'control characters 1..31 and DEL',
        (SELECT string_agg(chr(i), '' ORDER BY i) FROM generate_series(1, 31) i) || chr(127) || ' end'),
    (6, 'SQL-ish', $c$'); DROP TABLE x; -- "); DROP TABLE vibescaling.posts; -- %s %I %L $1 :'run' \gexec$c$),
    (7, 'JSON-ish', $c${"a":1} {"data":{"publish_id":"evil"},"error":{"code":"ok"}} ["x",null,{}] \u0000 }]"$c$),
    (8, 'emoji and other astral characters',
        '🚀 launch 👩‍👩‍👧‍👦 🇫🇷 𝕍𝕚𝕓𝕖 ' || chr(128512) || chr(917601) || chr(1114109)
        || ' BOM' || chr(65279) || ' LS' || chr(8232) || ' PS' || chr(8233) || ' ' || chr(65533) || chr(65535)),
    (9, '2200 UTF-16 units (the limit) of astral characters', repeat(chr(128512), 1100));

DO $$
DECLARE
    c record;
    v_open_id text;
    v_acct uuid;
    v_post uuid;
    r record;
BEGIN
    FOR c IN SELECT * FROM captions ORDER BY n LOOP
        v_open_id := format('caption%s_%s', c.n, current_setting('vs.run'));
        v_acct := vs_test.new_account(v_open_id);
        v_post := vs_test.new_video(c.caption);
        SELECT * INTO r FROM pg_temp.attempt(format('SELECT vibescaling.publish_post(%L, %L, %L)', v_post, v_acct, 'SELF_ONLY'));
        UPDATE captions
           SET outcome = CASE r.code WHEN 'ok' THEN (SELECT status FROM vibescaling.posts WHERE id = v_post)
                                         ELSE r.code || ' ' || r.message END,
               sent = (SELECT s->'body'->'post_info'->>'title' FROM vs_test.sim_requests(v_open_id, 'video_init') s
                        WHERE s->>'http_status' = '200')
         WHERE n = c.n;
    END LOOP;
END
$$;

SELECT t FROM (SELECT * FROM captions ORDER BY n) c CROSS JOIN LATERAL (VALUES
      (is(outcome, 'posted', format('a caption with %s is published', label))),
      (is(sent, caption, format('... and TikTok receives exactly that post_info.title (%s)', label)))) v(t);

-- A photo post: its title and description (the caption) take the same junk.
SELECT vs_test.new_account('photo_' || :'run') AS photo_acct \gset
SELECT vs_test.new_photo(2, E'It''s "a" \\ desc\n\t' || chr(1) || chr(31) || $c$'); DROP TABLE x; -- {"a":1} $c$ || '🚀' || chr(1114109),
                         E'T\'it"le\\ \n\t' || chr(7) || ' {"a":1} 🚀' || chr(128512)) AS photo \gset
SELECT is((pg_temp.attempt(format('SELECT vibescaling.publish_post(%L, %L, %L)', :'photo', :'photo_acct', 'SELF_ONLY'))).code,
          'ok', 'a photo post with a hostile title and description is published');
SELECT is((SELECT s->'body'->'post_info'->>'title' FROM vs_test.sim_requests('photo_' || :'run', 'content_init') s),
          (SELECT title FROM vibescaling.posts WHERE id = :'photo'),
          '... and TikTok receives exactly its title');
SELECT is((SELECT s->'body'->'post_info'->>'description' FROM vs_test.sim_requests('photo_' || :'run', 'content_init') s),
          (SELECT caption FROM vibescaling.posts WHERE id = :'photo'),
          '... and exactly its description');

------------------------------------------------------------------------------
-- 3. Every function and procedure of schema vibescaling not starting with '_'
-- (listed from pg_catalog, so new ones are covered), called with all-NULL
-- arguments, and the one-uuid ones also with a random uuid. Each must
-- succeed or raise a clear error in class 22, 42, 55, P0, 28, 08 or 53.
--
-- Side effects: every call runs in a subtransaction that is then rolled back
-- on purpose (a sentinel error, VS000, means "it succeeded"), so none of
-- them changes anything transactional. That covers disable_scheduler()
-- (would drop the pg_cron jobs other suites and the developers' clusters
-- rely on) and enable_scheduler(NULL). Nothing here may reach TikTok, which
-- no rollback could undo; checked below in dispatch_logs. With a NULL
-- argument refresh_expiring_tokens (token rotation in background workers,
-- committed on their own) and dispatch_due_posts (publishes other sessions'
-- due posts and COMMITs, which a subtransaction cannot) select nothing
-- today; if either ever read NULL as "the default", the dispatch_logs check
-- or a 2D000 (COMMIT in a subtransaction) would fail this test.
------------------------------------------------------------------------------
SELECT coalesce(max(id), 0) AS log_mark FROM vibescaling.dispatch_logs \gset
CREATE TEMP TABLE calls (fn text, proname text, stmt text, all_null boolean, first_arg regtype,
                         sqlstate text, message text);
DO $$
DECLARE
    f record;
    v_args text;
    v_stmt text;
    v_state text;
    v_message text;
BEGIN
    FOR f IN SELECT p.oid::regprocedure::text AS fn, p.proname::text, p.prokind, p.proargtypes,
                    coalesce((SELECT string_agg(format('NULL::%s', format_type(t, NULL)), ', ' ORDER BY i)
                                FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)), '') AS nulls,
                    (p.pronargs = 1 AND p.proargtypes[0] = 'uuid'::regtype) AS one_uuid
               FROM pg_proc p
              WHERE p.pronamespace = 'vibescaling'::regnamespace AND p.proname !~ '^_'
                AND p.prorettype <> 'trigger'::regtype
              ORDER BY p.proname, p.oid LOOP
        FOREACH v_args IN ARRAY CASE WHEN f.one_uuid THEN ARRAY[f.nulls, quote_literal(gen_random_uuid()) || '::uuid']
                                     ELSE ARRAY[f.nulls] END LOOP
            v_stmt := format('%s vibescaling.%I(%s)', CASE f.prokind WHEN 'p' THEN 'CALL' ELSE 'SELECT' END,
                             f.proname, v_args);
            BEGIN
                EXECUTE v_stmt;
                RAISE EXCEPTION 'succeeded' USING ERRCODE = 'VS000';
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            END;
            INSERT INTO calls VALUES (f.fn, f.proname, v_stmt, v_args = f.nulls, f.proargtypes[0]::regtype,
                                      CASE v_state WHEN 'VS000' THEN 'ok' ELSE v_state END,
                                      CASE v_state WHEN 'VS000' THEN NULL ELSE v_message END);
        END LOOP;
    END LOOP;
END
$$;

SELECT ok((SELECT count(DISTINCT fn) FROM calls) >= 15
          AND (SELECT count(DISTINCT fn) FROM calls)
              = (SELECT count(*) FROM pg_proc WHERE pronamespace = 'vibescaling'::regnamespace AND proname !~ '^_'
                                                AND prorettype <> 'trigger'::regtype),
          format('every public function and procedure was called (%s)',
                 (SELECT string_agg(DISTINCT proname, ', ') FROM calls)));
SELECT is(ARRAY(SELECT format('%s → %s %s', stmt, sqlstate, message) FROM calls
                 WHERE sqlstate <> 'ok'
                   AND (left(sqlstate, 2) NOT IN ('22', '42', '55', 'P0', '28', '08', '53')
                        OR sqlstate = 'XX000' OR coalesce(message, '') = '')
                   AND NOT (proname = 'maintain_logs' AND sqlstate = '2D000')
),
          '{}'::text[],
          'with NULL arguments each succeeds or raises a clear error in class 22, 42, 55, P0, 28, 08 or 53 (never XX000)');
SELECT is(ARRAY(SELECT format('%s → %s %s', stmt, sqlstate, message) FROM calls
                 WHERE NOT all_null AND sqlstate <> 'P0002'),
          '{}'::text[], 'a random uuid is P0002 (unknown post or account) for every one-uuid function');
SELECT is(ARRAY(SELECT format('%s %s', endpoint, error_code) FROM vibescaling.dispatch_logs
                 WHERE id > :log_mark AND backend_pid = pg_backend_pid() AND endpoint <> 'webhook'),
          '{}'::text[], 'none of those calls reached TikTok (handle_webhook''s refusal is its only log row)');
SELECT is((SELECT sqlstate FROM calls WHERE proname = 'maintain_logs'), '2D000',
          'maintain_logs inside a transaction block → 2D000 (it commits step by step: CALL it on its own)');
SELECT is((SELECT sqlstate FROM calls WHERE proname = 'enable_scheduler' AND all_null), '22004',
          'enable_scheduler(NULL) → 22004 (required argument NULL), not XX000 internal_error');
SELECT is(ARRAY(SELECT format('%s → %s %s', stmt, sqlstate, message) FROM calls
                 WHERE all_null AND first_arg = 'uuid'::regtype AND sqlstate <> '22004'),
          '{}'::text[], 'a NULL post or account id is 22004 (README errors table) in every function that takes one');

-- Wrong types fail in PostgreSQL's own input parsing, before the extension runs.
SELECT vs_test.new_account('types_' || :'run') AS types_acct \gset
SELECT vs_test.new_video() AS types_post \gset
SELECT throws_ok(format($$SELECT vibescaling.publish_post('not-a-uuid', %L, 'SELF_ONLY')$$, :'types_acct'),
                 '22P02', 'invalid input syntax for type uuid: "not-a-uuid"',
                 'publish_post with a post_id that is not a uuid → 22P02 from uuid input');
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L::uuid, %L::uuid, 42)$$, :'types_post', :'types_acct'),
                 '42883', 'function vibescaling.publish_post(uuid, uuid, integer) does not exist',
                 'publish_post with an integer privacy_level → 42883 (no such function)');
SELECT throws_ok(format($$SELECT vibescaling.schedule_post(%L, 'tomorrow-ish', %L, 'SELF_ONLY')$$, :'types_post', :'types_acct'),
                 '22007', 'invalid input syntax for type timestamp with time zone: "tomorrow-ish"',
                 'schedule_post with scheduled_at ''tomorrow-ish'' → 22007 from timestamptz input');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'types_post'), 'draft', '... the post is untouched');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'types_post'), 0::bigint,
          '... and nothing was sent to TikTok for it');

------------------------------------------------------------------------------
-- 4. The backend is alive and well.
------------------------------------------------------------------------------
SELECT is((SELECT 1), 1, 'SELECT 1 works');
SELECT ok((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') >= 1,
          'pg_stat_activity lists client backends');
SELECT is(pg_backend_pid(), :pid, 'the same backend ran every test: nothing crashed it');

SELECT * FROM finish();
