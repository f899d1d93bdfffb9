-- The Analytics page's data (vibescaling.analytics, vibescaling_api.analytics):
-- the rollups give the same answer as the raw rows, every figure equals a
-- count over the log or the posts, a tenant sees only its own, an operator
-- every tenant and the unknown outcomes to settle, days follow the
-- viewer's time zone.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(28);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT 'an-a-' || :'run' AS a, 'an-b-' || :'run' AS b \gset
SELECT vibescaling.setup_api_roles() IS NOT NULL AS roles;
SELECT vs_test.new_account('ana_' || :'run') AS acct_a \gset
SELECT vs_test.new_account('anb_' || :'run') AS acct_b \gset
UPDATE vibescaling.tiktok_accounts SET owner = :'a' WHERE id = :'acct_a';
UPDATE vibescaling.tiktok_accounts SET owner = :'b' WHERE id = :'acct_b';

-- Real calls: A publishes two posts now (creator_info + video_init each),
-- B one; a scheduled post of A's goes out 40 s late (posted_at - scheduled_at).
CREATE TEMP TABLE an_posts AS
SELECT vs_test.new_video('analytics ' || i) AS id, CASE WHEN i <= 2 THEN :'acct_a' ELSE :'acct_b' END::uuid AS acct,
       CASE WHEN i <= 2 THEN :'a' ELSE :'b' END AS owner
  FROM generate_series(1, 3) i;
UPDATE vibescaling.posts p SET owner = t.owner FROM an_posts t WHERE p.id = t.id;
SELECT count(vibescaling.publish_post(id, acct, 'SELF_ONLY')) AS published FROM an_posts;
SET session_replication_role = replica;
INSERT INTO vibescaling.posts (caption, video_url, status, scheduled_at, posted_at, tiktok_account_id, privacy_level, owner)
VALUES ('late', 'https://verified.example/late.mp4', 'posted', now() - interval '3 hours 40 seconds',
        now() - interval '3 hours', :'acct_a', 'SELF_ONLY', :'a');
SET session_replication_role = origin;

-- Synthetic history three hours back, for A's account: 100 status fetches
-- of 1..100 ms, 10 of them failing with rate_limit_exceeded, and an init
-- of unknown outcome for a draft of A's.
INSERT INTO vibescaling.dispatch_logs (tiktok_account_id, trigger, endpoint, outcome, error_code, duration_ms, created_at)
SELECT :'acct_a', 'status', 'status_fetch', CASE WHEN i % 10 = 0 THEN 'failure' ELSE 'success' END,
       CASE WHEN i % 10 = 0 THEN 'rate_limit_exceeded' END, i, now() - interval '3 hours' + i * interval '1 second'
  FROM generate_series(1, 100) i;
SELECT vs_test.new_video('unknown ' || :'run') AS unknown_post \gset
UPDATE vibescaling.posts SET owner = :'a', tiktok_account_id = :'acct_a' WHERE id = :'unknown_post';
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, error_code, outcome_unknown, created_at)
VALUES (:'unknown_post', :'acct_a', 'manual', 'video_init', 'failure', 'timeout', true, now() - interval '2 hours');

