-- vibescaling: publishing a post now (publish_post) and the publish step the
-- dispatcher shares with it (_publish_locked).

-- Refuses a post that TikTok already accepted: a successful init in the
-- durable dispatch log whose publish did not end FAILED (and, for an upload,
-- whose last chunk arrived). This catches the
-- case where init succeeded but the caller's transaction rolled back, so
-- the post still looks unpublished; calling init again would post twice.
CREATE FUNCTION vibescaling._refuse_if_already_sent(p_post_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_publish_id text;
BEGIN
    SELECT l.publish_id INTO v_publish_id
      FROM vibescaling.dispatch_logs l
     WHERE l.post_id = p_post_id
       AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
       AND l.outcome = 'success'
       AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records r
                        WHERE r.publish_id = l.publish_id AND r.status = 'failed')
       -- An upload whose chunks never all arrived is not a post on TikTok.
       AND (NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs c
                         WHERE c.post_id = p_post_id AND c.publish_id = l.publish_id AND c.endpoint = 'upload_chunk')
            OR EXISTS (SELECT 1 FROM vibescaling.dispatch_logs c
                        WHERE c.post_id = p_post_id AND c.publish_id = l.publish_id AND c.endpoint = 'upload_chunk'
                          AND c.http_status = 201))
     ORDER BY l.id DESC
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'post % was already sent to TikTok (publish_id %)', p_post_id, v_publish_id
            USING ERRCODE = '55000',
                  DETAIL = 'An earlier init succeeded; its transaction did not record the post as posted.',
                  HINT = 'Check vibescaling.dispatch_logs and TikTok before publishing it again.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._refuse_if_already_sent(uuid) FROM PUBLIC;

-- Publishes one post whose row the caller has locked and whose options are
-- set: checks it, asks creator_info (Direct Post), calls the init endpoint,
-- records the publish and marks the post posted. Raises on any refusal; the
-- dispatch_logs rows of the calls made stay (they commit on their own).
CREATE FUNCTION vibescaling._publish_locked(p_post_id uuid, p_trigger text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p           vibescaling.posts;
    v_call      jsonb;
    v_endpoint  text;
    v_options   jsonb;
BEGIN
    SELECT * INTO STRICT p FROM vibescaling.posts WHERE id = p_post_id;
    PERFORM vibescaling._check_publishable(p);
    PERFORM vibescaling._refuse_if_already_sent(p.id);

    -- TikTok requires a fresh creator_info before every Direct Post.
    IF p.mode = 'direct' THEN
        v_call := vibescaling._tiktok_call('creator_info', p.tiktok_account_id, p.id, p_trigger, '{}');
        IF NOT (v_call->>'ok')::boolean THEN
            PERFORM vibescaling._raise_tiktok_error(v_call, 'creator_info');
        END IF;
        PERFORM vibescaling._check_creator_allows(p, v_call->'data');
    END IF;

    v_endpoint := CASE WHEN p.media_type = 'photo' THEN 'content_init'
                       WHEN p.mode = 'inbox'       THEN 'inbox_video_init'
                       ELSE 'video_init' END;
    v_options := jsonb_strip_nulls(jsonb_build_object(
        'caption', p.caption, 'title', p.title, 'privacy_level', p.privacy_level, 'mode', p.mode,
        'disable_comment', p.disable_comment, 'disable_duet', p.disable_duet,
        'disable_stitch', p.disable_stitch, 'brand_content_toggle', p.brand_content_toggle,
        'brand_organic_toggle', p.brand_organic_toggle, 'video_url', p.video_url,
        'video_cover_timestamp_ms', p.video_cover_timestamp_ms,
        'is_aigc', CASE WHEN p.media_type = 'video' AND p.mode = 'direct' THEN p.is_aigc END,
        'photo_urls', to_jsonb(p.photo_urls), 'photo_cover_index', p.photo_cover_index));

    -- TikTok pulls photos and videos under verified prefixes; we upload the rest.
    IF p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload' THEN
        v_call := vibescaling._upload_video(p, p_trigger, v_endpoint, v_options);
    ELSE
        v_call := vibescaling._tiktok_call(v_endpoint, p.tiktok_account_id, p.id, p_trigger, v_options);
    END IF;
    IF NOT (v_call->>'ok')::boolean THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, coalesce(v_call->>'endpoint', v_endpoint));
    END IF;
    IF coalesce(v_call->>'publish_id', '') = '' THEN
        RAISE EXCEPTION 'TikTok % answered ok without a publish_id (log_id %)', v_endpoint, v_call->>'log_id'
            USING ERRCODE = '08P01';
    END IF;

    INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode)
    VALUES (p.id, p.tiktok_account_id, v_call->>'publish_id', v_endpoint, p.mode);
    UPDATE vibescaling.posts
       SET status = 'posted', posted_at = now(), last_error = NULL
     WHERE id = p.id;

    RETURN jsonb_build_object('data', jsonb_build_object('publish_id', v_call->>'publish_id'));
END
$$;
REVOKE ALL ON FUNCTION vibescaling._publish_locked(uuid, text) FROM PUBLIC;

-- Publishes a draft now (Direct Post or upload to the creator's inbox).
-- Returns {"data": {"publish_id": "<TikTok's publish_id>"}}; the post becomes
-- posted with posted_at set. Any refusal raises and leaves the post untouched.
CREATE FUNCTION vibescaling.publish_post(
    post_id               uuid,
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
    IF publish_post.post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;

    -- The row lock makes a racing publish or dispatcher wait, then see 'posted'.
    SELECT * INTO p FROM vibescaling.posts WHERE id = publish_post.post_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'post % not found', publish_post.post_id USING ERRCODE = 'P0002';
    END IF;
    IF p.status <> 'draft' THEN
        RAISE EXCEPTION 'post % is %; only a draft can be published', p.id, p.status
            USING ERRCODE = '55000',
                  HINT = CASE p.status
                             WHEN 'posted' THEN 'It was already published.'
                             WHEN 'scheduled' THEN 'The dispatcher will publish it; set it back to draft to publish now.'
                             ELSE 'Set it back to draft (or schedule it) first.' END;
    END IF;

    p.tiktok_account_id    := publish_post.tiktok_account_id;
    p.privacy_level        := publish_post.privacy_level;
    p.mode                 := publish_post.mode;
    p.disable_comment      := coalesce(publish_post.disable_comment, false);
    p.disable_duet         := coalesce(publish_post.disable_duet, false);
    p.disable_stitch       := coalesce(publish_post.disable_stitch, false);
    p.brand_content_toggle := coalesce(publish_post.brand_content_toggle, false);
    p.brand_organic_toggle := coalesce(publish_post.brand_organic_toggle, false);
    PERFORM vibescaling._check_publishable(p);

    UPDATE vibescaling.posts
       SET tiktok_account_id = p.tiktok_account_id, privacy_level = p.privacy_level, mode = p.mode,
           disable_comment = p.disable_comment, disable_duet = p.disable_duet,
           disable_stitch = p.disable_stitch, brand_content_toggle = p.brand_content_toggle,
           brand_organic_toggle = p.brand_organic_toggle
     WHERE id = p.id;

    RETURN vibescaling._publish_locked(p.id, 'manual');
END
$$;
COMMENT ON FUNCTION vibescaling.publish_post(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean) IS
    'Publishes a draft post to TikTok now; returns {"data":{"publish_id":...}}.';
