-- vibescaling: the HTTP API. PostgREST exposes the schema vibescaling_api
-- (db-schemas = "vibescaling_api", see api/postgrest.conf): the views are
-- tables to it (GET, POST, PATCH, DELETE /posts, GET /accounts, ...), the
-- functions are RPCs (POST /rpc/publish_post, GET /rpc/publish_status, ...).
-- Each request acts for the tenant in its JWT's sub claim. Functions are
-- SECURITY DEFINER with a pinned search_path and check ownership themselves;
-- views either run with the caller's rights (row level security filters
-- them, 14_tenancy.sql) or filter by tenant themselves (accounts). Errors
-- carry the SQLSTATE PostgREST turns into the documented HTTP status
-- (_raise_http_error; docs/errors.md has the table). The roles are created by
-- vibescaling.setup_api_roles(), not by CREATE EXTENSION.
CREATE SCHEMA vibescaling_api;
COMMENT ON SCHEMA vibescaling_api IS 'The HTTP API that PostgREST exposes (db-schemas = vibescaling_api).';

-- The current request's tenant (JWT sub); 42501 when it has none.
CREATE FUNCTION vibescaling._api_tenant()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sub text := vibescaling._jwt_sub();
BEGIN
    IF v_sub IS NULL THEN
        RAISE EXCEPTION 'this request acts for no tenant: its JWT has no sub claim' USING ERRCODE = '42501';
    END IF;
    RETURN v_sub;
END
$$;

