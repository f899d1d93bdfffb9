-- vibescaling 0.1.4 -> 0.1.5: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.5'" to load this file. \quit

-- A call's result reaches SQL as a row of vibescaling._call_result instead of
-- a jsonb object, and dispatch_due_uploads sends its videos in rounds: the
-- functions whose arguments or results change are dropped and created again
-- (plpgsql resolves the functions it calls at run time, so nothing else
-- depends on them). The C functions move to new symbols; the old ones stay
-- in the library for catalogs not yet updated.
CREATE TYPE vibescaling._call_result AS (
    ok              boolean,
    http_status     integer,
    error_code      text,
    error_message   text,
    log_id          text,
    publish_id      text,
    data            jsonb,
    sqlstate        text,
    duration_ms     double precision,
    retryable       boolean,
    outcome_unknown boolean,
    retry_after     integer);

-- A round item of an upload round carries what _prepare_upload found.
ALTER TYPE vibescaling._round_item ADD ATTRIBUTE upload jsonb;

DROP FUNCTION vibescaling._tiktok_call(text, uuid, uuid, text, jsonb);
DROP FUNCTION vibescaling._tiktok_call_many(jsonb);
DROP FUNCTION vibescaling._call_failure(jsonb, text);
DROP FUNCTION vibescaling._raise_tiktok_error(jsonb, text);
DROP FUNCTION vibescaling._upload_video(vibescaling.posts, text, text, jsonb);
DROP FUNCTION vibescaling._init_accepted(jsonb);
DROP FUNCTION vibescaling._record_published_many(vibescaling.posts[], jsonb, text[]);
DROP FUNCTION vibescaling._record_published(vibescaling.posts, jsonb, text);
DROP FUNCTION vibescaling._publish_attempt(uuid, text);
DROP FUNCTION vibescaling._record_call_failure(uuid, integer, jsonb, text, timestamptz);
DROP FUNCTION vibescaling._settle_call(vibescaling.posts, jsonb, text, timestamptz);
DROP FUNCTION vibescaling._dispatch_round(timestamptz, integer, uuid[]);
DROP FUNCTION vibescaling._dispatch_next_round(timestamptz, uuid[], integer);
DROP FUNCTION vibescaling._start_upload_sessions(timestamptz);

-- dispatch_logs says what it holds besides calls.
COMMENT ON TABLE vibescaling.dispatch_logs IS
    'Every call to TikTok (committed independently of the caller''s transaction), each accepted webhook delivery (endpoint webhook) and each settle_post decision (endpoint settlement); weekly partitions, see vibescaling.log_retention.';

-- Also: _rate_limit_lock and _init_accepted become plpgsql (a sql function
-- with a SET clause is never inlined, so PostgreSQL 15 parsed and planned
-- its body at every call), and the posts trigger skips its checks for the
-- publisher's verdict alone (_post_write_checked).

CREATE OR REPLACE FUNCTION vibescaling._tiktok_call(
    endpoint           text,
    tiktok_account_id  uuid,
    post_id            uuid,
    trigger            text,
    options            jsonb)
