-- The catalog, as an attacker reads it first (defects 1 and 8 of the
-- security review): every routine pins its search_path, none is executable
-- by PUBLIC but the row level security helpers, SECURITY DEFINER is
-- only where the docs say, the internal routines are granted to no API
-- role, and the settings that cost other tenants are superuser-only.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(14);

CREATE TEMP VIEW ext_routines AS
SELECT p.oid, p.oid::regprocedure::text AS name, p.prokind, p.prosecdef, p.proconfig, p.proacl
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'vibescaling');

SELECT cmp_ok((SELECT count(*) FROM ext_routines), '>', 80::bigint, 'the extension has its routines (more than 80)');

-- Procedures that COMMIT cannot SET search_path; their bodies qualify
-- every name instead (search_path_hijack.sh runs them with public first).
SELECT is(ARRAY(SELECT name FROM ext_routines
                 WHERE NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false)
                 ORDER BY name),
          ARRAY['vibescaling.dispatch_due_posts(timestamp with time zone)',
                'vibescaling.dispatch_due_uploads(timestamp with time zone)',
                'vibescaling.maintain_logs()'],
          'every function pins search_path = pg_catalog, pg_temp with SET (only the three COMMITting procedures cannot)');

SELECT is(ARRAY(SELECT name FROM ext_routines
                 WHERE prokind = 'p' AND proconfig IS NOT NULL ORDER BY name),
          '{}'::text[], '... and those three carry no SET clause at all');

-- The procedures' bodies call only schema-qualified names.
SELECT is(ARRAY(SELECT m[1] FROM ext_routines r, pg_proc p,
                       regexp_matches(p.prosrc, '(?<![.[:alnum:]_])([a-z_][a-z0-9_]*)\s*\(', 'g') m
                 WHERE r.prokind = 'p' AND p.oid = r.oid
                   AND m[1] NOT IN ('array', 'exception', 'using')),
          '{}'::text[], 'the procedures call no unqualified function');

-- ... and pin search_path themselves for each of their transactions: at
-- the start and after every COMMIT (which ends a local setting).
SELECT is(ARRAY(SELECT r.name FROM ext_routines r, pg_proc p
                 WHERE r.prokind = 'p' AND p.oid = r.oid
                   AND (SELECT count(*) FROM regexp_matches(p.prosrc,
                            $re$pg_catalog\.set_config\('search_path', 'pg_catalog, pg_temp', true\)$re$, 'g'))
                       <> 1 + (SELECT count(*) FROM regexp_matches(p.prosrc, '\mCOMMIT\M', 'g'))
                 ORDER BY r.name),
          '{}'::text[], 'the procedures pin search_path = pg_catalog, pg_temp in each of their transactions');

SELECT is(ARRAY(SELECT name FROM ext_routines
                 WHERE proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(proacl) a WHERE a.grantee = 0)
                 ORDER BY name),
          ARRAY['vibescaling._is_api_role()', 'vibescaling._jwt_claim(text)', 'vibescaling._jwt_sub()',
                'vibescaling._own_account_ids()'],
          'no routine is executable by PUBLIC but the row level security helpers');

SELECT is(ARRAY(SELECT name FROM ext_routines WHERE prosecdef ORDER BY name),
          ARRAY['vibescaling._own_account_ids()',
                'vibescaling.handle_webhook(text,text)',
                'vibescaling_api.account_caps()',
                'vibescaling_api.add_to_queue(uuid,uuid,text,text,boolean,boolean,boolean,boolean,boolean)',
                'vibescaling_api.analytics(timestamp with time zone,timestamp with time zone,text,text)',
                'vibescaling_api.authorize_url(text,text)',
                'vibescaling_api.cancel_post(uuid)',
                'vibescaling_api.change_recurrence(bigint,jsonb,text,jsonb,timestamp with time zone,integer,boolean)',
                'vibescaling_api.connect_account(text,text,text)',
                'vibescaling_api.creator_info(uuid)',
                'vibescaling_api.disconnect_account(uuid)',
                'vibescaling_api.export_schedule()',
                'vibescaling_api.handle_webhook(json)',
                'vibescaling_api.import_schedule(text)',
                'vibescaling_api.publish_post(uuid,uuid,text,text,boolean,boolean,boolean,boolean,boolean,jsonb)',
                'vibescaling_api.publish_status(uuid)',
                'vibescaling_api.repeat_post(uuid,uuid,jsonb,text,jsonb,timestamp with time zone,timestamp with time zone,integer)',
                'vibescaling_api.schedule_post(uuid,timestamp with time zone,uuid,text,text,boolean,boolean,boolean,boolean,boolean)',
                'vibescaling_api.schedule_targets(uuid,timestamp with time zone,jsonb)',
                'vibescaling_api.set_posting_slots(uuid,text,jsonb)',
                'vibescaling_api.settle_post(uuid,boolean,text)'],
          'SECURITY DEFINER only on the API entry points, handle_webhook and _own_account_ids');