-- Raises unless the post exists and is the tenant's: 400 for a NULL id, 404
-- otherwise (another tenant's post is not found either).
CREATE FUNCTION vibescaling._api_check_post(p_post_id uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.posts p WHERE p.id = p_post_id AND p.owner = vibescaling._api_tenant()) THEN
        RAISE EXCEPTION 'post % not found', p_post_id USING ERRCODE = 'PT404', DETAIL = 'sqlstate=P0002';
    END IF;
END
$$;

-- Raises unless the TikTok account exists (404) and is the tenant's (42501:
-- publishing to another tenant's account is refused, 403).
CREATE FUNCTION vibescaling._api_check_account(p_account_id uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner text;
BEGIN
    IF p_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    SELECT a.owner INTO v_owner FROM vibescaling.tiktok_accounts a WHERE a.id = p_account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'TikTok account % not found', p_account_id USING ERRCODE = 'PT404', DETAIL = 'sqlstate=P0002';
    END IF;
    IF v_owner IS DISTINCT FROM vibescaling._api_tenant() THEN
        RAISE EXCEPTION 'TikTok account % belongs to another tenant', p_account_id USING ERRCODE = '42501';
    END IF;
END
$$;

-- The post id of a request made through the documented paths: nginx passes
-- /api/v1/posts/:id/... as the X-Post-Id header (api/nginx.conf).
CREATE FUNCTION vibescaling._api_path_post_id()
RETURNS uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(nullif(current_setting('request.headers', true), '')::jsonb->>'x-post-id', '')::uuid
$$;

-- ---------------------------------------------------------------------------
-- Tables, as PostgREST sees them.

-- The tenant's posts: GET /posts, POST /posts (a draft; owner = the JWT sub),
-- PATCH /posts?id=eq.<id> (setting status 'scheduled' schedules it, with
-- the checks of schedule_post), DELETE /posts?id=eq.<id> (drafts only).
CREATE VIEW vibescaling_api.posts WITH (security_invoker = true) AS
    SELECT id, media_type, caption, title, video_url, upload_method, video_cover_timestamp_ms, is_aigc,
           photo_urls, photo_cover_index, status, scheduled_at, tiktok_account_id, privacy_level, mode,
           disable_comment, disable_duet, disable_stitch, brand_content_toggle, brand_organic_toggle,
           posted_at, last_error, attempts, next_attempt_at, created_at, updated_at, parent_id
      FROM vibescaling.posts;
COMMENT ON VIEW vibescaling_api.posts IS 'The tenant''s posts (row level security).';

-- The tenant's connected TikTok accounts, without tokens.
CREATE VIEW vibescaling_api.accounts WITH (security_barrier = true) AS
    SELECT a.id, a.open_id, a.display_name, a.avatar_url, a.scopes, a.status, a.status_reason,
           a.access_token_expires_at, a.refresh_token_expires_at, a.last_refreshed_at, a.created_at, a.updated_at
      FROM vibescaling.tiktok_accounts a
     WHERE a.owner = vibescaling._jwt_sub();
COMMENT ON VIEW vibescaling_api.accounts IS 'The tenant''s TikTok accounts, without tokens.';

-- What TikTok said of the tenant's publishes.
CREATE VIEW vibescaling_api.publish_records WITH (security_invoker = true) AS
    SELECT id, post_id, tiktok_account_id, publish_id, endpoint, mode, status, tiktok_status, fail_reason,
           public_post_ids::text[] AS public_post_ids, uploaded_bytes, downloaded_bytes, checked_at,
           created_at, updated_at
      FROM vibescaling.publish_records;
COMMENT ON VIEW vibescaling_api.publish_records IS
    'The tenant''s publish records (public_post_ids as strings: 19 digits do not fit a JSON number).';

-- Every call made to TikTok for the tenant's posts and accounts.
CREATE VIEW vibescaling_api.dispatch_logs WITH (security_invoker = true) AS
    SELECT id, post_id, tiktok_account_id, trigger, endpoint, http_status, outcome, error_code, error_message,
           log_id, publish_id, duration_ms, uploaded_bytes, outcome_unknown, created_at
      FROM vibescaling.dispatch_logs;
COMMENT ON VIEW vibescaling_api.dispatch_logs IS 'The tenant''s calls to TikTok.';

-- ---------------------------------------------------------------------------
-- RPCs. Each checks the tenant, calls the core function and turns its
-- error into the HTTP status (_raise_http_error).

-- POST /rpc/publish_post {"post_id", "tiktok_account_id", "privacy_level", ...}
-- (or POST /api/v1/posts/:id/publish through nginx): publishes a draft now.
-- 200 {"data": {"publish_id"}}; 400 bad input; 403 another tenant's account;
-- 404 no such post; 409 not a draft (already posted) or being published by
-- another request; 502/503 TikTok failed or is rate limiting.
CREATE FUNCTION vibescaling_api.publish_post(
    post_id               uuid    DEFAULT NULL,
    tiktok_account_id     uuid    DEFAULT NULL,
    privacy_level         text    DEFAULT NULL,
    mode                  text    DEFAULT 'direct',
    disable_comment       boolean DEFAULT false,
    disable_duet          boolean DEFAULT false,
    disable_stitch        boolean DEFAULT false,
    brand_content_toggle  boolean DEFAULT false,
    brand_organic_toggle  boolean DEFAULT false,
    targets               jsonb   DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(publish_post.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    -- Another request publishing this post holds its row: 409 at once, not a wait.
    PERFORM 1 FROM vibescaling.posts p WHERE p.id = v_post_id FOR UPDATE NOWAIT;
    -- Several accounts: each target's account must be the tenant's.
    IF publish_post.targets IS NOT NULL THEN
        IF publish_post.tiktok_account_id IS NOT NULL THEN
            RAISE EXCEPTION 'give tiktok_account_id or targets, not both' USING ERRCODE = '22023';
        END IF;
        PERFORM vibescaling._api_check_targets(publish_post.targets);
        RETURN vibescaling.publish_targets(v_post_id, publish_post.targets);
    END IF;
    PERFORM vibescaling._api_check_account(publish_post.tiktok_account_id);
    RETURN vibescaling.publish_post(v_post_id, publish_post.tiktok_account_id, publish_post.privacy_level,
                                    publish_post.mode, publish_post.disable_comment, publish_post.disable_duet,
                                    publish_post.disable_stitch, publish_post.brand_content_toggle,
                                    publish_post.brand_organic_toggle);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/schedule_post {"post_id", "scheduled_at", "tiktok_account_id", "privacy_level", ...}:
-- schedules a post (as PATCH /posts with status 'scheduled' does).
CREATE FUNCTION vibescaling_api.schedule_post(
    post_id               uuid        DEFAULT NULL,
    scheduled_at          timestamptz DEFAULT NULL,
    tiktok_account_id     uuid        DEFAULT NULL,
    privacy_level         text        DEFAULT NULL,
    mode                  text        DEFAULT 'direct',
    disable_comment       boolean     DEFAULT false,
    disable_duet          boolean     DEFAULT false,
    disable_stitch        boolean     DEFAULT false,
    brand_content_toggle  boolean     DEFAULT false,
    brand_organic_toggle  boolean     DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(schedule_post.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    PERFORM vibescaling._api_check_account(schedule_post.tiktok_account_id);
    RETURN vibescaling.schedule_post(v_post_id, schedule_post.scheduled_at, schedule_post.tiktok_account_id,
                                     schedule_post.privacy_level, schedule_post.mode,
                                     schedule_post.disable_comment, schedule_post.disable_duet,
                                     schedule_post.disable_stitch, schedule_post.brand_content_toggle,
                                     schedule_post.brand_organic_toggle);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/cancel_post {"post_id"}: a scheduled post back to draft (409 if it is not scheduled).
CREATE FUNCTION vibescaling_api.cancel_post(post_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(cancel_post.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    RETURN vibescaling.cancel_post(v_post_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- GET /rpc/publish_status?post_id=<id> (or GET /api/v1/posts/:id/publish-status):
-- TikTok's processing status of the post's latest publish,
-- {"data": {"publish_id", "status", "tiktok_status", ...}}; 404 when the post
-- is not the tenant's or has no publish record. STABLE so that PostgREST
-- serves it on GET, in a read-only transaction: TikTok is asked, the answer
-- returned, and the status poller records it.
CREATE FUNCTION vibescaling_api.publish_status(post_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(publish_status.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    RETURN vibescaling.publish_status(v_post_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/creator_info {"tiktok_account_id"}: what the creator may post
-- now (privacy levels, disabled interactions), cached for creator_info_ttl.
CREATE FUNCTION vibescaling_api.creator_info(tiktok_account_id uuid DEFAULT NULL)
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
BEGIN
    PERFORM vibescaling._api_check_account(creator_info.tiktok_account_id);
    RETURN vibescaling.creator_info(creator_info.tiktok_account_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- GET /rpc/authorize_url?redirect_uri=&state=: the TikTok consent URL to
-- send the tenant's user to (the callback then calls connect_account).
CREATE FUNCTION vibescaling_api.authorize_url(redirect_uri text DEFAULT NULL, state text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_tenant();
    RETURN vibescaling.authorize_url(authorize_url.redirect_uri, authorize_url.state);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/connect_account {"auth_code", "redirect_uri", "code_verifier"?}:
-- exchanges the OAuth code; the account belongs to the request's tenant.
-- Returns {"data": {"id", "open_id", "display_name", "status", "scopes"}}
-- (never a token); 403 when another tenant has connected that TikTok account.
CREATE FUNCTION vibescaling_api.connect_account(auth_code text DEFAULT NULL, redirect_uri text DEFAULT NULL,
                                                code_verifier text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id      uuid;
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_tenant();
    v_id := vibescaling.connect_account(connect_account.auth_code, connect_account.redirect_uri,
                                        connect_account.code_verifier);
    RETURN jsonb_build_object('data', (SELECT jsonb_build_object('id', a.id, 'open_id', a.open_id,
                                                                 'display_name', a.display_name, 'status', a.status,
                                                                 'scopes', to_jsonb(a.scopes))
                                         FROM vibescaling.tiktok_accounts a WHERE a.id = v_id));
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/disconnect_account {"tiktok_account_id"}: revokes the tenant's
-- account at TikTok, wipes its tokens, fails its scheduled posts.
CREATE FUNCTION vibescaling_api.disconnect_account(tiktok_account_id uuid DEFAULT NULL)
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
BEGIN
    PERFORM vibescaling._api_check_account(disconnect_account.tiktok_account_id);
    RETURN vibescaling.disconnect_account(disconnect_account.tiktok_account_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/handle_webhook with TikTok's JSON body (one unnamed json
-- argument: PostgREST passes the body whole, byte for byte) and its
-- TikTok-Signature header (read from request.headers). Only the role
-- vibescaling_webhook may call it: nginx adds that role's JWT on the
-- webhook path (api/nginx.conf); the HMAC signature is the real check. A
-- refused delivery answers 403 through PostgREST's response.status without
-- raising, so that the request's transaction commits its count in
-- vibescaling.webhook_refusals (one row per day and reason, not one per
-- delivery).
CREATE FUNCTION vibescaling_api.handle_webhook(json)
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

-- ---------------------------------------------------------------------------
-- The roles.

-- Creates (or completes) the roles PostgREST needs, and grants them the API:
--   vibescaling_authenticator  LOGIN NOINHERIT: PostgREST's connection role
--                              (password: authenticator_password, when given);
--   vibescaling_anon           requests without a JWT: may do nothing at all;
--   vibescaling_user           a tenant's requests (JWT {"role": "vibescaling_user", "sub": ...});
--   vibescaling_webhook        TikTok's webhook deliveries (nginx adds its JWT);
--   vibescaling_operator       an operator's requests (JWT {"role": "vibescaling_operator"}):
--                              every tenant's posts, publishes, calls and
--                              analytics, and settle_post; nothing else.
-- Idempotent; run it again after ALTER EXTENSION vibescaling UPDATE (what a
-- release grants or takes back from these roles is done here, not in the
-- upgrade script, so that pg_dump keeps it). Needs a superuser (or
-- CREATEROLE and the extension's owner).
-- Returns the roles and what each may do.
CREATE FUNCTION vibescaling.setup_api_roles(authenticator_password text DEFAULT NULL)
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
    FOREACH v_role IN ARRAY ARRAY['vibescaling_anon', 'vibescaling_user', 'vibescaling_webhook', 'vibescaling_operator'] LOOP
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
    -- No JIT in PostgREST's sessions: an API request reads a few rows, but
    -- over a large log the planner prices it above jit_above_cost, and
    -- compiling cost a page of the dispatch history 200 ms of its 230
    -- (10 million rows, test/bench/analytics.sh).
    ALTER ROLE vibescaling_authenticator SET jit = off;
    GRANT vibescaling_anon, vibescaling_user, vibescaling_webhook, vibescaling_operator TO vibescaling_authenticator;

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
    GRANT SELECT ON vibescaling_api.post_metrics, vibescaling_api.account_metrics,
                    vibescaling.post_metrics_latest, vibescaling.account_metrics_latest,
                    vibescaling.post_metrics, vibescaling.account_metrics TO vibescaling_user, vibescaling_operator;
    GRANT SELECT ON vibescaling_api.posting_slots, vibescaling.posting_slots,
                    vibescaling_api.recurrences, vibescaling.recurrences TO vibescaling_user;
    GRANT EXECUTE ON FUNCTION
        vibescaling_api.publish_post(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean, jsonb),
        vibescaling_api.schedule_post(uuid, timestamptz, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.cancel_post(uuid),
        vibescaling_api.publish_status(uuid),
        vibescaling_api.creator_info(uuid),
        vibescaling_api.authorize_url(text, text),
        vibescaling_api.connect_account(text, text, text),
        vibescaling_api.disconnect_account(uuid),
        vibescaling_api.analytics(timestamptz, timestamptz, text, text),
        vibescaling_api.set_posting_slots(uuid, text, jsonb),
        vibescaling_api.add_to_queue(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.schedule_targets(uuid, timestamptz, jsonb),
        vibescaling_api.repeat_post(uuid, uuid, jsonb, text, jsonb, timestamptz, timestamptz, integer),
        vibescaling_api.change_recurrence(bigint, jsonb, text, jsonb, timestamptz, integer, boolean),
        vibescaling_api.import_schedule(text),
        vibescaling_api.export_schedule(),
        vibescaling_api.account_caps()
        TO vibescaling_user;
    -- The operator: not a tenant, so row level security shows it every row.
    GRANT USAGE ON SCHEMA vibescaling_api, vibescaling TO vibescaling_operator;
    GRANT SELECT ON vibescaling_api.posts, vibescaling_api.publish_records, vibescaling_api.dispatch_logs,
                    vibescaling.posts, vibescaling.publish_records, vibescaling.dispatch_logs TO vibescaling_operator;
    GRANT EXECUTE ON FUNCTION vibescaling_api.analytics(timestamptz, timestamptz, text, text),
                              vibescaling_api.settle_post(uuid, boolean, text),
                              vibescaling_api.account_caps() TO vibescaling_operator;
    GRANT EXECUTE ON FUNCTION vibescaling_api.handle_webhook(json) TO vibescaling_webhook;
    -- What 0.1.0 granted that no API role may call any more: the posts
    -- trigger's checks run as the table's owner now.
    REVOKE ALL ON FUNCTION vibescaling._check_post_write(vibescaling.posts, vibescaling.posts),
                           vibescaling._raise_http_error(text, text, text, text) FROM vibescaling_user;

    RETURN jsonb_build_object(
        'vibescaling_authenticator', 'login (PostgREST''s db-uri), switches to the roles below',
        'vibescaling_anon', 'nothing',
        'vibescaling_user', 'the vibescaling_api schema, its own rows only (JWT sub)',
        'vibescaling_webhook', 'POST /rpc/handle_webhook',
        'vibescaling_operator', 'every tenant''s posts, publishes, calls and analytics; POST /rpc/settle_post');
END
$$;
COMMENT ON FUNCTION vibescaling.setup_api_roles(text) IS
    'Creates the PostgREST roles (vibescaling_authenticator, _anon, _user, _webhook, _operator) and grants them the API; idempotent.';

REVOKE ALL ON ALL ROUTINES IN SCHEMA vibescaling_api FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA vibescaling_api FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_tenant() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_check_post(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_check_account(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_path_post_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.setup_api_roles(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._posts_before_delete() FROM PUBLIC;
