-- vibescaling: the one function that talks to TikTok, and how its refusals are raised.

-- Calls one TikTok endpoint (C, src/pg/tiktok_call.cpp): reads the account's
-- access token itself (tokens never travel through SQL), builds the request
-- from the flat options object, performs the HTTP call with the configured
-- timeouts, writes the dispatch_logs row in its own committed transaction,
-- and returns the parsed reply:
--   {"ok", "http_status", "error_code", "error_message", "log_id",
--    "publish_id", "data", "sqlstate", "duration_ms", "retryable", "outcome_unknown"}
-- It never raises for a TikTok refusal: the caller decides (see _raise_tiktok_error).
CREATE FUNCTION vibescaling._tiktok_call(
    endpoint           text,
    tiktok_account_id  uuid,
    post_id            uuid,
    trigger            text,
    options            jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'vs_tiktok_call'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling._tiktok_call(text, uuid, uuid, text, jsonb) FROM PUBLIC;

-- The HINT of a failure worth retrying later (the dispatcher matches it).
CREATE FUNCTION vibescaling._transient_hint()
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT 'The failure is transient; try again later.'::text $$;

-- Raises the error for a failed TikTok call: TikTok's code and log_id in the
-- message and detail, the SQLSTATE from the core's mapping table (README).
CREATE FUNCTION vibescaling._raise_tiktok_error(call jsonb, endpoint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text := format('TikTok %s failed: %s (log_id %s)', endpoint, call->>'error_code',
                             coalesce(nullif(call->>'log_id', ''), 'none'));
    v_detail  text := format('http_status=%s error_code=%s log_id=%s outcome_unknown=%s message=%s',
                             coalesce(call->>'http_status', 'none'), call->>'error_code',
                             coalesce(call->>'log_id', ''), call->>'outcome_unknown',
                             coalesce(call->>'error_message', ''));
BEGIN
    -- The dispatcher retries on this hint, unless the request may have reached TikTok.
    IF (call->>'retryable')::boolean AND NOT coalesce((call->>'outcome_unknown')::boolean, false) THEN
        RAISE EXCEPTION USING ERRCODE = call->>'sqlstate', MESSAGE = v_message, DETAIL = v_detail,
                              HINT = vibescaling._transient_hint();
    END IF;
    IF coalesce((call->>'outcome_unknown')::boolean, false) THEN
        RAISE EXCEPTION USING ERRCODE = call->>'sqlstate', MESSAGE = v_message, DETAIL = v_detail,
                              HINT = 'The request may have reached TikTok: check the account before publishing again.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = call->>'sqlstate', MESSAGE = v_message, DETAIL = v_detail;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._raise_tiktok_error(jsonb, text) FROM PUBLIC;