-- Requests as PostgREST makes them: A, B, an operator.
CREATE FUNCTION pg_temp.page(role text, sub text, args text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT vs_test.pgrst(role, sub, 'GET', '/rpc/analytics', format('SELECT vibescaling_api.analytics(%s) AS a', args))
$$;
SELECT format('"from" => %L, "to" => %L, tz => %L', now() - interval '1 day', now() + interval '1 minute', 'UTC') AS day_args \gset

-- What the log itself says for A over the period.
SELECT count(*) AS a_calls,
       count(*) FILTER (WHERE outcome = 'failure' AND NOT outcome_unknown) AS a_failures,
       count(*) FILTER (WHERE outcome_unknown) AS a_unknown
  FROM vibescaling.dispatch_logs
 WHERE tiktok_account_id = :'acct_a' AND created_at >= date_trunc('hour', now() - interval '1 day')
   AND endpoint <> 'webhook' \gset

------------------------------------------------------------------------------
-- 1. From the raw rows (nothing rolled up), then from the rollups: the same.
------------------------------------------------------------------------------
-- (Locked, so that the pg_cron job of another suite cannot roll up in between.)
BEGIN;
LOCK TABLE vibescaling.analytics_rollup_state;
TRUNCATE vibescaling.analytics_calls_hourly, vibescaling.analytics_account_days, vibescaling.analytics_delay_hourly;
DELETE FROM vibescaling.analytics_rollup_state;
SELECT pg_temp.page('vibescaling_user', :'a', :'day_args') #> '{rows,0,a}' AS raw_a \gset
COMMIT;
SELECT ok(vibescaling.roll_up_analytics() = date_trunc('hour', now() - interval '10 minutes'),
          'roll_up_analytics rolls up to the hour that ended 10 minutes ago');
SELECT ok((SELECT count(*) FROM vibescaling.analytics_calls_hourly WHERE owner = :'a') > 0, '... A''s calls are in the rollup');
SELECT pg_temp.page('vibescaling_user', :'a', :'day_args') #> '{rows,0,a}' AS rolled_a \gset
SELECT is((:'rolled_a'::jsonb) - 'period', (:'raw_a'::jsonb) - 'period',
          'A''s page from the rollups equals the one from the raw rows');
SELECT ok(((:'rolled_a'::jsonb) #>> '{period,rolled_up_until}') IS NOT NULL, '... and says up to when it is rolled up');
SELECT roll_up_analytics IS NOT NULL AS again FROM vibescaling.roll_up_analytics();
SELECT is((pg_temp.page('vibescaling_user', :'a', :'day_args') #> '{rows,0,a}') - 'period', (:'rolled_a'::jsonb) - 'period',
          'a second run changes nothing (no hour is counted twice)');

------------------------------------------------------------------------------
-- 2. Every figure is a count over the log or the posts.
------------------------------------------------------------------------------
SELECT is((SELECT sum((c->>'calls')::bigint) FROM jsonb_array_elements((:'rolled_a'::jsonb)->'calls') c),
          :'a_calls'::numeric, 'calls: A''s calls in the period, as the log counts them');
SELECT is((SELECT sum((c->>'failures')::bigint) FROM jsonb_array_elements((:'rolled_a'::jsonb)->'calls') c),
          :'a_failures'::numeric, 'failures: as the log counts them');
SELECT is((SELECT sum((c->>'unknown')::bigint) FROM jsonb_array_elements((:'rolled_a'::jsonb)->'calls') c),
          :'a_unknown'::numeric, 'unknown outcomes: as the log counts them');
SELECT is((SELECT f->>'failures' FROM jsonb_array_elements((:'rolled_a'::jsonb)->'failures_by_code') f
            WHERE f->>'error_code' = 'rate_limit_exceeded' AND f->>'endpoint' = 'status_fetch'),
          '10', 'failures by code: the 10 rate_limit_exceeded status fetches');
SELECT is((SELECT sum((l->>'calls')::bigint) FROM jsonb_array_elements((:'rolled_a'::jsonb)->'latency') l),
          :'a_calls'::numeric, 'latency: over every one of A''s calls');
SELECT ok((SELECT (l->>'p50_ms')::numeric BETWEEN 45 AND 56 AND (l->>'p99_ms')::numeric BETWEEN 90 AND 110
             FROM jsonb_array_elements((:'rolled_a'::jsonb)->'latency') l WHERE l->>'endpoint' = 'status_fetch'),
          'latency: status_fetch''s p50 near 50 ms and p99 near 99 ms (1..100 ms, histogram within 9 %)');
SELECT is((SELECT sum((d->>'direct_posts')::bigint) FROM jsonb_array_elements((:'rolled_a'::jsonb)->'posts_per_account_day') d
            WHERE d->>'tiktok_account_id' = :'acct_a'),
          2::numeric, 'posts per account per day: A''s two accepted inits');
SELECT is((SELECT jsonb_build_object('posts', d->'posts', 'p50_s', d->'p50_s')
             FROM jsonb_array_elements((:'rolled_a'::jsonb)->'schedule_delay') d WHERE (d->>'posts')::int > 0),
          jsonb_build_object('posts', 1, 'p50_s', vibescaling._hist_value(floor(4 * ln(41) / ln(2))::integer)::numeric(10, 1)),
          'schedule delay: the one late post, 40 s (its histogram bucket)');
SELECT is((:'rolled_a'::jsonb)->'unknown_outcomes', 'null'::jsonb, 'a tenant is not shown the unknown outcomes to settle');

------------------------------------------------------------------------------
-- 3. Who sees what.
------------------------------------------------------------------------------
SELECT is((SELECT sum((c->>'calls')::bigint)
             FROM jsonb_array_elements(pg_temp.page('vibescaling_user', :'b', :'day_args') #> '{rows,0,a,calls}') c),
          (SELECT count(*) FROM vibescaling.dispatch_logs WHERE tiktok_account_id = :'acct_b'
              AND created_at >= date_trunc('hour', now() - interval '1 day') AND endpoint <> 'webhook')::numeric,
          'B counts exactly its own calls');
SELECT is(pg_temp.page('vibescaling_user', :'b', :'day_args' || format(', owner => %L', :'a')) ->> 'http', '403',
          'B asking for A''s analytics: 403');
SELECT is(pg_temp.page('vibescaling_anon', NULL, :'day_args') ->> 'http', '401', 'anon: 401');
SELECT pg_temp.page('vibescaling_operator', NULL, :'day_args') #> '{rows,0,a}' AS op \gset
SELECT is((SELECT sum((c->>'calls')::bigint) FROM jsonb_array_elements((:'op'::jsonb)->'calls') c),
          (SELECT count(*) FROM vibescaling.dispatch_logs WHERE created_at >= date_trunc('hour', now() - interval '1 day')
              AND created_at < now() + interval '1 minute' AND endpoint <> 'webhook')::numeric,
          'an operator counts every tenant''s calls');
SELECT is(pg_temp.page('vibescaling_operator', NULL, :'day_args' || format(', owner => %L', :'a')) #> '{rows,0,a,calls}',
          (:'rolled_a'::jsonb)->'calls', '... or one tenant''s, as that tenant sees them');
SELECT ok(EXISTS (SELECT 1 FROM jsonb_array_elements((:'op'::jsonb)->'unknown_outcomes') u
                   WHERE u->>'post_id' = :'unknown_post'),
          'the operator sees the post of unknown outcome, to settle');
SELECT is(vs_test.pgrst('vibescaling_user', :'a', 'POST', '/rpc/settle_post',
                        format('SELECT vibescaling_api.settle_post(%L, false)', :'unknown_post'))->>'http',
          '403', 'a tenant may not settle it');
SELECT is(vs_test.pgrst('vibescaling_operator', NULL, 'POST', '/rpc/settle_post',
                        format('SELECT vibescaling_api.settle_post(%L, false)', :'unknown_post'))->>'http',
          '200', 'the operator settles it through the API (not on TikTok) ...');
SELECT ok(NOT EXISTS (SELECT 1 FROM vibescaling.unknown_outcomes WHERE post_id = :'unknown_post'),
          '... and it waits no more');

------------------------------------------------------------------------------
-- 4. Days in the viewer's zone; bad input.
------------------------------------------------------------------------------
SELECT pg_temp.page('vibescaling_user', :'a', format('"from" => %L, "to" => %L, tz => %L',
                    now() - interval '3 days', now() + interval '1 minute', 'Asia/Tokyo')) #> '{rows,0,a}' AS tokyo \gset
SELECT is((:'tokyo'::jsonb) #>> '{period,bucket}', 'day', 'a period over two days is drawn in days');
SELECT is((SELECT array_agg(DISTINCT extract(hour FROM (c->>'t')::timestamptz AT TIME ZONE 'Asia/Tokyo'))
             FROM jsonb_array_elements((:'tokyo'::jsonb)->'calls') c), ARRAY[0::numeric],
          '... each starting at midnight in the viewer''s zone (Asia/Tokyo)');
SELECT is((SELECT array_agg(h ORDER BY t)
             FROM (SELECT (c->>'t')::timestamptz AS t,
                          extract(epoch FROM lead((c->>'t')::timestamptz) OVER (ORDER BY (c->>'t')::timestamptz)
                                             - (c->>'t')::timestamptz) / 3600 AS h
                     FROM jsonb_array_elements(vibescaling.analytics('2026-10-24 00:00 Europe/Paris',
                                                                     '2026-10-27 00:00 Europe/Paris', 'Europe/Paris')->'calls') c) x),
          ARRAY[24, 25, NULL]::numeric[],
          'days across the end of summer time in Europe/Paris: midnight to midnight, 25 hours on 25 October');
SELECT is(pg_temp.page('vibescaling_user', :'a', format('"from" => %L, "to" => %L, tz => %L',
                       now() - interval '1 day', now(), 'Mars/Olympus')) ->> 'http', '400', 'an unknown time zone: 400');
SELECT is(pg_temp.page('vibescaling_user', :'a', format('"from" => %L, "to" => %L', now(), now() - interval '1 day')) ->> 'http',
          '400', 'a period that ends before it starts: 400');

SELECT * FROM finish();
