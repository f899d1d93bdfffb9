-- vibescaling: videos the extension uploads itself (FILE_UPLOAD), from a
-- URL it downloads, a large object, or bytea in vibescaling.media. TikTok
-- pulls a video only from URL prefixes verified for the app
-- (vibescaling.pull_url_prefixes); everything else is uploaded in chunks.

-- The LIKE patterns of vibescaling.pull_url_prefixes: each prefix, its LIKE
-- wildcards escaped, then '%'. A video_url that matches one is pulled by
-- TikTok. A query over many posts takes them once and tests each post with
-- a LIKE ANY, where a call of _upload_method per row would cost a
-- function call each (the dispatcher's claims test every due post).
CREATE FUNCTION vibescaling._pull_url_patterns()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(replace(replace(replace(btrim(x.prefix), '\', '\\'), '%', '\%'), '_', '\_') || '%'), '{}')
      FROM unnest(string_to_array(coalesce(current_setting('vibescaling.pull_url_prefixes', true), ''), ',')) AS x(prefix)
     WHERE btrim(x.prefix) <> ''
$$;

-- 'pull' or 'upload' for a video post: the post's own choice, else pull a
-- video_url under a verified prefix and upload the rest. The dispatcher's
-- claims spell the same rule inline, with _pull_url_patterns taken once.
CREATE FUNCTION vibescaling._upload_method(p vibescaling.posts)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: publish and validation ask this of one post at a
    -- time, and a cached plan costs a fraction of a SQL function's planning.
    IF p.upload_method IS NOT NULL THEN
        RETURN p.upload_method;
    END IF;
    IF p.video_url LIKE ANY (vibescaling._pull_url_patterns()) THEN
        RETURN 'pull';
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

-- What uploading a video post takes, checked before its init: the source
-- (_video_source), its size and type as read from it (_describe_video),
-- the tenant's upload quota (_check_upload_quota) and the chunk plan.
-- Returns {"source", "content_type", "size", "source_info"}, source_info
-- being the init's FILE_UPLOAD fields (_upload_init_options).
CREATE FUNCTION vibescaling._prepare_upload(p vibescaling.posts)
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

-- The init options of a video the extension uploads (upload: what
-- _prepare_upload gave): the post's options, its URL replaced by the
-- FILE_UPLOAD fields.
CREATE FUNCTION vibescaling._upload_init_options(options jsonb, upload jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (options - 'video_url') || (upload->'source_info');
END
$$;

-- Streams a video's chunks once TikTok accepted its init (init: that
-- call's result, with the upload URL in its data): _upload_chunks'
-- answer, {"ok": true, ...} or the failing PUT's result.
CREATE FUNCTION vibescaling._upload_accepted_video(p vibescaling.posts, p_trigger text, upload jsonb,
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

-- Uploads a video post: checks and describes the source (_prepare_upload),
-- calls the init endpoint with FILE_UPLOAD, streams the chunks. An upload
-- URL that expired (TikTok keeps one an hour) gets one fresh init. call:
-- the init's result (with the publish_id; its data, which holds the upload
-- URL, a credential, left out) on success, else the failing call's, whose
-- endpoint is failed_endpoint (NULL on success).
CREATE FUNCTION vibescaling._upload_video(p vibescaling.posts, p_trigger text, p_endpoint text, p_options jsonb,
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
