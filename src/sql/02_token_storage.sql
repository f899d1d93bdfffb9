-- vibescaling: tokens at rest. Access and refresh tokens are encrypted with
-- pgcrypto's PGP symmetric encryption (AES-256) under the key in the
-- superuser-only setting vibescaling.token_encryption_key, in C
-- (src/pg/token_seal.cpp): a token or the key never becomes a constant or a
-- parameter of a planned statement, where auto_explain would log it. The
-- key must be a long random secret, not a password, so it is not stretched
-- (s2k-mode=1). The sealed form is pgcrypto's: pgp_sym_decrypt() reads it.
-- Only the owner (and superusers) may call these.

-- Encrypts a token (NULL stays NULL); 55000 when no key is set.
CREATE FUNCTION vibescaling._seal(token text)
RETURNS bytea
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_seal'
LANGUAGE C VOLATILE STRICT;

-- Decrypts a token (NULL stays NULL); 55000 when no key is set.
CREATE FUNCTION vibescaling._unseal(sealed bytea)
RETURNS text
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_unseal'
LANGUAGE C VOLATILE STRICT;

-- Stores the tokens of a TikTok token reply (code exchange or refresh) on
-- an account: the tokens as C sealed them (access_token_sealed and
-- refresh_token_sealed, hex; see token_seal.h), expiry times from expires_in /
-- refresh_expires_in (TikTok changed the lifetimes; never hard-coded), the
-- scopes granted, a new token_version. The reply is rotated: the refresh
-- token it carries replaces the old one, which TikTok no longer accepts.
CREATE FUNCTION vibescaling._store_tokens(account_id uuid, reply jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(reply->>'access_token_sealed', '') = '' OR jsonb_typeof(reply->'expires_in') IS DISTINCT FROM 'number' THEN
        RAISE EXCEPTION 'TikTok''s token reply has no access_token or expires_in' USING ERRCODE = '08P01';
    END IF;
    UPDATE vibescaling.tiktok_accounts a
       SET access_token_enc         = decode(reply->>'access_token_sealed', 'hex'),
           refresh_token_enc        = coalesce(decode(reply->>'refresh_token_sealed', 'hex'), a.refresh_token_enc),
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
