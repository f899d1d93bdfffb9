-- TikTok webhooks: signature and timestamp checks (refusals counted by the HTTP API),
-- dedupe, and each event applied to publish_records, posts and accounts.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(58);

SELECT substr(md5(random()::text), 1, 8) AS run \gset

-- A webhook body as TikTok sends it: content is a JSON object serialized as a string.
-- nonce makes a body distinct from an earlier one with the same fields.
CREATE FUNCTION pg_temp.wh_body(event text, content jsonb, openid text DEFAULT NULL, nonce integer DEFAULT 0)
RETURNS text
LANGUAGE sql
AS $$
    SELECT jsonb_build_object('client_key', 'sim_client_key', 'event', event,
                              'create_time', extract(epoch FROM now())::bigint + nonce,
                              'user_openid', openid, 'content', content::text)::text
$$;

-- The TikTok-Signature header for a body: t=<ts>,s=hex(HMAC-SHA256(secret, "<t>.<body>")).
CREATE FUNCTION pg_temp.wh_sign(body text, t bigint DEFAULT extract(epoch FROM now())::bigint,
                                secret text DEFAULT current_setting('vibescaling.client_secret'))
RETURNS text
LANGUAGE sql
AS $$
    SELECT format('t=%s,s=%s', t,
                  encode(hmac(convert_to(t || '.' || body, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex'))
$$;

-- A correctly signed delivery.
CREATE FUNCTION pg_temp.wh(body text)
RETURNS jsonb
LANGUAGE sql
AS $$ SELECT vibescaling.handle_webhook(body, pg_temp.wh_sign(body)) $$;

-- Today's count of refused deliveries through the HTTP API, by reason.
CREATE FUNCTION pg_temp.refusals(code text)
RETURNS bigint
LANGUAGE sql
AS $$
    SELECT coalesce(sum(refusals), 0)::bigint FROM vibescaling.webhook_refusals
     WHERE day = current_date AND error_code = code
$$;

-- A delivery through the HTTP API's function (as PostgREST calls it).
CREATE FUNCTION pg_temp.api_wh(body text, signature text)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM set_config('request.headers', jsonb_build_object('tiktok-signature', signature)::text, true);
    PERFORM set_config('response.status', '', true);
    RETURN vibescaling_api.handle_webhook(body::json)
           || jsonb_build_object('response.status', current_setting('response.status'));
END
$$;

-- Three real publishes to receive events for.
SELECT vs_test.new_account('wh_' || :'run') AS acct \gset
SELECT vs_test.new_video() AS p1 \gset
SELECT vs_test.new_video() AS p2 \gset
SELECT vs_test.new_video() AS p3 \gset
SELECT vibescaling.publish_post(:'p1', :'acct', 'SELF_ONLY') #>> '{data,publish_id}' AS pub1 \gset
SELECT vibescaling.publish_post(:'p2', :'acct', 'SELF_ONLY', mode => 'inbox') #>> '{data,publish_id}' AS pub2 \gset
SELECT vibescaling.publish_post(:'p3', :'acct', 'SELF_ONLY') #>> '{data,publish_id}' AS pub3 \gset

SELECT has_table('vibescaling', 'webhook_events', 'table vibescaling.webhook_events exists');
SELECT is((SELECT count(*) FROM pg_proc p
            WHERE p.pronamespace = 'vibescaling'::regnamespace
              AND p.proname IN ('handle_webhook', '_durable_log', '_webhook_hmac', '_refuse_webhook')
              AND (p.proacl IS NULL OR array_to_string(p.proacl, ',') ~ '(^|,)=')),
          0::bigint, 'no webhook function is executable by PUBLIC');
SELECT ok(NOT has_table_privilege('public', 'vibescaling.webhook_events', 'SELECT'),
          'webhook_events is not readable by PUBLIC');

-- post.publish.complete
SELECT pg_temp.wh_body('post.publish.complete',
                       jsonb_build_object('publish_id', :'pub1', 'publish_type', 'DIRECT_PUBLISH'),
                       'wh_' || :'run') AS b_complete \gset
SELECT pg_temp.wh(:'b_complete') AS r \gset
SELECT is(:'r'::jsonb, jsonb_build_object('data', jsonb_build_object(
              'event', 'post.publish.complete', 'publish_id', :'pub1', 'applied', true, 'duplicate', false)),
          'post.publish.complete is accepted and applied');
SELECT is((SELECT status || '/' || tiktok_status FROM vibescaling.publish_records WHERE publish_id = :'pub1'),
          'published/PUBLISH_COMPLETE', '... the publish record is published');
SELECT results_eq(format($$SELECT post_id, tiktok_account_id, endpoint, outcome, error_code, publish_id
                             FROM vibescaling.dispatch_logs WHERE trigger = 'webhook' AND publish_id = %L$$, :'pub1'),
                  format($$VALUES (%L::uuid, %L::uuid, 'webhook', 'success', 'post.publish.complete', %L)$$,
                         :'p1', :'acct', :'pub1'),
                  '... and is a dispatch_logs row (trigger webhook, error_code = the event)');
SELECT is((SELECT event || ' ' || user_openid || ' ' || (content->>'publish_id')
             FROM vibescaling.webhook_events WHERE body_sha256 = encode(sha256(convert_to(:'b_complete', 'UTF8')), 'hex')),
          'post.publish.complete wh_' || :'run' || ' ' || :'pub1', '... stored in webhook_events with its content parsed');

-- Redelivery (TikTok retries with a new signature): a duplicate, nothing applied.
UPDATE vibescaling.publish_records SET tiktok_status = 'PROCESSING_DOWNLOAD', status = 'processing' WHERE publish_id = :'pub1';
SELECT vibescaling.handle_webhook(:'b_complete', pg_temp.wh_sign(:'b_complete', extract(epoch FROM now())::bigint - 5)) AS r \gset
SELECT is(:'r'::jsonb -> 'data', jsonb_build_object('event', 'post.publish.complete', 'publish_id', :'pub1',
                                                    'applied', false, 'duplicate', true),
          'a replayed body is a duplicate');
SELECT is((SELECT status FROM vibescaling.publish_records WHERE publish_id = :'pub1'), 'processing',
          '... and is not applied again');
SELECT is((SELECT count(*) FROM vibescaling.webhook_events WHERE publish_id = :'pub1'), 1::bigint,
          '... nor stored twice');
SELECT ok(pg_temp.wh(pg_temp.wh_body('post.publish.complete', jsonb_build_object('publish_id', :'pub1'), 'wh_' || :'run', 1))
              #> '{data,applied}' = 'true', 'a new delivery of the same event (another body) applies it');

-- post.publish.publicly_available: a 19-digit id, as a JSON number, kept exactly.
SELECT pg_temp.wh_body('post.publish.publicly_available',
                       jsonb_build_object('publish_id', :'pub1', 'post_id', 7300000000000123456::numeric),
                       'wh_' || :'run') AS b_public \gset
SELECT ok(strpos(:'b_public', '\"post_id\": 7300000000000123456') > 0, '(the body carries the id as a JSON number)');
SELECT is(pg_temp.wh(:'b_public') #> '{data,applied}', 'true'::jsonb, 'post.publish.publicly_available is applied');
SELECT is((SELECT public_post_ids FROM vibescaling.publish_records WHERE publish_id = :'pub1'),
          ARRAY[7300000000000123456]::bigint[], '... the 19-digit post id is kept exactly');
SELECT is((SELECT vibescaling._publish_status_json(r) FROM vibescaling.publish_records r WHERE r.publish_id = :'pub1')
              #> '{data,public_post_ids}',
          '["7300000000000123456"]'::jsonb, '... and the API shape (publish_status) shows it exactly');
SELECT is(pg_temp.wh(pg_temp.wh_body('post.publish.publicly_available',
                                     jsonb_build_object('publish_id', :'pub1', 'post_id', '7300000000000123456'),
                                     'wh_' || :'run', 1)) #> '{data,applied}',
          'false'::jsonb, 'the same id again (as a string) is not applied');
SELECT is(pg_temp.wh(pg_temp.wh_body('post.publish.publicly_available',
                                     jsonb_build_object('publish_id', :'pub1', 'post_id', '9223372036854775807'),
                                     'wh_' || :'run')) #> '{data,applied}',
          'true'::jsonb, 'another id (as a string) is applied');
SELECT is((SELECT public_post_ids FROM vibescaling.publish_records WHERE publish_id = :'pub1'),
          ARRAY[7300000000000123456, 9223372036854775807]::bigint[], '... a second id (the int64 maximum) is appended');

-- post.publish.no_longer_publicaly_available (TikTok's spelling) removes it.
SELECT is(pg_temp.wh(pg_temp.wh_body('post.publish.no_longer_publicaly_available',
                                     jsonb_build_object('publish_id', :'pub1', 'post_id', '7300000000000123456'),
                                     'wh_' || :'run')) #> '{data,applied}',
          'true'::jsonb, 'post.publish.no_longer_publicaly_available is applied');
SELECT is((SELECT public_post_ids FROM vibescaling.publish_records WHERE publish_id = :'pub1'),
          ARRAY[9223372036854775807]::bigint[], '... the id is removed');
SELECT is(pg_temp.wh(:'b_public') #> '{data,duplicate}', 'true'::jsonb,
          'a redelivery of the earlier publicly_available body is a duplicate');
SELECT is((SELECT public_post_ids FROM vibescaling.publish_records WHERE publish_id = :'pub1'),
          ARRAY[9223372036854775807]::bigint[], '... and does not add the removed id back');
SELECT throws_ok(format('SELECT pg_temp.wh(%L)',
                        pg_temp.wh_body('post.publish.publicly_available',
                                        jsonb_build_object('publish_id', :'pub1', 'post_id', '9223372036854775808'))),
                 '22023', NULL, 'a post_id beyond int64 is refused (22023)');

-- post.publish.inbox_delivered
SELECT is(pg_temp.wh(pg_temp.wh_body('post.publish.inbox_delivered',
                                     jsonb_build_object('publish_id', :'pub2', 'publish_type', 'INBOX_SHARE'),
                                     'wh_' || :'run')) #> '{data,applied}',
          'true'::jsonb, 'post.publish.inbox_delivered is applied');
SELECT is((SELECT status || '/' || tiktok_status FROM vibescaling.publish_records WHERE publish_id = :'pub2'),
          'sent_to_inbox/SEND_TO_USER_INBOX', '... the publish record is sent_to_inbox');

-- post.publish.failed: the record and the post fail with TikTok's reason.
SELECT is(pg_temp.wh(pg_temp.wh_body('post.publish.failed',
                                     jsonb_build_object('publish_id', :'pub3', 'reason', 'frame_rate_check_failed'),
                                     'wh_' || :'run')) #> '{data,applied}',
          'true'::jsonb, 'post.publish.failed is applied');
SELECT is((SELECT status || '/' || tiktok_status || '/' || fail_reason FROM vibescaling.publish_records WHERE publish_id = :'pub3'),
          'failed/FAILED/frame_rate_check_failed', '... the publish record failed with the reason');
SELECT is((SELECT status || ': ' || last_error FROM vibescaling.posts WHERE id = :'p3'),
          format('failed: TikTok: publish %s failed: frame_rate_check_failed', :'pub3'),
          '... and so did the post, with last_error as publish_status writes it');
SELECT is(pg_temp.wh(pg_temp.wh_body('post.publish.complete', jsonb_build_object('publish_id', :'pub3'),
                                     'wh_' || :'run')) #> '{data,applied}',
          'false'::jsonb, 'a late complete does not undo a failure');

-- A publish_id we never made: stored, not applied.
SELECT is(pg_temp.wh(pg_temp.wh_body('post.publish.complete', jsonb_build_object('publish_id', 'v_pub_unknown~' || :'run')))
              -> 'data',
          jsonb_build_object('event', 'post.publish.complete', 'publish_id', 'v_pub_unknown~' || :'run',
                             'applied', false, 'duplicate', false),
          'an event for an unknown publish_id is accepted and applies nothing');

-- authorization.removed: the account needs re-authorization.
SELECT vs_test.new_account('whgone_' || :'run') AS gone \gset
SELECT is(pg_temp.wh(pg_temp.wh_body('authorization.removed', '{"reason": 1}', 'whgone_' || :'run')) #> '{data,applied}',
          'true'::jsonb, 'authorization.removed is applied');
SELECT is((SELECT status || ': ' || status_reason FROM vibescaling.accounts WHERE id = :'gone'),
          'needs_reauth: authorization removed on TikTok (reason 1)', '... the account is needs_reauth with the reason');
SELECT is((SELECT tiktok_account_id FROM vibescaling.dispatch_logs
            WHERE trigger = 'webhook' AND error_code = 'authorization.removed' ORDER BY id DESC LIMIT 1),
          :'gone'::uuid, '... logged against the account');

-- An event vibescaling does not know: stored, nothing applied.
SELECT pg_temp.wh_body('video.upload.someday_' || :'run', '{"publish_id": "x", "anything": [1, 2]}', 'wh_' || :'run') AS b_unknown \gset
SELECT is(pg_temp.wh(:'b_unknown') #> '{data,applied}', 'false'::jsonb, 'an unknown event is accepted and applies nothing');
SELECT is((SELECT content FROM vibescaling.webhook_events WHERE event = 'video.upload.someday_' || :'run'),
          '{"publish_id": "x", "anything": [1, 2]}'::jsonb, '... and is stored');

-- Refusals: 42501 (SQL); through the HTTP API, 403 and a count per day and reason.
SELECT pg_temp.refusals('bad_signature') AS bad0 \gset
SELECT pg_temp.wh_body('post.publish.complete', jsonb_build_object('publish_id', :'pub2'), 'wh_' || :'run', 7) AS b_forged \gset
SELECT throws_ok(format('SELECT vibescaling.handle_webhook(%L, %L)', :'b_forged', pg_temp.wh_sign(:'b_forged', secret => 'not-the-secret')),
                 '42501', 'TikTok webhook refused: TikTok-Signature does not match the body',
                 'a signature under another secret is refused (42501)');
SELECT is(pg_temp.api_wh(:'b_forged', pg_temp.wh_sign(:'b_forged', secret => 'not-the-secret'))->>'code', '42501',
          '... through the HTTP API it answers the refusal without raising');
SELECT is(pg_temp.api_wh(:'b_forged', pg_temp.wh_sign(:'b_forged', secret => 'not-the-secret'))->>'response.status', '403',
          '... with response.status 403');
SELECT is(pg_temp.refusals('bad_signature'), (:bad0 + 2)::bigint, '... and counts them as bad_signature');
SELECT is((SELECT status FROM vibescaling.publish_records WHERE publish_id = :'pub2'), 'sent_to_inbox',
          '... nothing applied');
SELECT is((SELECT count(*) FROM vibescaling.webhook_events WHERE body_sha256 = encode(sha256(convert_to(:'b_forged', 'UTF8')), 'hex')),
          0::bigint, '... nothing stored');
SELECT throws_ok(format('SELECT vibescaling.handle_webhook(%L, %L)', replace(:'b_forged', 'complete', 'failed'),
                        pg_temp.wh_sign(:'b_forged')),
                 '42501', NULL, 'a body changed after signing is refused (42501)');
SELECT throws_ok(format('SELECT vibescaling.handle_webhook(%L, %L)', :'b_forged', 'sha256=' || md5('x')),
                 '42501', 'TikTok webhook refused: TikTok-Signature header malformed (expected t=<unix ts>,s=<64 hex digits>)',
                 'a malformed signature header is refused (42501)');
SELECT throws_ok(format('SELECT vibescaling.handle_webhook(%L, NULL)', :'b_forged'),
                 '42501', 'TikTok webhook refused: TikTok-Signature header missing', 'a missing signature is refused (42501)');
SELECT pg_temp.api_wh(:'b_forged', 'sha256=' || md5('x')) AS r_malformed \gset
SELECT pg_temp.api_wh(:'b_forged', NULL) AS r_missing \gset
SELECT is(pg_temp.refusals('bad_signature'), (:bad0 + 4)::bigint, '... each refusal counted in the same row');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE trigger = 'webhook' AND outcome = 'failure'), 0::bigint,
          '... and no refusal is a dispatch_logs row (nor starts a log writer)');

SELECT pg_temp.refusals('stale_timestamp') AS stale0 \gset
SELECT throws_like(format('SELECT vibescaling.handle_webhook(%L, %L)', :'b_forged',
                          pg_temp.wh_sign(:'b_forged', extract(epoch FROM now() - interval '1 hour')::bigint)),
                   'TikTok webhook refused: signature timestamp % is 360_ s from now (tolerance 300 s)',
                   'a correctly signed body an hour old is refused as stale');
SELECT is(vs_test.sqlstate_of(format('SELECT vibescaling.handle_webhook(%L, %L)', :'b_forged',
                                     pg_temp.wh_sign(:'b_forged', extract(epoch FROM now() + interval '1 hour')::bigint))),
          '42501', '... and so is one an hour in the future (42501)');
SELECT pg_temp.api_wh(:'b_forged', pg_temp.wh_sign(:'b_forged', extract(epoch FROM now() - interval '1 hour')::bigint)) AS r_stale \gset
SELECT is(pg_temp.refusals('stale_timestamp'), (:stale0 + 1)::bigint, '... counted as stale_timestamp');
SELECT is(vs_test.sqlstate_of(format('SELECT vibescaling.handle_webhook(repeat(''x'', 65537), %L)', pg_temp.wh_sign('x'))),
          '22023', 'a body over 64 kB is refused (22023)');
SET vibescaling.webhook_tolerance = 7200;
SELECT is(vibescaling.handle_webhook(:'b_forged', pg_temp.wh_sign(:'b_forged', extract(epoch FROM now() - interval '1 hour')::bigint))
              #> '{data,duplicate}',
          'false'::jsonb, 'vibescaling.webhook_tolerance = 7200 accepts it');
RESET vibescaling.webhook_tolerance;

-- Malformed bodies with a valid signature: 22023.
SELECT throws_ok(format('SELECT pg_temp.wh(%L)', '{"event": "post.publish.complete", "content": '),
                 '22023', 'TikTok webhook body is not JSON', 'a malformed body with a valid signature: 22023');
SELECT throws_ok(format('SELECT pg_temp.wh(%L)', '{"event": "post.publish.complete", "content": "{not json"}'),
                 '22023', 'TikTok webhook content is not JSON', 'content that is not JSON: 22023');
SELECT throws_ok(format('SELECT pg_temp.wh(%L)', '{"content": "{}"}'),
                 '22023', 'TikTok webhook body has no event', 'a body without an event: 22023');

-- No client secret: 55000.
SET vibescaling.client_secret = '';
SELECT throws_ok(format('SELECT vibescaling.handle_webhook(%L, %L)', :'b_forged', 't=1,s=00'), '55000',
                 'vibescaling.client_secret is not set: webhook signatures cannot be checked',
                 'without a client secret: a clear 55000');
RESET vibescaling.client_secret;

-- Secrets: neither the client secret nor a signature computed with it is stored.
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l
            WHERE strpos(l::text, current_setting('vibescaling.client_secret')) > 0),
          0::bigint, 'the client secret is nowhere in dispatch_logs');
SELECT is((SELECT count(*) FROM vibescaling.webhook_events e
            WHERE strpos(e::text, current_setting('vibescaling.client_secret')) > 0),
          0::bigint, '... nor in webhook_events');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l
            WHERE l.trigger = 'webhook' AND l::text ~* '[0-9a-f]{64}'),
          0::bigint, '... nor any signature (no 64-hex-digit string in the webhook rows)');

SELECT * FROM finish();
