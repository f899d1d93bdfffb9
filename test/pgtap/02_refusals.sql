-- TikTok refusals: creator_info checks before any init, TikTok error codes
-- mapped to SQLSTATEs, transport failures, and dispatch_logs rows that
-- survive the caller's rollback.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(30);

SELECT substr(md5(random()::text), 1, 8) AS run \gset

-- A private account is not offered PUBLIC_TO_EVERYONE: refused before init.
SELECT vs_test.new_account('priv_' || :'run', '{"private_account": true}') AS priv \gset
SELECT vs_test.new_video() AS v \gset
SELECT throws_like(format($$SELECT vibescaling.publish_post(%L, %L, 'PUBLIC_TO_EVERYONE')$$, :'v', :'priv'),
                   '%privacy_level PUBLIC_TO_EVERYONE is not offered to this creator%',
                   'a privacy level the creator is not offered is refused');
SELECT is(ARRAY(SELECT r->>'endpoint' FROM vs_test.sim_requests('priv_' || :'run') r), ARRAY['creator_info'],
          '... after creator_info, before any init call');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'v'), 'draft', '... and the post stays a draft');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'v' AND endpoint = 'creator_info'),
          1::bigint, '... and the creator_info call is in dispatch_logs although the statement failed');
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'FOLLOWER_OF_CREATOR')$$, :'v', :'priv'),
                'FOLLOWER_OF_CREATOR, which a private account is offered, publishes');

-- The creator turned comments off: the post must disable them too.
SELECT vs_test.new_account('nocomment_' || :'run', '{"comment_disabled": true}') AS noc \gset
SELECT vs_test.new_video() AS v \gset
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'noc'),
                 '22023', 'the creator has turned comments off; publish with disable_comment => true',
                 'a toggle the creator disabled is refused (22023)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('nocomment_' || :'run', 'video_init')), 0::bigint,
          '... without calling init');
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY', disable_comment => true)$$, :'v', :'noc'),
                'with disable_comment => true it publishes');

-- creator_info answers HTTP 200 with spam_risk_too_many_posts: the creator cannot post now.
SELECT vs_test.new_account('capped_' || :'run', '{"cannot_post": "spam_risk_too_many_posts"}') AS capped \gset
SELECT vs_test.new_video() AS v \gset
SELECT throws_like(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'capped'),
                   'TikTok creator_info failed: spam_risk_too_many_posts (log_id %)',
                   'HTTP 200 with a non-ok code is a failure, TikTok''s code and log_id in the message');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'capped')),
          '53000', '... SQLSTATE 53000 (a TikTok limit: PostgREST answers 503)');
SELECT results_eq(format($$SELECT http_status, outcome, error_code, log_id <> '' FROM vibescaling.dispatch_logs
                          WHERE post_id = %L ORDER BY id LIMIT 1$$, :'v'),
                  $$VALUES (200, 'failure', 'spam_risk_too_many_posts', true)$$,
                  '... logged as a failure with HTTP 200, the code and the log_id');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('capped_' || :'run', 'video_init')), 0::bigint,
          '... and no init was sent');

-- init refusals, each with its SQLSTATE.
SELECT vs_test.new_account('err_' || :'run') AS acct \gset
SELECT vs_test.new_video('x', 'https://unverified.example/v.mp4') AS v \gset
UPDATE vibescaling.posts SET upload_method = 'pull' WHERE id = :'v';  -- TikTok pulls it (and refuses)
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')),
          '42501', 'url_ownership_unverified → 42501');
SELECT results_eq(format($$SELECT endpoint, http_status, error_code FROM vibescaling.dispatch_logs
                          WHERE post_id = %L AND outcome = 'failure'$$, :'v'),
                  $$VALUES ('video_init', 403, 'url_ownership_unverified')$$,
                  '... logged with HTTP 403 and the code');
SELECT is((SELECT count(*) FROM vibescaling.publish_records WHERE post_id = :'v'), 0::bigint,
          '... no publish record, nothing half-written');

-- A failed init whose reply does not prove a refusal (a 5xx, a dropped
-- connection) has an unknown outcome: TikTok may have made the post, so it
-- is never sent again (security/02_unreadable_init_reply.sql has every kind).
SELECT vs_test.new_video() AS v \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "video_init", "http_status": 500, "error_code": "internal_error", "message": "boom"}');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')),
          '08000', 'internal_error (HTTP 500) → 08000');
SELECT ok((SELECT outcome_unknown FROM vibescaling.dispatch_logs
            WHERE post_id = :'v' AND endpoint = 'video_init' ORDER BY id DESC LIMIT 1),
          '... logged as outcome_unknown: a 5xx may come after TikTok acted');
SELECT vs_test.new_video() AS v \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "video_init", "http_status": 429, "error_code": "rate_limit_exceeded"}');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')),
          '53000', 'rate_limit_exceeded (HTTP 429) → 53000');
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "action": "html", "http_status": 502}');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')),
          '08P01', 'an HTML 502 page → 08P01 (bad_response)');
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "action": "malformed"}');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')),
          '08P01', 'malformed JSON → 08P01 (bad_response)');
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "video_init", "action": "drop"}');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'acct')),
          '08000', 'a connection dropped before the reply → 08000');
SELECT ok((SELECT outcome_unknown AND http_status IS NULL FROM vibescaling.dispatch_logs
            WHERE post_id = :'v' AND endpoint = 'video_init' ORDER BY id DESC LIMIT 1),
          '... logged as outcome_unknown: TikTok may have received it');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'v'), 6::bigint,
          'every attempt of those four failures is in dispatch_logs (6 calls)');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'v'), 'draft', 'the post is still a draft');

-- Tokens TikTok does not accept, and missing scopes (a fresh post: the one
-- above has an init of unknown outcome, which blocks any new init).
SELECT vs_test.new_video() AS v \gset
SELECT vibescaling.add_account('invalid_' || :'run', 'invalid-token-' || :'run') AS badtok \gset
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'badtok')),
          '28000', 'access_token_invalid (HTTP 401) → 28000');
SELECT vs_test.new_account('noscope_' || :'run', '{"scopes": ["user.info.basic", "video.upload"]}') AS noscope \gset
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v', :'noscope')),
          '42501', 'scope_not_authorized (HTTP 401) → 42501');

-- Durability: a publish whose transaction rolls back after TikTok accepted it.
SELECT vs_test.new_video() AS rb \gset
BEGIN;
SELECT vibescaling.publish_post(:'rb', :'acct', 'SELF_ONLY') IS NOT NULL AS published_then_rolled_back;
ROLLBACK;
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'rb'), 'draft', 'after ROLLBACK the post is a draft again');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'rb' AND outcome = 'success'), 2::bigint,
          '... but both dispatch_logs rows survived the rollback');
SELECT throws_like(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'rb', :'acct'),
                   '%was already sent to TikTok (publish_id v_pub_url~v2.%',
                   'publishing it again is refused: the durable log knows TikTok has it');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('err_' || :'run', 'video_init') r
            WHERE r->'body'->'source_info'->>'video_url' = 'https://verified.example/clip.mp4'
              AND r->>'http_status' = '200'), 1::bigint,
          '... so TikTok received exactly one successful init for it');

SELECT * FROM finish();
