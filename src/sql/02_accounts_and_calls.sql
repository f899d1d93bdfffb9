-- vibescaling: accounts, and the one function that talks to TikTok.

-- Connects an account whose tokens were obtained elsewhere (upsert on open_id).
CREATE FUNCTION vibescaling.add_account(
    open_id                  text,
    access_token             text,
    refresh_token            text DEFAULT NULL,
    access_token_expires_at  timestamptz DEFAULT NULL,
    display_name             text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid;
BEGIN
    IF coalesce(add_account.open_id, '') = '' THEN
        RAISE EXCEPTION 'open_id is required' USING ERRCODE = '22004';
    END IF;
    IF coalesce(add_account.access_token, '') = '' THEN
        RAISE EXCEPTION 'access_token is required' USING ERRCODE = '22004';
    END IF;

    INSERT INTO vibescaling.tiktok_accounts AS a
           (open_id, access_token, refresh_token, access_token_expires_at, display_name)
    VALUES (add_account.open_id, add_account.access_token, add_account.refresh_token,
            add_account.access_token_expires_at, add_account.display_name)
    ON CONFLICT ON CONSTRAINT tiktok_accounts_open_id_key DO UPDATE
       SET access_token            = EXCLUDED.access_token,
           refresh_token           = coalesce(EXCLUDED.refresh_token, a.refresh_token),
           access_token_expires_at = EXCLUDED.access_token_expires_at,
           display_name            = coalesce(EXCLUDED.display_name, a.display_name),
           status                  = 'active',
           updated_at              = now()
    RETURNING a.id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION vibescaling.add_account(text, text, text, timestamptz, text) IS
    'Connects a TikTok account whose tokens were obtained elsewhere; upserts on open_id; returns the account id.';

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
    IF (call->>'retryable')::boolean THEN
        RAISE EXCEPTION USING ERRCODE = call->>'sqlstate', MESSAGE = v_message, DETAIL = v_detail,
                              HINT = 'The failure is transient; try again later.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = call->>'sqlstate', MESSAGE = v_message, DETAIL = v_detail;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._raise_tiktok_error(jsonb, text) FROM PUBLIC;
