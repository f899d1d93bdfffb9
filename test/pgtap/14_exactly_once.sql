-- Exactly once: an init is logged "in flight" before it is sent; a post
-- whose earlier init TikTok accepted is reconciled, never sent again; one
-- whose earlier init has an unknown outcome waits for settle_post().
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(14);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT now() + interval '11 minutes' AS later \gset

-- 1. A normal publish leaves no "in flight" row behind (it is replaced by the outcome).
SELECT vs_test.new_account('eo1_' || :'run') AS a1 \gset
SELECT vs_test.new_video() AS p1 \gset
SELECT vibescaling.publish_post(:'p1', :'a1', 'SELF_ONLY') IS NOT NULL AS published;
SELECT results_eq(format($$SELECT endpoint, outcome, error_code, outcome_unknown FROM vibescaling.dispatch_logs
                          WHERE post_id = %L ORDER BY id$$, :'p1'),
                  $$VALUES ('creator_info', 'success', 'ok', false), ('video_init', 'success', 'ok', false)$$,
                  'the init''s in-flight row became its outcome: still one row per call');

-- 2. The dispatcher's transaction was lost after TikTok accepted the init:
--    the next run reconciles the post as posted and sends nothing.
SELECT vs_test.new_account('eo2_' || :'run') AS a2 \gset
SELECT (vibescaling.schedule_post(vs_test.new_video(), now() + interval '10 minutes', :'a2', 'SELF_ONLY') #>> '{data,id}') AS p2 \gset
BEGIN;
SELECT vibescaling._publish_locked(:'p2', 'scheduler') IS NOT NULL AS published_then_lost;
ROLLBACK;
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p2'), 'scheduled', 'after the lost transaction the post looks unpublished');
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p2'), 'posted', 'the dispatcher reconciles it as posted');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('eo2_' || :'run', 'video_init')), 1::bigint, '... without a second init');
SELECT is((SELECT publish_id FROM vibescaling.publish_records WHERE post_id = :'p2'),
          (SELECT publish_id FROM vibescaling.dispatch_logs WHERE post_id = :'p2' AND endpoint = 'video_init'),
          '... recording the publish_id the durable log kept');

-- 3. An init "in flight" when the server stopped (simulated: the row a crash leaves):
--    the dispatcher does not resend it, the post fails with the reason.
SELECT vs_test.new_account('eo3_' || :'run') AS a3 \gset
SELECT (vibescaling.schedule_post(vs_test.new_video(), now() + interval '10 minutes', :'a3', 'SELF_ONLY') #>> '{data,id}') AS p3 \gset
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, error_code, outcome_unknown)
VALUES (:'p3', :'a3', 'scheduler', 'video_init', 'failure', 'in_flight', true);
CALL vibescaling.dispatch_due_posts(:'later');
SELECT matches((SELECT status || ': ' || last_error FROM vibescaling.posts WHERE id = :'p3'),
               '^publishing: an earlier init''s outcome is unknown; settle_unknown_outcomes looks for it on TikTok$',
               'an init of unknown outcome is not resent: the post is publishing, waiting for a settlement');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('eo3_' || :'run', 'video_init')), 0::bigint, '... no init was sent');

-- 4. publish_post refuses it too, until an operator settles it.
SELECT vs_test.new_account('eo4_' || :'run') AS a4 \gset
SELECT vs_test.new_video() AS p4 \gset
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, error_code, outcome_unknown)
VALUES (:'p4', :'a4', 'manual', 'video_init', 'failure', 'timeout', true);
SELECT throws_like(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'p4', :'a4'),
                   '%may already be on TikTok%', 'publish_post refuses a post whose earlier init has an unknown outcome');
SELECT is(vibescaling.settle_post(:'p4', false) #>> '{data,status}', 'draft', 'settle_post(on_tiktok => false) records the decision');
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'p4', :'a4'), '... after which it publishes');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('eo4_' || :'run', 'video_init')), 1::bigint, '... with one init');

-- 5. Or the operator finds it on TikTok.
SELECT vs_test.new_video() AS p5 \gset
UPDATE vibescaling.posts SET tiktok_account_id = :'a4', privacy_level = 'SELF_ONLY' WHERE id = :'p5';
INSERT INTO vibescaling.dispatch_logs (post_id, tiktok_account_id, trigger, endpoint, outcome, error_code, outcome_unknown)
VALUES (:'p5', :'a4', 'manual', 'video_init', 'failure', 'transport_error', true);
SELECT is(vibescaling.settle_post(:'p5', true, 'v_pub_url~v2.found-it') #>> '{data,status}', 'posted',
          'settle_post(on_tiktok => true, publish_id) marks it posted');
SELECT is((SELECT publish_id FROM vibescaling.publish_records WHERE post_id = :'p5'), 'v_pub_url~v2.found-it', '... with that publish_id');
SELECT throws_ok(format($$SELECT vibescaling.settle_post(%L, true, 'x')$$, :'p5'), '55000', NULL, 'a posted post has nothing to settle');

SELECT * FROM finish();
