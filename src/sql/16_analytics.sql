-- vibescaling: analytics over the dispatch log and the posts, for DBAs
-- (schema vibescaling) and for tenants (the same views in vibescaling_api).
-- They run with the caller's rights (security_invoker), so row level
-- security gives each tenant only its own rows; a DBA sees everything.

-- Per endpoint: calls to TikTok, how they ended, and their latency.
CREATE VIEW vibescaling.dispatch_stats WITH (security_invoker = true) AS
    SELECT l.endpoint,
           count(*)                                           AS attempts,
           count(*) FILTER (WHERE l.outcome = 'success')      AS successes,
           count(*) FILTER (WHERE l.outcome = 'failure')      AS failures,
           count(*) FILTER (WHERE l.outcome_unknown)          AS unknown_outcomes,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY l.duration_ms))::numeric, 1)  AS p50_ms,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY l.duration_ms))::numeric, 1) AS p95_ms,
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY l.duration_ms))::numeric, 1) AS p99_ms,
           min(l.created_at)                                  AS first_at,
           max(l.created_at)                                  AS last_at
      FROM vibescaling.dispatch_logs l
     GROUP BY l.endpoint;
COMMENT ON VIEW vibescaling.dispatch_stats IS
    'Calls to TikTok per endpoint: attempts, successes, failures, unknown outcomes, latency percentiles (ms).';

-- Failures per endpoint and error code (TikTok's, or a transport code).
CREATE VIEW vibescaling.dispatch_failures WITH (security_invoker = true) AS
    SELECT l.endpoint,
           coalesce(l.error_code, 'unknown') AS error_code,
           count(*)                          AS failures,
           max(l.created_at)                 AS last_at,
           (array_agg(l.error_message ORDER BY l.id DESC))[1] AS last_message
      FROM vibescaling.dispatch_logs l
     WHERE l.outcome = 'failure'
     GROUP BY l.endpoint, coalesce(l.error_code, 'unknown');
COMMENT ON VIEW vibescaling.dispatch_failures IS 'Failed calls to TikTok per endpoint and error code.';

-- Posts per account and day (UTC): published and failed.
CREATE VIEW vibescaling.posts_per_account_day WITH (security_invoker = true) AS
    SELECT p.tiktok_account_id,
           (date_trunc('day', coalesce(p.posted_at, p.updated_at) AT TIME ZONE 'UTC'))::date AS day,
           count(*) FILTER (WHERE p.status = 'posted') AS posted,
           count(*) FILTER (WHERE p.status = 'failed') AS failed
      FROM vibescaling.posts p
     WHERE p.status IN ('posted', 'failed') AND p.tiktok_account_id IS NOT NULL
     GROUP BY 1, 2;
COMMENT ON VIEW vibescaling.posts_per_account_day IS 'Posts published and failed per account and UTC day.';

-- For scheduled posts that were published: the time from scheduled_at to
-- posted_at, per account (seconds).
CREATE VIEW vibescaling.schedule_delay WITH (security_invoker = true) AS
    SELECT p.tiktok_account_id,
           count(*) AS posts,
           round(avg(extract(epoch FROM p.posted_at - p.scheduled_at))::numeric, 1) AS avg_s,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM p.posted_at - p.scheduled_at)))::numeric, 1) AS p50_s,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM p.posted_at - p.scheduled_at)))::numeric, 1) AS p95_s,
           round(max(extract(epoch FROM p.posted_at - p.scheduled_at))::numeric, 1) AS max_s
      FROM vibescaling.posts p
     WHERE p.status = 'posted' AND p.scheduled_at IS NOT NULL AND p.posted_at IS NOT NULL
     GROUP BY p.tiktok_account_id;
COMMENT ON VIEW vibescaling.schedule_delay IS
    'Per account: how long after scheduled_at scheduled posts were published (seconds).';

-- The same views for tenants, through PostgREST.
CREATE VIEW vibescaling_api.dispatch_stats WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.dispatch_stats;
CREATE VIEW vibescaling_api.dispatch_failures WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.dispatch_failures;
CREATE VIEW vibescaling_api.posts_per_account_day WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.posts_per_account_day;
CREATE VIEW vibescaling_api.schedule_delay WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.schedule_delay;

REVOKE ALL ON ALL TABLES IN SCHEMA vibescaling_api FROM PUBLIC;
REVOKE ALL ON vibescaling.dispatch_stats, vibescaling.dispatch_failures, vibescaling.posts_per_account_day,
              vibescaling.schedule_delay FROM PUBLIC;
