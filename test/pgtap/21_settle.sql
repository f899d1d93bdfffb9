-- Unknown outcomes settle themselves (settle_unknown_outcomes): from the
-- creator's video list, from a webhook naming a publish no record has
-- (confirmed by status/fetch), or after the quiet period without a sign,
-- with vibescaling.unknown_outcome_policy deciding whether the post goes
-- back on the queue. Evidence that cannot be told apart settles nothing.
-- Every decision is a row of vibescaling.settlements.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(33);

SELECT md5(random()::text) AS run \gset
SELECT now() + interval '1 hour' AS later \gset
-- The simulator processes at once, so that a publish is public when the test looks.
SELECT vs_test.sim_get('/_sim/config')->'processing_seconds' AS processing \gset
SELECT vs_test.sim_post('/_sim/config', '{"processing_seconds": 0}') IS NOT NULL AS configured \gset

-- A TikTok webhook for an account, signed as TikTok signs it, handed to handle_webhook.
CREATE FUNCTION pg_temp.webhook(event text, open_id text, content jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_body text := jsonb_build_object('client_key', 'sim_client_key', 'event', event,
                                      'create_time', extract(epoch FROM now())::bigint,
                                      'user_openid', open_id, 'content', content::text)::text;
    v_t    bigint := extract(epoch FROM now())::bigint;
BEGIN
    RETURN vibescaling.handle_webhook(v_body, format('t=%s,s=%s', v_t,
        encode(hmac(convert_to(v_t || '.' || v_body, 'UTF8'), convert_to('sim_client_secret', 'UTF8'), 'sha256'), 'hex')));
END
$$;

-- A scheduled public post of account acct, due at :later, whose init TikTok
-- acts on (or not: before) and whose reply is dropped; dispatched.
CREATE FUNCTION pg_temp.lost_init(acct uuid, caption text, acted boolean) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_post uuid := vs_test.new_video(caption);
BEGIN
    PERFORM vibescaling.schedule_post(v_post, now() + interval '10 minutes', acct, 'PUBLIC_TO_EVERYONE');
    PERFORM vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'video_init', 'action', 'drop',
        'after_processing', acted, 'open_id', (SELECT open_id FROM vibescaling.tiktok_accounts WHERE id = acct)));
    RETURN v_post;
END
$$;

-- The simulator's publishes of an account.
CREATE FUNCTION pg_temp.sim_publishes(open_id text) RETURNS SETOF jsonb
LANGUAGE sql AS $$
    SELECT p FROM jsonb_array_elements(vs_test.sim_get('/_sim/publishes')->'publishes') p WHERE p->>'open_id' = open_id
$$;

CREATE FUNCTION pg_temp.settle(quiet interval DEFAULT '1 hour') RETURNS jsonb
LANGUAGE sql AS $$ SELECT vibescaling.settle_unknown_outcomes(100, quiet) $$;

-- Other tests' leftovers must not be settled here: only this test's accounts.
UPDATE vibescaling.posts SET status = 'failed' WHERE status = 'publishing';
INSERT INTO vibescaling.settlements (post_id, tiktok_account_id, on_tiktok, decided_by, evidence)
SELECT o.post_id, o.tiktok_account_id, false, 'operator', '{"by": "21_settle setup"}' FROM vibescaling.unknown_outcomes o;

------------------------------------------------------------------------------
-- 1. The video list: an account that granted video.list; TikTok took the
--    init, the reply was lost. The caption and create time find the video.
------------------------------------------------------------------------------
SELECT vs_test.new_account('stl1_' || :'run',
         '{"scopes": ["user.info.basic", "video.publish", "video.upload", "video.list"]}') AS a1 \gset
UPDATE vibescaling.tiktok_accounts SET scopes = '{user.info.basic,video.publish,video.upload,video.list}' WHERE id = :'a1';
SELECT pg_temp.lost_init(:'a1', 'found in the list ' || :'run', true) AS p1 \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p1'), 'publishing', 'a lost init''s post is publishing');
SELECT is((SELECT count(*) FROM vibescaling.unknown_outcomes WHERE post_id = :'p1'), 1::bigint, '... and an unknown outcome');
SELECT pg_sleep(0.2);
SELECT is(pg_temp.settle() - 'examined' - 'waiting',
          '{"video_list": 1, "webhook": 0, "quiet_period": 0, "requeued": 0, "ambiguous": 0, "errors": 0}'::jsonb,
          'settle_unknown_outcomes finds it in the creator''s video list');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p1'), 'posted', '... the post is posted');
