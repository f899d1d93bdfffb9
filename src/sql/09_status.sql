-- vibescaling: publish status.

-- Maps TikTok's data.status to the product's local status.
CREATE FUNCTION vibescaling._local_publish_status(tiktok_status text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE tiktok_status
               WHEN 'PROCESSING_UPLOAD'   THEN 'processing'
               WHEN 'PROCESSING_DOWNLOAD' THEN 'processing'
               WHEN 'SEND_TO_USER_INBOX'  THEN 'sent_to_inbox'
               WHEN 'PUBLISH_COMPLETE'    THEN 'published'
               WHEN 'FAILED'              THEN 'failed'
           END
$$;

-- TikTok's fail_reason values (data.fail_reason of a FAILED publish, and
-- a post.publish.failed webhook's reason) and whether sending the post
-- again may succeed: TikTok's status page sorts them by whose issue it is
-- (the developer's, the creator's, TikTok's). TikTok's own fault and a
-- source it could not download (a hiccup of the media host) may pass on
-- another try; media TikTok's checks refused, a cancelled publish, a
-- removed authorisation and the creator's spam verdicts will not (the
-- daily cap resets only the next day). A reason not in this list is not
-- retried. Retrying a FAILED publish is safe: TikTok has no post.
CREATE FUNCTION vibescaling._fail_reason_retryable(fail_reason text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(fail_reason IN ('internal', 'internal_error', 'video_pull_failed', 'photo_pull_failed'), false)
$$;

-- The API shape of a publish record: {"data": {publish_id, status, tiktok_status, ...}}.
-- Public post ids are strings: they have 19 digits, beyond what a JSON
-- double (JavaScript's number) holds exactly.
CREATE FUNCTION vibescaling._publish_status_json(r vibescaling.publish_records)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('data', jsonb_build_object(
        'publish_id', r.publish_id,
        'status', r.status,
        'tiktok_status', r.tiktok_status,
        'fail_reason', r.fail_reason,
        'fail_retryable', CASE WHEN r.status = 'failed' THEN vibescaling._fail_reason_retryable(r.fail_reason) END,
        'public_post_ids', to_jsonb(r.public_post_ids::text[]),
        'public_at', r.public_at,
        'taken_down_at', r.taken_down_at,
        'uploaded_bytes', r.uploaded_bytes,
        'downloaded_bytes', r.downloaded_bytes,
        'checked_at', r.checked_at))
$$;

-- What the durable dispatch log says of a post's latest init that has no
-- committed publish record: {"publish_id", "status": "uploading" while chunks
-- are still going up (else "processing"), "tiktok_status": null,
-- "uploaded_bytes"}; NULL when there is no such init.
CREATE FUNCTION vibescaling._publish_progress_from_log(p_post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_since timestamptz := coalesce((SELECT p.created_at FROM vibescaling.posts p WHERE p.id = p_post_id), '-infinity');
BEGIN
    RETURN (
        SELECT jsonb_build_object(
                   'publish_id', i.publish_id,
                   'status', CASE WHEN c.chunks > 0 AND NOT c.complete THEN 'uploading' ELSE 'processing' END,
                   'tiktok_status', NULL,
                   'uploaded_bytes', c.uploaded_bytes)
          FROM (SELECT l.publish_id, l.created_at FROM vibescaling.dispatch_logs l
                 WHERE l.post_id = p_post_id AND l.created_at >= v_since AND l.outcome = 'success'
                   AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                 ORDER BY l.id DESC LIMIT 1) i,
               LATERAL (SELECT count(*) AS chunks, coalesce(bool_or(u.http_status = 201), false) AS complete,
                               max(u.uploaded_bytes) AS uploaded_bytes
                          FROM vibescaling.dispatch_logs u
                         WHERE u.post_id = p_post_id AND u.created_at >= v_since
                           AND u.publish_id = i.publish_id AND u.endpoint = 'upload_chunk') c);
END
$$;

-- A publish record with TikTok's status/fetch answer (its data object)
-- applied, without writing it.
CREATE FUNCTION vibescaling._merge_status_reply(r vibescaling.publish_records, data jsonb)
RETURNS vibescaling.publish_records
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    r.tiktok_status    := data->>'status';
    r.status           := coalesce(vibescaling._local_publish_status(data->>'status'), r.status);
    r.fail_reason      := data->>'fail_reason';
    -- jsonb numbers are exact decimals, so 19-digit ids survive the cast.
    r.public_post_ids  := coalesce((SELECT array_agg(x::bigint)
                                      FROM jsonb_array_elements_text(data->'publicaly_available_post_id') x),
                                   r.public_post_ids);
    IF cardinality(r.public_post_ids) > 0 AND r.public_at IS NULL THEN
        r.public_at := now();
    END IF;
    r.uploaded_bytes   := coalesce((data->>'uploaded_bytes')::bigint, r.uploaded_bytes);
    r.downloaded_bytes := coalesce((data->>'downloaded_bytes')::bigint, r.downloaded_bytes);
    r.checked_at       := now();
    r.updated_at       := now();
    RETURN r;
END
$$;

-- What a publish TikTok reports FAILED (record r, fail_reason set) does to
-- its post, when it is the post's latest publish (a post published again
-- is not failed by an old one): a post the dispatcher sent whose
-- fail_reason may pass on another try (_fail_reason_retryable) goes back on
-- the queue with backoff, until vibescaling.max_attempts; any other fails
-- with TikTok's reason. Shared by the status reply and the webhook.
CREATE FUNCTION vibescaling._apply_publish_failed(r vibescaling.publish_records)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    SELECT * INTO p FROM vibescaling.posts t
     WHERE t.id = r.post_id
       AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                        WHERE n.post_id = r.post_id AND (n.created_at, n.id) > (r.created_at, r.id));
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p.scheduled_at IS NOT NULL AND vibescaling._fail_reason_retryable(r.fail_reason) THEN
        PERFORM vibescaling._record_dispatch_failure(p.id, p.attempts,
                    format('TikTok: publish %s failed: %s', r.publish_id, r.fail_reason), '58000', true, NULL, now());
    ELSE
        UPDATE vibescaling.posts
           SET status = 'failed', last_error = format('TikTok: publish %s failed: %s', r.publish_id, r.fail_reason)
         WHERE id = p.id;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._apply_publish_failed(vibescaling.publish_records) FROM PUBLIC;

-- Records TikTok's status/fetch answer (its data object) on a publish
-- record and returns the record as it now is; a publish TikTok reports
-- FAILED fails its post too, with TikTok's fail_reason, or puts it back on
-- the queue (_apply_publish_failed). Shared by publish_status and the
-- status poller.
CREATE FUNCTION vibescaling._apply_status_reply(r vibescaling.publish_records, data jsonb)
RETURNS vibescaling.publish_records
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_was text := r.status;
BEGIN
    r := vibescaling._merge_status_reply(r, data);
    UPDATE vibescaling.publish_records pr
       SET tiktok_status = r.tiktok_status, status = r.status, fail_reason = r.fail_reason,
           public_post_ids = r.public_post_ids, uploaded_bytes = r.uploaded_bytes,
           downloaded_bytes = r.downloaded_bytes, checked_at = r.checked_at, updated_at = r.updated_at,
           public_at = r.public_at
     WHERE pr.id = r.id;

    IF r.status = 'failed' AND v_was <> 'failed' THEN
        PERFORM vibescaling._apply_publish_failed(r);
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._merge_status_reply(vibescaling.publish_records, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._apply_status_reply(vibescaling.publish_records, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._fail_reason_retryable(text) FROM PUBLIC;

-- Asks TikTok how the post's latest publish is going, records the answer and
-- returns it. P0002 when the post has no publish record. A publish TikTok
-- reports FAILED marks the post failed with TikTok's fail_reason. In a
-- read-only transaction (PostgREST runs GET /rpc/publish_status in one) it
-- asks TikTok and answers all the same, but records nothing (the status
-- poller does); the call's dispatch_logs row is written all the same.
CREATE FUNCTION vibescaling.publish_status(post_id uuid)
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
    -- A post sent to several accounts: as a whole and per target.
    IF EXISTS (SELECT 1 FROM vibescaling.posts t WHERE t.parent_id = publish_status.post_id) THEN
        RETURN vibescaling._targets_status(publish_status.post_id);
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

    -- A failure is final: no need to ask TikTok again. A record found in
    -- the creator's video list has no publish_id to ask about.
    IF r.status = 'failed' OR r.publish_id IS NULL THEN
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
COMMENT ON FUNCTION vibescaling.publish_status(uuid) IS
    'Fetches TikTok''s processing status of the post''s latest publish; {"data":{"publish_id","status","tiktok_status",...}}.';
