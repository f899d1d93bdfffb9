-- vibescaling: tokens at rest. Access and refresh tokens are encrypted with
-- pgcrypto (pgp_sym_encrypt, AES-256) under the key in the superuser-only
-- setting vibescaling.token_encryption_key. The key must be a long random
-- secret, not a password, so it is not stretched: s2k-mode=1 (salted, one
-- hash) instead of pgcrypto's default of tens of thousands of SHA-1 rounds,
-- which cost more CPU per decryption than the rest of a publish (measured
-- with test/bench/dispatch_burst.sh). Tokens sealed the old way still
-- decrypt: the mode is stored in each message. Only the owner (and superusers)
-- can decrypt: _unseal runs with the caller's rights and needs _token_key.

-- The encryption key; 55000 when it is not set.
CREATE FUNCTION vibescaling._token_key()
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key text := current_setting('vibescaling.token_encryption_key', true);
BEGIN
    IF coalesce(v_key, '') = '' THEN
        RAISE EXCEPTION 'vibescaling.token_encryption_key is not set: tokens are stored encrypted'
            USING ERRCODE = '55000',
                  HINT = 'Set a long random key in postgresql.conf (a superuser-only setting) and reload.';
    END IF;
    RETURN v_key;
END
$$;

-- Encrypts a token (NULL stays NULL).
CREATE FUNCTION vibescaling._seal(token text)
RETURNS bytea
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
    RETURN CASE WHEN token IS NULL THEN NULL
                ELSE pgp_sym_encrypt(token, vibescaling._token_key(), 'cipher-algo=aes256, s2k-mode=1') END;
END
$$;

-- Decrypts a token (NULL stays NULL); only roles that may read the key can.
CREATE FUNCTION vibescaling._unseal(sealed bytea)
RETURNS text
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN CASE WHEN sealed IS NULL THEN NULL ELSE pgp_sym_decrypt(sealed, vibescaling._token_key()) END;
END
$$;

-- pgcrypto lives in whatever schema it was created in: pin that schema on
-- the two functions that call it.
DO $$
DECLARE
    v_schema name := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                       WHERE e.extname = 'pgcrypto');
BEGIN
    EXECUTE format('ALTER FUNCTION vibescaling._seal(text) SET search_path = pg_catalog, %I, pg_temp', v_schema);
    EXECUTE format('ALTER FUNCTION vibescaling._unseal(bytea) SET search_path = pg_catalog, %I, pg_temp', v_schema);
END
$$;

-- Stores the tokens of a TikTok token reply (code exchange or refresh) on
-- an account: encrypted tokens, expiry times computed from expires_in /
-- refresh_expires_in (TikTok changed the lifetimes; never hard-coded), the
-- scopes granted, a new token_version. The reply is rotated: the refresh
-- token it carries replaces the old one, which TikTok no longer accepts.
CREATE FUNCTION vibescaling._store_tokens(account_id uuid, reply jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(reply->>'access_token', '') = '' OR jsonb_typeof(reply->'expires_in') IS DISTINCT FROM 'number' THEN
        RAISE EXCEPTION 'TikTok''s token reply has no access_token or expires_in' USING ERRCODE = '08P01';
    END IF;
    UPDATE vibescaling.tiktok_accounts a
       SET access_token_enc         = vibescaling._seal(reply->>'access_token'),
           refresh_token_enc        = coalesce(vibescaling._seal(reply->>'refresh_token'), a.refresh_token_enc),
           access_token_expires_at  = now() + make_interval(secs => (reply->>'expires_in')::double precision),
           refresh_token_expires_at = CASE WHEN jsonb_typeof(reply->'refresh_expires_in') = 'number'
                                           THEN now() + make_interval(secs => (reply->>'refresh_expires_in')::double precision)
                                           ELSE a.refresh_token_expires_at END,
           scopes                   = coalesce(string_to_array(nullif(reply->>'scope', ''), ','), a.scopes),
           token_version            = a.token_version + 1,
           last_refreshed_at        = now(),
           status                   = 'active',
           status_reason            = NULL,
           updated_at               = now()
     WHERE a.id = account_id;
END
$$;
