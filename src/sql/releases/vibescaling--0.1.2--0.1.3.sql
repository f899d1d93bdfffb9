-- vibescaling 0.1.2 -> 0.1.3: what it changes, and why, is in CHANGELOG.md.
-- Only functions change: each is replaced by its 0.1.3 definition.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.3'" to load this file. \quit

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_round(as_of timestamptz, skip_accounts uuid[])
RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_round record;
BEGIN
    DISCARD PLANS;
    v_round := vibescaling._dispatch_round(as_of, current_setting('vibescaling.max_concurrent_requests')::integer,
                                           skip_accounts);
    IF v_round.processed = 0 AND cardinality(v_round.declined) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN skip_accounts || v_round.declined;
END
$$;

