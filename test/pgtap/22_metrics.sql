-- Post metrics after the publish: collect_metrics() takes snapshots of
-- public posts' counts (Display API video/query) and accounts' follower
-- counts (user/info, user.info.stats) into tables that keep their history;
-- a taken-down post is not followed; the Analytics page's data and the
-- API views show them to their tenant only; no cover URL is kept.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(22);

SELECT md5(random()::text) AS run \gset
SELECT vs_test.sim_get('/_sim/config')->'processing_seconds' AS processing \gset
SELECT vs_test.sim_post('/_sim/config', '{"processing_seconds": 0}') IS NOT NULL AS configured \gset

SELECT vs_test.new_account('met_' || :'run',
         '{"scopes": ["user.info.basic", "video.publish", "video.upload", "video.list", "user.info.stats"],
           "follower_count": 1200, "following_count": 7}') AS acct \gset
UPDATE vibescaling.tiktok_accounts
   SET scopes = '{user.info.basic,video.publish,video.upload,video.list,user.info.stats}', owner = 'tenant-met-' || :'run'
 WHERE id = :'acct';
-- An account whose creator did not grant video.list nor user.info.stats: never asked.
SELECT vs_test.new_account('metno_' || :'run') AS other \gset
UPDATE vibescaling.tiktok_accounts SET scopes = '{user.info.basic,video.publish}' WHERE id = :'other';

-- Two public posts, followed to their public post id.
SELECT vs_test.new_video('metrics one ' || :'run') AS p1 \gset
SELECT vs_test.new_video('metrics two ' || :'run') AS p2 \gset
UPDATE vibescaling.posts SET owner = 'tenant-met-' || :'run' WHERE id IN (:'p1', :'p2');
SELECT vibescaling.publish_post(:'p1', :'acct', 'PUBLIC_TO_EVERYONE') IS NOT NULL AS published1 \gset
SELECT vibescaling.publish_post(:'p2', :'acct', 'PUBLIC_TO_EVERYONE') IS NOT NULL AS published2 \gset
SELECT vibescaling.publish_status(:'p1') IS NOT NULL AS s1 \gset
SELECT vibescaling.publish_status(:'p2') IS NOT NULL AS s2 \gset
SELECT is((SELECT count(*) FROM vibescaling.publish_records WHERE post_id IN (:'p1', :'p2')
                                                              AND cardinality(public_post_ids) = 1 AND public_at IS NOT NULL),
          2::bigint, 'two public posts, each with its public post id and when it became public');

-- Only this test's accounts: others' records are not the subject.
CREATE TEMP TABLE mine AS SELECT unnest(ARRAY[:'acct'::uuid, :'other'::uuid]) AS id;
UPDATE vibescaling.tiktok_accounts SET scopes = array_remove(array_remove(scopes, 'video.list'), 'user.info.stats')
 WHERE id NOT IN (SELECT id FROM mine);

SELECT is(vibescaling.collect_metrics(),
          '{"calls": 2, "post_snapshots": 2, "account_snapshots": 1, "errors": 0}'::jsonb,
          'collect_metrics: one video/query for the two posts, one user/info for the account');
SELECT is((SELECT count(*) FROM vibescaling.post_metrics WHERE tiktok_account_id = :'acct' AND view_count IS NOT NULL),
          2::bigint, '... a snapshot of each post, with its views');
SELECT is((SELECT follower_count || '/' || following_count FROM vibescaling.account_metrics WHERE tiktok_account_id = :'acct'),
          '1200/7', '... and of the account''s follower counts');
SELECT is((SELECT video_id::text FROM vibescaling.post_metrics WHERE post_id = :'p1'),
          (SELECT public_post_ids[1]::text FROM vibescaling.publish_records WHERE post_id = :'p1'),
          '... keyed by TikTok''s 19-digit post id, exactly');
SELECT ok(EXISTS (SELECT 1 FROM vibescaling.dispatch_logs WHERE tiktok_account_id = :'acct' AND endpoint = 'video_query'
                                                             AND trigger = 'metrics' AND outcome = 'success'),
          '... each call in dispatch_logs (trigger metrics)');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE tiktok_account_id = :'other' AND trigger = 'metrics'),
          0::bigint, 'an account without the scopes is not asked');
SELECT is(vibescaling.collect_metrics() ->> 'calls', '0', 'right after, nothing is due (young posts: hourly)');

-- An hour later the counts have grown, and the history keeps both.
UPDATE vibescaling.post_metrics SET taken_at = taken_at - interval '61 minutes' WHERE tiktok_account_id = :'acct';
UPDATE vibescaling.account_metrics SET taken_at = taken_at - interval '61 minutes' WHERE tiktok_account_id = :'acct';
SELECT pg_sleep(1.1);
SELECT is(vibescaling.collect_metrics() - 'errors',
          '{"calls": 2, "post_snapshots": 2, "account_snapshots": 1}'::jsonb, 'an hour later they are due again');
