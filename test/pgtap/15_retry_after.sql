-- TikTok's Retry-After header: carried into the error's DETAIL as
-- " retry_after=N", kept in the durable log, and honoured: the dispatcher
-- never retries sooner than TikTok asked (the larger of its backoff and
-- Retry-After), and no call of the bucket leaves for the account before
-- Retry-After has passed since the answer, even when the post's own
-- record of the wait was lost.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(18);

SELECT substr(md5(random()::text), 1, 8) AS run \gset

-- Schedules a fresh post for a fresh account 10 minutes ahead; answers its id.
CREATE FUNCTION pg_temp.scheduled_post(open_id text) RETURNS uuid LANGUAGE sql AS $$
    SELECT (vibescaling.schedule_post(vs_test.new_video('retry after me'), now() + interval '10 minutes',
                                      vs_test.new_account(open_id), 'SELF_ONLY') #>> '{data,id}')::uuid
$$;

-- Queues one video_init fault for open_id's calls only (other sessions may share the simulator).
CREATE FUNCTION pg_temp.init_fault(open_id text, fault jsonb) RETURNS void LANGUAGE sql AS $$
    SELECT vs_test.sim_post('/_sim/faults', fault || jsonb_build_object('endpoint', 'video_init', 'open_id', open_id));
    SELECT NULL::void
$$;

-- Runs a statement; the DETAIL of the error it raised (NULL when it did not raise).
CREATE FUNCTION pg_temp.detail_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_detail text;
BEGIN
    EXECUTE stmt;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_detail;
END
$$;

SELECT now() + interval '11 minutes' AS t1 \gset

-- 1. A 429 with Retry-After: 900 (the backoff alone would be 30-60 s).
SELECT pg_temp.scheduled_post('ra1_' || :'run') AS p1 \gset
SELECT pg_temp.init_fault('ra1_' || :'run',
    '{"http_status": 429, "error_code": "rate_limit_exceeded", "retry_after": 900}');
-- Waits count from the answer, on the run's clock: as_of plus the time
-- since the CALL began (at most its duration).
SELECT clock_timestamp() AS c0 \gset
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT clock_timestamp() - :'c0'::timestamptz AS call_took \gset
SELECT results_eq(format($$SELECT status, attempts FROM vibescaling.posts WHERE id = %L$$, :'p1'),
                  $$VALUES ('scheduled', 1)$$, 'a 429 with Retry-After leaves the post scheduled, attempts 1');
SELECT ok((SELECT next_attempt_at > :'t1'::timestamptz + interval '900 seconds'
             FROM vibescaling.posts WHERE id = :'p1'),
          '... next attempt later than as_of + Retry-After (900 s): counted from the answer');
SELECT ok((SELECT next_attempt_at <= :'t1'::timestamptz + interval '900 seconds' + :'call_took'::interval
             FROM vibescaling.posts WHERE id = :'p1'),
          '... by no more than the CALL took: Retry-After, not the backoff, and no longer');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = :'p1'),
               'rate_limit_exceeded .*\[SQLSTATE 53000\] \(attempt 1, will retry\)$', '... and last_error says why and what next');

-- Past the backoff but before Retry-After: nothing happens.
SELECT :'t1'::timestamptz + interval '5 minutes' AS t2 \gset
CALL vibescaling.dispatch_due_posts(:'t2');
SELECT is((SELECT status || '/' || attempts FROM vibescaling.posts WHERE id = :'p1'), 'scheduled/1',
          'a run after the backoff but before Retry-After leaves it alone');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'p1' AND endpoint = 'video_init'), 1::bigint,
          '... no second init was sent');

-- The wait outlives the post's record of it: with next_attempt_at lost (a
-- round cancelled or crashed after the 429), the post is due again, but
-- the durable log still holds TikTok's Retry-After (counted from the
-- answer, in real time): the init is not sent, the post waits again.
UPDATE vibescaling.posts SET next_attempt_at = now() - interval '1 second' WHERE id = :'p1';
SELECT :'t1'::timestamptz + interval '901 seconds' AS t3 \gset
CALL vibescaling.dispatch_due_posts(:'t3');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs
            WHERE post_id = :'p1' AND endpoint = 'video_init' AND http_status IS NOT NULL), 1::bigint,
          'with the backoff record lost, no init goes out before TikTok''s Retry-After has passed');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('ra1_' || :'run', 'video_init') r), 1::bigint,
          '... TikTok saw one init');
