-- vibescaling 0.1.0 -> 0.1.1: the security release. What it changes, and
-- why, is in CHANGELOG.md; in short: every routine pins its search_path,
-- tokens and secrets are sealed in C, the posts trigger is a C function,
-- posts remember the role that set their video source, webhook refusals
-- are counted in webhook_refusals, and uploads get their own pg_cron job.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.1'" to load this file. \quit

-- The role that set a post's video source. Posts that already have one
-- were set before this check existed: they keep the rights they had (the
-- table's owner), and a source set again is checked.
ALTER TABLE vibescaling.posts ADD COLUMN source_role oid;
ALTER TABLE vibescaling.posts DISABLE TRIGGER posts_before_write;
UPDATE vibescaling.posts p
   SET source_role = c.relowner
  FROM pg_catalog.pg_class c
 WHERE c.oid = 'vibescaling.posts'::regclass
   AND (p.video_lo IS NOT NULL OR p.media_id IS NOT NULL);
ALTER TABLE vibescaling.posts ENABLE TRIGGER posts_before_write;

CREATE TABLE vibescaling.webhook_refusals (
    day          date NOT NULL DEFAULT current_date,
    error_code   text NOT NULL,      -- bad_signature | stale_timestamp
    refusals     bigint NOT NULL DEFAULT 0,
    first_at     timestamptz NOT NULL DEFAULT now(),
    last_at      timestamptz NOT NULL DEFAULT now(),
    last_reason  text,
    PRIMARY KEY (day, error_code)
);
COMMENT ON TABLE vibescaling.webhook_refusals IS
    'Refused TikTok webhook deliveries through the HTTP API, counted per day and reason.';
SELECT pg_catalog.pg_extension_config_dump('vibescaling.webhook_refusals', '');

-- The routines, new and changed.
CREATE OR REPLACE FUNCTION vibescaling._jwt_sub()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN SESSION_USER = 'vibescaling_authenticator'
                     OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER)
                THEN NULLIF(NULLIF(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '') END
$$;

CREATE OR REPLACE FUNCTION vibescaling._seal(token text)
RETURNS bytea
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_seal'
LANGUAGE C VOLATILE STRICT;

CREATE OR REPLACE FUNCTION vibescaling._unseal(sealed bytea)
RETURNS text
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_unseal'
LANGUAGE C VOLATILE STRICT;

CREATE OR REPLACE FUNCTION vibescaling._store_tokens(account_id uuid, reply jsonb)
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

CREATE OR REPLACE FUNCTION vibescaling._tiktok_call(
    endpoint           text,
    tiktok_account_id  uuid,
    post_id            uuid,
    trigger            text,
    options            jsonb)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION vibescaling._tiktok_call_many(calls jsonb)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call_many'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION vibescaling.http_pool_stats()
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_http_pool_stats'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION vibescaling._transient_hint()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'The failure is transient; try again later.'::text $$;

CREATE OR REPLACE FUNCTION vibescaling._rate_limit_calls(account_id uuid, endpoints text[])
RETURNS TABLE (called_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.created_at
      FROM vibescaling.dispatch_logs l
     WHERE l.tiktok_account_id = account_id
       AND l.endpoint = ANY (endpoints)
       AND l.created_at > pg_catalog.clock_timestamp()
                          - pg_catalog.current_setting('vibescaling.rate_limit_window')::interval
       AND (l.http_status IS NOT NULL OR l.outcome_unknown)
$$;

CREATE OR REPLACE FUNCTION vibescaling._check_publishable(p vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_account_status text;
    v_account_owner text;
    v_scopes text[];
    v_needed text;
    v_url text;
    v_sources integer;
BEGIN
    -- Publish options.
    IF p.privacy_level IS NULL THEN
        RAISE EXCEPTION 'privacy_level is required (no default): one of PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR, SELF_ONLY'
            USING ERRCODE = '22004';
    END IF;
    IF p.privacy_level NOT IN ('PUBLIC_TO_EVERYONE', 'MUTUAL_FOLLOW_FRIENDS', 'FOLLOWER_OF_CREATOR', 'SELF_ONLY') THEN
        RAISE EXCEPTION 'unknown privacy_level "%"', p.privacy_level
            USING ERRCODE = '22023',
                  HINT = 'Use PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR or SELF_ONLY.';
    END IF;
    IF p.mode IS NULL THEN
        RAISE EXCEPTION 'mode is required: direct or inbox' USING ERRCODE = '22004';
    END IF;
    IF p.mode NOT IN ('direct', 'inbox') THEN
        RAISE EXCEPTION 'unknown mode "%": use direct or inbox', p.mode USING ERRCODE = '22023';
    END IF;
    IF p.brand_content_toggle AND p.privacy_level = 'SELF_ONLY' THEN
        RAISE EXCEPTION 'branded content (brand_content_toggle) cannot be posted with privacy_level SELF_ONLY'
            USING ERRCODE = '22023';
    END IF;

    -- The account.
    IF p.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    SELECT a.status, a.scopes, a.owner INTO v_account_status, v_scopes, v_account_owner
      FROM vibescaling.tiktok_accounts a WHERE a.id = p.tiktok_account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'TikTok account % not found', p.tiktok_account_id USING ERRCODE = 'P0002';
    END IF;
    -- Tenants: a post goes only to an account of its own owner.
    IF v_account_owner IS DISTINCT FROM p.owner THEN
        RAISE EXCEPTION 'TikTok account % does not belong to the owner of post %', p.tiktok_account_id, p.id
            USING ERRCODE = '42501';
    END IF;
    IF v_account_status <> 'active' THEN
        RAISE EXCEPTION 'TikTok account % is %, it cannot publish', p.tiktok_account_id, v_account_status
            USING ERRCODE = '55000', HINT = 'Reconnect the account with vibescaling.connect_account().';
    END IF;
    -- Direct Post needs video.publish, the inbox video.upload (unknown scopes: TikTok decides).
    v_needed := CASE p.mode WHEN 'direct' THEN 'video.publish' ELSE 'video.upload' END;
    IF v_scopes IS NOT NULL AND NOT v_needed = ANY (v_scopes) THEN
        RAISE EXCEPTION 'TikTok account % has not granted the % scope that % mode needs',
                        p.tiktok_account_id, v_needed, p.mode
            USING ERRCODE = '42501', HINT = 'Reconnect the account and grant the scope.';
    END IF;

    -- The media.
    IF p.media_type = 'video' THEN
        v_sources := (p.video_url IS NOT NULL)::integer + (p.video_lo IS NOT NULL)::integer
                     + (p.media_id IS NOT NULL)::integer;
        IF v_sources = 0 THEN
            RAISE EXCEPTION 'video post % has no video: set video_url, video_lo or media_id', p.id
                USING ERRCODE = '22023';
        END IF;
        IF v_sources > 1 THEN
            RAISE EXCEPTION 'video post % has more than one of video_url, video_lo and media_id', p.id
                USING ERRCODE = '22023';
        END IF;
        IF vibescaling._upload_method(p) = 'pull' THEN
            IF p.video_url IS NULL THEN
                RAISE EXCEPTION 'upload_method pull needs a video_url TikTok can pull' USING ERRCODE = '22023';
            END IF;
            IF p.video_url !~* '^https://[^/?#]+' THEN
                RAISE EXCEPTION 'video_url must be an https URL that TikTok can pull' USING ERRCODE = '22023';
            END IF;
        ELSIF p.video_url IS NOT NULL AND p.video_url !~* '^https?://[^/?#]+' THEN
            RAISE EXCEPTION 'video_url must be an http(s) URL' USING ERRCODE = '22023';
        END IF;
        IF p.video_lo IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_largeobject_metadata m WHERE m.oid = p.video_lo) THEN
            RAISE EXCEPTION 'large object % not found', p.video_lo USING ERRCODE = 'P0002';
        END IF;
        -- The role that set the source must still be able to read it (its
        -- rights may have been revoked since, or the object replaced).
        IF (p.video_lo IS NOT NULL OR p.media_id IS NOT NULL)
           AND NOT vibescaling._role_can_read_source(p.source_role, p.video_lo, p.media_id) THEN
            RAISE EXCEPTION 'permission denied: the role that set the video source of post % may not read it', p.id
                USING ERRCODE = '42501',
                      HINT = 'Grant that role SELECT on the large object (or on vibescaling.media), or set the source again.';
        END IF;
        IF vibescaling._utf16_length(coalesce(p.caption, '')) > 2200 THEN
            RAISE EXCEPTION 'caption is % UTF-16 units long; TikTok accepts at most 2200 for a video',
                            vibescaling._utf16_length(p.caption) USING ERRCODE = '22023';
        END IF;
    ELSE
        IF coalesce(cardinality(p.photo_urls), 0) NOT BETWEEN 1 AND 35 THEN
            RAISE EXCEPTION 'a photo post needs 1 to 35 photo_urls, post % has %',
                            p.id, coalesce(cardinality(p.photo_urls), 0) USING ERRCODE = '22023';
        END IF;
        FOREACH v_url IN ARRAY p.photo_urls LOOP
            IF v_url IS NULL OR v_url !~* '^https://[^/?#]+' THEN
                RAISE EXCEPTION 'photo_urls must be https URLs, got "%"', v_url USING ERRCODE = '22023';
            END IF;
        END LOOP;
        IF p.photo_cover_index < 0 OR p.photo_cover_index >= cardinality(p.photo_urls) THEN
            RAISE EXCEPTION 'photo_cover_index % is outside the % photos', p.photo_cover_index,
                            cardinality(p.photo_urls) USING ERRCODE = '22023';
        END IF;
        IF vibescaling._utf16_length(coalesce(p.title, '')) > 90 THEN
            RAISE EXCEPTION 'title is % UTF-16 units long; TikTok accepts at most 90 for a photo post',
                            vibescaling._utf16_length(p.title) USING ERRCODE = '22023';
        END IF;
        IF vibescaling._utf16_length(coalesce(p.caption, '')) > 4000 THEN
            RAISE EXCEPTION 'caption is % UTF-16 units long; TikTok accepts at most 4000 for a photo description',
                            vibescaling._utf16_length(p.caption) USING ERRCODE = '22023';
        END IF;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._max_url_bytes()
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 2048 $$;

REVOKE ALL ON FUNCTION vibescaling._max_url_bytes() FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._check_post_limits(p_new vibescaling.posts, p_old vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_caption_max integer := CASE WHEN p_new.media_type = 'photo' THEN 4000 ELSE 2200 END;
    v_quota       integer := current_setting('vibescaling.max_open_posts_per_owner')::integer;
    v_open        bigint;
BEGIN
    -- A UTF-16 unit is at most 4 bytes of UTF-8: byte lengths first, so that a
    -- huge value is refused without being scanned.
    IF octet_length(p_new.caption) > 4 * v_caption_max
       OR vibescaling._utf16_length(coalesce(p_new.caption, '')) > v_caption_max THEN
        RAISE EXCEPTION 'caption is longer than % UTF-16 units, the most TikTok accepts for a % post',
                        v_caption_max, p_new.media_type USING ERRCODE = '22023';
    END IF;
    IF octet_length(p_new.title) > 4 * 90 OR vibescaling._utf16_length(coalesce(p_new.title, '')) > 90 THEN
        RAISE EXCEPTION 'title is longer than 90 UTF-16 units, the most TikTok accepts' USING ERRCODE = '22023';
    END IF;
    IF octet_length(p_new.video_url) > vibescaling._max_url_bytes() THEN
        RAISE EXCEPTION 'video_url is longer than % bytes', vibescaling._max_url_bytes() USING ERRCODE = '22023';
    END IF;
    IF cardinality(p_new.photo_urls) > 35 THEN
        RAISE EXCEPTION 'a photo post has at most 35 photo_urls, got %', cardinality(p_new.photo_urls)
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_new.photo_urls) u WHERE octet_length(u) > vibescaling._max_url_bytes()) THEN
        RAISE EXCEPTION 'photo_urls has a URL longer than % bytes', vibescaling._max_url_bytes() USING ERRCODE = '22023';
    END IF;

    -- A tenant's open posts: counted when one is created, or reopened from a final state.
    IF p_new.owner IS NOT NULL AND v_quota > 0 AND p_new.status IN ('draft', 'scheduled')
       AND (p_old.id IS NULL OR p_old.status NOT IN ('draft', 'scheduled')) THEN
        -- One writer per owner at a time, so that two sessions cannot both take the last place.
        PERFORM pg_advisory_xact_lock(hashtext('vibescaling.open_posts'), hashtext(p_new.owner));
        SELECT count(*) INTO v_open
          FROM (SELECT 1 FROM vibescaling.posts o
                 WHERE o.owner = p_new.owner AND o.status IN ('draft', 'scheduled') AND o.id <> p_new.id
                 LIMIT v_quota) x;
        IF v_open >= v_quota THEN
            RAISE EXCEPTION 'owner % has % posts in draft or scheduled, the most vibescaling.max_open_posts_per_owner allows',
                            p_new.owner, v_quota
                USING ERRCODE = '53400',
                      HINT = 'Publish, cancel or delete some first.';
        END IF;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._check_post_limits(vibescaling.posts, vibescaling.posts) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._require_primary()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_primary text;
BEGIN
    IF NOT pg_is_in_recovery() THEN
        RETURN;
    END IF;
    SELECT nullif(concat_ws(':', w.sender_host, w.sender_port), '') INTO v_primary FROM pg_stat_wal_receiver w;
    RAISE EXCEPTION 'vibescaling runs on the primary: this server is a standby%',
                    coalesce(' of ' || v_primary, '')
        USING ERRCODE = '25006',
              HINT = 'Call it on the primary' || coalesce(' (' || v_primary || ')', '')
                     || '; a standby sends nothing to TikTok and its scheduler waits for a promotion.';
END
$$;

REVOKE ALL ON FUNCTION vibescaling._require_primary() FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._lock_post(p_post_id uuid)
RETURNS vibescaling.posts
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    IF p_post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    SELECT * INTO p FROM vibescaling.posts t WHERE t.id = p_post_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'post % not found', p_post_id USING ERRCODE = 'P0002';
    END IF;
    RETURN p;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.add_account(
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

CREATE OR REPLACE FUNCTION vibescaling.connect_account(auth_code text, redirect_uri text, code_verifier text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call  jsonb;
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
    IF NOT (v_call->>'ok')::boolean THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, 'oauth_token');
    END IF;
    v_reply := v_call->'data';
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
    IF (v_call->>'ok')::boolean THEN
        v_user := v_call #> '{data,user}';
        UPDATE vibescaling.tiktok_accounts
           SET display_name = coalesce(v_user->>'display_name', display_name),
               avatar_url = coalesce(v_user->>'avatar_url', avatar_url),
               union_id = coalesce(v_user->>'union_id', union_id)
         WHERE id = v_id;
    ELSE
        RAISE WARNING 'account % connected, but TikTok''s user info failed: % (log_id %)',
                      v_id, v_call->>'error_code', v_call->>'log_id';
    END IF;
    DELETE FROM vibescaling.creator_info_cache WHERE tiktok_account_id = v_id;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.disconnect_account(account_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a        vibescaling.tiktok_accounts;
    v_call   jsonb;
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
        'revoked', coalesce((v_call->>'ok')::boolean, false),
        'revoke_error', CASE WHEN NOT coalesce((v_call->>'ok')::boolean, true) THEN v_call->>'error_code' END,
        'failed_scheduled_posts', v_failed));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.refresh_expiring_tokens(within interval DEFAULT '30 minutes')
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

CREATE OR REPLACE FUNCTION vibescaling._refresh_token(account_id uuid, force boolean, trigger text)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_refresh_token'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION vibescaling._describe_video(source jsonb)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_describe_video'
LANGUAGE C VOLATILE STRICT;

CREATE OR REPLACE FUNCTION vibescaling._plan_chunks(video_size bigint)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_plan_video_chunks'
LANGUAGE C VOLATILE STRICT;

CREATE OR REPLACE FUNCTION vibescaling._upload_chunks(post_id uuid, tiktok_account_id uuid, trigger text, publish_id text,
                                           upload_url text, source jsonb, content_type text, video_size bigint)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_upload_chunks'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION vibescaling._check_upload_quota(p vibescaling.posts, video_size bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_quota bigint := current_setting('vibescaling.max_upload_mb_per_owner_day')::bigint * 1048576;
    v_used  bigint;
BEGIN
    IF p.owner IS NULL OR v_quota <= 0 THEN
        RETURN;
    END IF;
    -- What TikTok holds of each upload (the last chunk's uploaded_bytes), per publish.
    SELECT coalesce(sum(x.bytes), 0) INTO v_used
      FROM (SELECT max(l.uploaded_bytes) AS bytes
              FROM vibescaling.dispatch_logs l
             WHERE l.endpoint = 'upload_chunk' AND l.created_at > now() - interval '1 day'
               AND l.post_id IN (SELECT q.id FROM vibescaling.posts q WHERE q.owner = p.owner)
             GROUP BY l.post_id, l.publish_id) x;
    IF v_used + video_size > v_quota THEN
        RAISE EXCEPTION 'owner % has uploaded % MB in the last 24 hours: this % MB video would pass vibescaling.max_upload_mb_per_owner_day (% MB)',
                        p.owner, v_used / 1048576, ceil(video_size / 1048576.0), v_quota / 1048576
            USING ERRCODE = '53400', HINT = vibescaling._transient_hint();
    END IF;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._check_upload_quota(vibescaling.posts, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._upload_video(p vibescaling.posts, p_trigger text, p_endpoint text, p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source  jsonb := vibescaling._video_source(p);
    v_video   jsonb := vibescaling._describe_video(v_source);
    v_plan    jsonb := vibescaling._plan_chunks((v_video->>'size')::bigint);
    v_init    jsonb;
    v_upload  jsonb;
BEGIN
    PERFORM vibescaling._check_upload_quota(p, (v_video->>'size')::bigint);
    FOR attempt IN 1..2 LOOP
        v_init := vibescaling._tiktok_call(p_endpoint, p.tiktok_account_id, p.id, p_trigger,
            (p_options - 'video_url') || jsonb_build_object(
                'source', 'FILE_UPLOAD', 'video_size', v_plan->'video_size',
                'chunk_size', v_plan->'chunk_size', 'total_chunk_count', v_plan->'total_chunk_count'));
        IF NOT (v_init->>'ok')::boolean THEN
            RETURN v_init;
        END IF;
        v_upload := vibescaling._upload_chunks(p.id, p.tiktok_account_id, p_trigger, v_init->>'publish_id',
                                               v_init #>> '{data,upload_url}', v_source,
                                               v_video->>'content_type', (v_video->>'size')::bigint);
        IF (v_upload->>'ok')::boolean THEN
            RETURN v_init - 'data';       -- the upload URL (a credential) goes no further
        END IF;
        EXIT WHEN v_upload->>'error_code' <> 'upload_url_expired';
    END LOOP;
    RETURN v_upload || '{"endpoint": "upload_chunk"}';
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._init_accepted(call jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((call OPERATOR(pg_catalog.->>) 'ok')::boolean, false)
           AND coalesce(call OPERATOR(pg_catalog.->>) 'publish_id', '') OPERATOR(pg_catalog.<>) ''
$$;

CREATE OR REPLACE FUNCTION vibescaling._check_post_write(p_new vibescaling.posts, p_old vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A post TikTok has is never a draft or scheduled again (that would
    -- publish it twice); only TikTok's verdict (publish_status, a webhook) may turn it failed.
    IF p_old.id IS NOT NULL AND p_old.status = 'posted' AND p_new.status NOT IN ('posted', 'failed') THEN
        RAISE EXCEPTION 'post % is already posted; its status cannot become %', p_old.id, p_new.status
            USING ERRCODE = '55000';
    END IF;

    IF p_new.status = 'scheduled' THEN
        IF p_old.id IS NOT NULL AND p_old.status = 'publishing' THEN
            RAISE EXCEPTION 'post % is being published; it cannot be scheduled', p_old.id
                USING ERRCODE = '55000';
        END IF;
        IF p_new.scheduled_at IS NULL THEN
            RAISE EXCEPTION 'scheduled_at is required to schedule a post' USING ERRCODE = '22004';
        END IF;
        -- The 5-minute rule applies when the time is set, not to later edits
        -- of an already scheduled post.
        IF (p_old.id IS NULL OR p_old.status <> 'scheduled' OR p_new.scheduled_at IS DISTINCT FROM p_old.scheduled_at)
           AND p_new.scheduled_at < now() + interval '5 minutes' THEN
            RAISE EXCEPTION 'scheduled_at must be at least 5 minutes in the future'
                USING ERRCODE = '22023',
                      DETAIL = format('scheduled_at is %s; the earliest allowed now is %s.',
                                      p_new.scheduled_at, now() + interval '5 minutes');
        END IF;
        PERFORM vibescaling._check_publishable(p_new);
        -- What the creator allows (cached creator_info); the dispatcher checks
        -- again with a fresh answer. TikTok being unreachable does not stop
        -- scheduling.
        IF p_new.mode = 'direct' THEN
            BEGIN
                PERFORM vibescaling._check_creator_allows(p_new, vibescaling.creator_info(p_new.tiktok_account_id)->'data');
            EXCEPTION WHEN connection_exception OR insufficient_resources THEN
                NULL;
            END;
        END IF;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._post_write_checks(p_new vibescaling.posts, p_old vibescaling.posts, p_writer oid)
RETURNS vibescaling.posts
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM vibescaling._check_post_limits(p_new, p_old);
    -- source_role is the extension's to set: whoever changes the source, else as it was.
    IF p_old.id IS NULL OR p_new.video_lo IS DISTINCT FROM p_old.video_lo
       OR p_new.media_id IS DISTINCT FROM p_old.media_id THEN
        p_new.source_role := CASE WHEN p_new.video_lo IS NOT NULL OR p_new.media_id IS NOT NULL THEN p_writer END;
        IF p_new.source_role IS NOT NULL
           AND NOT vibescaling._role_can_read_source(p_writer, p_new.video_lo, p_new.media_id) THEN
            RAISE EXCEPTION 'permission denied: role % may not read the video source of post %',
                            coalesce(pg_get_userbyid(p_writer), p_writer::text), p_new.id
                USING ERRCODE = '42501',
                      HINT = 'The role that sets video_lo needs SELECT on the large object; media_id needs SELECT on vibescaling.media.';
        END IF;
    ELSE
        p_new.source_role := p_old.source_role;
    END IF;
    PERFORM vibescaling._check_post_write(p_new, p_old);
    RETURN p_new;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._post_write_checks(vibescaling.posts, vibescaling.posts, oid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._post_write_checked(p_new vibescaling.posts, p_old vibescaling.posts,
                                               p_api boolean, p_writer oid)
RETURNS vibescaling.posts
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message   text;
    v_state     text;
    v_hint      text;
    v_detail    text;
BEGIN
    IF p_old.id IS NOT NULL THEN
        IF p_new IS NOT DISTINCT FROM p_old THEN
            RETURN p_new;
        END IF;
        p_new.updated_at := now();
        -- The dispatcher's bookkeeping on a post that stays scheduled (a retry
        -- after a transient failure) changes nothing the checks look at.
        IF p_old.status = 'scheduled' AND p_new.status = 'scheduled'
           AND to_jsonb(p_new) - ARRAY['attempts', 'next_attempt_at', 'last_error', 'updated_at']
               = to_jsonb(p_old) - ARRAY['attempts', 'next_attempt_at', 'last_error', 'updated_at'] THEN
            RETURN p_new;
        END IF;
    END IF;

    IF NOT p_api THEN
        RETURN vibescaling._post_write_checks(p_new, p_old, p_writer);
    END IF;
    BEGIN
        IF p_new.status NOT IN ('draft', 'scheduled') AND (p_old.id IS NULL OR p_new.status IS DISTINCT FROM p_old.status) THEN
            RAISE EXCEPTION 'status % is set by the publisher; through the API a post is draft or scheduled', p_new.status
                USING ERRCODE = '42501',
                      HINT = 'Publish with POST /rpc/publish_post; cancel with POST /rpc/cancel_post.';
        END IF;
        p_new := vibescaling._post_write_checks(p_new, p_old, p_writer);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                                v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
        PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
    END;
    RETURN p_new;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._post_write_checked(vibescaling.posts, vibescaling.posts, boolean, oid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._posts_before_write()
RETURNS trigger
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_posts_before_write'
LANGUAGE C;

REVOKE ALL ON FUNCTION vibescaling._posts_before_write() FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._role_can_read_source(role oid, large_object oid, media_id uuid)
RETURNS boolean
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_role_can_read_source'
LANGUAGE C STABLE;

REVOKE ALL ON FUNCTION vibescaling._role_can_read_source(oid, oid, uuid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling.schedule_post(
    post_id               uuid,
    scheduled_at          timestamptz,
    tiktok_account_id     uuid,
    privacy_level         text,
    mode                  text    DEFAULT 'direct',
    disable_comment       boolean DEFAULT false,
    disable_duet          boolean DEFAULT false,
    disable_stitch        boolean DEFAULT false,
    brand_content_toggle  boolean DEFAULT false,
    brand_organic_toggle  boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    PERFORM vibescaling._require_primary();
    IF schedule_post.post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    UPDATE vibescaling.posts AS t
       SET status = 'scheduled', scheduled_at = schedule_post.scheduled_at,
           tiktok_account_id = schedule_post.tiktok_account_id,
           privacy_level = schedule_post.privacy_level, mode = schedule_post.mode,
           disable_comment = coalesce(schedule_post.disable_comment, false),
           disable_duet = coalesce(schedule_post.disable_duet, false),
           disable_stitch = coalesce(schedule_post.disable_stitch, false),
           brand_content_toggle = coalesce(schedule_post.brand_content_toggle, false),
           brand_organic_toggle = coalesce(schedule_post.brand_organic_toggle, false),
           last_error = NULL, attempts = 0, next_attempt_at = NULL
     WHERE t.id = schedule_post.post_id
    RETURNING t.* INTO p;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'post % not found', schedule_post.post_id USING ERRCODE = 'P0002';
    END IF;
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_round(as_of timestamptz, skip_accounts uuid[])
RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_round record;
BEGIN
    v_round := vibescaling._dispatch_round(as_of, current_setting('vibescaling.max_concurrent_requests')::integer,
                                           skip_accounts);
    IF v_round.processed = 0 AND cardinality(v_round.declined) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN skip_accounts || v_round.declined;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._dispatch_next_round(timestamptz, uuid[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_single(as_of timestamptz, uploads boolean)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id   uuid;
    v_attempts  integer;
    v_message   text;
    v_state     text;
    v_hint      text;
    v_detail    text;
BEGIN
    SELECT p.id, p.attempts INTO v_post_id, v_attempts
      FROM vibescaling.posts p
     WHERE p.status = 'scheduled' AND coalesce(p.next_attempt_at, p.scheduled_at) <= as_of
       AND (p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload') = uploads
     ORDER BY coalesce(p.next_attempt_at, p.scheduled_at), p.id
     LIMIT 1
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    BEGIN
        PERFORM vibescaling._publish_locked(v_post_id, 'scheduler');
    EXCEPTION WHEN OTHERS THEN
        -- The subtransaction rolled back; the row lock and the
        -- dispatch_logs rows remain. (OTHERS never catches query_canceled.)
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                                v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
        PERFORM vibescaling._record_dispatch_failure(v_post_id, v_attempts, v_message, v_state, v_hint,
                                                     v_detail, as_of);
    END;
    RETURN true;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._dispatch_next_single(timestamptz, boolean) FROM PUBLIC;

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_posts(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_skip uuid[] := ARRAY[]::uuid[];
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    LOOP
        v_skip := vibescaling._dispatch_next_round(as_of, v_skip);
        EXIT WHEN v_skip IS NULL;
        COMMIT;
    END LOOP;
    LOOP
        EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, false);
        COMMIT;
    END LOOP;
END
$$;

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_uploads(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    LOOP
        EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, true);
        COMMIT;
    END LOOP;
END
$$;

REVOKE ALL ON PROCEDURE vibescaling.dispatch_due_uploads(timestamptz) FROM PUBLIC;

COMMENT ON PROCEDURE vibescaling.dispatch_due_uploads(timestamptz) IS
    'Publishes scheduled videos the extension uploads itself (its own pg_cron job, so that slow sources hold up nothing else).';

COMMENT ON PROCEDURE vibescaling.dispatch_due_posts(timestamptz) IS
    'Publishes scheduled posts due at as_of (all but the videos the extension uploads: dispatch_due_uploads): in rounds of concurrent calls (vibescaling.max_concurrent_requests), then one by one for rate-limited accounts; retries transient failures with backoff (never sooner than TikTok''s Retry-After); safe to run concurrently.';

CREATE OR REPLACE FUNCTION vibescaling.enable_scheduler(schedule text DEFAULT '*/5 * * * *')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job_id bigint;
BEGIN
    IF enable_scheduler.schedule IS NULL THEN
        RAISE EXCEPTION 'schedule is required (cron syntax, e.g. ''*/5 * * * *'')' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_pg_cron();
    -- pg_cron runs a procedure that COMMITs only when the command is exactly one CALL.
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
       INTO v_job_id
      USING 'vibescaling-dispatch', enable_scheduler.schedule, 'CALL vibescaling.dispatch_due_posts()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-uploads', enable_scheduler.schedule, 'CALL vibescaling.dispatch_due_uploads()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-refresh', '*/15 * * * *', 'SELECT vibescaling.refresh_expiring_tokens()';
    PERFORM vibescaling._schedule_status_poller();
    RETURN v_job_id;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.disable_scheduler()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job text;
    v_found boolean := false;
BEGIN
    PERFORM vibescaling._require_pg_cron();
    FOR v_job IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname IN ($1, $2, $3)'
                 USING 'vibescaling-dispatch', 'vibescaling-uploads', 'vibescaling-refresh' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job;
        v_found := true;
    END LOOP;
    IF vibescaling._unschedule_status_poller() THEN
        v_found := true;
    END IF;
    RETURN v_found;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._durable_log(log_row jsonb)
RETURNS void
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_durable_log'
LANGUAGE C VOLATILE STRICT;

CREATE OR REPLACE FUNCTION vibescaling._webhook_hmac(message bytea, key bytea)
RETURNS bytea
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_hmac_sha256'
LANGUAGE C IMMUTABLE STRICT;

CREATE OR REPLACE FUNCTION vibescaling._refuse_webhook(error_code text, reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'TikTok webhook refused: %', reason
        USING ERRCODE = '42501',
              DETAIL = 'error_code=' || error_code,
              HINT = CASE error_code
                         WHEN 'stale_timestamp' THEN 'The signature''s timestamp is outside vibescaling.webhook_tolerance; check the server clock.'
                         ELSE 'The TikTok-Signature header must be "t=<unix ts>,s=<hex HMAC-SHA256 of ''<t>.<body>'' under the app''s client secret>".'
                     END;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.handle_webhook(body text, signature text)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_secret      text := current_setting('vibescaling.client_secret', true);
    v_tol_text    text := nullif(btrim(current_setting('vibescaling.webhook_tolerance', true)), '');
    v_tolerance   double precision;
    v_part        text;
    v_t           text;
    v_s           text;
    v_given       bytea;
    v_expected    bytea;
    v_diff        integer := 0;
    v_skew        double precision;
    v_body        jsonb;
    v_content     jsonb;
    v_event       text;
    v_publish_id  text;
    v_openid      text;
    v_create_time timestamptz;
    v_post_id     text;
    v_sha         text;
    v_event_id    bigint;
    v_applied     boolean := false;
    v_duplicate   boolean := false;
    r             vibescaling.publish_records;
    v_local       text;
    v_log_post    uuid;
    v_log_account uuid;
BEGIN
    IF coalesce(v_secret, '') = '' THEN
        RAISE EXCEPTION 'vibescaling.client_secret is not set: webhook signatures cannot be checked'
            USING ERRCODE = '55000',
                  HINT = 'Set the TikTok app''s client secret in postgresql.conf (a superuser-only setting) and reload.';
    END IF;

    -- Tolerance: the GUC may not exist (current_setting(..., true) is NULL:
    -- 300 s). Read as an interval: a plain number is seconds, and a GUC with
    -- a unit shows as '5min', '2h', ... which the interval input reads too.
    BEGIN
        v_tolerance := CASE WHEN v_tol_text IS NULL THEN 300
                            ELSE extract(epoch FROM v_tol_text::interval) END;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
        v_tolerance := NULL;
    END;
    IF v_tolerance IS NULL OR v_tolerance < 0 THEN
        RAISE EXCEPTION 'vibescaling.webhook_tolerance is not a valid number of seconds: "%"', v_tol_text
            USING ERRCODE = '22023';
    END IF;

    IF octet_length(body) > 65536 THEN
        RAISE EXCEPTION 'TikTok webhook body is over 64 kB' USING ERRCODE = '22023';
    END IF;

    -- The header: "t=<unix ts>,s=<hex>" (parts in any order, spaces ignored).
    IF coalesce(btrim(signature), '') = '' THEN
        PERFORM vibescaling._refuse_webhook('bad_signature', 'TikTok-Signature header missing');
    END IF;
    FOREACH v_part IN ARRAY string_to_array(signature, ',') LOOP
        v_part := btrim(v_part);
        IF v_part LIKE 't=%' AND v_t IS NULL THEN
            v_t := btrim(substr(v_part, 3));
        ELSIF v_part LIKE 's=%' AND v_s IS NULL THEN
            v_s := lower(btrim(substr(v_part, 3)));
        END IF;
    END LOOP;
    IF v_t IS NULL OR v_t !~ '^[0-9]{1,12}$' OR v_s IS NULL OR v_s !~ '^[0-9a-f]{64}$' THEN
        PERFORM vibescaling._refuse_webhook('bad_signature',
            'TikTok-Signature header malformed (expected t=<unix ts>,s=<64 hex digits>)');
    END IF;

    -- s = HMAC-SHA256(client_secret, "<t>.<body>"), over the body's UTF-8 bytes.
    -- Compared as 32 bytes with a fixed number of steps (no early exit at the
    -- first differing byte), which is as close to constant time as plpgsql gets.
    v_expected := vibescaling._webhook_hmac(convert_to(v_t || '.' || coalesce(body, ''), 'UTF8'),
                                            convert_to(v_secret, 'UTF8'));
    v_given := decode(v_s, 'hex');
    FOR i IN 0 .. 31 LOOP
        v_diff := v_diff | (get_byte(v_given, i) # get_byte(v_expected, i));
    END LOOP;
    IF v_diff <> 0 THEN
        PERFORM vibescaling._refuse_webhook('bad_signature', 'TikTok-Signature does not match the body');
    END IF;

    -- Replays: the signed timestamp must be recent.
    v_skew := abs(extract(epoch FROM clock_timestamp()) - v_t::bigint);
    IF v_skew > v_tolerance THEN
        PERFORM vibescaling._refuse_webhook('stale_timestamp',
            format('signature timestamp %s is %s s from now (tolerance %s s)', v_t, round(v_skew::numeric), v_tolerance));
    END IF;

    -- The body. TikTok signed it, so a malformed one is a bug, not an attack:
    -- 22023, and TikTok retries.
    BEGIN
        v_body := body::jsonb;
    EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
        RAISE EXCEPTION 'TikTok webhook body is not JSON' USING ERRCODE = '22023';
    END;
    IF jsonb_typeof(v_body) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'TikTok webhook body is not a JSON object' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(v_body->'event') IS DISTINCT FROM 'string' OR v_body->>'event' = '' THEN
        RAISE EXCEPTION 'TikTok webhook body has no event' USING ERRCODE = '22023';
    END IF;
    v_event := v_body->>'event';
    v_openid := v_body->>'user_openid';
    IF v_body ? 'create_time' AND jsonb_typeof(v_body->'create_time') <> 'null' THEN
        IF v_body->>'create_time' !~ '^[0-9]{1,12}$' THEN
            RAISE EXCEPTION 'TikTok webhook create_time is not epoch seconds' USING ERRCODE = '22023';
        END IF;
        v_create_time := to_timestamp((v_body->>'create_time')::bigint);
    END IF;
    -- content: a JSON object serialized as a string (an object is accepted too).
    CASE coalesce(jsonb_typeof(v_body->'content'), 'null')
        WHEN 'null' THEN
            v_content := '{}';
        WHEN 'object' THEN
            v_content := v_body->'content';
        WHEN 'string' THEN
            BEGIN
                v_content := (v_body->>'content')::jsonb;
            EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
                RAISE EXCEPTION 'TikTok webhook content is not JSON' USING ERRCODE = '22023';
            END;
        ELSE
            v_content := NULL;
    END CASE;
    IF jsonb_typeof(v_content) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'TikTok webhook content is not a JSON object' USING ERRCODE = '22023';
    END IF;
    v_publish_id := nullif(v_content->>'publish_id', '');
    IF v_event IN ('post.publish.publicly_available', 'post.publish.no_longer_publicaly_available') THEN
        -- A 19-digit int64, as a number or a string: ->> keeps its digits exactly.
        v_post_id := v_content->>'post_id';
        IF v_post_id IS NULL OR v_post_id !~ '^[0-9]{1,19}$'
           OR v_post_id::numeric > 9223372036854775807 THEN
            RAISE EXCEPTION 'TikTok webhook % has no valid content.post_id', v_event USING ERRCODE = '22023';
        END IF;
    END IF;

    -- Dedupe: the same body is the same delivery (retries carry a new t).
    v_sha := encode(sha256(convert_to(body, 'UTF8')), 'hex');
    INSERT INTO vibescaling.webhook_events (event, publish_id, user_openid, create_time, body_sha256, content)
    VALUES (v_event, v_publish_id, v_openid, v_create_time, v_sha, v_content)
    ON CONFLICT (body_sha256) DO NOTHING
    RETURNING id INTO v_event_id;
    v_duplicate := v_event_id IS NULL;

    IF NOT v_duplicate THEN
        IF v_event LIKE 'post.publish.%' AND v_publish_id IS NOT NULL THEN
            SELECT * INTO r FROM vibescaling.publish_records pr WHERE pr.publish_id = v_publish_id FOR UPDATE;
            IF FOUND THEN
                v_log_post := r.post_id;
                v_log_account := r.tiktok_account_id;
                CASE v_event
                    WHEN 'post.publish.complete' THEN
                        IF r.status <> 'failed' THEN
                            v_local := vibescaling._local_publish_status('PUBLISH_COMPLETE');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'PUBLISH_COMPLETE', updated_at = now()
                             WHERE id = r.id;
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.inbox_delivered' THEN
                        IF r.status IN ('processing', 'sent_to_inbox') THEN
                            v_local := vibescaling._local_publish_status('SEND_TO_USER_INBOX');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'SEND_TO_USER_INBOX', updated_at = now()
                             WHERE id = r.id;
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.failed' THEN
                        IF r.status <> 'published' THEN
                            v_local := vibescaling._local_publish_status('FAILED');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'FAILED',
                                   fail_reason = coalesce(v_content->>'reason', fail_reason), updated_at = now()
                             WHERE id = r.id
                            RETURNING * INTO r;
                            -- As publish_status does; only when this is the post's latest
                            -- publish (a post published again is not failed by an old one).
                            UPDATE vibescaling.posts p
                               SET status = 'failed',
                                   last_error = format('TikTok: publish %s failed: %s', r.publish_id, r.fail_reason)
                             WHERE p.id = r.post_id
                               AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                                                WHERE n.post_id = r.post_id
                                                  AND (n.created_at, n.id) > (r.created_at, r.id));
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.publicly_available' THEN
                        UPDATE vibescaling.publish_records
                           SET public_post_ids = public_post_ids || v_post_id::bigint, updated_at = now()
                         WHERE id = r.id AND NOT (v_post_id::bigint = ANY (public_post_ids));
                        v_applied := FOUND;
                    WHEN 'post.publish.no_longer_publicaly_available' THEN
                        UPDATE vibescaling.publish_records
                           SET public_post_ids = array_remove(public_post_ids, v_post_id::bigint), updated_at = now()
                         WHERE id = r.id AND v_post_id::bigint = ANY (public_post_ids);
                        v_applied := FOUND;
                    ELSE
                        NULL;   -- an event TikTok added later: stored only
                END CASE;
            END IF;
        ELSIF v_event = 'authorization.removed' AND v_openid IS NOT NULL THEN
            -- A disconnected account stays disconnected.
            UPDATE vibescaling.tiktok_accounts a
               SET status = 'needs_reauth',
                   status_reason = format('authorization removed on TikTok (reason %s)',
                                          coalesce(v_content->>'reason', 'unknown')),
                   updated_at = now()
             WHERE a.open_id = v_openid AND a.status <> 'disconnected'
            RETURNING a.id INTO v_log_account;
            v_applied := FOUND;
        END IF;
    END IF;

    -- Every accepted webhook (duplicates too) is a dispatch_logs row.
    IF v_log_account IS NULL AND v_openid IS NOT NULL THEN
        SELECT a.id INTO v_log_account FROM vibescaling.tiktok_accounts a WHERE a.open_id = v_openid;
    END IF;
    PERFORM vibescaling._durable_log(jsonb_build_object(
        'post_id', v_log_post, 'tiktok_account_id', v_log_account,
        'trigger', 'webhook', 'endpoint', 'webhook', 'outcome', 'success',
        'error_code', v_event, 'publish_id', v_publish_id,
        'error_message', CASE WHEN v_duplicate THEN 'duplicate delivery: not applied again'
                              WHEN NOT v_applied THEN 'stored, not applied' END));

    RETURN jsonb_build_object('data', jsonb_build_object(
        'event', v_event, 'publish_id', v_publish_id, 'applied', v_applied, 'duplicate', v_duplicate));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.poll_publish_statuses(max_records integer DEFAULT 100,
                                                  give_up_after interval DEFAULT '2 hours')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM vibescaling._require_primary();
    RETURN vibescaling._poll_publish_statuses(max_records, give_up_after, NULL);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._is_api_role()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CURRENT_USER OPERATOR(pg_catalog.=) ANY (ARRAY['vibescaling_anon', 'vibescaling_user',
                                                          'vibescaling_webhook', 'vibescaling_authenticator']::pg_catalog.name[])
$$;

CREATE OR REPLACE FUNCTION vibescaling._raise_http_error(p_state text, p_message text, p_detail text, p_hint text)
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

CREATE OR REPLACE FUNCTION vibescaling_api.handle_webhook(json)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
    v_code    text;
BEGIN
    BEGIN
        RETURN vibescaling.handle_webhook($1::text,
                                          nullif(current_setting('request.headers', true), '')::jsonb->>'tiktok-signature');
    EXCEPTION WHEN insufficient_privilege THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                                v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    END;
    v_code := coalesce(substring(v_detail FROM '^error_code=([a-z_]+)$'), 'refused');
    INSERT INTO vibescaling.webhook_refusals AS w (error_code, refusals, last_reason)
    VALUES (v_code, 1, v_message)
    ON CONFLICT (day, error_code) DO UPDATE
       SET refusals = w.refusals + 1, last_at = now(), last_reason = EXCLUDED.last_reason;
    PERFORM set_config('response.status', '403', true);
    RETURN jsonb_build_object('code', v_state, 'message', v_message, 'details', v_detail, 'hint', v_hint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.setup_api_roles(authenticator_password text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role    text;
    v_columns text := 'media_type, caption, title, video_url, upload_method, video_cover_timestamp_ms, is_aigc, photo_urls, '
                      'photo_cover_index, status, scheduled_at, tiktok_account_id, privacy_level, mode, '
                      'disable_comment, disable_duet, disable_stitch, brand_content_toggle, brand_organic_toggle';
BEGIN
    FOREACH v_role IN ARRAY ARRAY['vibescaling_anon', 'vibescaling_user', 'vibescaling_webhook'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vibescaling_authenticator') THEN
        EXECUTE 'CREATE ROLE vibescaling_authenticator LOGIN NOINHERIT';
    END IF;
    IF authenticator_password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE vibescaling_authenticator PASSWORD %L', authenticator_password);
    END IF;
    GRANT vibescaling_anon, vibescaling_user, vibescaling_webhook TO vibescaling_authenticator;

    -- anon: nothing (not even the schema). The tenant role: the API schema, and
    -- what its invoker-rights views reach through (filtered by row level security).
    GRANT USAGE ON SCHEMA vibescaling_api TO vibescaling_user, vibescaling_webhook;
    GRANT USAGE ON SCHEMA vibescaling TO vibescaling_user;
    GRANT SELECT, DELETE ON vibescaling_api.posts, vibescaling.posts TO vibescaling_user;
    EXECUTE format('GRANT INSERT (%s), UPDATE (%s) ON vibescaling_api.posts, vibescaling.posts TO vibescaling_user',
                   v_columns, v_columns);
    GRANT SELECT ON vibescaling_api.accounts, vibescaling_api.publish_records, vibescaling_api.dispatch_logs,
                    vibescaling.publish_records, vibescaling.dispatch_logs TO vibescaling_user;
    GRANT SELECT ON vibescaling_api.dispatch_stats, vibescaling_api.dispatch_failures,
                    vibescaling_api.posts_per_account_day, vibescaling_api.schedule_delay,
                    vibescaling.dispatch_stats, vibescaling.dispatch_failures,
                    vibescaling.posts_per_account_day, vibescaling.schedule_delay TO vibescaling_user;
    GRANT EXECUTE ON FUNCTION
        vibescaling_api.publish_post(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.schedule_post(uuid, timestamptz, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.cancel_post(uuid),
        vibescaling_api.publish_status(uuid),
        vibescaling_api.creator_info(uuid),
        vibescaling_api.authorize_url(text, text),
        vibescaling_api.connect_account(text, text, text),
        vibescaling_api.disconnect_account(uuid)
        TO vibescaling_user;
    GRANT EXECUTE ON FUNCTION vibescaling_api.handle_webhook(json) TO vibescaling_webhook;
    -- What 0.1.0 granted that no API role may call any more: the posts
    -- trigger's checks run as the table's owner now.
    REVOKE ALL ON FUNCTION vibescaling._check_post_write(vibescaling.posts, vibescaling.posts),
                           vibescaling._raise_http_error(text, text, text, text) FROM vibescaling_user;

    RETURN jsonb_build_object(
        'vibescaling_authenticator', 'login (PostgREST''s db-uri), switches to the roles below',
        'vibescaling_anon', 'nothing',
        'vibescaling_user', 'the vibescaling_api schema, its own rows only (JWT sub)',
        'vibescaling_webhook', 'POST /rpc/handle_webhook');
END
$$;


-- The row level security policies call the (now pinned) helpers once per statement.
ALTER POLICY tenant_posts ON vibescaling.posts
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()))
    WITH CHECK (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
ALTER POLICY tenant_accounts ON vibescaling.tiktok_accounts
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()))
    WITH CHECK (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
ALTER POLICY tenant_publish_records ON vibescaling.publish_records
    USING (NOT (SELECT vibescaling._is_api_role()) OR post_id IN (SELECT p.id FROM vibescaling.posts p));
ALTER POLICY tenant_dispatch_logs ON vibescaling.dispatch_logs
    USING (NOT (SELECT vibescaling._is_api_role())
           OR post_id IN (SELECT p.id FROM vibescaling.posts p)
           OR tiktok_account_id IN (SELECT vibescaling._own_account_ids()));

-- Sealing is in C now: the SQL key accessor goes.
DROP FUNCTION vibescaling._token_key();

-- Roles setup_api_roles() made before: run it again after this update; it
-- grants tenants media_type and takes back what they may no longer call.
-- (Done there, not here: a grant to a role made in an extension's script
-- becomes part of the extension's initial privileges, which pg_dump leaves out.)

-- A scheduler enabled before: its uploads get their own job, on the same schedule.
DO $$
DECLARE
    v_schedule text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        EXECUTE 'SELECT schedule FROM cron.job WHERE jobname = $1' INTO v_schedule USING 'vibescaling-dispatch';
        IF v_schedule IS NOT NULL THEN
            EXECUTE 'SELECT cron.schedule($1, $2, $3)'
              USING 'vibescaling-uploads', v_schedule, 'CALL vibescaling.dispatch_due_uploads()';
        END IF;
    END IF;
END
$$;
