-- The HTTP API's catalog, for what real requests cannot reach: every table
-- and view of the extension (the internal ones PostgREST never exposes
-- included) and every API function, found in the catalog so that a new one
-- is covered without a new test. Each request is replayed as PostgREST runs
-- it (vs_test.pgrst: its role switch, request.jwt.claims, read-only for
-- GET). The documented paths, their statuses and tenant isolation over
-- real HTTP are in test/http/api_test.py (PostgREST 12 behind nginx).
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(7);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT 'tenant-a-' || :'run' AS a, 'tenant-b-' || :'run' AS b \gset
SELECT vibescaling.setup_api_roles() IS NOT NULL AS roles;

-- Each tenant has a connected account (an operator assigns the owner here;
-- through the API, connect_account gives the new account the JWT's sub).
SELECT vs_test.new_account('apia_' || :'run') AS acct_a \gset
SELECT vs_test.new_account('apib_' || :'run') AS acct_b \gset
UPDATE vibescaling.tiktok_accounts SET owner = :'a' WHERE id = :'acct_a';
UPDATE vibescaling.tiktok_accounts SET owner = :'b' WHERE id = :'acct_b';
SELECT set_config('vs.a', :'a', false), set_config('vs.b', :'b', false);

-- A's post, published through the API, so that A has rows everywhere:
-- the post, its publish record, its calls in dispatch_logs.
SELECT vs_test.pgrst('vibescaling_user', :'a', 'POST', '/posts',
       $$INSERT INTO vibescaling_api.posts (caption, video_url) VALUES ('api draft', 'https://verified.example/a.mp4') RETURNING id$$)
       #>> '{rows,0,id}' AS post_a \gset
SELECT is(vs_test.pgrst('vibescaling_user', :'a', 'POST', '/rpc/publish_post',
                        format('SELECT vibescaling_api.publish_post(post_id => %L, tiktok_account_id => %L, privacy_level => %L)',
                               :'post_a', :'acct_a', 'SELF_ONLY'))->>'http',
          '200', 'A publishes its post through the API');

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

SELECT ok(NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'vibescaling_api'
                       AND column_name ~ 'token_enc|owner|secret'), 'no API view has a token or owner column');

SELECT * FROM finish();
