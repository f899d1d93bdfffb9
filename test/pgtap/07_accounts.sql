-- Connected accounts: OAuth connect, tokens at rest, refresh before expiry
-- and after a 401 (once), rotation, invalid_grant, scopes, disconnect,
-- creator_info's cache, and refresh_expiring_tokens.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(49);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vs_test.sim_post('/_sim/config', '{"access_expires_in": 3600, "refresh_expires_in": 86400}') IS NOT NULL AS configured;

-- authorize_url
SELECT is(vibescaling.authorize_url('https://app.example/cb?x=1', 'st ate'),
          'https://www.tiktok.com/v2/auth/authorize/?client_key=sim_client_key'
          || '&scope=user.info.basic%2Cvideo.publish%2Cvideo.upload%2Cvideo.list%2Cuser.info.stats&response_type=code'
          || '&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1&state=st%20ate',
          'authorize_url asks for the scopes vibescaling needs, every value URL-encoded');

-- connect_account: code exchange, then user info.
SELECT vibescaling.connect_account('code-conn_' || :'run', 'https://app.example/cb') AS acct \gset
SELECT is((SELECT open_id FROM vibescaling.accounts WHERE id = :'acct'), 'conn_' || :'run',
          'connect_account exchanges the code and creates the account for TikTok''s open_id');
SELECT ok((SELECT display_name IS NOT NULL AND avatar_url IS NOT NULL FROM vibescaling.accounts WHERE id = :'acct'),
          '... with display name and avatar from /v2/user/info/');
SELECT ok((SELECT access_token_expires_at BETWEEN now() + interval '3590 seconds' AND now() + interval '3610 seconds'
             FROM vibescaling.accounts WHERE id = :'acct'),
          '... access token expiry from expires_in (3600 s here, not hard-coded)');
SELECT ok((SELECT refresh_token_expires_at BETWEEN now() + interval '86390 seconds' AND now() + interval '86410 seconds'
             FROM vibescaling.accounts WHERE id = :'acct'),
          '... refresh token expiry from refresh_expires_in');
SELECT is((SELECT scopes FROM vibescaling.accounts WHERE id = :'acct'),
          ARRAY['user.info.basic', 'video.publish', 'video.upload'], '... and the scopes actually granted');
SELECT ok((SELECT a.access_token_enc IS NOT NULL
                  AND strpos(encode(a.access_token_enc, 'escape'), vibescaling._unseal(a.access_token_enc)) = 0
                  AND strpos(encode(a.refresh_token_enc, 'escape'), vibescaling._unseal(a.refresh_token_enc)) = 0
             FROM vibescaling.tiktok_accounts a WHERE a.id = :'acct'),
          'tokens are stored encrypted (the ciphertext does not contain them)');
SELECT results_eq(format($$SELECT endpoint, trigger, outcome FROM vibescaling.dispatch_logs
                          WHERE trigger = 'connect' AND (tiktok_account_id = %L OR tiktok_account_id IS NULL)
                            AND created_at > now() - interval '1 minute' ORDER BY id DESC LIMIT 2$$, :'acct'),
                  $$VALUES ('user_info', 'connect', 'success'), ('oauth_token', 'connect', 'success')$$,
                  'both calls are in dispatch_logs with trigger connect');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l
            WHERE strpos(l::text, (SELECT vibescaling._unseal(access_token_enc) FROM vibescaling.tiktok_accounts WHERE id = :'acct')) > 0),
          0::bigint, 'the token is nowhere in dispatch_logs');

-- Reconnecting the same open_id updates the account.
SELECT vs_test.sim_post('/_sim/users', jsonb_build_object('open_id', 'conn_' || :'run', 'access_token', 'act.reconnect.' || :'run',
                                                          'refresh_token', 'rft.reconnect.' || :'run', 'auth_code', 'again-' || :'run'))
       IS NOT NULL AS registered;
SELECT is(vibescaling.connect_account('again-' || :'run', 'https://app.example/cb'), :'acct'::uuid,
          'reconnecting the same open_id returns the same account');
SELECT is((SELECT count(*) FROM vibescaling.tiktok_accounts WHERE open_id = 'conn_' || :'run'), 1::bigint, '... not a duplicate');

