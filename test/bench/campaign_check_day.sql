-- Campaign benchmark: the database's side of a dispatched day (:day; :days
-- lists every day dispatched so far, :since is when this day's dispatch
-- began), one JSON object for campaign_in_cluster.sh's checks: each of the
-- day's posts (its account's open_id, mode, caption, status, attempts, last
-- error, its publish records' ids, its init rows in the dispatch log: all,
-- those sent (an HTTP answer, or an unknown outcome; the others are the
-- extension's own refusals, such as its rate limiter's), the accepted), the posts sent outside the dispatched days, and the log rows of
-- this dispatch by endpoint, outcome and error code.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset tuples_only on
\pset format unaligned
SELECT json_build_object(
    'posts', (SELECT json_agg(json_build_object(
                  'id', p.id, 'open_id', a.open_id, 'mode', p.mode, 'caption', p.caption, 'status', p.status,
                  'attempts', p.attempts, 'last_error', p.last_error,
                  'kind', CASE WHEN p.parent_id IS NOT NULL THEN 'target' WHEN p.recurrence_id IS NOT NULL THEN 'rec'
                               ELSE 'queue' END,
                  'publish_ids', (SELECT coalesce(json_agg(r.publish_id), '[]') FROM vibescaling.publish_records r
                                   WHERE r.post_id = p.id),
                  'init_rows', (SELECT count(*) FROM vibescaling.dispatch_logs l WHERE l.post_id = p.id
                                   AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')),
                  'init_sent', (SELECT count(*) FROM vibescaling.dispatch_logs l WHERE l.post_id = p.id
                                   AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                                   AND (l.http_status IS NOT NULL OR l.outcome_unknown)),
                  'init_success', (SELECT count(*) FROM vibescaling.dispatch_logs l WHERE l.post_id = p.id
                                      AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                                      AND l.outcome = 'success')))
                FROM bench.day_posts(:day) p JOIN bench.accounts a ON a.id = p.tiktok_account_id),
    'sent_outside_dispatched_days', (SELECT count(*) FROM vibescaling.posts p
                                      WHERE p.status IN ('posted', 'publishing', 'failed')
                                        AND NOT ((p.scheduled_at AT TIME ZONE 'UTC')::date - (SELECT d1 FROM bench.shape) + 1
                                                 = ANY (string_to_array(:'days', ',')::integer[]))),
    'init_log', (SELECT coalesce(json_agg(json_build_object('publish_id', l.publish_id, 'http_status', l.http_status,
                                                           'created_at', extract(epoch FROM l.created_at))), '[]')
                   FROM vibescaling.dispatch_logs l
                  WHERE l.created_at >= :'since'::timestamptz AND l.http_status IS NOT NULL
                    AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')),
    'log', (SELECT json_object_agg(k, n) FROM (
                SELECT l.endpoint || '/' || l.outcome || coalesce('/' || l.error_code, '') AS k, count(*) AS n
                  FROM vibescaling.dispatch_logs l WHERE l.created_at >= :'since'::timestamptz GROUP BY 1) x));
