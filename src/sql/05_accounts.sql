-- vibescaling: connected accounts: connect (OAuth code exchange), add with
-- tokens obtained elsewhere, disconnect (revoke), keep tokens fresh, and
-- creator_info with its short cache.

-- Connects an account whose tokens were obtained elsewhere (upsert on open_id).
CREATE FUNCTION vibescaling.add_account(
    open_id                  text,
    access_token             text,
    refresh_token            text DEFAULT NULL,
    access_token_expires_at  timestamptz DEFAULT NULL,
    display_name             text DEFAULT NULL,
    scopes                   text[] DEFAULT NULL,
    owner                    text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id      uuid;
    -- Sealed in simple assignments, which plpgsql evaluates without the
    -- executor: the tokens never appear in a statement auto_explain logs.
    v_access  bytea;
    v_refresh bytea;
BEGIN
    IF coalesce(add_account.open_id, '') = '' THEN
        RAISE EXCEPTION 'open_id is required' USING ERRCODE = '22004';
    END IF;
    IF coalesce(add_account.access_token, '') = '' THEN
        RAISE EXCEPTION 'access_token is required' USING ERRCODE = '22004';
    END IF;
    v_access := vibescaling._seal(add_account.access_token);
    v_refresh := vibescaling._seal(add_account.refresh_token);

    INSERT INTO vibescaling.tiktok_accounts AS a
           (open_id, access_token_enc, refresh_token_enc, access_token_expires_at, display_name, scopes, owner)
    VALUES (add_account.open_id, v_access, v_refresh, add_account.access_token_expires_at,
            add_account.display_name, add_account.scopes, coalesce(add_account.owner, vibescaling._jwt_sub()))
    ON CONFLICT ON CONSTRAINT tiktok_accounts_open_id_key DO UPDATE
       SET access_token_enc        = EXCLUDED.access_token_enc,
           refresh_token_enc       = coalesce(EXCLUDED.refresh_token_enc, a.refresh_token_enc),
           access_token_expires_at = EXCLUDED.access_token_expires_at,
           display_name            = coalesce(EXCLUDED.display_name, a.display_name),
           scopes                  = coalesce(EXCLUDED.scopes, a.scopes),
           token_version           = a.token_version + 1,
           status                  = 'active',
           status_reason           = NULL,
           updated_at              = now()
     -- Another tenant's account is not taken over (the owner stays as it is).
     WHERE a.owner IS NOT DISTINCT FROM EXCLUDED.owner
    RETURNING a.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'TikTok account % is connected by another owner', add_account.open_id USING ERRCODE = '42501';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION vibescaling.add_account(text, text, text, timestamptz, text, text[], text) IS
    'Connects a TikTok account whose tokens were obtained elsewhere; upserts on open_id; returns the account id. '
    'Pass the tokens as bind parameters, not literals, so they stay out of pg_stat_activity and the server log.';

-- Percent-encodes text for a URL query (RFC 3986 unreserved characters stay).
CREATE FUNCTION vibescaling._url_encode(value text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(CASE WHEN b BETWEEN 48 AND 57 OR b BETWEEN 65 AND 90 OR b BETWEEN 97 AND 122
                                         OR b IN (45, 46, 95, 126)
                                    THEN chr(b) ELSE '%' || upper(lpad(to_hex(b), 2, '0')) END, '' ORDER BY i), '')
      FROM (SELECT i, get_byte(convert_to(value, 'UTF8'), i) AS b
              FROM generate_series(0, octet_length(convert_to(value, 'UTF8')) - 1) i) bytes
$$;

-- The TikTok consent URL (Login Kit) asking for the scopes vibescaling
-- uses: to post (user.info.basic, video.publish, video.upload), and to
-- follow what happens after (video.list: the creator's videos, which settle
-- unknown outcomes and give post metrics; user.info.stats: follower
-- counts). The creator may decline the last two; nothing else needs them.
CREATE FUNCTION vibescaling.authorize_url(redirect_uri text, state text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_client_key text := current_setting('vibescaling.client_key', true);
BEGIN
    IF coalesce(v_client_key, '') = '' THEN
        RAISE EXCEPTION 'vibescaling.client_key is not set' USING ERRCODE = '55000',
            HINT = 'Set your TikTok app''s client key in postgresql.conf.';
    END IF;
    IF coalesce(redirect_uri, '') = '' OR coalesce(state, '') = '' THEN
        RAISE EXCEPTION 'redirect_uri and state are required (state protects the callback against CSRF)'
            USING ERRCODE = '22004';
    END IF;
    RETURN 'https://www.tiktok.com/v2/auth/authorize/'
        || '?client_key=' || vibescaling._url_encode(v_client_key)
        || '&scope=' || vibescaling._url_encode('user.info.basic,video.publish,video.upload,video.list,user.info.stats')
        || '&response_type=code'
        || '&redirect_uri=' || vibescaling._url_encode(redirect_uri)
        || '&state=' || vibescaling._url_encode(state);
END
$$;

-- Connects (or reconnects) an account from an OAuth authorization code:
-- exchanges it at /v2/oauth/token/, stores the tokens encrypted with their
-- expiry times and granted scopes, and fills the profile from /v2/user/info/.
-- Reconnecting the same open_id updates the account. Returns its id.
CREATE FUNCTION vibescaling.connect_account(auth_code text, redirect_uri text, code_verifier text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call  vibescaling._call_result;
    v_reply jsonb;
    v_id    uuid;
    v_user  jsonb;
BEGIN
    PERFORM vibescaling._require_primary();
    IF coalesce(auth_code, '') = '' OR coalesce(redirect_uri, '') = '' THEN
        RAISE EXCEPTION 'auth_code and redirect_uri are required' USING ERRCODE = '22004';
    END IF;

    v_call := vibescaling._tiktok_call('oauth_token', NULL, NULL, 'connect', jsonb_strip_nulls(jsonb_build_object(
        'grant_type', 'authorization_code', 'code', auth_code, 'redirect_uri', redirect_uri,
        'code_verifier', code_verifier)));
    IF NOT v_call.ok THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, 'oauth_token');
    END IF;
    v_reply := v_call.data;
    v_call := NULL;
    IF coalesce(v_reply->>'open_id', '') = '' THEN
        RAISE EXCEPTION 'TikTok''s token reply has no open_id' USING ERRCODE = '08P01';
    END IF;

    -- A new account belongs to the caller's tenant (owner's default: the JWT
    -- sub); a reconnect by another tenant is refused (an operator, without a
    -- JWT, may reconnect any).
    INSERT INTO vibescaling.tiktok_accounts AS a (open_id)
    VALUES (v_reply->>'open_id')
    ON CONFLICT ON CONSTRAINT tiktok_accounts_open_id_key DO UPDATE SET updated_at = now()
     WHERE vibescaling._jwt_sub() IS NULL OR a.owner IS NOT DISTINCT FROM vibescaling._jwt_sub()
    RETURNING a.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'TikTok account % is connected by another owner', v_reply->>'open_id' USING ERRCODE = '42501';
    END IF;
    PERFORM vibescaling._store_tokens(v_id, v_reply);
    v_reply := NULL;

    -- The profile. The account stays connected if this call fails.
    v_call := vibescaling._tiktok_call('user_info', v_id, NULL, 'connect', '{}');
    IF v_call.ok THEN
        v_user := v_call.data->'user';
        UPDATE vibescaling.tiktok_accounts
           SET display_name = coalesce(v_user->>'display_name', display_name),
               avatar_url = coalesce(v_user->>'avatar_url', avatar_url),
               union_id = coalesce(v_user->>'union_id', union_id)
         WHERE id = v_id;
    ELSE
        RAISE WARNING 'account % connected, but TikTok''s user info failed: % (log_id %)',
                      v_id, v_call.error_code, v_call.log_id;
    END IF;
    DELETE FROM vibescaling.creator_info_cache WHERE tiktok_account_id = v_id;
    RETURN v_id;
END
$$;

-- Disconnects an account: revokes its token at TikTok, wipes the tokens,
-- refuses future publishes, and fails its scheduled posts with the reason.
-- Returns {"data": {"id", "revoked", "revoke_error", "failed_scheduled_posts"}}.
CREATE FUNCTION vibescaling.disconnect_account(account_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a        vibescaling.tiktok_accounts;
    v_call   vibescaling._call_result;
    v_failed integer;
BEGIN
    PERFORM vibescaling._require_primary();
    IF disconnect_account.account_id IS NULL THEN
        RAISE EXCEPTION 'account_id is required' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO a FROM vibescaling.tiktok_accounts t WHERE t.id = account_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'TikTok account % not found', account_id USING ERRCODE = 'P0002';
    END IF;

    IF a.access_token_enc IS NOT NULL THEN
        v_call := vibescaling._tiktok_call('oauth_revoke', a.id, NULL, 'disconnect', '{}');
    END IF;

    UPDATE vibescaling.tiktok_accounts t
       SET access_token_enc = NULL, refresh_token_enc = NULL, status = 'disconnected',
           status_reason = 'disconnected by disconnect_account()', token_version = t.token_version + 1,
           updated_at = now()
     WHERE t.id = a.id;
    DELETE FROM vibescaling.creator_info_cache WHERE tiktok_account_id = a.id;
    UPDATE vibescaling.posts p
       SET status = 'failed', last_error = format('TikTok account %s was disconnected', a.id)
     WHERE p.tiktok_account_id = a.id AND p.status = 'scheduled';
    GET DIAGNOSTICS v_failed = ROW_COUNT;

    RETURN jsonb_build_object('data', jsonb_build_object(
        'id', a.id,
        'revoked', coalesce(v_call.ok, false),
        'revoke_error', CASE WHEN NOT coalesce(v_call.ok, true) THEN v_call.error_code END,
        'failed_scheduled_posts', v_failed));
END
$$;

-- The creator's posting options from TikTok's creator_info (nickname,
-- privacy_level_options, comment/duet/stitch_disabled,
-- max_video_post_duration_sec), cached for vibescaling.creator_info_ttl.
-- Returns {"data": {...}, "fetched_at": ...}. Publishing always asks TikTok
-- afresh (TikTok requires it before every Direct Post); scheduling uses this.
CREATE FUNCTION vibescaling.creator_info(account_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       vibescaling.creator_info_cache;
    v_call  vibescaling._call_result;
BEGIN
    IF creator_info.account_id IS NULL THEN
        RAISE EXCEPTION 'account_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.tiktok_accounts t WHERE t.id = account_id) THEN
        RAISE EXCEPTION 'TikTok account % not found', account_id USING ERRCODE = 'P0002';
    END IF;
    SELECT * INTO c FROM vibescaling.creator_info_cache k
     WHERE k.tiktok_account_id = account_id
       AND k.fetched_at > now() - coalesce(current_setting('vibescaling.creator_info_ttl', true), '60')::interval;
    IF FOUND THEN
        RETURN jsonb_build_object('data', c.data, 'fetched_at', c.fetched_at);
    END IF;

    v_call := vibescaling._tiktok_call('creator_info', account_id, NULL, 'manual', '{}');
    IF NOT v_call.ok THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, 'creator_info');
    END IF;
    INSERT INTO vibescaling.creator_info_cache AS k (tiktok_account_id, data, fetched_at)
    VALUES (account_id, v_call.data, now())
    ON CONFLICT (tiktok_account_id) DO UPDATE SET data = EXCLUDED.data, fetched_at = EXCLUDED.fetched_at
    RETURNING * INTO c;
    RETURN jsonb_build_object('data', c.data, 'fetched_at', c.fetched_at);
END
$$;

-- Refreshes the access tokens of active accounts that expire within the
-- window, keeping idle accounts alive (each refresh also rotates the refresh
-- token). Run by pg_cron (enable_scheduler). Returns
-- {"refreshed": n, "not_needed": n, "failed": n}.
CREATE FUNCTION vibescaling.refresh_expiring_tokens(within interval DEFAULT '30 minutes')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id      uuid;
    v_result  jsonb;
    v_counts  jsonb := '{"refreshed": 0, "not_needed": 0, "failed": 0}';
BEGIN
    PERFORM vibescaling._require_primary();
    FOR v_id IN SELECT t.id FROM vibescaling.tiktok_accounts t
                 WHERE t.status = 'active' AND t.refresh_token_enc IS NOT NULL
                   AND t.access_token_expires_at < now() + within
                 ORDER BY t.access_token_expires_at LOOP
        v_result := vibescaling._refresh_token(v_id, true, 'refresh');
        v_counts := jsonb_set(v_counts, ARRAY[v_result->>'outcome'],
                              to_jsonb((v_counts->>(v_result->>'outcome'))::integer + 1));
    END LOOP;
    RETURN v_counts;
END
$$;

-- Refreshes one account's token in a background worker that commits on its
-- own (C, src/pg/token_refresher.cpp); answers {"outcome": "refreshed" |
-- "not_needed" | "failed", "error_code", "sqlstate", "message", "log_id"}.
CREATE FUNCTION vibescaling._refresh_token(account_id uuid, force boolean, trigger text)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_refresh_token'
LANGUAGE C VOLATILE;
