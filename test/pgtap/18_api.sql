-- The HTTP API through PostgREST, replayed: each request runs as PostgREST
-- runs it (vs_test.pgrst: its role switch, request.jwt.claims,
-- request.method/path/headers, one (sub)transaction, read-only for GET), and
-- the tests assert the HTTP status PostgREST would answer for the outcome.
-- Tenants A and B; anon; TikTok's webhook role.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(65);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT 'tenant-a-' || :'run' AS a, 'tenant-b-' || :'run' AS b \gset
SELECT vibescaling.setup_api_roles() IS NOT NULL AS roles;

-- Each tenant has a connected account (an operator assigns the owner here;
-- through the API, connect_account gives the new account the JWT's sub).
SELECT vs_test.new_account('apia_' || :'run') AS acct_a \gset
SELECT vs_test.new_account('apib_' || :'run') AS acct_b \gset
UPDATE vibescaling.tiktok_accounts SET owner = :'a' WHERE id = :'acct_a';
UPDATE vibescaling.tiktok_accounts SET owner = :'b' WHERE id = :'acct_b';

-- Requests as A, as B, as anon.
CREATE FUNCTION pg_temp.as_a(method text, path text, stmt text, headers jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$ SELECT vs_test.pgrst('vibescaling_user', current_setting('vs.a'), method, path, stmt, headers) $$;
CREATE FUNCTION pg_temp.as_b(method text, path text, stmt text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT vs_test.pgrst('vibescaling_user', current_setting('vs.b'), method, path, stmt) $$;
CREATE FUNCTION pg_temp.as_anon(method text, path text, stmt text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT vs_test.pgrst('vibescaling_anon', NULL, method, path, stmt) $$;
SELECT set_config('vs.a', :'a', false), set_config('vs.b', :'b', false);

-- ---------------------------------------------------------------------------
-- Posts CRUD.
SELECT pg_temp.as_a('POST', '/posts',
       $$INSERT INTO vibescaling_api.posts (caption, video_url) VALUES ('api draft', 'https://verified.example/a.mp4') RETURNING id$$)
       AS created \gset
SELECT is((:'created'::jsonb)->>'http', '200', 'POST /posts creates a draft');
SELECT (:'created'::jsonb)#>>'{rows,0,id}' AS post_a \gset
SELECT is((SELECT owner || ' ' || status FROM vibescaling.posts WHERE id = :'post_a'), :'a' || ' draft',
          '... owned by the JWT''s sub');
SELECT is(jsonb_array_length(pg_temp.as_a('GET', '/posts', format('SELECT id FROM vibescaling_api.posts WHERE id = %L', :'post_a'))->'rows'),
          1, 'GET /posts: A sees its post');
SELECT is(jsonb_array_length(pg_temp.as_b('GET', '/posts', format('SELECT id FROM vibescaling_api.posts WHERE id = %L', :'post_a'))->'rows'),
          0, '... B does not');
SELECT is(pg_temp.as_b('PATCH', '/posts', format($$UPDATE vibescaling_api.posts SET caption = 'mine' WHERE id = %L RETURNING id$$, :'post_a'))->'rows',
          '[]'::jsonb, 'PATCH by B touches no row of A''s');
SELECT is(pg_temp.as_b('DELETE', '/posts', format('DELETE FROM vibescaling_api.posts WHERE id = %L RETURNING id', :'post_a'))->'rows',
          '[]'::jsonb, 'DELETE by B touches no row of A''s');
SELECT is((SELECT caption FROM vibescaling.posts WHERE id = :'post_a'), 'api draft', '... A''s post is unchanged');
SELECT is(pg_temp.as_b('POST', '/posts',
          format($$INSERT INTO vibescaling_api.posts (caption, video_url, tiktok_account_id) VALUES ('x', 'https://verified.example/x.mp4', %L) RETURNING id$$, :'acct_a'))->>'http',
          '200', 'B may create a draft naming A''s account (a draft is not checked) ...');
DELETE FROM vibescaling.posts WHERE owner = :'b';   -- (it would mention A's account in the leak check below)
SELECT is(pg_temp.as_b('POST', '/posts',
          format($$INSERT INTO vibescaling_api.posts (caption, video_url, tiktok_account_id, privacy_level, status, scheduled_at)
                   VALUES ('x', 'https://verified.example/x.mp4', %L, 'SELF_ONLY', 'scheduled', now() + interval '1 hour') RETURNING id$$, :'acct_a'))->>'http',
          '403', '... but not schedule a post on it (403)');
SELECT is(pg_temp.as_a('POST', '/posts',
          $$INSERT INTO vibescaling_api.posts (caption, video_url, status) VALUES ('x', 'https://verified.example/x.mp4', 'posted') RETURNING id$$)->>'http',
          '403', 'a post cannot be created as posted (403)');

-- PATCH /posts?id=eq.<id>: scheduling.
SELECT is(pg_temp.as_a('PATCH', '/posts', format($$UPDATE vibescaling_api.posts SET status = 'scheduled', scheduled_at = now() + interval '1 minute',
                                                   tiktok_account_id = %L, privacy_level = 'SELF_ONLY' WHERE id = %L RETURNING id$$, :'acct_a', :'post_a'))->>'http',
          '400', 'PATCH scheduling less than 5 minutes ahead: 400');
SELECT is(pg_temp.as_a('PATCH', '/posts', format($$UPDATE vibescaling_api.posts SET status = 'scheduled', scheduled_at = now() + interval '1 hour',
                                                   tiktok_account_id = %L, privacy_level = 'SELF_ONLY' WHERE id = %L RETURNING id$$, :'acct_b', :'post_a'))->>'http',
          '403', 'PATCH scheduling on B''s account: 403');
SELECT is(pg_temp.as_a('PATCH', '/posts', format($$UPDATE vibescaling_api.posts SET status = 'scheduled', scheduled_at = now() + interval '1 hour',
                                                   tiktok_account_id = %L, privacy_level = 'SELF_ONLY' WHERE id = %L RETURNING status$$, :'acct_a', :'post_a'))#>>'{rows,0,status}',
          'scheduled', 'PATCH scheduling an hour ahead: scheduled');
SELECT is(pg_temp.as_a('PATCH', '/posts', format($$UPDATE vibescaling_api.posts SET status = 'posted' WHERE id = %L RETURNING id$$, :'post_a'))->>'http',
          '403', 'PATCH status posted: 403 (the publisher sets it)');
SELECT is(pg_temp.as_a('PATCH', '/posts', format($$UPDATE vibescaling_api.posts SET attempts = 0 WHERE id = %L RETURNING id$$, :'post_a'))->>'http',
          '403', 'PATCH of a column the API does not grant: 403');
SELECT is(pg_temp.as_a('DELETE', '/posts', format('DELETE FROM vibescaling_api.posts WHERE id = %L RETURNING id', :'post_a'))->>'http',
          '409', 'DELETE of a scheduled post: 409');
SELECT is(pg_temp.as_a('POST', '/rpc/cancel_post', format('SELECT vibescaling_api.cancel_post(%L)', :'post_a'))->>'http',
          '200', 'POST /rpc/cancel_post: back to draft');
SELECT is(pg_temp.as_a('POST', '/rpc/cancel_post', format('SELECT vibescaling_api.cancel_post(%L)', :'post_a'))->>'http',
          '409', '... cancelling a draft: 409');

-- ---------------------------------------------------------------------------
-- POST /rpc/publish_post.
CREATE FUNCTION pg_temp.publish(who text, post uuid, acct uuid, privacy text DEFAULT 'SELF_ONLY') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT vs_test.pgrst(CASE WHEN who = 'anon' THEN 'vibescaling_anon' ELSE 'vibescaling_user' END,
                         CASE who WHEN 'a' THEN current_setting('vs.a') WHEN 'b' THEN current_setting('vs.b') END,
                         'POST', '/rpc/publish_post',
                         format('SELECT vibescaling_api.publish_post(post_id => %L, tiktok_account_id => %L, privacy_level => %L)',
                                post, acct, privacy))
$$;
SELECT is(pg_temp.publish('anon', :'post_a', :'acct_a')->>'http', '401', 'anon: 401');
SELECT is(pg_temp.publish('b', :'post_a', :'acct_b')->>'http', '404', 'B publishing A''s post: 404 (not found for B)');
SELECT is(pg_temp.publish('a', gen_random_uuid(), :'acct_a')->>'http', '404', 'an unknown post: 404');
SELECT is(pg_temp.publish('a', :'post_a', gen_random_uuid())->>'http', '404', 'an unknown account: 404');
SELECT is(pg_temp.publish('a', :'post_a', :'acct_b')->>'sqlstate', '42501', 'A''s post to B''s account: 42501 ...');
SELECT is(pg_temp.publish('a', :'post_a', :'acct_b')->>'http', '403', '... 403');
SELECT is(pg_temp.publish('a', :'post_a', :'acct_a', NULL)->>'http', '400', 'no privacy_level: 400');
SELECT is(pg_temp.publish('a', :'post_a', :'acct_a', 'EVERYONE')->>'http', '400', 'an unknown privacy_level: 400');
SELECT pg_temp.publish('a', :'post_a', :'acct_a') AS published \gset
SELECT is((:'published'::jsonb)->>'http', '200', 'A publishes its draft: 200');
SELECT ok((:'published'::jsonb)#>>'{rows,0,publish_post,data,publish_id}' LIKE 'v_pub%', '... with {"data": {"publish_id"}}');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'post_a'), 'posted', '... and the post is posted');
SELECT is(pg_temp.publish('a', :'post_a', :'acct_a')->>'http', '409', 'publishing it again: 409');

-- TikTok failing: 502; TikTok rate limiting: 503.
SELECT (pg_temp.as_a('POST', '/posts', $$INSERT INTO vibescaling_api.posts (caption, video_url) VALUES ('p2', 'https://verified.example/b.mp4') RETURNING id$$))#>>'{rows,0,id}' AS post_a2 \gset
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'creator_info', 'http_status', 500, 'error_code', 'internal_error',
                                                           'open_id', 'apia_' || :'run')) IS NOT NULL AS armed;
SELECT is(pg_temp.publish('a', :'post_a2', :'acct_a')->>'http', '502', 'TikTok answering 500: 502');
SELECT vs_test.sim_post('/_sim/faults', jsonb_build_object('endpoint', 'creator_info', 'http_status', 429, 'error_code', 'rate_limit_exceeded',
                                                           'open_id', 'apia_' || :'run')) IS NOT NULL AS armed;
SELECT is(pg_temp.publish('a', :'post_a2', :'acct_a')->>'http', '503', 'TikTok answering 429: 503');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'post_a2'), 'draft', '... the post stays a draft');

-- Another request publishing the same post (it holds the post's row, here
-- a second session through dblink): 409 at once, not a wait.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
                                      split_part(current_setting('unix_socket_directories'), ',', 1))) AS connected;
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', format('SELECT id::text FROM vibescaling.posts WHERE id = %L FOR UPDATE', :'post_a2')) AS t(id text);
SELECT is(pg_temp.publish('a', :'post_a2', :'acct_a')->>'http', '409', 'a post another request is publishing: 409 at once');
SELECT dblink_exec('other', 'ROLLBACK');
SELECT dblink_disconnect('other');