SELECT is((SELECT decided_by || ' ' || on_tiktok || ' ' || (public_post_id IS NOT NULL)
             FROM vibescaling.settlements WHERE post_id = :'p1'),
          'video_list true true', '... a settlement by the video list, with the video''s id');
SELECT is((SELECT public_post_ids[1]::text FROM vibescaling.publish_records WHERE post_id = :'p1'),
          (SELECT p->>'assigned_post_id' FROM pg_temp.sim_publishes('stl1_' || :'run') p),
          '... the publish record holds TikTok''s post id, exactly');
SELECT is((SELECT count(*) FROM vibescaling.unknown_outcomes WHERE post_id = :'p1'), 0::bigint, '... no unknown outcome left');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('stl1_' || :'run', 'video_init')), 1::bigint,
          '... and TikTok got one init: nothing was resent');
SELECT ok(EXISTS (SELECT 1 FROM vibescaling.dispatch_logs WHERE tiktok_account_id = :'a1' AND endpoint = 'video_list'
                                                             AND trigger = 'settle' AND outcome = 'success'),
          '... the look-up is in dispatch_logs (trigger settle)');
SELECT throws_ok(format($$SELECT vibescaling.settle_post(%L, false)$$, :'p1'), '55000', NULL,
                 'a settled, posted post has nothing left to settle');

------------------------------------------------------------------------------
-- 2. A webhook: an account without video.list; TikTok's webhook names a
--    publish no record has, status/fetch confirms it is this account's.
------------------------------------------------------------------------------
SELECT vs_test.new_account('stl2_' || :'run') AS a2 \gset
UPDATE vibescaling.tiktok_accounts SET scopes = '{user.info.basic,video.publish,video.upload}' WHERE id = :'a2';
SELECT pg_temp.lost_init(:'a2', 'told by a webhook ' || :'run', true) AS p2 \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT p->>'publish_id' AS pid2 FROM pg_temp.sim_publishes('stl2_' || :'run') p \gset
SELECT is(pg_temp.settle() ->> 'waiting', '1', 'without a sign yet, the post waits');
SELECT is((pg_temp.webhook('post.publish.complete', 'stl2_' || :'run', jsonb_build_object('publish_id', :'pid2')))
            #>> '{data,applied}', 'false', 'TikTok''s webhook for that publish is stored, not applied (no record)');
SELECT is(pg_temp.settle() ->> 'webhook', '1', 'then settle_unknown_outcomes settles it from the webhook');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p2'), 'posted', '... the post is posted');
SELECT is((SELECT publish_id FROM vibescaling.publish_records WHERE post_id = :'p2'), :'pid2',
          '... with the webhook''s publish_id');
SELECT is((SELECT status FROM vibescaling.publish_records WHERE post_id = :'p2'), 'published',
          '... and TikTok''s status, asked with the account''s token');
SELECT ok(EXISTS (SELECT 1 FROM vibescaling.dispatch_logs WHERE tiktok_account_id = :'a2' AND endpoint = 'status_fetch'
                                                             AND trigger = 'settle' AND outcome = 'success'),
          '... that status/fetch is logged');
SELECT is((SELECT decided_by || ' ' || publish_id FROM vibescaling.settlements WHERE post_id = :'p2'),
          'webhook ' || :'pid2', '... a settlement by webhook');

------------------------------------------------------------------------------
-- 3. A publish_id TikTok says is not the account's is no evidence.
------------------------------------------------------------------------------
SELECT vs_test.new_account('stl3_' || :'run') AS a3 \gset
UPDATE vibescaling.tiktok_accounts SET scopes = '{user.info.basic,video.publish,video.upload}' WHERE id = :'a3';
SELECT pg_temp.lost_init(:'a3', 'never reached TikTok ' || :'run', false) AS p3 \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT count(*) FROM pg_temp.sim_publishes('stl3_' || :'run')), 0::bigint,
          'an init dropped before TikTok acted: TikTok has no publish');
