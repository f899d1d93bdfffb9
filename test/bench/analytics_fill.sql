-- Analytics page benchmark (test/bench/analytics.sh): :rows dispatch_logs rows
-- over the 30 days before now, for 50 tenants of 10 accounts each, 8 calls
-- per post (creator_info, an init, six status polls), 5% of inits refused,
-- latencies of 2-200 ms; every post in vibescaling.posts, posted, a fifth of
-- them scheduled beforehand (for the schedule delay). Weekly partitions.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;

SELECT count(*) AS weeks FROM (
    SELECT vibescaling._create_log_partition('vibescaling.dispatch_logs', w)
      FROM generate_series(vibescaling._log_week(now() - interval '30 days'), vibescaling._log_week(now()),
                           interval '7 days') w) x;

SET session_replication_role = replica;
INSERT INTO vibescaling.tiktok_accounts (id, open_id, display_name, owner, scopes)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'bench_' || i,
       format('creator %s', i), format('tenant-%s', lpad(((i - 1) / 10 + 1)::text, 2, '0')), '{video.publish}'
  FROM generate_series(1, 500) i;

-- The posts, in 20 slices of time, oldest first (as a live system fills them).
CREATE TABLE public.bench_posts (id uuid, account_id uuid, owner text, t timestamptz, failed boolean, scheduled boolean);
INSERT INTO public.bench_posts
SELECT gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(to_hex(a), 12, '0'))::uuid,
       format('tenant-%s', lpad(((a - 1) / 10 + 1)::text, 2, '0')),
       now() - interval '30 days' + random() * (interval '30 days' - interval '5 minutes'), random() < 0.05, random() < 0.2
  FROM (SELECT (random() * 499)::int + 1 AS a FROM generate_series(1, :rows / 8)) x;
INSERT INTO vibescaling.posts (id, caption, video_url, status, tiktok_account_id, privacy_level, owner, scheduled_at,
                               posted_at, created_at, updated_at)
SELECT id, 'bench post', 'https://verified.example/b.mp4', CASE WHEN failed THEN 'failed' ELSE 'posted' END, account_id,
       'SELF_ONLY', owner, CASE WHEN scheduled THEN t - make_interval(secs => 20 + random() * 100) END,
       CASE WHEN NOT failed THEN t + interval '1 minute' END, t - interval '1 hour', t
  FROM public.bench_posts ORDER BY t;

SELECT format($q$
    INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, http_status, outcome,
                                           error_code, log_id, publish_id, duration_ms, created_at)
    SELECT p.id, p.account_id, CASE WHEN k <= 2 THEN 'scheduler' ELSE 'status' END,
           CASE WHEN k = 1 THEN 'creator_info' WHEN k = 2 THEN 'video_init' ELSE 'status_fetch' END,
           CASE WHEN p.failed AND k = 2 THEN 403 ELSE 200 END,
           CASE WHEN p.failed AND k = 2 THEN 'failure' ELSE 'success' END,
           CASE WHEN p.failed AND k = 2 THEN 'spam_risk_too_many_posts' END,
           md5(p.id::text || k), 'v_pub_' || md5(p.id::text), 2 + random() * 198, p.t + make_interval(secs => 30 * k)
      FROM public.bench_posts p, generate_series(1, 8) k
     WHERE p.t >= now() - interval '30 days' + %s * interval '36 hours'
       AND p.t < now() - interval '30 days' + (%s + 1) * interval '36 hours'
     ORDER BY 11
$q$, s, s)
  FROM generate_series(0, 19) s
\gexec
SET session_replication_role = origin;
DROP TABLE public.bench_posts;
VACUUM ANALYZE vibescaling.dispatch_logs;
VACUUM ANALYZE vibescaling.posts;
VACUUM ANALYZE vibescaling.tiktok_accounts;
SELECT (SELECT count(*) FROM vibescaling.dispatch_logs) AS log_rows,
       (SELECT count(*) FROM vibescaling.posts) AS posts,
       (SELECT pg_size_pretty(sum(pg_total_relation_size(partition))) FROM vibescaling.log_partitions
         WHERE log = 'vibescaling.dispatch_logs'::regclass) AS log_size;
