-- TikTok's per-token rate limits kept by the extension itself, across
-- backends: a burst of due posts for one account is spread out instead of
-- being answered 429. The window is shortened to 5 s for the test (TikTok's
-- is a minute), in the simulator and in the extension alike.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(6);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vs_test.sim_post('/_sim/config', '{"rate_limit_window_seconds": 5}') IS NOT NULL AS short_window;
ALTER DATABASE contrib_regression SET vibescaling.rate_limit_window = 5;
SET vibescaling.rate_limit_window = 5;

-- Eight posts due at once for one account: 6 inits are allowed per window.
SELECT vs_test.new_account('rl_' || :'run') AS acct \gset
CREATE TEMP TABLE burst AS
SELECT (vibescaling.schedule_post(vs_test.new_video('burst ' || i), now() + interval '10 minutes', :'acct', 'SELF_ONLY')
        #>> '{data,id}')::uuid AS id
  FROM generate_series(1, 8) i;
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');

SELECT is((SELECT count(*) FROM vibescaling.posts p JOIN burst USING (id) WHERE p.status = 'posted'), 8::bigint,
          'all eight posts are published');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('rl_' || :'run') r WHERE (r->>'http_status')::int = 429), 0::bigint,
          '... and TikTok never answered 429');
SELECT ok((SELECT bool_and(l.created_at - lag6 >= interval '4.9 seconds')
             FROM (SELECT created_at, lag(created_at, 6) OVER (ORDER BY id) AS lag6
                     FROM vibescaling.dispatch_logs WHERE tiktok_account_id = :'acct' AND endpoint = 'video_init') l
            WHERE lag6 IS NOT NULL),
          '... because the 7th and 8th inits waited for the window (never 7 inits within 5 s)');

-- A manual publish that would have to wait longer than rate_limit_max_wait
-- fails, retryably, without calling TikTok: six quick inits on a fresh
-- account fill its window, the seventh may not wait.
SELECT vs_test.new_account('rl2_' || :'run') AS acct2 \gset
SELECT count(vibescaling.publish_post(vs_test.new_video('quick ' || i), :'acct2', 'SELF_ONLY')) AS six
  FROM generate_series(1, 6) i \gset
SET vibescaling.rate_limit_max_wait = 0;
SELECT vs_test.new_video('over the limit') AS over \gset
SELECT throws_like(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'over', :'acct2'),
                   'TikTok video_init failed: rate_limited%', 'a seventh init with no time to wait: rate_limited');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'over', :'acct2')), '53000',
          '... SQLSTATE 53000 (PostgREST: 503; the dispatcher retries it later)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('rl2_' || :'run', 'video_init')), 6::bigint,
          '... and TikTok was not called for it');
RESET vibescaling.rate_limit_max_wait;

ALTER DATABASE contrib_regression RESET vibescaling.rate_limit_window;
SELECT vs_test.sim_post('/_sim/config', '{"rate_limit_window_seconds": 60}') IS NOT NULL AS restored;
SELECT * FROM finish();