SELECT pg_temp.webhook('post.publish.complete', 'stl3_' || :'run',
                       jsonb_build_object('publish_id', 'v_pub_url~v2.not-this-accounts-' || :'run')) IS NOT NULL AS hooked \gset
SELECT is(pg_temp.settle() ->> 'waiting', '1', 'a webhook naming a publish TikTok does not know for the account settles nothing');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p3'), 'publishing', '... the post still waits');

------------------------------------------------------------------------------
-- 4. The quiet period: no sign of it. hold: the post fails, nothing resent.
------------------------------------------------------------------------------
SELECT pg_sleep(1.1);
SELECT is(pg_temp.settle('1 second') ->> 'quiet_period', '1', 'after the quiet period without a sign, it is settled');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p3'), 'failed', '... as not on TikTok: the post fails (policy hold)');
SELECT matches((SELECT last_error FROM vibescaling.posts WHERE id = :'p3'), 'unknown_outcome_policy = hold',
               '... saying why, and how to resend');
SELECT is((SELECT decided_by || ' ' || on_tiktok || ' ' || requeued FROM vibescaling.settlements WHERE post_id = :'p3'),
          'quiet_period false false', '... a settlement by the quiet period, not requeued');

-- retry_after_quiet_period: back on the queue, and sent once.
SELECT pg_temp.lost_init(:'a3', 'resent after the quiet period ' || :'run', false) AS p4 \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT pg_sleep(1.1);
SET vibescaling.unknown_outcome_policy = 'retry_after_quiet_period';
SELECT is(pg_temp.settle('1 second') - 'examined' - 'waiting',
          '{"video_list": 0, "webhook": 0, "quiet_period": 1, "requeued": 1, "ambiguous": 0, "errors": 0}'::jsonb,
          'with retry_after_quiet_period the post goes back on the queue');
RESET vibescaling.unknown_outcome_policy;
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p4'), 'scheduled', '... scheduled, due now');
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p4'), 'posted', '... and the dispatcher posts it');
SELECT is((SELECT count(*) FROM pg_temp.sim_publishes('stl3_' || :'run') p
            WHERE p->>'title' = 'resent after the quiet period ' || :'run'), 1::bigint, '... once');

------------------------------------------------------------------------------
-- 5. Two lost posts of one account with the same caption: the video list
--    cannot tell them apart; an operator decides.
------------------------------------------------------------------------------
SELECT vs_test.new_account('stl5_' || :'run',
         '{"scopes": ["user.info.basic", "video.publish", "video.upload", "video.list"]}') AS a5 \gset
UPDATE vibescaling.tiktok_accounts SET scopes = '{user.info.basic,video.publish,video.upload,video.list}' WHERE id = :'a5';
SELECT pg_temp.lost_init(:'a5', 'twins ' || :'run', true) AS p5 \gset
SELECT pg_temp.lost_init(:'a5', 'twins ' || :'run', true) AS p6 \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT pg_sleep(1.1);
SELECT is(pg_temp.settle('1 second') ->> 'ambiguous', '2', 'two videos with one caption: neither is settled');
SELECT is((SELECT count(*) FROM vibescaling.unknown_outcomes WHERE post_id IN (:'p5', :'p6')), 2::bigint,
          '... both wait for an operator, the quiet period passed or not');
SELECT is(vibescaling.settle_post(:'p5', true, (SELECT p->>'publish_id' FROM pg_temp.sim_publishes('stl5_' || :'run') p
                                                  ORDER BY p->>'created_at' LIMIT 1)) #>> '{data,status}',
          'posted', 'settle_post records the operator''s decision');
SELECT is((SELECT decided_by || ' ' || on_tiktok FROM vibescaling.settlements WHERE post_id = :'p5'), 'operator true',
          '... in vibescaling.settlements');

SELECT vs_test.sim_post('/_sim/config', jsonb_build_object('processing_seconds', :'processing'::jsonb)) IS NOT NULL AS restored \gset
SELECT * FROM finish();
