-- vibescaling: scheduling. A post is scheduled by schedule_post() or by any
-- UPDATE/INSERT that sets status = 'scheduled' (a PATCH through PostgREST);
-- the trigger below applies the same checks to both.

-- The checks of a post being written (p_new; p_old is NULL for an INSERT): a
-- posted post never goes back to draft or scheduled, and a post being
-- (re)scheduled is at least 5 minutes ahead, publishable, and has media
-- TikTok would take (_check_media). Runs as the table's owner, called only
-- by _post_write_checked.
CREATE FUNCTION vibescaling._check_post_write(p_new vibescaling.posts, p_old vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_creator jsonb;   -- creator_info's data, when it could be had
    v_caps    boolean; -- whether TikTok's caps are checked (see below)
BEGIN
    -- A post TikTok has is never a draft or scheduled again (that would
    -- publish it twice); only TikTok's verdict (publish_status, a webhook) may turn it failed.
    IF p_old.id IS NOT NULL AND p_old.status = 'posted' AND p_new.status NOT IN ('posted', 'failed') THEN
        RAISE EXCEPTION 'post % is already posted; its status cannot become %', p_old.id, p_new.status
            USING ERRCODE = '55000';
    END IF;

    IF p_new.status = 'scheduled' THEN
        -- A publishing post is scheduled again only once settled (a requeue:
        -- its time was set before, so the 5-minute rule is not for it).
        IF p_old.id IS NOT NULL AND p_old.status = 'publishing'
           AND (SELECT e.state FROM vibescaling._earlier_init(p_old.id) e) IS NOT DISTINCT FROM 'unknown' THEN
            RAISE EXCEPTION 'post % is publishing: its init''s outcome is unknown; it cannot be scheduled', p_old.id
                USING ERRCODE = '55000',
                      HINT = 'settle_unknown_outcomes() settles it from TikTok''s signals; an operator may call settle_post().';
        END IF;
        IF p_new.scheduled_at IS NULL THEN
            RAISE EXCEPTION 'scheduled_at is required to schedule a post' USING ERRCODE = '22004';
        END IF;
        IF p_old.id IS NOT NULL AND EXISTS (SELECT 1 FROM vibescaling.posts t WHERE t.parent_id = p_old.id) THEN
            RAISE EXCEPTION 'post % has targets: they are scheduled, not the post', p_old.id
                USING ERRCODE = '55000', HINT = 'schedule_targets(post_id, scheduled_at, targets) adds accounts.';
        END IF;
        -- The 5-minute rule applies when the time is set, not to later edits
        -- of an already scheduled post.
        IF (p_old.id IS NULL OR p_old.status NOT IN ('scheduled', 'publishing')
            OR p_new.scheduled_at IS DISTINCT FROM p_old.scheduled_at)
           AND p_new.scheduled_at < now() + interval '5 minutes' THEN
            RAISE EXCEPTION 'scheduled_at must be at least 5 minutes in the future'
                USING ERRCODE = '22023',
                      DETAIL = format('scheduled_at is %s; the earliest allowed now is %s.',
                                      p_new.scheduled_at, now() + interval '5 minutes');
        END IF;
        PERFORM vibescaling._check_publishable(p_new);
        -- TikTok's caps on the post's day, when a person schedules it or
        -- changes its time, account or kind; not when the extension puts a
        -- post it already counted back on the queue. The account's
        -- scheduling lock is taken here, before creator_info may take its
        -- rate-limit lock: every path takes an account's scheduling lock
        -- before its rate-limit lock, never after, so that none waits on
        -- the other in a cycle (test/isolation/specs/targets_deadlock.spec).
        v_caps := p_old.id IS NULL OR p_old.status NOT IN ('scheduled', 'publishing', 'posted')
                  OR (p_new.scheduled_at, p_new.tiktok_account_id, p_new.mode, p_new.privacy_level)
                     IS DISTINCT FROM (p_old.scheduled_at, p_old.tiktok_account_id, p_old.mode, p_old.privacy_level);
        IF v_caps THEN
            PERFORM vibescaling._lock_accounts(ARRAY[p_new.tiktok_account_id]);
        END IF;
        -- What the creator allows (cached creator_info); the dispatcher checks
        -- again with a fresh answer. TikTok being unreachable does not stop
        -- scheduling.
        IF p_new.mode = 'direct' THEN
            BEGIN
                v_creator := vibescaling.creator_info(p_new.tiktok_account_id)->'data';
                PERFORM vibescaling._check_creator_allows(p_new, v_creator);
            EXCEPTION WHEN connection_exception OR insufficient_resources THEN
                NULL;
            END;
        END IF;
        -- The media, when it or the post's account is new to the schedule
        -- (the dispatcher does not probe again; publish_post does).
        IF p_old.id IS NULL OR p_old.status <> 'scheduled'
           OR (p_new.video_url, p_new.video_lo, p_new.media_id, p_new.photo_urls, p_new.upload_method,
               p_new.media_type, p_new.tiktok_account_id)
              IS DISTINCT FROM (p_old.video_url, p_old.video_lo, p_old.media_id, p_old.photo_urls, p_old.upload_method,
                                p_old.media_type, p_old.tiktok_account_id) THEN
            PERFORM vibescaling._check_media(p_new, (v_creator->>'max_video_post_duration_sec')::integer);
        END IF;
        IF v_caps THEN
            PERFORM vibescaling._check_caps(p_new);
        END IF;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._check_post_write(vibescaling.posts, vibescaling.posts) FROM PUBLIC;

-- The checks of every write of a post, whoever writes it: the size limits
-- and the owner's quota (_check_post_limits), the writer's right to read a
-- video source it sets (p_writer: the role writing; the post remembers it
-- in source_role, and the publisher checks it again before sending), and
-- _check_post_write. Returns p_new with source_role set.
CREATE FUNCTION vibescaling._post_write_checks(p_new vibescaling.posts, p_old vibescaling.posts, p_writer oid)
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

-- The row a write of posts stores: p_new stamped and checked
-- (_post_write_checks). Through the API (p_api: the writer is an API role,
-- i.e. a PostgREST PATCH or POST on vibescaling_api.posts) a caller may only
-- set status to draft or scheduled (42501 otherwise: the publisher sets the
-- rest), and the errors carry the HTTP status PostgREST should answer
-- (_raise_http_error). Called only by the posts trigger (C,
-- src/pg/post_write_trigger.cpp) as the table's owner, so that no role can
-- run these checks, which read accounts and call TikTok, on a row of its
-- own making.
CREATE FUNCTION vibescaling._post_write_checked(p_new vibescaling.posts, p_old vibescaling.posts,
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
REVOKE ALL ON FUNCTION vibescaling._post_write_checked(vibescaling.posts, vibescaling.posts, boolean, oid) FROM PUBLIC;

-- Before insert/update of posts: _post_write_checked for the writing role
-- (C, src/pg/post_write_trigger.cpp).
CREATE FUNCTION vibescaling._posts_before_write()
RETURNS trigger
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_posts_before_write'
LANGUAGE C;
REVOKE ALL ON FUNCTION vibescaling._posts_before_write() FROM PUBLIC;

CREATE TRIGGER posts_before_write
    BEFORE INSERT OR UPDATE ON vibescaling.posts
    FOR EACH ROW EXECUTE FUNCTION vibescaling._posts_before_write();

-- Whether a role may read a video source: SELECT on the large object,
-- SELECT on vibescaling.media for a media row (C).
CREATE FUNCTION vibescaling._role_can_read_source(role oid, large_object oid, media_id uuid)
RETURNS boolean
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_role_can_read_source'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION vibescaling._role_can_read_source(oid, oid, uuid) FROM PUBLIC;

-- Before a post is deleted through the API: only a draft may be (409
-- otherwise: a scheduled post is cancelled first, a posted one stays).
CREATE FUNCTION vibescaling._posts_before_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF vibescaling._is_api_role() AND OLD.status <> 'draft' THEN
        RAISE EXCEPTION 'post % is %; only a draft can be deleted', OLD.id, OLD.status
            USING ERRCODE = 'PT409',
                  HINT = CASE WHEN OLD.status = 'scheduled' THEN 'Cancel it first (POST /rpc/cancel_post).' END;
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER posts_before_delete
    BEFORE DELETE ON vibescaling.posts
    FOR EACH ROW EXECUTE FUNCTION vibescaling._posts_before_delete();

-- Schedules a post (draft, already scheduled, or failed) for scheduled_at with
-- the given publish options. Returns {"data": <the post>}, and "warnings"
-- (_cap_warnings: the day is near one of TikTok's caps) when there are any.
CREATE FUNCTION vibescaling.schedule_post(
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
    p          vibescaling.posts;
    v_warnings jsonb;
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
    v_warnings := vibescaling._cap_warnings(p);
    IF v_warnings = '[]' THEN
        RETURN jsonb_build_object('data', to_jsonb(p));
    END IF;
    RETURN jsonb_build_object('data', to_jsonb(p), 'warnings', v_warnings);
END
$$;
COMMENT ON FUNCTION vibescaling.schedule_post(uuid, timestamptz, uuid, text, text, boolean, boolean, boolean, boolean, boolean) IS
    'Schedules a post at least 5 minutes ahead; returns {"data": <post>}.';

-- Unschedules a scheduled post: it becomes a draft again (scheduled_at
-- cleared). 55000 for a post that is not scheduled (a published post
-- cannot be cancelled here), P0002 for an unknown one. Returns {"data": post}.
CREATE FUNCTION vibescaling.cancel_post(post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    p := vibescaling._lock_post(cancel_post.post_id);
    IF p.status <> 'scheduled' THEN
        RAISE EXCEPTION 'post % is %; only a scheduled post can be cancelled', p.id, p.status
            USING ERRCODE = '55000';
    END IF;
    UPDATE vibescaling.posts t
       SET status = 'draft', scheduled_at = NULL, attempts = 0, next_attempt_at = NULL, last_error = NULL
     WHERE t.id = p.id
    RETURNING t.* INTO p;
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;

-- Moves a scheduled post to a new time (at least 5 minutes ahead), starting
-- its attempts afresh. 55000 unless it is scheduled. Returns {"data": post}.
CREATE FUNCTION vibescaling.reschedule_post(post_id uuid, scheduled_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    p := vibescaling._lock_post(reschedule_post.post_id);
    IF p.status <> 'scheduled' THEN
        RAISE EXCEPTION 'post % is %; only a scheduled post can be rescheduled', p.id, p.status
            USING ERRCODE = '55000', HINT = 'Use schedule_post() for a draft or a failed post.';
    END IF;
    UPDATE vibescaling.posts t
       SET scheduled_at = reschedule_post.scheduled_at, attempts = 0, next_attempt_at = NULL, last_error = NULL
     WHERE t.id = p.id
    RETURNING t.* INTO p;
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;

-- Schedules a post as schedule_post does, its options a JSON object
-- ({"privacy_level", "mode", "disable_comment", "disable_duet",
-- "disable_stitch", "brand_content_toggle", "brand_organic_toggle"};
-- absent: schedule_post's defaults): how targets, occurrences of a
-- repeating post and CSV rows are scheduled. Returns schedule_post's answer.
CREATE FUNCTION vibescaling._schedule_with(p_post_id uuid, p_at timestamptz, p_account_id uuid, options jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN vibescaling.schedule_post(
        p_post_id, p_at, p_account_id, options->>'privacy_level', coalesce(options->>'mode', 'direct'),
        coalesce((options->>'disable_comment')::boolean, false), coalesce((options->>'disable_duet')::boolean, false),
        coalesce((options->>'disable_stitch')::boolean, false), coalesce((options->>'brand_content_toggle')::boolean, false),
        coalesce((options->>'brand_organic_toggle')::boolean, false));
END
$$;
REVOKE ALL ON FUNCTION vibescaling._schedule_with(uuid, timestamptz, uuid, jsonb) FROM PUBLIC;