-- ---------------------------------------------------------------------------
-- GET /rpc/publish_status: a read-only transaction.
SELECT pg_temp.as_a('GET', '/rpc/publish_status', format('SELECT vibescaling_api.publish_status(post_id => %L)', :'post_a')) AS st \gset
SELECT is((:'st'::jsonb)->>'http', '200', 'GET /rpc/publish_status in a read-only transaction: 200');
SELECT is((:'st'::jsonb)#>>'{rows,0,publish_status,data,publish_id}',
          (:'published'::jsonb)#>>'{rows,0,publish_post,data,publish_id}', '... the publish''s status');
SELECT is((SELECT checked_at FROM vibescaling.publish_records WHERE post_id = :'post_a'), NULL,
          '... and records nothing (read-only; the poller records it)');
SELECT is(pg_temp.as_a('POST', '/rpc/publish_status', format('SELECT vibescaling_api.publish_status(post_id => %L)', :'post_a'))->>'http',
          '200', 'POST /rpc/publish_status (read-write): 200 ...');
SELECT ok((SELECT checked_at IS NOT NULL FROM vibescaling.publish_records WHERE post_id = :'post_a'),
          '... and the answer is recorded');
SELECT is(pg_temp.as_a('GET', '/rpc/publish_status', format('SELECT vibescaling_api.publish_status(post_id => %L)', :'post_a2'))->>'http',
          '404', 'a post without a publish record: 404');
SELECT is(pg_temp.as_b('GET', '/rpc/publish_status', format('SELECT vibescaling_api.publish_status(post_id => %L)', :'post_a'))->>'http',
          '404', 'B asking about A''s post: 404');
SELECT is(pg_temp.as_a('GET', '/rpc/publish_status', 'SELECT vibescaling_api.publish_status(post_id => NULL)')->>'http',
          '400', 'no post_id: 400');
SELECT is(pg_temp.as_a('GET', '/rpc/publish_status', format('SELECT vibescaling_api.publish_status(post_id => NULL)'),
                       jsonb_build_object('x-post-id', :'post_a'))->>'http',
          '200', 'GET /api/v1/posts/:id/publish-status (the id in X-Post-Id from nginx): 200');

-- creator_info.
SELECT is(pg_temp.as_a('POST', '/rpc/creator_info', format('SELECT vibescaling_api.creator_info(%L)', :'acct_a'))->>'http', '200',
          'POST /rpc/creator_info for A''s account: 200');
SELECT is(pg_temp.as_a('POST', '/rpc/creator_info', format('SELECT vibescaling_api.creator_info(%L)', :'acct_b'))->>'http', '403',
          '... for B''s account: 403');

-- Accounts: own, without secrets.
SELECT is(pg_temp.as_a('GET', '/accounts', 'SELECT id FROM vibescaling_api.accounts')->'rows',
          jsonb_build_array(jsonb_build_object('id', :'acct_a')), 'GET /accounts: A sees its account only');
SELECT ok(NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'vibescaling_api'
                       AND column_name ~ 'token_enc|owner|secret'), 'no API view has a token or owner column');

