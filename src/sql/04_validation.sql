-- vibescaling: checks shared by publish_post, schedule_post, the posts
-- trigger and the dispatcher. Each raises with a precise SQLSTATE before
-- anything is sent to TikTok or written to the post.

-- Length of a text in UTF-16 code units, the unit TikTok counts titles in
-- (a character outside the Basic Multilingual Plane, e.g. most emoji, counts twice).
CREATE FUNCTION vibescaling._utf16_length(t text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Plain ASCII (most captions): one unit per character, without the regex.
    IF octet_length(t) = char_length(t) THEN
        RETURN char_length(t);
    END IF;
    RETURN char_length(t) + char_length(regexp_replace(t, '[^\U00010000-\U0010FFFF]', '', 'g'));
END
$$;

-- TikTok's limits on a post's text and photos, in one place (the rules
-- that check them: _check_publishable, _check_post_limits), in UTF-16
-- units as TikTok counts: a video's caption (its title) 2200, a photo
-- post's description 4000 and title 90, and 1 to 35 photo URLs.
CREATE FUNCTION vibescaling._tiktok_post_limits(OUT video_caption integer, OUT photo_description integer,
                                                OUT photo_title integer, OUT photo_urls integer)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: a SQL function returning a record is planned again at every call.
    video_caption := 2200;
    photo_description := 4000;
    photo_title := 90;
    photo_urls := 35;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._tiktok_post_limits() FROM PUBLIC;

-- Checks one post, with the publish options already on it, against TikTok's
-- published rules; raises 22004 / 22023 / P0002 / 55000 on the first problem.
CREATE FUNCTION vibescaling._check_publishable(p vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limits record := vibescaling._tiktok_post_limits();
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
        IF vibescaling._utf16_length(coalesce(p.caption, '')) > v_limits.video_caption THEN
            RAISE EXCEPTION 'caption is % UTF-16 units long; TikTok accepts at most % for a video',
                            vibescaling._utf16_length(p.caption), v_limits.video_caption USING ERRCODE = '22023';
        END IF;
    ELSE
        IF coalesce(cardinality(p.photo_urls), 0) NOT BETWEEN 1 AND v_limits.photo_urls THEN
            RAISE EXCEPTION 'a photo post needs 1 to % photo_urls, post % has %',
                            v_limits.photo_urls, p.id, coalesce(cardinality(p.photo_urls), 0) USING ERRCODE = '22023';
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
        IF vibescaling._utf16_length(coalesce(p.title, '')) > v_limits.photo_title THEN
            RAISE EXCEPTION 'title is % UTF-16 units long; TikTok accepts at most % for a photo post',
                            vibescaling._utf16_length(p.title), v_limits.photo_title USING ERRCODE = '22023';
        END IF;
        IF vibescaling._utf16_length(coalesce(p.caption, '')) > v_limits.photo_description THEN
            RAISE EXCEPTION 'caption is % UTF-16 units long; TikTok accepts at most % for a photo description',
                            vibescaling._utf16_length(p.caption), v_limits.photo_description USING ERRCODE = '22023';
        END IF;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._check_publishable(vibescaling.posts) FROM PUBLIC;

-- Longest URL accepted in video_url and each of photo_urls, in bytes.
CREATE FUNCTION vibescaling._max_url_bytes()
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 2048 $$;
REVOKE ALL ON FUNCTION vibescaling._max_url_bytes() FROM PUBLIC;

-- The limits of every write of a post, draft or not, so that no caller can
-- store what TikTok would never take (_tiktok_post_limits): the caption,
-- the photo title, the number of photo_urls, URLs of at most
-- _max_url_bytes() bytes; and, for a tenant's
-- post (an owner), at most vibescaling.max_open_posts_per_owner posts in
-- draft or scheduled (53400; 0: no quota). Raises 22023 on a bad value.
CREATE FUNCTION vibescaling._check_post_limits(p_new vibescaling.posts, p_old vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limits      record := vibescaling._tiktok_post_limits();
    v_caption_max integer := CASE WHEN p_new.media_type = 'photo' THEN v_limits.photo_description
                                  ELSE v_limits.video_caption END;
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
    IF octet_length(p_new.title) > 4 * v_limits.photo_title
       OR vibescaling._utf16_length(coalesce(p_new.title, '')) > v_limits.photo_title THEN
        RAISE EXCEPTION 'title is longer than % UTF-16 units, the most TikTok accepts', v_limits.photo_title
            USING ERRCODE = '22023';
    END IF;
    IF octet_length(p_new.video_url) > vibescaling._max_url_bytes() THEN
        RAISE EXCEPTION 'video_url is longer than % bytes', vibescaling._max_url_bytes() USING ERRCODE = '22023';
    END IF;
    IF cardinality(p_new.photo_urls) > v_limits.photo_urls THEN
        RAISE EXCEPTION 'a photo post has at most % photo_urls, got %', v_limits.photo_urls, cardinality(p_new.photo_urls)
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

-- What creator_info's answer (creator: its data) says against the post's
-- options: the privacy level must be one the creator is offered, and an
-- interaction the creator turned off must be disabled on the post too
-- (TikTok greys those toggles out). message: the first problem (SQLSTATE
-- 22023), NULL when the creator allows the post; detail: more about it.
-- A function that does not raise, so that a dispatcher round checks all
-- its answers in one statement.
CREATE FUNCTION vibescaling._creator_refusal(p vibescaling.posts, creator jsonb, OUT message text, OUT detail text)
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

-- Raises 22023 when creator_info's answer does not allow the post
-- (_creator_refusal says why).
CREATE FUNCTION vibescaling._check_creator_allows(p vibescaling.posts, creator jsonb)
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
REVOKE ALL ON FUNCTION vibescaling._check_creator_allows(vibescaling.posts, jsonb) FROM PUBLIC;

-- Raises 25006 on a standby: TikTok is called, and posts are changed, only
-- on the primary, which the message names when this role may see it
-- (pg_stat_wal_receiver). After a promotion the same calls just work.
CREATE FUNCTION vibescaling._require_primary()
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

-- Locks a post row FOR UPDATE and returns it: 22004 for a NULL id, P0002
-- for an unknown one. The row lock makes a racing publish, dispatcher or
-- state change wait, then see the new state.
CREATE FUNCTION vibescaling._lock_post(p_post_id uuid)
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
