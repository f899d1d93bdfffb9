-- The dispatcher's retries: transient failures come back later with
-- exponential backoff, others fail at once, unknown outcomes are not
-- resent; cancel_post and reschedule_post.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(22);

SELECT substr(md5(random()::text), 1, 8) AS run \gset

-- Schedules a fresh post for a fresh account 10 minutes ahead; answers its id.
CREATE FUNCTION pg_temp.scheduled_post(open_id text) RETURNS uuid LANGUAGE sql AS $$
    SELECT (vibescaling.schedule_post(vs_test.new_video('retry me'), now() + interval '10 minutes',
                                      vs_test.new_account(open_id), 'SELF_ONLY') #>> '{data,id}')::uuid
$$;

-- 1. A 500 from TikTok's creator_info: retried later, then published. (A
-- 5xx to an init is not retried: TikTok may have acted; see 5.)
SELECT pg_temp.scheduled_post('retry1_' || :'run') AS p1 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "http_status": 500, "error_code": "internal_error"}');
SELECT now() + interval '11 minutes' AS t1 \gset
-- The delay counts from the answer, on the run's clock: as_of plus the time
-- since the CALL began (at most its duration).
SELECT clock_timestamp() AS c0 \gset
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT clock_timestamp() - :'c0'::timestamptz AS call_took \gset
SELECT results_eq(format($$SELECT status, attempts FROM vibescaling.posts WHERE id = %L$$, :'p1'),
                  $$VALUES ('scheduled', 1)$$, 'a transient failure leaves the post scheduled, attempts 1');
SELECT ok((SELECT next_attempt_at BETWEEN :'t1'::timestamptz + interval '30 seconds'
                                      AND :'t1'::timestamptz + interval '60 seconds' + :'call_took'::interval
             FROM vibescaling.posts WHERE id = :'p1'),
          '... next attempt after the base delay (60 s) with jitter (30-60 s), counted from the answer on the run''s clock');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = :'p1'),
               'internal_error .*\[SQLSTATE 08000\] \(attempt 1, will retry\)$', '... and last_error says why and what next');
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT is((SELECT attempts FROM vibescaling.posts WHERE id = :'p1'), 1, 'before next_attempt_at nothing happens');
SELECT :'t1'::timestamptz + interval '5 minutes' AS t2 \gset
CALL vibescaling.dispatch_due_posts(:'t2');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p1'), 'posted', 'the retry publishes it');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('retry1_' || :'run', 'video_init') r WHERE (r->>'http_status')::int = 200),
          1::bigint, '... with exactly one successful init');

-- 2. Rate limited (429): retried too.
SELECT pg_temp.scheduled_post('retry2_' || :'run') AS p2 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "http_status": 429, "error_code": "rate_limit_exceeded"}');
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT is((SELECT status || '/' || attempts FROM vibescaling.posts WHERE id = :'p2'), 'scheduled/1', 'a 429 is retried');
CALL vibescaling.dispatch_due_posts(:'t2');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p2'), 'posted', '... and then published');

-- 3. Not transient: fails at once.
SELECT pg_temp.scheduled_post('retry3_' || :'run') AS p3 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "video_init", "http_status": 403, "error_code": "spam_risk_too_many_posts"}');
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT results_eq(format($$SELECT status, attempts, next_attempt_at IS NULL FROM vibescaling.posts WHERE id = %L$$, :'p3'),
                  $$VALUES ('failed', 1, true)$$, 'a daily cap (not retryable) fails the post at once');

-- 4. Attempts run out.
SET vibescaling.max_attempts = 2;
SELECT pg_temp.scheduled_post('retry4_' || :'run') AS p4 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "count": 2, "http_status": 503, "error_code": "internal_error"}');
CALL vibescaling.dispatch_due_posts(:'t1');
CALL vibescaling.dispatch_due_posts(:'t2');
SELECT results_eq(format($$SELECT status, attempts FROM vibescaling.posts WHERE id = %L$$, :'p4'),
                  $$VALUES ('failed', 2)$$, 'after vibescaling.max_attempts the post fails');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = :'p4'), '\(attempt 2, no attempts left\)$',
               '... saying so');
RESET vibescaling.max_attempts;

-- 5. Unknown outcome (the connection dropped after the init was sent): not resent.
SELECT pg_temp.scheduled_post('retry5_' || :'run') AS p5 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "video_init", "action": "drop", "after_processing": true}');
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p5'), 'publishing',
          'an init whose outcome is unknown is not retried blindly: the post is publishing until settled');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('retry5_' || :'run', 'video_init')), 1::bigint,
          '... TikTok got one init (which it did carry out)');
SELECT ok((SELECT outcome_unknown FROM vibescaling.dispatch_logs WHERE post_id = :'p5' AND endpoint = 'video_init'),
          '... and the dispatch log marks it outcome_unknown');

-- 6. cancel_post / reschedule_post.
SELECT pg_temp.scheduled_post('cancel_' || :'run') AS p6 \gset
SELECT is(vibescaling.cancel_post(:'p6') #>> '{data,status}', 'draft', 'cancel_post turns a scheduled post back into a draft');
SELECT ok((SELECT scheduled_at IS NULL FROM vibescaling.posts WHERE id = :'p6'), '... without a time');
SELECT throws_ok(format('SELECT vibescaling.cancel_post(%L)', :'p6'), '55000', NULL, 'cancelling a draft is refused');
SELECT throws_ok(format('SELECT vibescaling.cancel_post(%L)', :'p1'), '55000', NULL, 'cancelling a posted post is refused');
SELECT throws_ok($$SELECT vibescaling.cancel_post('00000000-0000-0000-0000-00000000dead')$$, 'P0002', NULL,
                 'cancelling an unknown post: P0002');
SELECT pg_temp.scheduled_post('resched_' || :'run') AS p7 \gset
SELECT ok((vibescaling.reschedule_post(:'p7', now() + interval '2 hours') #>> '{data,scheduled_at}')::timestamptz
          > now() + interval '119 minutes', 'reschedule_post moves a scheduled post');
SELECT throws_ok(format($$SELECT vibescaling.reschedule_post(%L, now() + interval '1 minute')$$, :'p7'), '22023', NULL,
                 'rescheduling under 5 minutes ahead is refused');
SELECT throws_ok(format($$SELECT vibescaling.reschedule_post(%L, now() + interval '1 hour')$$, :'p1'), '55000', NULL,
                 'rescheduling a posted post is refused');

SELECT * FROM finish();
