-- vibescaling 0.1.4 -> 0.1.5: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.5'" to load this file. \quit

-- Two hot helpers become plpgsql: a sql function with a SET clause is never
-- inlined, so PostgreSQL 15 parsed and planned its body at every call.
CREATE OR REPLACE FUNCTION vibescaling._rate_limit_lock(account_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.rate_limit'), hashtext(account_id::text));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._init_accepted(call jsonb)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((call->>'ok')::boolean, false) AND coalesce(call->>'publish_id', '') <> '';
END
$$;

