-- vibescaling: videos the extension uploads itself (FILE_UPLOAD), from a
-- URL it downloads, a large object, or bytea in vibescaling.media. TikTok
-- pulls a video only from URL prefixes verified for the app
-- (vibescaling.pull_url_prefixes); everything else is uploaded in chunks.

-- 'pull' or 'upload' for a video post: the post's own choice, else pull a
-- video_url under a verified prefix and upload the rest.
CREATE FUNCTION vibescaling._upload_method(p vibescaling.posts)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prefix text;
BEGIN
    -- plpgsql, not sql: the dispatcher asks this for every post of a round,
    -- and a cached plan costs a fraction of a SQL function's planning per call.
    IF p.upload_method IS NOT NULL THEN
        RETURN p.upload_method;
    END IF;
    IF p.video_url IS NOT NULL THEN
        FOREACH v_prefix IN ARRAY string_to_array(coalesce(current_setting('vibescaling.pull_url_prefixes', true), ''), ',') LOOP
            IF btrim(v_prefix) <> '' AND starts_with(p.video_url, btrim(v_prefix)) THEN
                RETURN 'pull';
            END IF;
        END LOOP;
    END IF;
    RETURN 'upload';
END
$$;

-- Where an uploaded video's bytes are, as the C functions take it.
CREATE FUNCTION vibescaling._video_source(p vibescaling.posts)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('url', p.video_url, 'large_object', p.video_lo, 'media_id', p.media_id))
$$;

-- Size and container of a video source (C): {"size", "content_type"}.
CREATE FUNCTION vibescaling._describe_video(source jsonb)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_describe_video'
LANGUAGE C VOLATILE STRICT;

-- TikTok's chunk plan for a size (C; vibescaling.upload_chunk_size_mb):
-- {"video_size", "chunk_size", "total_chunk_count", "last_chunk_size"}.
CREATE FUNCTION vibescaling._plan_chunks(video_size bigint)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_plan_video_chunks'
LANGUAGE C VOLATILE STRICT;

-- Streams a video to an upload URL chunk by chunk (C, src/pg/video_upload.cpp).
CREATE FUNCTION vibescaling._upload_chunks(post_id uuid, tiktok_account_id uuid, trigger text, publish_id text,
                                           upload_url text, source jsonb, content_type text, video_size bigint)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_upload_chunks'
LANGUAGE C VOLATILE;

-- Refuses (53400, transient: the window moves) a tenant's upload that would
-- take its bytes sent to TikTok over the last 24 hours past
-- vibescaling.max_upload_mb_per_owner_day (0: no quota). Posts without an
-- owner (not a tenant's) are not counted.
CREATE FUNCTION vibescaling._check_upload_quota(p vibescaling.posts, video_size bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_quota bigint := current_setting('vibescaling.max_upload_mb_per_owner_day')::bigint * 1048576;
    v_since timestamptz := now() - interval '1 day';   -- a variable: the log's older partitions are left out
    v_used  bigint;
BEGIN
    IF p.owner IS NULL OR v_quota <= 0 THEN
        RETURN;
    END IF;
    -- What TikTok holds of each upload (the last chunk's uploaded_bytes), per publish.
    SELECT coalesce(sum(x.bytes), 0) INTO v_used
      FROM (SELECT max(l.uploaded_bytes) AS bytes
              FROM vibescaling.dispatch_logs l
             WHERE l.endpoint = 'upload_chunk' AND l.created_at > v_since
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

-- Uploads a video post: describes the source, plans the chunks, calls the
-- init endpoint with FILE_UPLOAD, streams the chunks. An upload URL that
-- expired (TikTok keeps one an hour) gets one fresh init. call: the init's
-- result (with the publish_id; its data, which holds the upload URL, a
-- credential, left out) on success, else the failing call's, whose
-- endpoint is failed_endpoint (NULL on success).
CREATE FUNCTION vibescaling._upload_video(p vibescaling.posts, p_trigger text, p_endpoint text, p_options jsonb,
                                          OUT call vibescaling._call_result, OUT failed_endpoint text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source  jsonb := vibescaling._video_source(p);
    v_video   jsonb := vibescaling._describe_video(v_source);
    v_plan    jsonb := vibescaling._plan_chunks((v_video->>'size')::bigint);
    v_init    vibescaling._call_result;
    v_upload  jsonb;
BEGIN
    PERFORM vibescaling._check_upload_quota(p, (v_video->>'size')::bigint);
    FOR attempt IN 1..2 LOOP
        v_init := vibescaling._tiktok_call(p_endpoint, p.tiktok_account_id, p.id, p_trigger,
            (p_options - 'video_url') || jsonb_build_object(
                'source', 'FILE_UPLOAD', 'video_size', v_plan->'video_size',
                'chunk_size', v_plan->'chunk_size', 'total_chunk_count', v_plan->'total_chunk_count'));
        IF NOT v_init.ok THEN
            call := v_init;
            failed_endpoint := p_endpoint;
            RETURN;
        END IF;
        v_upload := vibescaling._upload_chunks(p.id, p.tiktok_account_id, p_trigger, v_init.publish_id,
                                               v_init.data->>'upload_url', v_source,
                                               v_video->>'content_type', (v_video->>'size')::bigint);
        IF (v_upload->>'ok')::boolean THEN
            v_init.data := '{}';          -- the upload URL (a credential) goes no further
            call := v_init;
            RETURN;
        END IF;
        EXIT WHEN v_upload->>'error_code' <> 'upload_url_expired';
    END LOOP;
    -- _upload_chunks answers with the failing PUT's result, in _call_result's fields.
    call := jsonb_populate_record(NULL::vibescaling._call_result, v_upload);
    failed_endpoint := 'upload_chunk';
END
$$;
