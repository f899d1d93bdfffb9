-- The SQL contract: schema objects, who may execute what, the settings.
SELECT c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'vibescaling' AND c.relkind IN ('r', 'p', 'v', 'i', 'I')
 ORDER BY c.relkind, c.relname;

SELECT table_name, column_name, data_type, column_default
  FROM information_schema.columns
 WHERE table_schema = 'vibescaling' AND table_name IN ('posts', 'dispatch_logs', 'publish_records', 'tiktok_accounts')
 ORDER BY table_name, ordinal_position;

-- Every routine, its result, and whether PUBLIC may execute it (internal
-- ones, and those that spend tokens or manage pg_cron, are revoked).
SELECT p.oid::regprocedure AS routine, p.prokind,
       coalesce(pg_get_function_result(p.oid), '') AS result,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'vibescaling'
 ORDER BY p.proname, 1::text;

-- No role but the owner can read the tokens.
SELECT has_table_privilege('public', 'vibescaling.tiktok_accounts', 'SELECT') AS public_reads_tokens;

-- Settings (the library defines them when loaded).
LOAD 'vibescaling';
SELECT name, boot_val, unit, context FROM pg_settings WHERE name LIKE 'vibescaling.%' ORDER BY name;
SELECT sqlstate_of($$SET vibescaling.no_such_setting = 1$$);
