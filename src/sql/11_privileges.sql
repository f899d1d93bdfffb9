-- vibescaling: privileges. Nothing is executable by PUBLIC: publishing
-- spends the accounts' tokens, so the DBA grants EXECUTE on the API
-- functions (and the needed table privileges) to the application's roles.
REVOKE ALL ON ALL ROUTINES IN SCHEMA vibescaling FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA vibescaling FROM PUBLIC;
