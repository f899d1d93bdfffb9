-- Secrets stay secret: an application role that can read every table and
-- view but tiktok_accounts and execute every API function cannot get a
-- token, the client secret or the encryption key out of any of them.
-- Runs after the other suites, so the database holds many accounts.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(12);

-- What must never come out: every stored token, the client secret, the key.
CREATE TEMP TABLE secrets AS
SELECT vibescaling._unseal(access_token_enc) AS secret FROM vibescaling.tiktok_accounts WHERE access_token_enc IS NOT NULL
UNION SELECT vibescaling._unseal(refresh_token_enc) FROM vibescaling.tiktok_accounts WHERE refresh_token_enc IS NOT NULL
UNION SELECT current_setting('vibescaling.client_secret')
UNION SELECT current_setting('vibescaling.token_encryption_key');
SELECT ok((SELECT count(*) >= 10 FROM secrets), 'the test knows the secrets it looks for');

-- The application role: everything readable but the token table, every API function.
DROP ROLE IF EXISTS vs_app_reader;
CREATE ROLE vs_app_reader NOLOGIN;
GRANT USAGE ON SCHEMA vibescaling TO vs_app_reader;
SELECT count(*) AS granted_relations FROM (
    SELECT format('GRANT SELECT ON %s TO vs_app_reader', c.oid::regclass) AS stmt
      FROM pg_class c WHERE c.relnamespace = 'vibescaling'::regnamespace AND c.relkind IN ('r', 'v', 'p')
       AND c.relname <> 'tiktok_accounts') s \gset
SELECT format('GRANT SELECT ON %s TO vs_app_reader', c.oid::regclass)
  FROM pg_class c WHERE c.relnamespace = 'vibescaling'::regnamespace AND c.relkind IN ('r', 'v', 'p')
   AND c.relname <> 'tiktok_accounts' \gexec
SELECT format('GRANT EXECUTE ON %s %s TO vs_app_reader', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
              p.oid::regprocedure)
  FROM pg_proc p WHERE p.pronamespace = 'vibescaling'::regnamespace AND p.proname !~ '^_' \gexec

SELECT ok(NOT has_any_column_privilege('vs_app_reader', 'vibescaling.tiktok_accounts', 'SELECT'),
          'the role has no column of tiktok_accounts');
-- (Except those that row level security policies call, which every
-- reader of those tables must be able to run: they only tell the caller's
-- own role, JWT claims and that tenant's account ids.)
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'vibescaling'::regnamespace
                   AND p.proname ~ '^_' AND has_function_privilege('vs_app_reader', p.oid, 'EXECUTE')
                   AND p.proname NOT IN ('_jwt_claim', '_jwt_sub', '_is_api_role', '_own_account_ids')),
          '{}'::text[], 'no internal function (_unseal, _token_key, _tiktok_call, ...) is executable by it');

-- As the role: read every relation it can, call every function it can
-- (with real account and post ids where a uuid goes, NULLs elsewhere), and
-- keep every answer and every error message.
CREATE TEMP TABLE seen (source text, content text);
GRANT ALL ON seen TO vs_app_reader;
CREATE TEMP TABLE ids AS
SELECT id FROM (SELECT id FROM vibescaling.tiktok_accounts ORDER BY created_at DESC LIMIT 5) a
UNION ALL SELECT id FROM (SELECT id FROM vibescaling.posts ORDER BY created_at DESC LIMIT 5) p;
GRANT SELECT ON ids TO vs_app_reader;

SET ROLE vs_app_reader;
DO $$
DECLARE
    r record;
    v_id uuid;
    v_out text;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
              WHERE c.relnamespace = 'vibescaling'::regnamespace AND c.relkind IN ('r', 'v', 'p')
                AND has_table_privilege(c.oid, 'SELECT') LOOP
        EXECUTE format('INSERT INTO seen SELECT %L, t::text FROM %s t', r.rel, r.rel);
        INSERT INTO seen VALUES (r.rel::text, '(read)');  -- counts empty relations as read too
    END LOOP;

    FOR r IN SELECT p.oid::regprocedure AS fn, p.proname, p.prokind, p.pronargs,
                    (p.pronargs = 1 AND p.proargtypes[0] = 'uuid'::regtype) AS takes_one_uuid
               FROM pg_proc p
              WHERE p.pronamespace = 'vibescaling'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE')
                AND p.prorettype <> 'trigger'::regtype LOOP
        FOR v_id IN SELECT id FROM ids WHERE r.takes_one_uuid AND r.proname <> 'disconnect_account'
                    UNION ALL SELECT NULL::uuid LOOP
            BEGIN
                IF r.prokind = 'p' THEN
                    EXECUTE format('CALL %s(NULL)', r.fn::regproc);
                    v_out := 'called';
                ELSIF v_id IS NOT NULL THEN
                    EXECUTE format('SELECT %s(%L::uuid)::text', r.fn::regproc, v_id) INTO v_out;
                ELSE
                    EXECUTE format('SELECT vibescaling.%I(%s)::text', r.proname,
                                   (SELECT string_agg('NULL', ', ') FROM generate_series(1, r.pronargs))) INTO v_out;
                END IF;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_out = MESSAGE_TEXT;
                v_out := SQLSTATE || ' ' || v_out;
            END;
            INSERT INTO seen VALUES (r.fn::text, v_out);
        END LOOP;
    END LOOP;
END
$$;
RESET ROLE;

SELECT ok((SELECT count(DISTINCT source) FROM seen WHERE source NOT LIKE 'vibescaling.%(%') >= :granted_relations,
          'every readable relation was read as the role');
SELECT ok((SELECT count(*) FROM seen WHERE source LIKE 'vibescaling.%(%') >= 10,
          'every executable function was called as the role');
SELECT is((SELECT count(*) FROM seen s JOIN secrets k ON strpos(s.content, k.secret) > 0), 0::bigint,
          'no token, client secret or key in anything the role can read or call');

-- Settings: the secret ones are superuser-only, and hidden from SHOW ALL / pg_settings.
SET ROLE vs_app_reader;
SELECT throws_ok($$SHOW vibescaling.client_secret$$, '42501', NULL, 'the role cannot SHOW the client secret');
SELECT throws_ok($$SELECT current_setting('vibescaling.token_encryption_key')$$, '42501', NULL,
                 'the role cannot read the encryption key');
SELECT throws_ok($$SET vibescaling.api_base_url = 'https://attacker.example'$$, '42501', NULL,
                 'the role cannot point the extension (and its bearer tokens) at another host');
SELECT is((SELECT count(*) FROM pg_settings WHERE name IN ('vibescaling.client_secret', 'vibescaling.token_encryption_key')),
          0::bigint, 'pg_settings does not list them');
RESET ROLE;

-- The dispatch log and the posts' errors never hold a secret (whatever role reads them).
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l JOIN secrets k ON strpos(l::text, k.secret) > 0), 0::bigint,
          'dispatch_logs holds no secret');
SELECT is((SELECT count(*) FROM vibescaling.posts p JOIN secrets k ON strpos(coalesce(p.last_error, ''), k.secret) > 0),
          0::bigint, 'no post''s last_error holds a secret');

DROP OWNED BY vs_app_reader;
DROP ROLE vs_app_reader;
SELECT * FROM finish();
