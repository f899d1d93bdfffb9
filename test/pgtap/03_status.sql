-- publish_status: TikTok's asynchronous processing, mapped to local states.
-- The simulator runs with --processing-seconds 2 (scripts/sim.sh).
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(21);

SELECT 'status_' || substr(md5(random()::text), 1, 8) AS oid \gset
SELECT vs_test.new_account(:'oid') AS acct \gset

-- No publish record: P0002.
SELECT vs_test.new_video() AS draft \gset
SELECT throws_ok(format('SELECT vibescaling.publish_status(%L)', :'draft'), 'P0002',
                 format('post %s has no publish record', :'draft'), 'a post never published → P0002');
SELECT throws_ok($$SELECT vibescaling.publish_status('00000000-0000-0000-0000-00000000beef')$$, 'P0002', NULL,
                 'an unknown post → P0002');

-- Direct Post: processing, then published, then the public post id.
SELECT vs_test.new_video() AS v \gset
SELECT vibescaling.publish_post(:'v', :'acct', 'SELF_ONLY') #>> '{data,publish_id}' AS pid \gset
SELECT vibescaling.publish_status(:'v') AS s1 \gset
SELECT is(:'s1'::jsonb #>> '{data,publish_id}', :'pid', 'publish_status answers the publish_id');
SELECT is(:'s1'::jsonb #>> '{data,status}', 'processing', 'right after init: processing');
SELECT is(:'s1'::jsonb #>> '{data,tiktok_status}', 'PROCESSING_DOWNLOAD', '... TikTok says PROCESSING_DOWNLOAD (a URL pull)');
SELECT pg_sleep(2.5);
SELECT vibescaling.publish_status(:'v') AS s2 \gset
SELECT is(:'s2'::jsonb #>> '{data,status}', 'published', 'after processing: published');
SELECT is(:'s2'::jsonb #>> '{data,tiktok_status}', 'PUBLISH_COMPLETE', '... TikTok says PUBLISH_COMPLETE');
SELECT pg_sleep(2.2);
SELECT vibescaling.publish_status(:'v') AS s3 \gset
SELECT is(jsonb_array_length(:'s3'::jsonb #> '{data,public_post_ids}'), 1, 'after moderation: one public post id');
SELECT is(:'s3'::jsonb #>> '{data,public_post_ids,0}',
          (SELECT (p->'post_ids'->>0) FROM jsonb_array_elements(vs_test.sim_get('/_sim/publishes')->'publishes') p
            WHERE p->>'publish_id' = :'pid'),
          'the 19-digit post id is kept exactly (as text in the API answer)');
SELECT ok((SELECT public_post_ids[1] > 9007199254740992 FROM vibescaling.publish_records WHERE publish_id = :'pid'),
          '... and as a bigint beyond 2^53 in publish_records');
SELECT results_eq(format($$SELECT trigger, endpoint, outcome FROM vibescaling.dispatch_logs
                          WHERE post_id = %L AND trigger = 'status' ORDER BY id$$, :'v'),
                  $$VALUES ('status', 'status_fetch', 'success'), ('status', 'status_fetch', 'success'),
                           ('status', 'status_fetch', 'success')$$,
                  'each status fetch is in dispatch_logs with trigger status');

-- Inbox: sent_to_inbox.
SELECT vs_test.new_video() AS inb \gset
SELECT vibescaling.publish_post(:'inb', :'acct', 'SELF_ONLY', mode => 'inbox') IS NOT NULL AS published;
SELECT pg_sleep(2.5);
SELECT vibescaling.publish_status(:'inb') AS s4 \gset
SELECT is(:'s4'::jsonb #>> '{data,status}', 'sent_to_inbox', 'an inbox upload ends sent_to_inbox');
SELECT is(:'s4'::jsonb #>> '{data,tiktok_status}', 'SEND_TO_USER_INBOX', '... TikTok says SEND_TO_USER_INBOX');

-- FAILED arrives with error.code ok: the post becomes failed with TikTok's reason.
SELECT vs_test.new_video('bad file', 'https://verified.example/bad.mp4?sim_fail=file_format_check_failed') AS bad \gset
SELECT vibescaling.publish_post(:'bad', :'acct', 'SELF_ONLY') IS NOT NULL AS published;
SELECT pg_sleep(2.5);
SELECT vibescaling.publish_status(:'bad') AS s5 \gset
SELECT is(:'s5'::jsonb #>> '{data,status}', 'failed', 'a FAILED publish is failed locally');
SELECT is(:'s5'::jsonb #>> '{data,fail_reason}', 'file_format_check_failed', '... with TikTok''s fail_reason');
SELECT is((SELECT status || ': ' || last_error FROM vibescaling.posts WHERE id = :'bad'),
          format('failed: TikTok: publish %s failed: file_format_check_failed',
                 (SELECT publish_id FROM vibescaling.publish_records WHERE post_id = :'bad')),
          '... and the post becomes failed with the reason');
SELECT is((SELECT count(*) FROM vs_test.sim_requests(:'oid', 'status_fetch')), 5::bigint,
          'five status fetches reached TikTok so far');
SELECT is(vibescaling.publish_status(:'bad') #>> '{data,status}', 'failed', 'a failed publish stays failed');
SELECT is((SELECT count(*) FROM vs_test.sim_requests(:'oid', 'status_fetch')), 5::bigint,
          '... without asking TikTok again (FAILED is final)');

-- TikTok refuses a status fetch for a publish_id it does not know.
INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode)
VALUES (:'draft', :'acct', 'v_pub_url~v2.unknown', 'video_init', 'direct');
SELECT throws_like(format('SELECT vibescaling.publish_status(%L)', :'draft'),
                   'TikTok status_fetch failed: invalid_publish_id (log_id %)',
                   'an unknown publish_id: TikTok''s invalid_publish_id in the message');
SELECT is(vs_test.sqlstate_of(format('SELECT vibescaling.publish_status(%L)', :'draft')), '22023',
          '... SQLSTATE 22023');

SELECT * FROM finish();