RETURNS vibescaling._call_result
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call_1_5'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION vibescaling._tiktok_call_many(calls jsonb)
RETURNS vibescaling._call_result[]
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call_many_1_5'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION vibescaling._call_failure(call vibescaling._call_result, endpoint text,
                                          OUT message text, OUT sqlstate text, OUT retryable boolean,
                                          OUT retry_after integer, OUT unknown_init boolean)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    unknown_init := coalesce(call.outcome_unknown, false)
                    AND endpoint IN ('video_init', 'inbox_video_init', 'content_init');
    message := format('TikTok %s failed: %s (log_id %s)', endpoint, call.error_code,
                      coalesce(nullif(call.log_id, ''), 'none'))
               || CASE WHEN unknown_init THEN ': the request may have reached TikTok, its outcome is unknown' ELSE '' END;
    sqlstate := call.sqlstate;
    retryable := coalesce(call.retryable, false) AND NOT unknown_init;
    retry_after := call.retry_after;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._call_failure(vibescaling._call_result, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._raise_tiktok_error(call vibescaling._call_result, endpoint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f        record := vibescaling._call_failure(call, endpoint);
    v_detail text := format('http_status=%s error_code=%s log_id=%s outcome_unknown=%s message=%s',
                            coalesce(call.http_status::text, 'none'), call.error_code,
                            coalesce(call.log_id, ''), call.outcome_unknown::text,
                            coalesce(call.error_message, ''))
                         || CASE WHEN f.retry_after IS NOT NULL THEN format(' retry_after=%s', f.retry_after) ELSE '' END;
BEGIN
    IF f.unknown_init THEN
        RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail,
              HINT = 'Check the TikTok account, then call vibescaling.settle_post(post_id, on_tiktok, publish_id).';
    END IF;
    IF f.retryable THEN
        RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail,
                              HINT = vibescaling._transient_hint();
    END IF;
    RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._raise_tiktok_error(vibescaling._call_result, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._rate_limit_lock(account_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.rate_limit'), hashtext(account_id::text));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._creator_refusal(p vibescaling.posts, creator jsonb, OUT message text, OUT detail text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT coalesce(creator->'privacy_level_options', '[]'::jsonb) ? p.privacy_level THEN
        message := format('privacy_level %s is not offered to this creator', p.privacy_level);
        detail := format('creator_info offers %s', creator->'privacy_level_options');
    ELSIF coalesce((creator->>'comment_disabled')::boolean, false) AND NOT p.disable_comment THEN
        message := 'the creator has turned comments off; publish with disable_comment => true';
    ELSIF p.media_type = 'video' AND coalesce((creator->>'duet_disabled')::boolean, false) AND NOT p.disable_duet THEN
        message := 'the creator has turned duets off; publish with disable_duet => true';
    ELSIF p.media_type = 'video' AND coalesce((creator->>'stitch_disabled')::boolean, false) AND NOT p.disable_stitch THEN
        message := 'the creator has turned stitches off; publish with disable_stitch => true';
    END IF;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._creator_refusal(vibescaling.posts, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._check_creator_allows(p vibescaling.posts, creator jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record := vibescaling._creator_refusal(p, creator);
BEGIN
    IF r.detail IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = r.message, DETAIL = r.detail;
    ELSIF r.message IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = r.message;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.connect_account(auth_code text, redirect_uri text, code_verifier text DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION vibescaling.disconnect_account(account_id uuid)
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

CREATE OR REPLACE FUNCTION vibescaling.creator_info(account_id uuid)
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

CREATE OR REPLACE FUNCTION vibescaling._prepare_upload(p vibescaling.posts)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source  jsonb := vibescaling._video_source(p);
    v_video   jsonb := vibescaling._describe_video(v_source);
    v_plan    jsonb := vibescaling._plan_chunks((v_video->>'size')::bigint);
BEGIN
    PERFORM vibescaling._check_upload_quota(p, (v_video->>'size')::bigint);
    RETURN jsonb_build_object(
        'source', v_source, 'content_type', v_video->'content_type', 'size', v_video->'size',
        'source_info', jsonb_build_object('source', 'FILE_UPLOAD', 'video_size', v_plan->'video_size',
                                          'chunk_size', v_plan->'chunk_size',
                                          'total_chunk_count', v_plan->'total_chunk_count'));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._upload_init_options(options jsonb, upload jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (options - 'video_url') || (upload->'source_info');
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._upload_accepted_video(p vibescaling.posts, p_trigger text, upload jsonb,
                                                   init vibescaling._call_result)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN vibescaling._upload_chunks(p.id, p.tiktok_account_id, p_trigger, init.publish_id,
                                      init.data->>'upload_url', upload->'source',
                                      upload->>'content_type', (upload->>'size')::bigint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._upload_video(p vibescaling.posts, p_trigger text, p_endpoint text, p_options jsonb,
                                          OUT call vibescaling._call_result, OUT failed_endpoint text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_upload  jsonb := vibescaling._prepare_upload(p);
    v_init    vibescaling._call_result;
    v_chunks  jsonb;
BEGIN
    FOR attempt IN 1..2 LOOP
        v_init := vibescaling._tiktok_call(p_endpoint, p.tiktok_account_id, p.id, p_trigger,
                                           vibescaling._upload_init_options(p_options, v_upload));
        IF NOT v_init.ok THEN
            call := v_init;
            failed_endpoint := p_endpoint;
            RETURN;
        END IF;
        v_chunks := vibescaling._upload_accepted_video(p, p_trigger, v_upload, v_init);
        IF (v_chunks->>'ok')::boolean THEN
            v_init.data := '{}';          -- the upload URL (a credential) goes no further
            call := v_init;
            RETURN;
        END IF;
        EXIT WHEN v_chunks->>'error_code' <> 'upload_url_expired';
    END LOOP;
    -- _upload_chunks answers with the failing PUT's result, in _call_result's fields.
    call := jsonb_populate_record(NULL::vibescaling._call_result, v_chunks);
    failed_endpoint := 'upload_chunk';
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._init_accepted(call vibescaling._call_result)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce(call.ok, false) AND coalesce(call.publish_id, '') <> '';
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._record_published_many(posts vibescaling.posts[], calls vibescaling._call_result[],
                                                   endpoints text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode)
    SELECT (posts[i]).id, (posts[i]).tiktok_account_id, (calls[i]).publish_id, endpoints[i], (posts[i]).mode
      FROM generate_subscripts(posts, 1) i
     WHERE vibescaling._init_accepted(calls[i]);
    UPDATE vibescaling.posts t
       SET status = 'posted', posted_at = now(), last_error = NULL
     WHERE t.id IN (SELECT (posts[i]).id FROM generate_subscripts(posts, 1) i
                     WHERE vibescaling._init_accepted(calls[i]));
END
$$;

REVOKE ALL ON FUNCTION vibescaling._record_published_many(vibescaling.posts[], vibescaling._call_result[], text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._record_published(p vibescaling.posts, call vibescaling._call_result, p_endpoint text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(call.publish_id, '') = '' THEN
        RAISE EXCEPTION 'TikTok % answered ok without a publish_id (log_id %)', p_endpoint,
                        coalesce(nullif(call.log_id, ''), 'none')
            USING ERRCODE = '08P01';
    END IF;
    PERFORM vibescaling._record_published_many(ARRAY[p], ARRAY[call], ARRAY[p_endpoint]);
    RETURN jsonb_build_object('data', jsonb_build_object('publish_id', call.publish_id));
END
$$;

REVOKE ALL ON FUNCTION vibescaling._record_published(vibescaling.posts, vibescaling._call_result, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._publish_attempt(p_post_id uuid, p_trigger text, OUT answer jsonb,
                                             OUT failed_call vibescaling._call_result, OUT failed_endpoint text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p       vibescaling.posts;
    v_prep  record;
    v_call  vibescaling._call_result;
    v_up    record;
BEGIN
    SELECT * INTO STRICT p FROM vibescaling.posts WHERE id = p_post_id;
    v_prep := vibescaling._prepare_publish(p, p_trigger);
    IF v_prep.reconciled IS NOT NULL THEN
        answer := v_prep.reconciled;
        RETURN;
    END IF;

    -- TikTok requires a fresh creator_info before every Direct Post.
    IF p.mode = 'direct' THEN
        v_call := vibescaling._tiktok_call('creator_info', p.tiktok_account_id, p.id, p_trigger, '{}');
        IF NOT v_call.ok THEN
            failed_call := v_call;
            failed_endpoint := 'creator_info';
            RETURN;
        END IF;
        PERFORM vibescaling._check_creator_allows(p, v_call.data);
    END IF;

    -- TikTok pulls photos and videos under verified prefixes; we upload the rest.
    IF p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload' THEN
        v_up := vibescaling._upload_video(p, p_trigger, v_prep.endpoint, v_prep.options);
        v_call := v_up.call;
        failed_endpoint := v_up.failed_endpoint;
    ELSE
        v_call := vibescaling._tiktok_call(v_prep.endpoint, p.tiktok_account_id, p.id, p_trigger, v_prep.options);
    END IF;
    IF NOT v_call.ok THEN
        failed_call := v_call;
        failed_endpoint := coalesce(failed_endpoint, v_prep.endpoint);
        RETURN;
    END IF;
    answer := vibescaling._record_published(p, v_call, v_prep.endpoint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._publish_locked(p_post_id uuid, p_trigger text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_result record := vibescaling._publish_attempt(p_post_id, p_trigger);
BEGIN
    IF v_result.failed_endpoint IS NOT NULL THEN
        PERFORM vibescaling._raise_tiktok_error(v_result.failed_call, v_result.failed_endpoint);
    END IF;
    RETURN v_result.answer;
END
$$;

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
    -- No call for a post is older than the post: _earlier_init leaves the
    -- log's earlier partitions out on that ground, so created_at never
    -- moves forward (nor past now).
    p_new.created_at := least(p_new.created_at, coalesce(p_old.created_at, now()));
    -- An UPDATE that changes nothing these checks look at (none at all, the
    -- dispatcher's bookkeeping on a post that stays scheduled, the
    -- publisher's verdict posted or failed) never gets here: the trigger
    -- stores it at once (shortcut_row in src/pg/post_write_trigger.cpp).
    IF p_old.id IS NOT NULL THEN
        p_new.updated_at := now();
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

CREATE OR REPLACE FUNCTION vibescaling.publish_status(post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r       vibescaling.publish_records;
    v_call  vibescaling._call_result;
    v_data  jsonb;   -- what the durable log says of a publish without a committed record
    v_read_only boolean := current_setting('transaction_read_only')::boolean;
BEGIN
    IF publish_status.post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    IF v_read_only THEN
        SELECT * INTO r FROM vibescaling.publish_records pr
         WHERE pr.post_id = publish_status.post_id
         ORDER BY pr.created_at DESC, pr.id DESC
         LIMIT 1;
    ELSE
        SELECT * INTO r FROM vibescaling.publish_records pr
         WHERE pr.post_id = publish_status.post_id
         ORDER BY pr.created_at DESC, pr.id DESC
         LIMIT 1
           FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        -- A publish still under way in another session (its record is not
        -- committed yet), or whose transaction rolled back: the durable
        -- dispatch log knows the publish_id and the upload's progress.
        v_data := vibescaling._publish_progress_from_log(publish_status.post_id);
        IF v_data IS NOT NULL THEN
            RETURN jsonb_build_object('data', v_data);
        END IF;
        RAISE EXCEPTION 'post % has no publish record', publish_status.post_id
            USING ERRCODE = 'P0002',
                  HINT = CASE WHEN NOT EXISTS (SELECT 1 FROM vibescaling.posts WHERE id = publish_status.post_id)
                              THEN 'No such post.' ELSE 'The post has not been published.' END;
    END IF;

    -- A failure is final: no need to ask TikTok again.
    IF r.status = 'failed' THEN
        RETURN vibescaling._publish_status_json(r);
    END IF;

    v_call := vibescaling._tiktok_call('status_fetch', r.tiktok_account_id, r.post_id, 'status',
                                       jsonb_build_object('publish_id', r.publish_id));
    IF NOT v_call.ok THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, 'status_fetch');
    END IF;
    IF v_read_only THEN
        r := vibescaling._merge_status_reply(r, v_call.data);
    ELSE
        r := vibescaling._apply_status_reply(r, v_call.data);
    END IF;
    RETURN vibescaling._publish_status_json(r);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._record_call_failure(p_post_id uuid, p_attempts integer, call vibescaling._call_result,
                                                 p_endpoint text, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record := vibescaling._call_failure(call, p_endpoint);
BEGIN
    PERFORM vibescaling._record_dispatch_failure(p_post_id, p_attempts, f.message, f.sqlstate, f.retryable,
                                                 f.retry_after, as_of);
END
$$;

REVOKE ALL ON FUNCTION vibescaling._record_call_failure(uuid, integer, vibescaling._call_result, text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._apply_call_answer(p vibescaling.posts, call vibescaling._call_result, p_endpoint text,
                                               as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
BEGIN
    IF NOT call.ok THEN
        PERFORM vibescaling._record_call_failure(p.id, p.attempts, call, p_endpoint, as_of);
        RETURN false;
    END IF;
    BEGIN
        IF p_endpoint = 'creator_info' THEN
            PERFORM vibescaling._check_creator_allows(p, call.data);
        ELSE
            PERFORM vibescaling._record_published(p, call, p_endpoint);
        END IF;
        RETURN true;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM vibescaling._record_dispatch_error(p.id, p.attempts, v_message, v_state, as_of);
        RETURN false;
    END;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._apply_call_answer(vibescaling.posts, vibescaling._call_result, text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._finish_round_upload(item vibescaling._round_item, INOUT init vibescaling._call_result,
                                                 as_of timestamptz, OUT uploaded boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p         vibescaling.posts := item.post;
    v_chunks  jsonb;
    v_again   record;
    v_message text;
    v_state   text;
BEGIN
    uploaded := false;
    BEGIN
        v_chunks := vibescaling._upload_accepted_video(p, 'scheduler', item.upload, init);
        IF (v_chunks->>'ok')::boolean THEN
            init.data := '{}';
            uploaded := true;
        ELSIF v_chunks->>'error_code' = 'upload_url_expired' THEN
            v_again := vibescaling._upload_video(p, 'scheduler', item.endpoint, item.options);
            IF v_again.failed_endpoint IS NULL THEN
                init := v_again.call;
                uploaded := true;
            ELSE
                PERFORM vibescaling._record_call_failure(p.id, p.attempts, v_again.call, v_again.failed_endpoint, as_of);
            END IF;
        ELSE
            PERFORM vibescaling._record_call_failure(p.id, p.attempts,
                                                     jsonb_populate_record(NULL::vibescaling._call_result, v_chunks),
                                                     'upload_chunk', as_of);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM vibescaling._record_dispatch_error(p.id, p.attempts, v_message, v_state, as_of);
    END;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._finish_round_upload(vibescaling._round_item, vibescaling._call_result, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_round(as_of timestamptz, max_posts integer, skip_accounts uuid[],
                                            uploads boolean DEFAULT false,
                                            OUT processed integer, OUT declined uuid[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p           vibescaling.posts;
    v_prep      record;
    v_upload    jsonb;
    v_message   text;
    v_state     text;
    v_items     vibescaling._round_item[] := '{}';  -- the posts going out, in order
    v_sent      vibescaling._round_item[];          -- those whose init is sent, in order
    v_calls     jsonb;
    v_results   vibescaling._call_result[];
    v_finished  record;
    v_stop      record;
    v_claimed   vibescaling.posts[];  -- the due posts the round locked
    v_accounts  uuid[];      -- their accounts
    v_room      integer[];   -- v_room[i]: claimed post i's init room, v_room[v_claimed_n + i]: its creator_info room
    v_claimed_n integer;
    v_since     timestamptz;  -- the oldest claimed post's creation: no call for them is older
    v_init_logged uuid[];     -- the claimed posts with an init in the log
    i           integer;
    j           integer;
BEGIN
    processed := 0;
    declined := '{}';

    -- The earliest due post of each account not skipped, earliest first.
    -- Candidates beyond max_posts: other dispatchers (helpers of the same
    -- run) hold the first ones, and the lock skips them.
    v_claimed := ARRAY(
        SELECT t FROM vibescaling.posts t
         WHERE t.id = ANY (ARRAY(
                   SELECT c.id
                     FROM (SELECT DISTINCT ON (d.tiktok_account_id) d.id, d.tiktok_account_id,
                                  coalesce(d.next_attempt_at, d.scheduled_at) AS due
                             FROM vibescaling.posts d
                            WHERE d.status = 'scheduled'
                              AND coalesce(d.next_attempt_at, d.scheduled_at) <= as_of
                              AND coalesce(d.tiktok_account_id <> ALL (skip_accounts), true)
                              AND (NOT uploads OR d.media_type = 'video' AND vibescaling._upload_method(d) = 'upload')
                            ORDER BY d.tiktok_account_id, coalesce(d.next_attempt_at, d.scheduled_at), d.id) c
                    ORDER BY c.due, c.id
                    LIMIT max_posts * 8))
           AND t.status = 'scheduled'
         ORDER BY coalesce(t.next_attempt_at, t.scheduled_at), t.id
         LIMIT max_posts
           FOR UPDATE SKIP LOCKED);
    v_claimed_n := cardinality(v_claimed);
    -- The room left in their accounts' init and creator_info rate limits,
    -- asked once for the whole round.
    v_accounts := ARRAY(SELECT c.tiktok_account_id FROM unnest(v_claimed) WITH ORDINALITY c ORDER BY c.ordinality);
    v_room := vibescaling._rate_limit_room(v_accounts || v_accounts,
                                           array_fill('video_init'::text, ARRAY[v_claimed_n])
                                           || array_fill('creator_info'::text, ARRAY[v_claimed_n]));
    -- Which of them the log holds an init of (few, in a burst: the others'
    -- earlier-init check has nothing to find), asked once for the round. No
    -- call for a post is older than the post (_post_write_checked).
    v_since := (SELECT min(c.created_at) FROM unnest(v_claimed) c);
    v_init_logged := ARRAY(SELECT DISTINCT d.post_id FROM vibescaling.dispatch_logs d
                            WHERE d.post_id = ANY (ARRAY(SELECT c.id FROM unnest(v_claimed) c))
                              AND d.created_at >= v_since
                              AND d.endpoint IN ('video_init', 'inbox_video_init', 'content_init'));

    FOR i IN 1 .. v_claimed_n LOOP
        p := v_claimed[i];
        IF p.tiktok_account_id IS NOT NULL
           AND (coalesce(p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload', false) <> uploads
                OR v_room[i] = 0
                OR p.mode = 'direct' AND v_room[v_claimed_n + i] = 0
                OR NOT pg_try_advisory_xact_lock(hashtext('vibescaling.rate_limit'), hashtext(p.tiktok_account_id::text))) THEN
            declined := declined || p.tiktok_account_id;
            CONTINUE;
        END IF;
        BEGIN
            v_prep := vibescaling._prepare_publish(p, 'scheduler', NOT (p.id = ANY (v_init_logged)));
            IF v_prep.reconciled IS NULL THEN
                v_upload := CASE WHEN uploads THEN vibescaling._prepare_upload(p) END;
                v_items := v_items || ROW(p, v_prep.endpoint, v_prep.options, true, v_upload)::vibescaling._round_item;
            ELSE
                processed := processed + 1;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- Refused before anything was sent (the subtransaction rolled back).
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            PERFORM vibescaling._record_dispatch_error(p.id, p.attempts, v_message, v_state, as_of);
            processed := processed + 1;
        END;
    END LOOP;

    -- TikTok requires a fresh creator_info before every Direct Post: all at once.
    SELECT jsonb_agg(jsonb_build_object('endpoint', 'creator_info', 'tiktok_account_id', (t.post).tiktok_account_id,
                                        'post_id', (t.post).id, 'trigger', 'scheduler') ORDER BY t.n)
      INTO v_calls
      FROM unnest(v_items) WITH ORDINALITY t(post, endpoint, options, going, upload, n)
     WHERE (t.post).mode = 'direct';
    IF v_calls IS NOT NULL THEN
        v_results := vibescaling._tiktok_call_many(v_calls);
        -- The answers against their posts, in one statement (item i had call
        -- j); the few that stop a post are recorded one by one, as
        -- publish_post would raise them (_apply_call_answer).
        FOR v_stop IN
            SELECT d.i, d.j
              FROM (SELECT t.n AS i, row_number() OVER (ORDER BY t.n) AS j
                      FROM unnest(v_items) WITH ORDINALITY t(post, endpoint, options, going, upload, n)
                     WHERE (t.post).mode = 'direct') d
             WHERE NOT coalesce((v_results[d.j]).ok, false)
                OR (vibescaling._creator_refusal((v_items[d.i]).post, (v_results[d.j]).data)).message IS NOT NULL
             ORDER BY d.i
        LOOP
            PERFORM vibescaling._apply_call_answer((v_items[v_stop.i]).post, v_results[v_stop.j], 'creator_info', as_of);
            v_items[v_stop.i].going := false;
            processed := processed + 1;
        END LOOP;
    END IF;

    -- All the inits at once (each logged "in flight" first).
    v_sent := ARRAY(SELECT ROW(t.post, t.endpoint, t.options, t.going, t.upload)::vibescaling._round_item
                      FROM unnest(v_items) WITH ORDINALITY t(post, endpoint, options, going, upload, n)
                     WHERE t.going
                     ORDER BY t.n);
    IF cardinality(v_sent) = 0 THEN
        RETURN;
    END IF;
    SELECT jsonb_agg(jsonb_build_object('endpoint', t.endpoint, 'tiktok_account_id', (t.post).tiktok_account_id,
                                        'post_id', (t.post).id, 'trigger', 'scheduler',
                                        'options', CASE WHEN t.upload IS NULL THEN t.options
                                                        ELSE vibescaling._upload_init_options(t.options, t.upload) END)
                     ORDER BY t.n)
      INTO v_calls
      FROM unnest(v_sent) WITH ORDINALITY t(post, endpoint, options, going, upload, n);
    v_results := vibescaling._tiktok_call_many(v_calls);
    processed := processed + cardinality(v_sent);
    -- The videos TikTok accepted an init for: their chunks, one video after
    -- another. A video that did not all get there is settled already.
    FOR j IN 1 .. cardinality(v_sent) LOOP
        CONTINUE WHEN (v_sent[j]).upload IS NULL OR NOT vibescaling._init_accepted(v_results[j]);
        v_finished := vibescaling._finish_round_upload(v_sent[j], v_results[j], as_of);
        v_results[j] := v_finished.init;
        v_sent[j].going := v_finished.uploaded;
    END LOOP;
    -- What TikTok accepted is recorded for all posts at once; the rest one by one.
    PERFORM vibescaling._record_published_many(
                ARRAY(SELECT t.post FROM unnest(v_sent) WITH ORDINALITY t(post, endpoint, options, going, upload, n)
                       WHERE t.going ORDER BY t.n),
                ARRAY(SELECT v_results[t.n] FROM unnest(v_sent) WITH ORDINALITY t(post, endpoint, options, going, upload, n)
                       WHERE t.going ORDER BY t.n),
                ARRAY(SELECT t.endpoint FROM unnest(v_sent) WITH ORDINALITY t(post, endpoint, options, going, upload, n)
                       WHERE t.going ORDER BY t.n));
    FOR j IN 1 .. cardinality(v_sent) LOOP
        CONTINUE WHEN NOT (v_sent[j]).going OR vibescaling._init_accepted(v_results[j]);
        PERFORM vibescaling._apply_call_answer((v_sent[j]).post, v_results[j], (v_sent[j]).endpoint, as_of);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._dispatch_round(timestamptz, integer, uuid[], boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_round(as_of timestamptz, skip_accounts uuid[], round_size integer,
                                                 uploads boolean DEFAULT false)
RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_round record;
BEGIN
    DISCARD PLANS;
    v_round := vibescaling._dispatch_round(as_of, round_size, skip_accounts, uploads);
    IF v_round.processed = 0 AND cardinality(v_round.declined) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN skip_accounts || v_round.declined;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._dispatch_next_round(timestamptz, uuid[], integer, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._start_upload_sessions(as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_round_max constant integer := 8;
    v_sessions  integer := current_setting('vibescaling.dispatch_sessions')::integer;
    v_due       integer := vibescaling._count_due(as_of, true, v_sessions * c_round_max);
    v_round     integer := greatest(1, least(c_round_max, v_due / v_sessions));
    v_helpers   integer := least(v_sessions, ceil(v_due::numeric / v_round)::integer) - 1;
BEGIN
    IF v_helpers > 0 THEN
        PERFORM vibescaling._start_dispatch_helpers(as_of, v_helpers, v_round, true);
    END IF;
    RETURN v_round;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_single(as_of timestamptz, uploads boolean)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id   uuid;
    v_attempts  integer;
    v_result    record;
    v_message   text;
    v_state     text;
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
        v_result := vibescaling._publish_attempt(v_post_id, 'scheduler');
    EXCEPTION WHEN OTHERS THEN
        -- The subtransaction rolled back; the row lock and the
        -- dispatch_logs rows remain. (OTHERS never catches query_canceled.)
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM vibescaling._record_dispatch_error(v_post_id, v_attempts, v_message, v_state, as_of);
        RETURN true;
    END;
    IF v_result.failed_endpoint IS NOT NULL THEN
        PERFORM vibescaling._record_call_failure(v_post_id, v_attempts, v_result.failed_call,
                                                 v_result.failed_endpoint, as_of);
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_posts(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_skip        uuid[];
    v_round_size  integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    -- A run commits each round, which it cannot do inside a transaction
    -- block or a query string of several statements. Committing here,
    -- before anything is sent, raises 2D000 in that case, instead of at a
    -- round's end after its calls went out. (The security suite reads
    -- this body: no unqualified call, a pin after every commit.)
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_round_size := vibescaling._start_dispatch_sessions(as_of);
    LOOP
        v_skip := ARRAY[]::uuid[];
        LOOP
            v_skip := vibescaling._dispatch_next_round(as_of, v_skip, v_round_size);
            EXIT WHEN v_skip IS NULL;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        LOOP
            EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, false);
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        -- Alone from here: once more, with the whole of max_concurrent_requests.
        EXIT WHEN NOT vibescaling._wait_dispatch_helpers();
        v_round_size := pg_catalog.current_setting('vibescaling.max_concurrent_requests')::integer;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_uploads(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_skip        uuid[];
    v_round_size  integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    -- A run commits each round, which it cannot do inside a transaction
    -- block or a query string of several statements. Committing here,
    -- before anything is sent, raises 2D000 in that case, instead of at a
    -- round's end after its calls went out. (The security suite reads
    -- this body: no unqualified call, a pin after every commit.)
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_round_size := vibescaling._start_upload_sessions(as_of);
    LOOP
        v_skip := ARRAY[]::uuid[];
        LOOP
            v_skip := vibescaling._dispatch_next_round(as_of, v_skip, v_round_size, true);
            EXIT WHEN v_skip IS NULL;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        LOOP
            EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, true);
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        -- Once more, alone, for what a failed helper may have left.
        EXIT WHEN NOT vibescaling._wait_dispatch_helpers();
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._poll_publish_statuses(max_records integer, give_up_after interval,
                                                   only_accounts uuid[])
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- TikTok allows 30 status fetches per minute per token; the rest of the
    -- minute is left to publish_status callers.
    c_fetches_per_account constant integer := 25;
    v_cutoff      timestamptz;   -- created before this: past give_up_after
    v_id          bigint;
    v_deferred    boolean;
    v_reason      text;
    v_fetch       bigint[] := '{}';   -- the records TikTok is asked about, in order
    v_results     vibescaling._call_result[];
    v_call        vibescaling._call_result;
    r             vibescaling.publish_records;
    v_polled      integer := 0;
    v_final       integer := 0;
    v_processing  integer := 0;
    v_timeouts    integer := 0;
    v_errors      integer := 0;
    v_skipped     integer := 0;
    v_message     text;
    v_state       text;
    i             integer;
BEGIN
    IF max_records IS NULL OR max_records < 0 THEN
        RAISE EXCEPTION 'max_records must be 0 or more' USING ERRCODE = '22023';
    END IF;
    IF give_up_after IS NULL OR give_up_after <= interval '0' THEN
        RAISE EXCEPTION 'give_up_after must be a positive interval' USING ERRCODE = '22023';
    END IF;
    v_cutoff := now() - give_up_after;

    -- Not final, and not timed out, but checked too recently.
    SELECT count(*) INTO v_skipped
      FROM vibescaling.publish_records pr
     WHERE (pr.status = 'processing' AND pr.created_at >= v_cutoff
            OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
       AND (only_accounts IS NULL OR pr.tiktok_account_id = ANY (only_accounts))
       AND pr.checked_at + vibescaling._status_poll_delay(now() - pr.created_at) > now()
       -- Only a post's latest publish: publish_status follows that one.
       AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                        WHERE n.post_id = pr.post_id AND (n.created_at, n.id) > (pr.created_at, pr.id));

    -- The due records in the order they are served, least recently checked
    -- first: up to max_records of them acted on; an account's records past
    -- its fetch budget for the run are deferred (counted as skipped when
    -- met before max_records is reached).
    FOR v_id, v_deferred IN
        SELECT x.id, NOT x.actable
          FROM (SELECT d.*, sum(d.actable::integer) OVER (ORDER BY d.checked_at NULLS FIRST, d.created_at, d.id)
                            AS acted_through
                  FROM (SELECT pr.id, pr.checked_at, pr.created_at,
                               pr.status = 'processing' AND pr.created_at < v_cutoff
                               OR row_number() OVER (PARTITION BY pr.tiktok_account_id,
                                                                  pr.status = 'processing' AND pr.created_at < v_cutoff
                                                     ORDER BY pr.checked_at NULLS FIRST, pr.created_at, pr.id)
                                  <= c_fetches_per_account AS actable
                          FROM vibescaling.publish_records pr
                         WHERE (pr.status = 'processing'
                                OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
                           AND (only_accounts IS NULL OR pr.tiktok_account_id = ANY (only_accounts))
                           AND (pr.created_at < v_cutoff   -- timed out (only processing ones are left at that age)
                                OR pr.checked_at IS NULL
                                OR pr.checked_at + vibescaling._status_poll_delay(now() - pr.created_at) <= now())
                           AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                                            WHERE n.post_id = pr.post_id AND (n.created_at, n.id) > (pr.created_at, pr.id))) d) x
         WHERE x.acted_through < max_records OR x.actable AND x.acted_through = max_records
         ORDER BY x.checked_at NULLS FIRST, x.created_at, x.id
    LOOP
        IF v_deferred THEN
            v_skipped := v_skipped + 1;   -- this account's budget for the run is spent
            CONTINUE;
        END IF;
        -- Lock it again, as it is now: another poller (or a publish_status
        -- caller) holding it is skipped; one that just checked or settled it
        -- makes it not due any more.
        SELECT * INTO r FROM vibescaling.publish_records pr
         WHERE pr.id = v_id
           AND (pr.status = 'processing'
                OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
           AND (pr.created_at < v_cutoff
                OR pr.checked_at IS NULL
                OR pr.checked_at + vibescaling._status_poll_delay(now() - pr.created_at) <= now())
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        IF r.status = 'processing' AND r.created_at < v_cutoff THEN
            -- No final status within give_up_after: that is the final answer.
            v_reason := format('timed out: no final status from TikTok after %s', give_up_after);
            UPDATE vibescaling.publish_records
               SET status = 'failed', fail_reason = v_reason, updated_at = now()
             WHERE id = r.id;
            UPDATE vibescaling.posts
               SET status = 'failed', last_error = format('TikTok: publish %s failed: %s', r.publish_id, v_reason)
             WHERE id = r.post_id;
            v_timeouts := v_timeouts + 1;
        ELSE
            v_fetch := v_fetch || r.id;
        END IF;
    END LOOP;

    IF cardinality(v_fetch) = 0 THEN
        RETURN jsonb_build_object('polled', 0, 'final', 0, 'still_processing', 0,
                                  'timed_out', v_timeouts, 'errors', 0, 'skipped_backoff', v_skipped);
    END IF;

    -- Every status fetch at once (at most vibescaling.max_concurrent_requests in flight).
    v_results := vibescaling._tiktok_call_many(
        (SELECT jsonb_agg(jsonb_build_object('endpoint', 'status_fetch', 'tiktok_account_id', pr.tiktok_account_id,
                                             'post_id', pr.post_id, 'trigger', 'status',
                                             'options', jsonb_build_object('publish_id', pr.publish_id)) ORDER BY f.i)
           FROM unnest(v_fetch) WITH ORDINALITY f(id, i) JOIN vibescaling.publish_records pr ON pr.id = f.id));
    v_polled := cardinality(v_fetch);
    FOR i IN 1 .. cardinality(v_fetch) LOOP
        SELECT * INTO r FROM vibescaling.publish_records WHERE id = v_fetch[i];
        v_call := v_results[i];
        BEGIN
            IF NOT v_call.ok THEN
                PERFORM vibescaling._raise_tiktok_error(v_call, 'status_fetch');
            END IF;
            r := vibescaling._apply_status_reply(r, v_call.data);
            IF r.status IN ('sent_to_inbox', 'failed')
               OR r.status = 'published' AND (cardinality(r.public_post_ids) > 0 OR r.created_at < v_cutoff) THEN
                v_final := v_final + 1;
            ELSE
                v_processing := v_processing + 1;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- TikTok refused or could not be reached (its dispatch_logs row
            -- stays), or its answer could not be recorded: count it, go on
            -- with the others, and back off like a successful check (a 429
            -- or an outage must not be hammered either).
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            v_errors := v_errors + 1;
            RAISE LOG 'vibescaling: status poll of publish record % failed: % [SQLSTATE %]', r.id, v_message, v_state;
            UPDATE vibescaling.publish_records pr SET checked_at = now() WHERE pr.id = r.id;
        END;
    END LOOP;

    RETURN jsonb_build_object('polled', v_polled, 'final', v_final, 'still_processing', v_processing,
                              'timed_out', v_timeouts, 'errors', v_errors, 'skipped_backoff', v_skipped);
END
$$;

-- Nothing is executable by PUBLIC (11_privileges.sql): the functions created
-- here start with PUBLIC's default EXECUTE.
REVOKE ALL ON FUNCTION vibescaling._tiktok_call(text, uuid, uuid, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._tiktok_call_many(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._prepare_upload(vibescaling.posts) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._upload_init_options(jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._upload_accepted_video(vibescaling.posts, text, jsonb, vibescaling._call_result) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._upload_video(vibescaling.posts, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._init_accepted(vibescaling._call_result) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._publish_attempt(uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._start_upload_sessions(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._creator_refusal(vibescaling.posts, jsonb) FROM PUBLIC;