-- Refused codes, missing credentials.
SELECT lives_ok($$SELECT vibescaling.connect_account('code-used_twice_$$ || :'run' || $$', 'https://app.example/cb')$$,
                'a fresh code connects');
SELECT throws_ok($$SELECT vibescaling.connect_account('code-used_twice_$$ || :'run' || $$', 'https://app.example/cb')$$, '28000', NULL,
                 'a reused code: invalid_grant → 28000');
SET vibescaling.client_secret = '';
SELECT throws_ok($$SELECT vibescaling.connect_account('code-nosecret', 'https://app.example/cb')$$, '55000',
                 'vibescaling.client_key and vibescaling.client_secret are not set', 'missing app credentials: a clear 55000');
RESET vibescaling.client_secret;

-- A token expiring within the margin is refreshed once, before the call.
UPDATE vibescaling.tiktok_accounts SET access_token_expires_at = now() + interval '1 minute' WHERE id = :'acct';
SELECT token_version AS v0 FROM vibescaling.tiktok_accounts WHERE id = :'acct' \gset
SELECT count(*) AS seq0 FROM vs_test.sim_requests('conn_' || :'run') \gset
SELECT vs_test.new_video() AS v1 \gset
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v1', :'acct'),
                'publishing with a token about to expire works');
SELECT is(ARRAY(SELECT r->>'endpoint' FROM vs_test.sim_requests('conn_' || :'run') r
                 ORDER BY (r->>'seq')::int OFFSET :seq0),
          ARRAY['oauth_token', 'creator_info', 'video_init'], '... after exactly one refresh');
SELECT ok((SELECT access_token_expires_at > now() + interval '3500 seconds' AND token_version = :v0 + 1
             FROM vibescaling.tiktok_accounts WHERE id = :'acct'),
          '... which stored the new token and its expiry');
SELECT is((SELECT trigger || '/' || outcome FROM vibescaling.dispatch_logs WHERE post_id = :'v1' AND endpoint = 'oauth_token'),
          'manual/success', '... and is logged against the post');
SELECT is((vibescaling._refresh_token(:'acct', true, 'refresh'))->>'outcome', 'refreshed',
          'the rotated refresh token was stored: refreshing again works (the old one is dead at TikTok)');

-- A 401 refreshes once and retries once.
SELECT vs_test.sim_post('/_sim/users/conn_' || :'run', '{"expires_in": -1}') IS NOT NULL AS expired_at_tiktok;
SELECT count(*) AS refreshes1 FROM vs_test.sim_requests('conn_' || :'run', 'oauth_token') \gset
SELECT vs_test.new_video() AS v2 \gset
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v2', :'acct'),
                'a token TikTok refuses (401) is refreshed and the call retried');
SELECT is(ARRAY(SELECT endpoint || ':' || http_status FROM vibescaling.dispatch_logs WHERE post_id = :'v2' ORDER BY id),
          ARRAY['creator_info:401', 'oauth_token:200', 'creator_info:200', 'video_init:200'],
          '... one refresh, one retry (dispatch_logs)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('conn_' || :'run', 'oauth_token')), (:refreshes1 + 1)::bigint,
          '... TikTok saw one refresh');

-- ... and never loops: a second 401 after the refresh is the answer.
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "creator_info", "count": 2, "http_status": 401, "error_code": "access_token_invalid"}');
SELECT vs_test.new_video() AS v3 \gset
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v3', :'acct'), '28000', NULL,
                 'a 401 after the refresh fails with 28000');
SELECT is(ARRAY(SELECT endpoint || ':' || http_status FROM vibescaling.dispatch_logs WHERE post_id = :'v3' ORDER BY id),
          ARRAY['creator_info:401', 'oauth_token:200', 'creator_info:401'],
          '... after one refresh and one retry: no loop');

