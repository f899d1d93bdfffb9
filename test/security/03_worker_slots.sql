-- Defect 4: any SQL user can take every background worker slot with a
-- parallel query. The durable log then could not be written, and it used
-- to fall back to the caller's transaction (lost on rollback: a duplicate
-- post; unlogged calls: the rate limiter bypassed; GET publish_status:
-- 25006 after calling TikTok). Now the permanent log writer, once
-- running, needs no slot (a token refresh neither); and when it is not
-- running and cannot start,
-- nothing is sent without its committed log row: the call fails with a
-- retryable 53000 and TikTok sees nothing.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(16);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vs_test.new_account('slots_' || :'run') AS acct \gset
SELECT vs_test.new_video() AS published \gset
SELECT vibescaling.publish_post(:'published', :'acct', 'SELF_ONLY') IS NOT NULL AS ok \gset
SELECT vs_test.new_video() AS draft \gset
SELECT count(*) AS calls_before FROM vs_test.sim_requests('slots_' || :'run') \gset

-- The writer that publish started leaves: the next write must start one, and there will be no slot.
CREATE FUNCTION pg_temp.writers() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'vibescaling log writer' AND datname = current_database()
$$;
CREATE FUNCTION pg_temp.stop_writer() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE backend_type = 'vibescaling log writer' AND datname = current_database();
    FOR i IN 1 .. 50 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN pg_temp.writers() = 0;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN pg_temp.writers();
END
$$;
SELECT is(pg_temp.stop_writer(), 0::bigint, 'the database''s log writer is stopped');

-- A table of one-row pages, scanned by as many parallel workers as the server will start.
CREATE TABLE public.sec_fill (id integer, pad text) WITH (fillfactor = 10, parallel_workers = 64);
INSERT INTO public.sec_fill SELECT i, repeat('x', 2000) FROM generate_series(1, 64) i;
ANALYZE public.sec_fill;
SELECT dblink_connect('filler', format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
                                       split_part(current_setting('unix_socket_directories'), ',', 1))) AS connected \gset
SELECT dblink_exec('filler', 'SET max_parallel_workers = 64; SET max_parallel_workers_per_gather = 64;'
                             'SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0')
    AS configured \gset
CREATE FUNCTION pg_temp.fill_slots() RETURNS integer LANGUAGE sql AS $$
    SELECT dblink_send_query('filler', 'SELECT count(*) FROM public.sec_fill WHERE pg_sleep(3) IS NOT NULL')
$$;
SELECT pg_temp.fill_slots() AS sent \gset

-- Waits until the parallel workers stop multiplying: every free slot is taken.
CREATE FUNCTION pg_temp.wait_for_full_slots() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_now  integer := -1;
    v_last integer;
BEGIN
    FOR i IN 1 .. 50 LOOP
        v_last := v_now;
        PERFORM pg_sleep(0.1);
        SELECT count(*) INTO v_now FROM pg_stat_activity WHERE backend_type = 'parallel worker';
        EXIT WHEN v_now > 0 AND v_now = v_last;
    END LOOP;
    RETURN v_now;
END
$$;
SELECT cmp_ok(pg_temp.wait_for_full_slots(), '>', 0, 'a parallel query holds the free background worker slots');

SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'draft', :'acct')),
          '53000', 'with no writer and no slot to start one, publish_post fails with 53000 (retryable): its log row cannot be committed');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'draft'), 'draft', '... the post stays a draft');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.creator_info(%L)$$, :'acct')), '53000',
          'creator_info fails the same way');
BEGIN READ ONLY;
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_status(%L)$$, :'published')), '53000',
          'publish_status in a read-only transaction (a GET) fails with 53000, not 25006');
COMMIT;
SELECT is((SELECT count(*) FROM vs_test.sim_requests('slots_' || :'run')), :'calls_before'::bigint,
          '... and TikTok received none of those calls');

SELECT is((SELECT c FROM dblink_get_result('filler') AS t(c bigint)), 64::bigint, 'the parallel query ends');
SELECT count(*) AS rest FROM dblink_get_result('filler') AS t(c bigint) \gset

-- With the slots free again, the same publish goes through, once.
SELECT is(vibescaling.publish_post(:'draft', :'acct', 'SELF_ONLY') #>> '{data,publish_id}' IS NOT NULL, true,
          'once slots are free, the publish goes through');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('slots_' || :'run', 'video_init')), 2::bigint,
          '... with one init for each of the two posts');

-- With the writer running, taking every slot stops nothing: it needs none.
SELECT vs_test.new_video() AS draft2 \gset
SELECT is(pg_temp.writers(), 1::bigint, 'that publish started the database''s log writer again');
SELECT pg_temp.fill_slots() AS sent \gset
SELECT cmp_ok(pg_temp.wait_for_full_slots(), '>', 0, 'a parallel query holds the free background worker slots again');
SELECT is(vibescaling.publish_post(:'draft2', :'acct', 'SELF_ONLY') #>> '{data,publish_id}' IS NOT NULL, true,
          '... and a publish goes through: its log rows go to the running writer');
-- A token refresh needs no slot either: the backend calls TikTok, and the
-- running writer stores the new tokens with the call's row.
SELECT vs_test.new_account('slots_rf_' || :'run') AS acct_rf \gset
UPDATE vibescaling.tiktok_accounts SET access_token_expires_at = now() + interval '1 minute' WHERE id = :'acct_rf';
SELECT token_version AS version_before FROM vibescaling.tiktok_accounts WHERE id = :'acct_rf' \gset
SELECT is(vibescaling.publish_post(vs_test.new_video(), :'acct_rf', 'SELF_ONLY') #>> '{data,publish_id}' IS NOT NULL, true,
          '... and a publish whose token must be refreshed first goes through');
SELECT is((SELECT token_version FROM vibescaling.tiktok_accounts WHERE id = :'acct_rf'), :'version_before'::bigint + 1,
          '... after one refresh, stored durably (token_version + 1)');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs
            WHERE tiktok_account_id = :'acct_rf' AND endpoint = 'oauth_token' AND outcome = 'success' AND NOT outcome_unknown),
          1::bigint, '... whose oauth_token call is logged, its "in flight" row replaced by the outcome');
SELECT c AS filled FROM dblink_get_result('filler') AS t(c bigint) \gset
SELECT dblink_disconnect('filler') AS disconnected \gset
DROP TABLE public.sec_fill;

SELECT * FROM finish();
