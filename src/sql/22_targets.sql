-- vibescaling: one post to many accounts. A post's targets are posts of
-- their own (posts.parent_id = the post): each one account, with the
-- post's content and the target's own options (privacy level, mode,
-- toggles, caption, time), and its own state, publish record, retries and
-- dispatch logs. So everything that holds for one post holds per target:
-- exactly once (a failure or an unknown outcome on one target never
-- resends another), the dispatcher, the status poller, settlement. The
-- post itself stays a draft that holds the content; publish_status reports
-- it as a whole and per target.

-- The most targets one post may have.
CREATE FUNCTION vibescaling._max_targets()
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 100 $$;

-- The target post of parent p for one target's account (target: a JSON
-- object, checked by _check_targets): the one p has, or a new draft with
-- p's content. Created outside the target's attempt, so that a refusal
-- stays visible on it.
CREATE FUNCTION vibescaling._target_post(p vibescaling.posts, target jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_account uuid := (target->>'tiktok_account_id')::uuid;
    v_id      uuid;
BEGIN
    SELECT t.id INTO v_id FROM vibescaling.posts t WHERE t.parent_id = p.id AND t.tiktok_account_id = v_account;
    IF v_id IS NULL THEN
        INSERT INTO vibescaling.posts (parent_id, owner, media_type, caption, title, video_url, video_lo, media_id,
                                       upload_method, video_cover_timestamp_ms, is_aigc, photo_urls,
                                       photo_cover_index, tiktok_account_id)
        VALUES (p.id, p.owner, p.media_type, p.caption, p.title, p.video_url, p.video_lo, p.media_id,
                p.upload_method, p.video_cover_timestamp_ms, p.is_aigc, p.photo_urls, p.photo_cover_index, v_account)
        RETURNING id INTO v_id;
    END IF;
    RETURN v_id;
END
$$;

-- Readies a target post (p_target, of parent p) for its attempt: it must
-- still be a draft (55000 else: it was published or scheduled, and nothing
-- is sent twice), and takes the target's own caption and title, or p's.
CREATE FUNCTION vibescaling._ready_target(p vibescaling.posts, p_target uuid, target jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t vibescaling.posts := vibescaling._lock_post(p_target);
BEGIN
    IF t.status <> 'draft' THEN
        RAISE EXCEPTION 'post % already has a target for account % (%)', p.id, t.tiktok_account_id, t.status
            USING ERRCODE = '55000',
                  HINT = 'A target is sent once; its own post (' || t.id || ') can be cancelled or rescheduled.';
    END IF;
    UPDATE vibescaling.posts x
       SET caption = CASE WHEN target ? 'caption' THEN target->>'caption' ELSE p.caption END,
           title = CASE WHEN target ? 'title' THEN target->>'title' ELSE p.title END
     WHERE x.id = p_target;
END
$$;

-- The targets array of publish_targets / schedule_targets, checked before
-- anything is sent: 1 to _max_targets objects, each with its account (a
-- uuid) and only known options, one per account. 22023 (22004 for a
-- missing account).
CREATE FUNCTION vibescaling._check_targets(targets jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_allowed text[] := ARRAY['tiktok_account_id', 'privacy_level', 'mode', 'caption', 'title', 'disable_comment',
                              'disable_duet', 'disable_stitch', 'brand_content_toggle', 'brand_organic_toggle',
                              'scheduled_at'];
    v_unknown text;
    v_t       jsonb;
BEGIN
    IF jsonb_typeof(targets) IS DISTINCT FROM 'array' OR jsonb_array_length(targets) = 0 THEN
        RAISE EXCEPTION 'targets must be a non-empty JSON array of {"tiktok_account_id", "privacy_level", ...}'
            USING ERRCODE = '22023';
    END IF;
    IF jsonb_array_length(targets) > vibescaling._max_targets() THEN
        RAISE EXCEPTION 'at most % targets a post', vibescaling._max_targets() USING ERRCODE = '22023';
    END IF;
    FOR v_t IN SELECT x FROM jsonb_array_elements(targets) x LOOP
        IF jsonb_typeof(v_t) IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION 'each target is a JSON object' USING ERRCODE = '22023';
        END IF;
        SELECT k INTO v_unknown FROM jsonb_object_keys(v_t) k WHERE NOT (k = ANY (v_allowed)) LIMIT 1;
        IF v_unknown IS NOT NULL THEN
            RAISE EXCEPTION 'unknown target option "%"', v_unknown USING ERRCODE = '22023',
                  HINT = 'A target takes: ' || array_to_string(v_allowed, ', ') || '.';
        END IF;
        IF v_t->>'tiktok_account_id' IS NULL THEN
            RAISE EXCEPTION 'each target needs its tiktok_account_id' USING ERRCODE = '22004';
        END IF;
        IF v_t->>'tiktok_account_id' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
            RAISE EXCEPTION 'a target''s tiktok_account_id is not a uuid' USING ERRCODE = '22023';
        END IF;
        IF v_t ? 'scheduled_at' AND jsonb_typeof(v_t->'scheduled_at') <> 'string' THEN
            RAISE EXCEPTION 'a target''s scheduled_at is a timestamp string' USING ERRCODE = '22023';
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT (t->>'tiktok_account_id')::uuid) <> count(*) FROM jsonb_array_elements(targets) t) THEN
        RAISE EXCEPTION 'each account may be a target once' USING ERRCODE = '22023';
    END IF;
END
$$;

-- The parent of publish_targets / schedule_targets, locked: a draft that
-- is no target itself.
CREATE FUNCTION vibescaling._lock_parent(p_post_id uuid)
RETURNS vibescaling.posts
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts := vibescaling._lock_post(p_post_id);
BEGIN
    IF p.parent_id IS NOT NULL THEN
        RAISE EXCEPTION 'post % is a target of post %; targets have no targets', p.id, p.parent_id
            USING ERRCODE = '55000';
    END IF;
    IF p.status <> 'draft' THEN
        RAISE EXCEPTION 'post % is %; only a draft can be sent to targets', p.id, p.status USING ERRCODE = '55000';
    END IF;
    RETURN p;
END
$$;

-- Records a target's refusal on its post, when it is a draft (a refusal
-- of a target sent before leaves that target as it is).
CREATE FUNCTION vibescaling._record_target_error(p_target uuid, p_message text, p_state text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE vibescaling.posts x SET last_error = format('%s [SQLSTATE %s]', p_message, p_state)
     WHERE x.id = p_target AND x.status = 'draft';
END
$$;

-- One target's answer: {"tiktok_account_id", "post_id", "publish_id"} or
-- {..., "error": {"sqlstate", "message"}}, or the scheduled time.
CREATE FUNCTION vibescaling._target_answer(account_id uuid, post_id uuid, answer jsonb, sqlstate text, message text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('tiktok_account_id', account_id, 'post_id', post_id)
                             || coalesce(answer, '{}')
                             || CASE WHEN sqlstate IS NOT NULL
                                     THEN jsonb_build_object('error', jsonb_build_object('sqlstate', sqlstate, 'message', message))
                                     ELSE '{}' END)
$$;

-- Publishes a draft to several accounts now: each target
-- {"tiktok_account_id", "privacy_level", "mode", "caption", "title",
-- toggles} becomes a post of its own (_target_post) published as
-- publish_post publishes one. Each target succeeds or fails alone: a
-- refusal or a failed call is that target's answer, and the others go on.
-- Returns {"data": {"post_id", "targets": [{"tiktok_account_id",
-- "post_id", "publish_id"} | {..., "error": {"sqlstate", "message"}}]}}.
CREATE FUNCTION vibescaling.publish_targets(post_id uuid, targets jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p         vibescaling.posts;
    t         jsonb;
    v_target  uuid;
    v_answer  jsonb;
    v_answers jsonb := '[]';
    v_state   text;
    v_message text;
BEGIN
    p := vibescaling._lock_parent(publish_targets.post_id);
    PERFORM vibescaling._check_targets(targets);
    -- Every target account's rate-limit lock first, in the order batches
    -- take them (_rate_limit_allowance: by id). Each publish holds its
    -- account's until the transaction ends, so taken target by target in
    -- the caller's order, two fan-outs to the same accounts could wait on
    -- each other in a cycle.
    PERFORM vibescaling._rate_limit_lock(a)
       FROM (SELECT DISTINCT (x->>'tiktok_account_id')::uuid AS a FROM jsonb_array_elements(targets) x ORDER BY 1) sorted;
    FOR t IN SELECT x FROM jsonb_array_elements(targets) x LOOP
        v_target := vibescaling._target_post(p, t);
        BEGIN
            PERFORM vibescaling._ready_target(p, v_target, t);
            v_answer := vibescaling.publish_post(
                v_target, (t->>'tiktok_account_id')::uuid, t->>'privacy_level', coalesce(t->>'mode', 'direct'),
                coalesce((t->>'disable_comment')::boolean, false), coalesce((t->>'disable_duet')::boolean, false),
                coalesce((t->>'disable_stitch')::boolean, false), coalesce((t->>'brand_content_toggle')::boolean, false),
                coalesce((t->>'brand_organic_toggle')::boolean, false));
            v_answers := v_answers || vibescaling._target_answer((t->>'tiktok_account_id')::uuid, v_target,
                                                                 v_answer->'data', NULL, NULL);
        EXCEPTION WHEN OTHERS THEN
            -- This target's publish rolled back (its calls stay in the log);
            -- its post, a draft again, keeps the reason.
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            PERFORM vibescaling._record_target_error(v_target, v_message, v_state);
            v_answers := v_answers || vibescaling._target_answer((t->>'tiktok_account_id')::uuid, v_target,
                                                                 NULL, v_state, v_message);
        END;
    END LOOP;
    RETURN jsonb_build_object('data', jsonb_build_object('post_id', p.id, 'targets', v_answers));
END
$$;
COMMENT ON FUNCTION vibescaling.publish_targets(uuid, jsonb) IS
    'Publishes a draft to several accounts now, each target a post of its own; {"data":{"post_id","targets":[...]}}.';

-- Schedules a draft for several accounts: each target becomes a post of
-- its own (_target_post), scheduled at the target's "scheduled_at" or
-- scheduled_at, with schedule_post's checks. A refusal is that target's
-- answer; the others are scheduled. Returns {"data": {"post_id",
-- "targets": [{"tiktok_account_id", "post_id", "scheduled_at"[,
-- "warnings"]} | {..., "error"}]}}.
CREATE FUNCTION vibescaling.schedule_targets(post_id uuid, scheduled_at timestamptz, targets jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p         vibescaling.posts;
    t         jsonb;
    v_target  uuid;
    v_at      timestamptz;
    v_answer  jsonb;
    v_answers jsonb := '[]';
    v_state   text;
    v_message text;
BEGIN
    p := vibescaling._lock_parent(schedule_targets.post_id);
    PERFORM vibescaling._check_targets(targets);
    -- Every target account's scheduling lock first, in _lock_accounts' order.
    PERFORM vibescaling._lock_accounts(ARRAY(SELECT (x->>'tiktok_account_id')::uuid FROM jsonb_array_elements(targets) x));
    FOR t IN SELECT x FROM jsonb_array_elements(targets) x LOOP
        v_target := vibescaling._target_post(p, t);
        BEGIN
            PERFORM vibescaling._ready_target(p, v_target, t);
            v_at := coalesce((t->>'scheduled_at')::timestamptz, schedule_targets.scheduled_at);
            v_answer := vibescaling._schedule_with(v_target, v_at, (t->>'tiktok_account_id')::uuid, t);
            v_answers := v_answers || vibescaling._target_answer((t->>'tiktok_account_id')::uuid, v_target,
                                                                 jsonb_build_object('scheduled_at', v_at,
                                                                                    'warnings', v_answer->'warnings'),
                                                                 NULL, NULL);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            PERFORM vibescaling._record_target_error(v_target, v_message, v_state);
            v_answers := v_answers || vibescaling._target_answer((t->>'tiktok_account_id')::uuid, v_target,
                                                                 NULL, v_state, v_message);
        END;
    END LOOP;
    RETURN jsonb_build_object('data', jsonb_build_object('post_id', p.id, 'targets', v_answers));
END
$$;
COMMENT ON FUNCTION vibescaling.schedule_targets(uuid, timestamptz, jsonb) IS
    'Schedules a draft for several accounts, each target a post of its own; {"data":{"post_id","targets":[...]}}.';

-- publish_status of a post with targets: {"data": {"post_id", "status"
-- (posted: every target posted; partial: some; scheduled, publishing,
-- failed, draft: all the same), "targets": [{"tiktok_account_id",
-- "post_id", "post_status", and its publish_status data when it has a
-- publish ("publish_id", "status", "tiktok_status", ...)}]}}. Each target's
-- publish is asked about as publish_status asks (a read-only transaction
-- records nothing).
CREATE FUNCTION vibescaling._targets_status(p_post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c         record;
    v_targets jsonb := '[]';
    v_status  text;
BEGIN
    FOR c IN SELECT t.id, t.tiktok_account_id, t.status, t.last_error FROM vibescaling.posts t
              WHERE t.parent_id = p_post_id ORDER BY t.created_at, t.id LOOP
        v_targets := v_targets || jsonb_strip_nulls(jsonb_build_object(
            'tiktok_account_id', c.tiktok_account_id, 'post_id', c.id, 'post_status', c.status,
            'last_error', CASE WHEN c.status IN ('draft', 'failed', 'publishing') THEN c.last_error END)
            || CASE WHEN EXISTS (SELECT 1 FROM vibescaling.publish_records r WHERE r.post_id = c.id)
                    THEN vibescaling.publish_status(c.id)->'data' ELSE '{}' END);
    END LOOP;
    SELECT CASE WHEN count(DISTINCT x->>'post_status') = 1 THEN min(x->>'post_status')
                WHEN bool_or(x->>'post_status' = 'posted') THEN 'partial'
                ELSE 'mixed' END
      INTO v_status FROM jsonb_array_elements(v_targets) x;
    RETURN jsonb_build_object('data', jsonb_build_object('post_id', p_post_id, 'status', v_status, 'targets', v_targets));
END
$$;

REVOKE ALL ON FUNCTION vibescaling._max_targets() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._target_post(vibescaling.posts, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._check_targets(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._lock_parent(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._target_answer(uuid, uuid, jsonb, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._record_target_error(uuid, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._ready_target(vibescaling.posts, uuid, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.publish_targets(uuid, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.schedule_targets(uuid, timestamptz, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._targets_status(uuid) FROM PUBLIC;
