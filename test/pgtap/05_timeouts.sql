-- Never hang a backend: connect/total timeouts, statement_timeout and
-- query cancel stop an in-flight TikTok call, and the attempt is logged.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(13);

SELECT 'slow_' || substr(md5(random()::text), 1, 8) AS oid \gset
SELECT vs_test.new_account(:'oid') AS acct \gset
SELECT vs_test.new_video() AS v \gset

-- Runs a statement; answers its SQLSTATE (query_canceled included, which
-- EXCEPTION WHEN OTHERS does not catch) and how long it took in seconds.
CREATE FUNCTION pg_temp.timed(stmt text, OUT code text, OUT seconds numeric)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    BEGIN
        EXECUTE stmt;
        code := 'ok';
    EXCEPTION WHEN query_canceled OR others THEN
        code := SQLSTATE;
    END;
    seconds := round(extract(epoch FROM clock_timestamp() - t0)::numeric, 2);
END
$$;

-- The total timeout: TikTok answers after 3 s, we give up after 0.5 s.
SET vibescaling.request_timeout_ms = 500;
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "action": "slow", "delay_ms": 3000}');
SELECT * FROM pg_temp.timed(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')) \gset t1_
SELECT is(:'t1_code'::text, '08000', 'a reply slower than vibescaling.request_timeout_ms → 08000');
SELECT ok(:'t1_seconds'::numeric < 2, format('... after %s s, not 3', :'t1_seconds'));
SELECT results_eq(format($$SELECT error_code, outcome_unknown, http_status IS NULL FROM vibescaling.dispatch_logs
                          WHERE post_id = %L ORDER BY id DESC LIMIT 1$$, :'v'),
                  $$VALUES ('timeout', true, true)$$,
                  '... logged as a timeout whose outcome is unknown');
RESET vibescaling.request_timeout_ms;

-- statement_timeout cancels the call from curl's progress callback.
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "action": "slow", "delay_ms": 6000}');
SET statement_timeout = '1s';
SELECT * FROM pg_temp.timed(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')) \gset t2_
RESET statement_timeout;
SELECT is(:'t2_code'::text, '57014', 'statement_timeout stops an in-flight call → 57014');
SELECT ok(:'t2_seconds'::numeric < 3, format('... after %s s, not 6', :'t2_seconds'));
SELECT is((SELECT error_code FROM vibescaling.dispatch_logs WHERE post_id = :'v' ORDER BY id DESC LIMIT 1), 'aborted',
          '... and the aborted call is logged');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'v'), 'draft', '... the post is untouched');

-- (pg_cancel_backend from another session: test/system/concurrency.sh.)

-- Nothing listens: connection refused is 08001, and surely not sent.
SET vibescaling.api_base_url = 'http://127.0.0.1:9';
SELECT * FROM pg_temp.timed(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')) \gset t3_
RESET vibescaling.api_base_url;
SELECT is(:'t3_code'::text, '08001', 'connection refused → 08001');
SELECT results_eq(format($$SELECT error_code, outcome_unknown FROM vibescaling.dispatch_logs
                          WHERE post_id = %L ORDER BY id DESC LIMIT 1$$, :'v'),
                  $$VALUES ('connect_failed', false)$$,
                  '... logged as connect_failed, outcome known (nothing was sent)');
SELECT ok((SELECT error_message NOT LIKE '%act.%' FROM vibescaling.dispatch_logs
            WHERE post_id = :'v' ORDER BY id DESC LIMIT 1), '... and the message carries no token');

-- After all that, the same post publishes normally.
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct'),
                'the post publishes once TikTok answers');
SELECT is((SELECT count(*) FROM vs_test.sim_requests(:'oid', 'video_init')), 1::bigint,
          '... with exactly one init');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'v'), 5::bigint,
          'five calls (3 failed creator_info, creator_info, video_init), five rows');

SELECT * FROM finish();
