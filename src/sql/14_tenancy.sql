-- vibescaling: tenants. Through PostgREST every request acts for the tenant
-- in its JWT's "sub" claim (_jwt_sub, 01_tables.sql): posts and accounts it
-- creates are its own (their owner column), and row level security shows
-- the API roles only their own posts, accounts, publish records and
-- dispatch logs. Sessions of other roles (application backends calling SQL,
-- DBAs, the dispatcher) are not tenants and see every row, as before.

-- True when the current role is one of the roles PostgREST switches to
-- (setup_api_roles creates them). Name-based, so that the policies below
-- exist before the roles do. The policies call it (and _jwt_sub) as a
-- sub-select, evaluated once per statement, not once per row.
CREATE FUNCTION vibescaling._is_api_role()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CURRENT_USER OPERATOR(pg_catalog.=) ANY (ARRAY['vibescaling_anon', 'vibescaling_user',
                                                          'vibescaling_webhook', 'vibescaling_authenticator']::pg_catalog.name[])
$$;

-- The role claim of the current request's JWT (vibescaling_user,
-- vibescaling_operator, ...), where claims are believed (_jwt_claim); else NULL.
CREATE FUNCTION vibescaling._jwt_role()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._jwt_claim('role')
$$;

-- The ids of the accounts of the current request's tenant (none without a
-- sub). SECURITY DEFINER: API roles cannot read tiktok_accounts.
CREATE FUNCTION vibescaling._own_account_ids()
RETURNS SETOF uuid
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.id FROM vibescaling.tiktok_accounts a
     WHERE a.owner = vibescaling._jwt_sub()
$$;

-- Raises an error again with the SQLSTATE that makes PostgREST answer the
-- product's HTTP status: P0002 (not found) -> PT404; 55000 (wrong state),
-- 55P03 (the row is locked: being published) and 23505 -> PT409; a class 08
-- error (TikTok unreachable, or a TikTok failure mapped to 08xxx) -> PT502;
-- 53400 (a quota of the extension's, e.g. open posts per owner) -> PT429;
-- the rest of class 53 (rate limits, TikTok's caps) -> PT503. Everything else keeps its
-- SQLSTATE, which PostgREST already maps: 22xxx -> 400, 42501 -> 401/403.
-- The message, detail and hint are kept; the original SQLSTATE is added to
-- the detail ("sqlstate=P0002; ..."), so a client can still tell them apart.
CREATE FUNCTION vibescaling._raise_http_error(p_state text, p_message text, p_detail text, p_hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_http text := CASE WHEN p_state = 'P0002' THEN 'PT404'
                        WHEN p_state IN ('55000', '55P03', '23505') THEN 'PT409'
                        WHEN p_state LIKE '08%' THEN 'PT502'
                        WHEN p_state = '53400' THEN 'PT429'
                        WHEN p_state LIKE '53%' THEN 'PT503'
                        ELSE p_state END;
BEGIN
    IF v_http = p_state THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = coalesce(p_detail, ''),
                              HINT = coalesce(p_hint, '');
    END IF;
    RAISE EXCEPTION USING ERRCODE = v_http, MESSAGE = p_message,
                          DETAIL = 'sqlstate=' || p_state || coalesce('; ' || nullif(p_detail, ''), ''),
                          HINT = coalesce(p_hint, '');
END
$$;

-- Row level security. The table owner (the extension's owner, the
-- dispatcher, the log writer) is not subject to it.
ALTER TABLE vibescaling.posts ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.tiktok_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.publish_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.dispatch_logs ENABLE ROW LEVEL SECURITY;

-- An API role sees and writes only its tenant's posts; others see all.
CREATE POLICY tenant_posts ON vibescaling.posts
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()))
    WITH CHECK (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));

-- The same for accounts (API roles get no privilege on this table anyway:
-- they read vibescaling_api.accounts, which has no tokens).
CREATE POLICY tenant_accounts ON vibescaling.tiktok_accounts
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()))
    WITH CHECK (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));

-- Publish records of the tenant's posts (the subquery is itself filtered by
-- the posts policy).
CREATE POLICY tenant_publish_records ON vibescaling.publish_records
    USING (NOT (SELECT vibescaling._is_api_role()) OR post_id IN (SELECT p.id FROM vibescaling.posts p));

-- Dispatch logs of the tenant's accounts, and of its posts for the calls
-- made with no account. A post is only ever sent with an account of its
-- own owner, so the account decides every call that has one; the posts
-- are looked at only for the others (PostgreSQL evaluates the OR's terms
-- in order and builds the posts' hash only if a row reaches it), which
-- keeps a tenant's page of the log from reading every post.
CREATE POLICY tenant_dispatch_logs ON vibescaling.dispatch_logs
    USING (NOT (SELECT vibescaling._is_api_role())
           OR tiktok_account_id IN (SELECT vibescaling._own_account_ids())
           OR tiktok_account_id IS NULL AND post_id IN (SELECT p.id FROM vibescaling.posts p));

REVOKE ALL ON FUNCTION vibescaling._own_account_ids() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._jwt_role() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._raise_http_error(text, text, text, text) FROM PUBLIC;

-- Policies run with the querying role's rights: every role that reads these
-- tables must be able to call the functions in them. They reveal nothing
-- but the caller's own tenant and role.
GRANT EXECUTE ON FUNCTION vibescaling._jwt_sub(), vibescaling._jwt_claim(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION vibescaling._is_api_role() TO PUBLIC;
GRANT EXECUTE ON FUNCTION vibescaling._own_account_ids() TO PUBLIC;