-- A dead refresh token: the account needs re-authorization, the post fails cleanly.
SELECT vs_test.new_account('dead_' || :'run') AS dead \gset
UPDATE vibescaling.tiktok_accounts SET access_token_expires_at = now() + interval '10 seconds' WHERE id = :'dead';
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "oauth_token", "http_status": 400, "error_code": "invalid_grant", "message": "refresh token expired"}');
SELECT vs_test.new_video() AS v4 \gset
SELECT throws_like(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v4', :'dead'),
                   '%invalid_grant%', 'a failed refresh fails the publish with TikTok''s invalid_grant');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v4', :'dead')), '55000',
          '... and afterwards the account refuses to publish (55000)');
SELECT is((SELECT status FROM vibescaling.accounts WHERE id = :'dead'), 'needs_reauth', '... it is marked needs_reauth');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'v4'), 'draft', '... the post is untouched');
SELECT is((SELECT outcome || '/' || error_code FROM vibescaling.dispatch_logs WHERE post_id = :'v4' AND endpoint = 'oauth_token'),
          'failure/invalid_grant', '... and the failed refresh is logged');

-- Scopes: an account that did not grant video.publish cannot Direct Post.
SELECT vs_test.sim_post('/_sim/users', jsonb_build_object('open_id', 'noscope_' || :'run', 'access_token', 'act.noscope.' || :'run',
       'refresh_token', 'rft.noscope.' || :'run', 'auth_code', 'noscope-' || :'run',
       'scopes', jsonb_build_array('user.info.basic', 'video.upload'))) IS NOT NULL AS registered;
SELECT vibescaling.connect_account('noscope-' || :'run', 'https://app.example/cb') AS noscope \gset
SELECT vs_test.new_video() AS v5 \gset
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v5', :'noscope'), '42501',
                 format('TikTok account %s has not granted the video.publish scope that direct mode needs', :'noscope'),
                 'Direct Post without video.publish is refused up front (42501)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('noscope_' || :'run', 'creator_info')), 0::bigint, '... without calling TikTok');
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY', mode => 'inbox')$$, :'v5', :'noscope'),
                '... while the inbox (video.upload) works');

-- creator_info: TikTok's answer, cached.
SELECT count(*) AS ci0 FROM vs_test.sim_requests('conn_' || :'run', 'creator_info') \gset
SELECT vibescaling.creator_info(:'acct') AS ci \gset
SELECT ok(:'ci'::jsonb #> '{data,privacy_level_options}' @> '["SELF_ONLY"]'
          AND :'ci'::jsonb #> '{data}' ?& ARRAY['creator_nickname', 'comment_disabled', 'duet_disabled', 'stitch_disabled', 'max_video_post_duration_sec'],
          'creator_info answers nickname, privacy options, disabled interactions, max duration');
SELECT is(vibescaling.creator_info(:'acct') #> '{data}', :'ci'::jsonb #> '{data}', 'a second call answers the same');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('conn_' || :'run', 'creator_info')), (:ci0 + 1)::bigint,
          '... from the cache: TikTok was asked once');
SET vibescaling.creator_info_ttl = 0;
SELECT vibescaling.creator_info(:'acct') IS NOT NULL AS fetched;
RESET vibescaling.creator_info_ttl;
SELECT is((SELECT count(*) FROM vs_test.sim_requests('conn_' || :'run', 'creator_info')), (:ci0 + 2)::bigint,
          'with a TTL of 0 it asks TikTok again');

-- Scheduling checks what the creator allows.
SELECT vs_test.new_account('private_' || :'run', '{"private_account": true}') AS priv \gset
SELECT vs_test.new_video() AS v6 \gset
SELECT throws_ok(format($$SELECT vibescaling.schedule_post(%L, now() + interval '1 hour', %L, 'PUBLIC_TO_EVERYONE')$$, :'v6', :'priv'),
                 '22023', 'privacy_level PUBLIC_TO_EVERYONE is not offered to this creator',
                 'schedule_post refuses a privacy level the creator is not offered');

