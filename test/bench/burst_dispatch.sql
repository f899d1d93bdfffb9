-- Dispatch burst benchmark, the measured part: one dispatcher run
-- (CALL vibescaling.dispatch_due_posts()) with :concurrency calls in flight
-- at most. Writes this backend's pid to :pidfile for the sampler first.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
SET vibescaling.max_concurrent_requests = :concurrency;
\pset tuples_only on
\pset format unaligned
\o :pidfile
SELECT pg_backend_pid();
\o
SELECT clock_timestamp() AS t0 \gset
CALL vibescaling.dispatch_due_posts();
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS wall \gset
SELECT jsonb_build_object(
    'wall_s', round(:wall::numeric, 3),
    'posts', (SELECT count(*) FROM vibescaling.posts),
    'posted', (SELECT count(*) FROM vibescaling.posts WHERE status = 'posted'),
    'not_posted', (SELECT jsonb_object_agg(s, n) FROM (SELECT status || coalesce(': ' || left(last_error, 120), '') AS s,
                                                               count(*) AS n
                                                          FROM vibescaling.posts WHERE status <> 'posted'
                                                         GROUP BY 1) x),
    'log_rows', (SELECT count(*) FROM vibescaling.dispatch_logs),
    'log_rows_by_endpoint', (SELECT jsonb_object_agg(endpoint || '/' || outcome, n)
                               FROM (SELECT endpoint, outcome, count(*) n FROM vibescaling.dispatch_logs GROUP BY 1, 2) x),
    'pool', vibescaling.http_pool_stats(),
    -- The most inits one account sent within any 60 s (TikTok allows 6).
    'max_inits_per_account_60s', (SELECT max(n) FROM (
        SELECT count(*) OVER (PARTITION BY l.tiktok_account_id ORDER BY l.created_at
                              RANGE BETWEEN interval '59.999 seconds' PRECEDING AND CURRENT ROW) AS n
          FROM vibescaling.dispatch_logs l WHERE l.endpoint = 'video_init') x));