SELECT is((SELECT count(*) FROM vibescaling.post_metrics WHERE post_id = :'p1'), 2::bigint, '... the history keeps both snapshots');
SELECT ok((SELECT bool_and(n.view_count >= o.view_count)
             FROM vibescaling.post_metrics o JOIN vibescaling.post_metrics n
               ON n.publish_record_id = o.publish_record_id AND n.taken_at > o.taken_at
            WHERE o.tiktok_account_id = :'acct'),
          '... and the views never went down');
SELECT is((SELECT view_count FROM vibescaling.post_metrics_latest WHERE post_id = :'p1'),
          (SELECT max(view_count) FROM vibescaling.post_metrics WHERE post_id = :'p1'),
          'post_metrics_latest shows the latest snapshot');
SELECT is((SELECT count(*) FROM vibescaling.account_metrics_latest WHERE tiktok_account_id = :'acct'), 1::bigint,
          'account_metrics_latest has one row for the account');

-- Nothing the extension keeps holds a cover URL (TikTok's expire).
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE tiktok_account_id = :'acct'
                                                             AND error_message LIKE '%x-expires%'), 0::bigint,
          'no cover URL in the log');
SELECT is((SELECT count(*) FROM information_schema.columns WHERE table_schema = 'vibescaling'
                                                              AND column_name LIKE '%cover%url%'), 0::bigint,
          'no column holds a cover URL');

-- TikTok takes post 2 down: its webhook sets taken_down_at, and it is followed no more.
SELECT public_post_ids[1]::text AS v2 FROM vibescaling.publish_records WHERE post_id = :'p2' \gset
SELECT publish_id AS pid2 FROM vibescaling.publish_records WHERE post_id = :'p2' \gset
SELECT vs_test.sim_post('/_sim/videos/' || :'v2', '{"public": false}') IS NOT NULL AS down \gset
SELECT vibescaling.handle_webhook(b, format('t=%s,s=%s', t,
         encode(hmac(convert_to(t || '.' || b, 'UTF8'), convert_to('sim_client_secret', 'UTF8'), 'sha256'), 'hex')))
         #>> '{data,applied}' AS applied
  FROM (SELECT extract(epoch FROM now())::bigint AS t,
               jsonb_build_object('client_key', 'sim_client_key', 'event', 'post.publish.no_longer_publicaly_available',
                                  'create_time', extract(epoch FROM now())::bigint, 'user_openid', 'met_' || :'run',
                                  'content', jsonb_build_object('publish_id', :'pid2', 'post_id', :'v2')::text)::text AS b) x \gset
SELECT is(:'applied'::text, 'true', 'the takedown webhook is applied');
SELECT ok((SELECT taken_down_at IS NOT NULL AND cardinality(public_post_ids) = 0 FROM vibescaling.publish_records
            WHERE post_id = :'p2'), '... the record keeps when it was taken down');
UPDATE vibescaling.post_metrics SET taken_at = taken_at - interval '61 minutes' WHERE tiktok_account_id = :'acct';
SELECT is(vibescaling.collect_metrics() ->> 'post_snapshots', '1', 'a taken-down post is followed no more');
SELECT is((vibescaling.publish_status(:'p2') #>> '{data,taken_down_at}') IS NOT NULL, true,
          'publish_status shows the takedown');

-- The Analytics page's data, for the tenant and through the API views.
SELECT vibescaling.analytics(now() - interval '1 day', now() + interval '1 minute', 'UTC', 'tenant-met-' || :'run') AS page \gset
SELECT is(jsonb_array_length((:'page'::jsonb)->'post_metrics'), 2, 'the Analytics data lists the tenant''s posts with metrics');
SELECT is(((:'page'::jsonb)->'followers'->0->>'followers')::bigint, 1200::bigint, '... and its accounts'' followers by day');
SELECT set_config('request.jwt.claims', '{"role": "vibescaling_user", "sub": "someone-else"}', false) IS NOT NULL AS c \gset
SELECT vibescaling.setup_api_roles() IS NOT NULL AS roles \gset
SET ROLE vibescaling_user;
SELECT is((SELECT count(*) FROM vibescaling_api.post_metrics), 0::bigint, 'another tenant sees none of those metrics');
RESET ROLE;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS c \gset

SELECT vs_test.sim_post('/_sim/config', jsonb_build_object('processing_seconds', :'processing'::jsonb)) IS NOT NULL AS restored \gset
SELECT * FROM finish();