SELECT vibescaling.setup_api_roles() IS NOT NULL AS roles \gset
SELECT is(ARRAY(SELECT name FROM ext_routines r
                 WHERE name LIKE 'vibescaling.%'
                   AND has_function_privilege('vibescaling_user', r.oid, 'EXECUTE')
                   AND name NOT IN ('vibescaling._is_api_role()', 'vibescaling._jwt_claim(text)', 'vibescaling._jwt_sub()',
                                    'vibescaling._own_account_ids()')
                 ORDER BY name),
          '{}'::text[], 'the tenant role may execute nothing in schema vibescaling (the API is vibescaling_api)');

SELECT throws_ok('SELECT vibescaling._posts_before_write()', '39P01', NULL,
                 'the posts trigger function cannot be called directly');
SET ROLE vibescaling_user;
SELECT throws_ok($$SELECT vibescaling._post_write_checked(NULL::vibescaling.posts, NULL::vibescaling.posts, true, 10)$$,
                 '42501', NULL, 'a tenant cannot run the post checks on a row of its own making');
SELECT throws_ok($$SELECT vibescaling._check_post_write(NULL::vibescaling.posts, NULL::vibescaling.posts)$$,
                 '42501', NULL, '... nor the scheduling checks');
RESET ROLE;

SELECT is(ARRAY(SELECT name FROM pg_settings
                 WHERE name IN ('vibescaling.creator_info_ttl', 'vibescaling.pull_url_prefixes',
                                'vibescaling.max_open_posts_per_owner', 'vibescaling.api_base_url',
                                'vibescaling.ca_file', 'vibescaling.client_key')
                   AND context <> 'superuser' ORDER BY name),
          '{}'::text[], 'settings that cost other tenants or redirect calls are superuser-only');

-- Claims any role can set are believed only in PostgREST's (or a superuser's) session.
CREATE ROLE vs_sec_app LOGIN PASSWORD 'vs-sec-app';
GRANT USAGE ON SCHEMA vibescaling TO vs_sec_app;
SELECT vs_test.new_account('sec_claims_' || md5(random()::text)) AS victim \gset
UPDATE vibescaling.tiktok_accounts SET owner = 'victim-tenant' WHERE id = :'victim';
SELECT dblink_connect('app', format('host=127.0.0.1 port=%s dbname=%s user=vs_sec_app password=vs-sec-app',
                                    current_setting('port'), current_database())) AS connected \gset
SELECT dblink_exec('app', $$SET "request.jwt.claims" = '{"sub": "victim-tenant"}'$$) AS forged \gset
SELECT is((SELECT count(*) FROM dblink('app', 'SELECT id FROM vibescaling._own_account_ids() id') AS t(id uuid)),
          0::bigint, 'an application role that forges request.jwt.claims lists no tenant''s accounts');
SELECT dblink_disconnect('app') AS disconnected \gset
SELECT set_config('request.jwt.claims', '{"sub": "victim-tenant"}', false) IS NOT NULL AS replayed \gset
SELECT is((SELECT count(*) FROM vibescaling._own_account_ids()), 1::bigint,
          '... while a superuser replaying the request (as PostgREST''s role would) sees the tenant''s account');
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS cleared \gset
DROP OWNED BY vs_sec_app;
DROP ROLE vs_sec_app;

SELECT * FROM finish();