SELECT ok((SELECT status = 'scheduled' AND attempts = 2 AND next_attempt_at >= :'t3'::timestamptz + interval '890 seconds'
                  AND last_error LIKE '%rate_limited%'
             FROM vibescaling.posts WHERE id = :'p1'),
          '... the post waits again, rate_limited, until Retry-After has passed');

-- A short Retry-After: the retry waits it out (the sequential pass waits up
-- to vibescaling.rate_limit_max_wait), then publishes, no sooner than the
-- answer's time plus Retry-After.
SELECT pg_temp.scheduled_post('ra5_' || :'run') AS p5 \gset
SELECT pg_temp.init_fault('ra5_' || :'run',
    '{"http_status": 429, "error_code": "rate_limit_exceeded", "retry_after": 2}');
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT :'t1'::timestamptz + interval '61 seconds' AS t5 \gset
CALL vibescaling.dispatch_due_posts(:'t5');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p5'), 'posted', 'after a 2 s Retry-After the retry publishes it');
SELECT ok((SELECT s.created_at >= f.created_at + make_interval(secs => f.duration_ms / 1000 + 2)
             FROM vibescaling.dispatch_logs f, vibescaling.dispatch_logs s
            WHERE f.post_id = :'p5' AND f.endpoint = 'video_init' AND f.http_status = 429
              AND s.post_id = :'p5' AND s.endpoint = 'video_init' AND s.http_status = 200),
          '... its init was sent no sooner than the 429''s answer plus Retry-After');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('ra5_' || :'run', 'video_init') r WHERE (r->>'http_status')::int = 200),
          1::bigint, '... with exactly one successful init');

-- 2. The same 429 without Retry-After: the backoff applies.
SELECT pg_temp.scheduled_post('ra2_' || :'run') AS p2 \gset
SELECT pg_temp.init_fault('ra2_' || :'run', '{"http_status": 429, "error_code": "rate_limit_exceeded"}');
SELECT clock_timestamp() AS c0 \gset
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT clock_timestamp() - :'c0'::timestamptz AS call_took \gset
SELECT ok((SELECT status = 'scheduled' AND next_attempt_at BETWEEN :'t1'::timestamptz + interval '30 seconds'
                                                            AND :'t1'::timestamptz + interval '60 seconds' + :'call_took'::interval
             FROM vibescaling.posts WHERE id = :'p2'),
          'without Retry-After the backoff applies (30-60 s)');

-- 3. The error itself: DETAIL ends with retry_after=N only when TikTok sent the header.
SELECT vs_test.new_account('ra3_' || :'run') AS a3 \gset
SELECT pg_temp.init_fault('ra3_' || :'run',
    '{"http_status": 429, "error_code": "rate_limit_exceeded", "retry_after": 120}');
SELECT matches(pg_temp.detail_of(format('SELECT vibescaling.publish_post(%L, %L, %L)', vs_test.new_video(), :'a3', 'SELF_ONLY')),
               '^http_status=429 error_code=rate_limit_exceeded .* retry_after=120$',
               'publish_post''s error DETAIL ends with retry_after=120');
SELECT matches(pg_temp.detail_of(format('SELECT vibescaling.publish_post(%L, %L, %L)', vs_test.new_video(), :'a3', 'SELF_ONLY')),
               '^http_status=0 error_code=rate_limited .* retry_after=1[12][0-9]$',
               'the next publish for the account is not sent while Retry-After holds (rate_limited, about 120 s left)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('ra3_' || :'run', 'video_init') r), 1::bigint,
          '... TikTok saw one init for the account');
SELECT vs_test.new_account('ra3b_' || :'run') AS a3b \gset
SELECT pg_temp.init_fault('ra3b_' || :'run', '{"http_status": 429, "error_code": "rate_limit_exceeded"}');
SELECT doesnt_match(pg_temp.detail_of(format('SELECT vibescaling.publish_post(%L, %L, %L)', vs_test.new_video(), :'a3b', 'SELF_ONLY')),
                    'retry_after', '... and has no retry_after without the header');

-- 4. Retry-After does not make a permanent failure transient.
SELECT pg_temp.scheduled_post('ra4_' || :'run') AS p4 \gset
SELECT pg_temp.init_fault('ra4_' || :'run',
    '{"http_status": 403, "error_code": "spam_risk_too_many_posts", "retry_after": 900}');
CALL vibescaling.dispatch_due_posts(:'t1');
SELECT results_eq(format($$SELECT status, attempts, next_attempt_at IS NULL FROM vibescaling.posts WHERE id = %L$$, :'p4'),
                  $$VALUES ('failed', 1, true)$$, 'a daily cap with Retry-After still fails the post at once');

SELECT * FROM finish();