-- Connecting accounts through the API: the tenant's own.
SELECT is(pg_temp.as_a('GET', '/rpc/authorize_url', $$SELECT vibescaling_api.authorize_url('https://app.example/cb', 'st')$$)->>'http',
          '200', 'GET /rpc/authorize_url: 200');
SELECT pg_temp.as_a('POST', '/rpc/connect_account',
                    format($$SELECT vibescaling_api.connect_account('code-apic_%s', 'https://app.example/cb')$$, :'run')) AS conn \gset
SELECT is((:'conn'::jsonb)->>'http', '200', 'POST /rpc/connect_account: 200');
SELECT is((SELECT owner FROM vibescaling.tiktok_accounts WHERE id = ((:'conn'::jsonb)#>>'{rows,0,connect_account,data,id}')::uuid),
          :'a', '... the account belongs to the tenant');
SELECT ok(NOT (:'conn'::jsonb)::text ~ 'act\.|rft\.|token', '... and the answer holds no token');
SELECT is(pg_temp.as_b('POST', '/rpc/connect_account',
                       format($$SELECT vibescaling_api.connect_account('code-apic_%s', 'https://app.example/cb')$$, :'run'))->>'http',
          '403', 'B connecting the same TikTok account: 403');
SELECT is(pg_temp.as_b('POST', '/rpc/disconnect_account',
                       format('SELECT vibescaling_api.disconnect_account(%L)', (:'conn'::jsonb)#>>'{rows,0,connect_account,data,id}'))->>'http',
          '403', 'B disconnecting A''s account: 403');
SELECT is(pg_temp.as_a('POST', '/rpc/disconnect_account',
                       format('SELECT vibescaling_api.disconnect_account(%L)', (:'conn'::jsonb)#>>'{rows,0,connect_account,data,id}'))->>'http',
          '200', 'A disconnecting it: 200');

-- ---------------------------------------------------------------------------
-- The webhook: only the webhook role, and the signature decides.
CREATE FUNCTION pg_temp.webhook(role text, body text, sig text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT vs_test.pgrst(role, NULL, 'POST', '/rpc/handle_webhook',
                         format('SELECT vibescaling_api.handle_webhook(%L::json)', body),
                         jsonb_build_object('tiktok-signature', sig))
$$;
SELECT format('{"client_key":"sim_client_key","event":"post.publish.complete","create_time":%s,"user_openid":"apia_%s","content":"{\"publish_id\":\"nope\"}"}',
              extract(epoch FROM now())::bigint, :'run') AS body \gset
SELECT format('t=%s,s=%s', extract(epoch FROM now())::bigint,
              encode(hmac(convert_to(extract(epoch FROM now())::bigint || '.' || :'body', 'UTF8'),
                          convert_to(current_setting('vibescaling.client_secret'), 'UTF8'), 'sha256'), 'hex')) AS sig \gset
SELECT is(pg_temp.webhook('vibescaling_webhook', :'body', :'sig')->>'http', '200', 'POST /rpc/handle_webhook signed: 200');
SELECT is(pg_temp.webhook('vibescaling_webhook', :'body', 't=1,s=00')->>'http', '403', '... badly signed: 403');
SELECT is(pg_temp.webhook('vibescaling_anon', :'body', :'sig')->>'http', '401', '... as anon: 401');
SELECT is(pg_temp.webhook('vibescaling_user', :'body', :'sig')->>'http', '403', '... as a tenant: 403');

-- ---------------------------------------------------------------------------
-- Tenant isolation, from the catalog: every relation of the API (and the
-- tables behind it) as B shows nothing of A's; as anon nothing at all; every
-- API function as anon is refused.
CREATE FUNCTION pg_temp.leaks() RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    rel record;
    res jsonb;
    out text[] := '{}';
BEGIN
    FOR rel IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname IN ('vibescaling_api', 'vibescaling') AND c.relkind IN ('r', 'v')
                ORDER BY 1, 2 LOOP
        -- As B: any row that mentions A's post, account or tenant is a leak (a refusal is not).
        res := vs_test.pgrst('vibescaling_user', current_setting('vs.b'), 'GET', '/' || rel.relname,
                             format('SELECT t FROM %I.%I t WHERE to_jsonb(t)::text ~ %L', rel.nspname, rel.relname,
                                    current_setting('vs.post_a') || '|' || current_setting('vs.acct_a') || '|' || current_setting('vs.a')));
        IF res->>'sqlstate' = '00000' AND jsonb_array_length(res->'rows') > 0 THEN
            out := out || format('B reads %s.%s', rel.nspname, rel.relname);
        END IF;
        -- As anon: a refusal, always.
        res := vs_test.pgrst('vibescaling_anon', NULL, 'GET', '/' || rel.relname, format('SELECT 1 FROM %I.%I', rel.nspname, rel.relname));
        IF res->>'http' <> '401' THEN
            out := out || format('anon gets %s on %s.%s', res->>'http', rel.nspname, rel.relname);
        END IF;
    END LOOP;
    RETURN out;
END
$$;
SELECT set_config('vs.post_a', :'post_a', false), set_config('vs.acct_a', :'acct_a', false);
SELECT is(pg_temp.leaks(), '{}'::text[], 'every table and view: B sees none of A''s rows, anon gets 401');
SELECT ok((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'vibescaling_api' AND c.relkind = 'v') >= 8, '... (the API has at least 8 views)');

-- A call of an API function with NULL for every argument.
CREATE FUNCTION pg_temp.null_call(f regprocedure) RETURNS text
LANGUAGE sql AS $$
    SELECT format('SELECT %s(%s)', p.oid::regproc,
                  coalesce((SELECT string_agg('NULL::' || format_type(t, NULL), ', ') FROM unnest(p.proargtypes::oid[]) t), ''))
      FROM pg_proc p WHERE p.oid = f
$$;
SELECT is((SELECT array_agg(p.proname || ': ' || (vs_test.pgrst('vibescaling_anon', NULL, 'POST', '/rpc/' || p.proname,
                                                                pg_temp.null_call(p.oid::regprocedure))->>'http')
                            ORDER BY p.proname)
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'vibescaling_api'),
          (SELECT array_agg(p.proname || ': 401' ORDER BY p.proname)
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'vibescaling_api'),
          'every API function as anon: 401');
SELECT is((SELECT array_agg(p.proname ORDER BY p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'vibescaling_api' AND NOT p.prosecdef), NULL,
          'every API function is SECURITY DEFINER ...');
SELECT is((SELECT array_agg(p.proname ORDER BY p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'vibescaling_api' AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)), NULL,
          '... with a pinned search_path');

-- Analytics: each tenant counts its own calls.
SELECT is((pg_temp.as_a('GET', '/dispatch_stats', 'SELECT sum(attempts) AS n FROM vibescaling_api.dispatch_stats')#>>'{rows,0,n}')::bigint,
          (SELECT count(*) FROM vibescaling.dispatch_logs
            WHERE tiktok_account_id IN (SELECT id FROM vibescaling.tiktok_accounts WHERE owner = :'a')),
          'GET /dispatch_stats: A counts exactly its own calls');
SELECT is((pg_temp.as_a('GET', '/posts_per_account_day', 'SELECT sum(posted) AS n FROM vibescaling_api.posts_per_account_day')#>>'{rows,0,n}')::bigint,
          1::bigint, 'GET /posts_per_account_day: A''s one post');

SELECT * FROM finish();
