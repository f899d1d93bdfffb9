-- Campaign benchmark: what the scheduling paths left, against the plan
-- (bench.expected). One JSON object:
--   scheduled_by_path  posts scheduled by each path (targets: posts with a
--                      parent; queue: the queued drafts; recurrences:
--                      occurrences)
--   refused_by_path    targets left drafts with the refusal in last_error,
--                      queued drafts left drafts, occurrences the rules
--                      skipped (5 per rule planned)
--   refusals           those refusals by message, first 120 characters
--   matching_plan      scheduled posts at their planned instant, account,
--                      mode and caption (a queued post: at one of its
--                      account's slots); off_plan: scheduled posts that are not;
--                      queued_in_planned_hole: queued posts in the hole the
--                      plan left for them
--   max_direct_per_account_utc_day, max_inbox_per_account_24h: the caps as
--                      scheduled (15 and 5)
\set ON_ERROR_STOP 1
\set QUIET 1
\pset tuples_only on
\pset format unaligned
WITH s AS (
    SELECT p.*, CASE WHEN p.parent_id IS NOT NULL THEN 'targets'
                     WHEN p.recurrence_id IS NOT NULL THEN 'recur'
                     WHEN p.id IN (SELECT id FROM bench.queue_drafts) THEN 'queue' END AS path
      FROM vibescaling.posts p
     WHERE p.status = 'scheduled'),
matched AS (
    SELECT s.id FROM s JOIN bench.expected e
        ON e.account_id = s.tiktok_account_id AND e.mode = s.mode AND e.caption = s.caption
       AND e.kind = CASE s.path WHEN 'targets' THEN 'target' WHEN 'recur' THEN 'rec' ELSE s.path END
       AND (e.at = s.scheduled_at
            OR s.path = 'queue' AND EXISTS (SELECT 1 FROM vibescaling.posting_slots z
                                             WHERE z.tiktok_account_id = s.tiktok_account_id
                                               AND z.weekday = extract(isodow FROM s.scheduled_at AT TIME ZONE z.time_zone)
                                               AND z.local_time = (s.scheduled_at AT TIME ZONE z.time_zone)::time))),
refused AS (
    SELECT 'targets' AS path, left(p.last_error, 120) AS error FROM vibescaling.posts p
     WHERE p.parent_id IS NOT NULL AND p.status <> 'scheduled'
    UNION ALL
    SELECT 'queue', coalesce(left(p.last_error, 120), 'left a draft (the error went to the client)')
      FROM vibescaling.posts p JOIN bench.queue_drafts q ON q.id = p.id WHERE p.status <> 'scheduled'
    UNION ALL
    SELECT 'recur', left(r.last_error, 120) FROM vibescaling.recurrences r, generate_series(1, 5 - r.occurrences)),
direct_days AS (
    SELECT count(*) AS n FROM s WHERE s.mode = 'direct'
     GROUP BY s.tiktok_account_id, (s.scheduled_at AT TIME ZONE 'UTC')::date),
inbox_24h AS (
    SELECT (SELECT count(*) FROM s y WHERE y.tiktok_account_id = x.tiktok_account_id AND y.mode = 'inbox'
               AND y.scheduled_at > x.scheduled_at - interval '24 hours' AND y.scheduled_at <= x.scheduled_at) AS n
      FROM s x WHERE x.mode = 'inbox')
SELECT json_build_object(
    'planned', (SELECT count(*) FROM bench.expected),
    'planned_by_path', (SELECT json_object_agg(kind, n) FROM (SELECT kind, count(*) n FROM bench.expected GROUP BY 1) x),
    'scheduled', (SELECT count(*) FROM s),
    'scheduled_by_path', (SELECT json_object_agg(coalesce(path, 'other'), n) FROM (SELECT path, count(*) n FROM s GROUP BY 1) x),
    'refused_by_path', coalesce((SELECT json_object_agg(path, n) FROM (SELECT path, count(*) n FROM refused GROUP BY 1) x), '{}'),
    'refusals', coalesce((SELECT json_object_agg(error, n) FROM (SELECT error, count(*) n FROM refused GROUP BY 1) x), '{}'),
    'matching_plan', (SELECT count(*) FROM matched),
    'off_plan', (SELECT count(*) FROM s WHERE s.id NOT IN (SELECT id FROM matched)),
    'queued_in_planned_hole', (SELECT count(*) FROM s JOIN bench.expected e
                                   ON e.account_id = s.tiktok_account_id AND e.caption = s.caption AND e.at = s.scheduled_at
                                WHERE s.path = 'queue'),
    'max_direct_per_account_utc_day', (SELECT max(n) FROM direct_days),
    'max_inbox_per_account_24h', coalesce((SELECT max(n) FROM inbox_24h), 0),
    'inbox_scheduled', (SELECT count(*) FROM s WHERE s.mode = 'inbox'),
    'utc_days', (SELECT count(DISTINCT (s.scheduled_at AT TIME ZONE 'UTC')::date) FROM s),
    'first_day', (SELECT min(s.scheduled_at) FROM s), 'last_day', (SELECT max(s.scheduled_at) FROM s),
    'rules', (SELECT count(*) FROM vibescaling.recurrences),
    'posts_rows', (SELECT count(*) FROM vibescaling.posts));
