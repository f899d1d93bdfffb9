-- Retention benchmark (test/bench/retention.sh): fills dispatch_logs with
-- :rows rows of history spread over the 88 days before :'upto' (inside the
-- default 90-day retention; now, or the start of this week for history
-- that leaves the current week's partition empty), 8 calls per post as the demo makes them
-- (creator_info, an init, six status polls), 5% failures, 10,000 accounts,
-- each week in its own partition. Then 1,000 failed posts whose init was
-- accepted 85 days ago: rows the retention job must keep.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;

SELECT count(*) AS weeks FROM (
    SELECT vibescaling._create_log_partition('vibescaling.dispatch_logs', w)
      FROM generate_series(vibescaling._log_week(:'upto'::timestamptz - interval '88 days'), vibescaling._log_week(now()),
                           interval '7 days') w) x;

-- In 20 slices of time, oldest first, so that each INSERT fills one or two
-- partitions (as a live system does) rather than all of them at random.
SELECT format($q$
    INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, http_status, outcome,
                                           error_code, log_id, publish_id, duration_ms, created_at)
    SELECT p.post_id, p.account_id,
           CASE WHEN k = 1 THEN 'scheduler' WHEN k = 2 THEN 'scheduler' ELSE 'status' END,
           CASE WHEN k = 1 THEN 'creator_info' WHEN k = 2 THEN 'video_init' ELSE 'status_fetch' END,
           CASE WHEN p.failed AND k = 2 THEN 400 ELSE 200 END,
           CASE WHEN p.failed AND k = 2 THEN 'failure' ELSE 'success' END,
           CASE WHEN p.failed AND k = 2 THEN 'spam_risk_too_many_posts' END,
           md5(p.post_id::text || k), 'v_pub_' || md5(p.post_id::text), 2 + random() * 200,
           p.t + make_interval(secs => 30 * k)
      FROM (SELECT gen_random_uuid() AS post_id,
                   ('00000000-0000-4000-8000-' || lpad(to_hex((random() * 9999)::int), 12, '0'))::uuid AS account_id,
                   random() < 0.05 AS failed,
                   %L::timestamptz - interval '88 days' + (%s + random()) * (interval '88 days' - interval '10 minutes') / 20 AS t
              FROM generate_series(1, %s)) p,
           generate_series(1, 8) k
     ORDER BY 11
$q$, :'upto', s, :rows / 8 / 20)
  FROM generate_series(0, 19) s
\gexec

SET session_replication_role = replica;
WITH p AS (
    INSERT INTO vibescaling.posts (caption, video_url, status, tiktok_account_id, privacy_level, last_error, created_at)
    SELECT 'kept ' || i, 'https://verified.example/kept.mp4', 'failed', NULL, 'SELF_ONLY', 'bench', now() - interval '86 days'
      FROM generate_series(1, 1000) i
    RETURNING id)
INSERT INTO vibescaling.dispatch_logs (post_id, trigger, endpoint, http_status, outcome, publish_id, created_at)
SELECT p.id, 'scheduler', 'video_init', 200, 'success', 'v_pub_kept_' || p.id, now() - interval '85 days' FROM p;
SET session_replication_role = origin;
VACUUM ANALYZE vibescaling.dispatch_logs;
VACUUM ANALYZE vibescaling.posts;
SELECT (SELECT count(*) FROM vibescaling.dispatch_logs) AS log_rows,
       (SELECT pg_size_pretty(sum(pg_total_relation_size(partition))) FROM vibescaling.log_partitions
         WHERE log = 'vibescaling.dispatch_logs'::regclass) AS log_size,
       (SELECT count(*) FROM vibescaling.log_partitions WHERE log = 'vibescaling.dispatch_logs'::regclass) AS partitions;