-- Disconnect: revoke, wipe, refuse, fail scheduled posts.
SELECT vs_test.new_video() AS v7 \gset
SELECT vibescaling.schedule_post(:'v7', now() + interval '1 hour', :'acct', 'SELF_ONLY') IS NOT NULL AS scheduled;
SELECT vibescaling.disconnect_account(:'acct') AS dis \gset
SELECT is(:'dis'::jsonb #> '{data,revoked}', 'true'::jsonb, 'disconnect_account revokes the token at TikTok');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('conn_' || :'run', 'oauth_revoke')), 1::bigint, '... one revoke call');
SELECT is(:'dis'::jsonb #> '{data,failed_scheduled_posts}', '1'::jsonb, '... and reports the scheduled post it failed');
SELECT ok((SELECT access_token_enc IS NULL AND refresh_token_enc IS NULL AND status = 'disconnected'
             FROM vibescaling.tiktok_accounts WHERE id = :'acct'), 'the tokens are wiped, the account disconnected');
SELECT is((SELECT status || ': ' || last_error FROM vibescaling.posts WHERE id = :'v7'),
          format('failed: TikTok account %s was disconnected', :'acct'), 'its scheduled post failed with the reason');
SELECT vs_test.new_video() AS v8 \gset
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'v8', :'acct'), '55000', NULL,
                 'publishing to a disconnected account is refused');

-- refresh_expiring_tokens keeps idle accounts alive.
SELECT vs_test.new_account('idle1_' || :'run') AS idle1 \gset
SELECT vs_test.new_account('idle2_' || :'run') AS idle2 \gset
UPDATE vibescaling.tiktok_accounts SET access_token_expires_at = now() + interval '10 minutes' WHERE id IN (:'idle1', :'idle2');
SELECT ok((vibescaling.refresh_expiring_tokens() ->> 'refreshed')::int >= 2, 'refresh_expiring_tokens refreshes the expiring accounts');
SELECT ok((SELECT bool_and(access_token_expires_at > now() + interval '50 minutes') FROM vibescaling.tiktok_accounts
            WHERE id IN (:'idle1', :'idle2')), '... both now expire later');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE tiktok_account_id IN (:'idle1', :'idle2')
             AND endpoint = 'oauth_token' AND trigger = 'refresh' AND outcome = 'success'), 2::bigint,
          '... one logged refresh each');

SELECT vs_test.sim_post('/_sim/config', '{"access_expires_in": 7200, "refresh_expires_in": 15552000}') IS NOT NULL AS restored;

-- A token is decrypted once per transaction and token version (a round
-- loads its accounts twice). Seen from the simulator: which user's token
-- each call carried. The account's sealed token is swapped for user B's
-- without a new version (never done but by this test), then the version
-- is bumped, as every refresh does.
SELECT vs_test.new_account('tkA_' || :'run') AS tka \gset
SELECT vs_test.sim_post('/_sim/users', jsonb_build_object('open_id', 'tkB_' || :'run', 'access_token', 'act.tkB.' || :'run',
                                                          'refresh_token', 'rft.tkB.' || :'run')) IS NOT NULL AS user_b;
BEGIN;
SELECT (vibescaling._tiktok_call('creator_info', :'tka', NULL, 'manual', '{}')).ok AS first_call;
UPDATE vibescaling.tiktok_accounts SET access_token_enc = vibescaling._seal('act.tkB.' || :'run') WHERE id = :'tka';
SELECT (vibescaling._tiktok_call('creator_info', :'tka', NULL, 'manual', '{}')).ok AS same_version;
UPDATE vibescaling.tiktok_accounts SET token_version = token_version + 1 WHERE id = :'tka';
SELECT (vibescaling._tiktok_call('creator_info', :'tka', NULL, 'manual', '{}')).ok AS new_version;
COMMIT;
SELECT is((SELECT count(*) FROM vs_test.sim_requests('tkA_' || :'run', 'creator_info')), 2::bigint,
          'a token decrypted once in a transaction serves its second call (same token version)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('tkB_' || :'run', 'creator_info')), 1::bigint,
          '... a new token version is decrypted afresh');
SELECT (vibescaling._tiktok_call('creator_info', :'tka', NULL, 'manual', '{}')).ok AS next_transaction;
SELECT is((SELECT count(*) FROM vs_test.sim_requests('tkB_' || :'run', 'creator_info')), 2::bigint,
          '... and the next transaction reads the stored token');
SELECT * FROM finish();
