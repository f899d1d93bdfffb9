-- vibescaling: publishing a post now (publish_post) and the publish step the
-- dispatcher shares with it (_publish_locked).

-- What the durable dispatch log says of the post's earlier inits, newest
-- first, after those the last settlement decided on (vibescaling.settlements):
--   state 'sent'    TikTok accepted one (publish_id) and it did not end FAILED
--                   (for an upload: its last chunk arrived); the transaction
--                   that made it may have rolled back or died;
--   state 'unknown' one was sent but no answer was recorded (timeout after
--                   sending, dropped connection, or the server died while it
--                   was "in flight"): TikTok may or may not have the post;
--   NULL            nothing stands in the way of an init.
-- Its queries run on generic plans: the log's weekly partitions are left
-- out when the plan starts (by v_since), where a plan made for each call's
-- values would cost a planning of every partition each time (10x slower
-- with a quarter's partitions).
CREATE FUNCTION vibescaling._earlier_init(p_post_id uuid, OUT state text, OUT publish_id text, OUT endpoint text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    l vibescaling.dispatch_logs;
    -- No call for a post is older than the post (_post_write_checked keeps
    -- created_at from moving forward): a variable, so that the planner
    -- leaves out the log's partitions of earlier weeks.
    v_since timestamptz := coalesce((SELECT p.created_at FROM vibescaling.posts p WHERE p.id = p_post_id), '-infinity');
BEGIN
    FOR l IN SELECT * FROM vibescaling.dispatch_logs d
              WHERE d.post_id = p_post_id AND d.created_at >= v_since
                AND d.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                AND (d.outcome = 'success' OR d.outcome_unknown)
                AND d.id > coalesce((SELECT max(s.settled_through) FROM vibescaling.settlements s
                                      WHERE s.post_id = p_post_id), 0)
              ORDER BY d.id DESC LOOP
        IF l.outcome_unknown THEN
            state := 'unknown';
            endpoint := l.endpoint;
            RETURN;
        END IF;
        -- A publish TikTok reported FAILED, or an upload whose chunks never all arrived, is not a post.
        CONTINUE WHEN EXISTS (SELECT 1 FROM vibescaling.publish_records r
                               WHERE r.publish_id = l.publish_id AND r.status = 'failed');
        CONTINUE WHEN EXISTS (SELECT 1 FROM vibescaling.dispatch_logs c
                               WHERE c.post_id = p_post_id AND c.created_at >= l.created_at
                                 AND c.publish_id = l.publish_id AND c.endpoint = 'upload_chunk')
                  AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs c
                                   WHERE c.post_id = p_post_id AND c.created_at >= l.created_at
                                     AND c.publish_id = l.publish_id
                                     AND c.endpoint = 'upload_chunk' AND c.http_status = 201);
        IF coalesce(l.publish_id, '') = '' THEN
            state := 'unknown';     -- accepted, but we cannot name the publish
            endpoint := l.endpoint;
            RETURN;
        END IF;
        state := 'sent';
        publish_id := l.publish_id;
        endpoint := l.endpoint;
        RETURN;
    END LOOP;
END
$$;

-- Records, for a post whose earlier init TikTok accepted (per the durable
-- log), the publish record and the posted state that its lost transaction
-- never committed. Returns publish_post's answer.
CREATE FUNCTION vibescaling._reconcile_sent(p vibescaling.posts, p_publish_id text, p_endpoint text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode)
    VALUES (p.id, p.tiktok_account_id, p_publish_id, p_endpoint, p.mode)
    ON CONFLICT (publish_id) DO NOTHING;
    UPDATE vibescaling.posts
       SET status = 'posted', posted_at = coalesce(posted_at, now()),
           last_error = 'reconciled: an earlier attempt had published it (dispatch log)'
     WHERE id = p.id;
    RETURN jsonb_build_object('data', jsonb_build_object('publish_id', p_publish_id));
END
$$;

-- The first step of publishing a post whose row the caller has locked and
-- whose options are set: checks it, and makes sure TikTok does not have it
-- already. Then either reconciled is the answer (the dispatcher's earlier
-- run published it and its transaction was lost: recorded now), or
-- endpoint and options say which init to call with what. Raises on any
-- refusal (for the dispatcher, an earlier init of unknown outcome is no
-- refusal: the post becomes 'publishing', and reconciled says
-- outcome_unknown). Shared by _publish_attempt and the dispatcher's rounds, which
-- pass no_init_logged when the log holds no init of the post (asked once
-- for a whole round): _earlier_init then has nothing to find.
CREATE FUNCTION vibescaling._prepare_publish(p vibescaling.posts, p_trigger text, no_init_logged boolean DEFAULT false,
                                             OUT reconciled jsonb, OUT endpoint text, OUT options jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- What the log says of the post's earlier inits (_earlier_init); NULL: none.
    v_state      text;
    v_publish_id text;
    v_endpoint   text;
BEGIN
    PERFORM vibescaling._check_publishable(p);

    -- Never a second init for a post TikTok has, or may have.
    IF NOT no_init_logged THEN
        SELECT e.state, e.publish_id, e.endpoint INTO v_state, v_publish_id, v_endpoint
          FROM vibescaling._earlier_init(p.id) e;
    END IF;
    IF v_state = 'sent' AND p_trigger = 'scheduler' THEN
        -- The dispatcher's earlier run published it, then its transaction was lost.
        reconciled := vibescaling._reconcile_sent(p, v_publish_id, v_endpoint);
        RETURN;
    ELSIF v_state = 'sent' THEN
        RAISE EXCEPTION 'post % was already sent to TikTok (publish_id %)', p.id, v_publish_id
            USING ERRCODE = '55000',
                  DETAIL = 'An earlier init succeeded; its transaction did not record the post as posted.',
                  HINT = 'Check vibescaling.dispatch_logs and the TikTok account; settle_post() records the decision.';
    ELSIF v_state = 'unknown' AND p_trigger = 'scheduler' THEN
        -- The dispatcher's earlier run sent it and read no answer, then its
        -- transaction was lost: the post waits for a settlement.
        UPDATE vibescaling.posts t
           SET status = 'publishing', next_attempt_at = NULL,
               last_error = 'an earlier init''s outcome is unknown; settle_unknown_outcomes looks for it on TikTok'
         WHERE t.id = p.id;
        reconciled := jsonb_build_object('data', NULL, 'outcome_unknown', true);
        RETURN;
    ELSIF v_state = 'unknown' THEN
        RAISE EXCEPTION 'post % may already be on TikTok: an earlier init''s outcome is unknown', p.id
            USING ERRCODE = '55000',
                  DETAIL = 'The request was sent, but no answer was recorded (timeout, dropped connection or a server stop).',
                  HINT = 'Check the TikTok account, then call vibescaling.settle_post(post_id, on_tiktok, publish_id).';
    END IF;

    endpoint := CASE WHEN p.media_type = 'photo' THEN 'content_init'
                     WHEN p.mode = 'inbox'       THEN 'inbox_video_init'
                     ELSE 'video_init' END;
    options := jsonb_strip_nulls(jsonb_build_object(
        'caption', p.caption, 'title', p.title, 'privacy_level', p.privacy_level, 'mode', p.mode,
        'disable_comment', p.disable_comment, 'disable_duet', p.disable_duet,
        'disable_stitch', p.disable_stitch, 'brand_content_toggle', p.brand_content_toggle,
        'brand_organic_toggle', p.brand_organic_toggle, 'video_url', p.video_url,
        'video_cover_timestamp_ms', p.video_cover_timestamp_ms,
        'is_aigc', CASE WHEN p.media_type = 'video' AND p.mode = 'direct' THEN p.is_aigc END,
        'photo_urls', to_jsonb(p.photo_urls), 'photo_cover_index', p.photo_cover_index));
END
$$;
REVOKE ALL ON FUNCTION vibescaling._prepare_publish(vibescaling.posts, text, boolean) FROM PUBLIC;

-- True when an init's answer (_tiktok_call's) is one TikTok accepted with a
-- publish_id we can record. plpgsql, not sql: see _rate_limit_lock.
CREATE FUNCTION vibescaling._init_accepted(call vibescaling._call_result)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce(call.ok, false) AND coalesce(call.publish_id, '') <> '';
END
$$;

-- Records, for each posts[i] whose init answer calls[i] TikTok accepted
-- (_init_accepted), a publish record for endpoints[i] and the posted
-- state; the others are left alone. How the dispatcher records a round's
-- publishes in two statements, and _record_published one.
CREATE FUNCTION vibescaling._record_published_many(posts vibescaling.posts[], calls vibescaling._call_result[],
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

-- The last step of publishing: records the init TikTok accepted (call is
-- _tiktok_call's answer) as a publish record and marks the post posted.
-- Returns publish_post's answer, {"data": {"publish_id"}}.
CREATE FUNCTION vibescaling._record_published(p vibescaling.posts, call vibescaling._call_result, p_endpoint text)
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

-- Publishes one post whose row the caller has locked and whose options are
-- set: checks it (_prepare_publish), asks creator_info (Direct Post), calls
-- the init endpoint (or uploads the video), records the publish and marks
-- the post posted. answer: publish_post's answer, {"data": {"publish_id"}};
-- or, when a call to TikTok failed, answer is NULL and failed_call is that
-- call's result, failed_endpoint its endpoint, for the caller to raise
-- (_publish_locked) or record (the dispatcher's one-by-one pass). Raises on
-- any refusal of our own; the dispatch_logs rows of the calls made stay
-- (they commit on their own).
CREATE FUNCTION vibescaling._publish_attempt(p_post_id uuid, p_trigger text, OUT answer jsonb,
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
    -- Media TikTok would refuse after the upload is refused now. The
    -- dispatcher's posts were checked when they were scheduled.
    IF p_trigger = 'manual' THEN
        PERFORM vibescaling._check_media(p, CASE WHEN p.mode = 'direct'
                                                 THEN (v_call.data->>'max_video_post_duration_sec')::integer END);
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
REVOKE ALL ON FUNCTION vibescaling._publish_attempt(uuid, text) FROM PUBLIC;

-- Publishes one post whose row the caller has locked, as _publish_attempt
-- does, raising a failed call's error (_raise_tiktok_error). Returns
-- publish_post's answer, {"data": {"publish_id"}}.
CREATE FUNCTION vibescaling._publish_locked(p_post_id uuid, p_trigger text)
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
    -- The row lock makes a racing publish or dispatcher wait, then see 'posted'.
    p := vibescaling._lock_post(publish_post.post_id);
    IF p.status <> 'draft' THEN
        RAISE EXCEPTION 'post % is %; only a draft can be published', p.id, p.status
            USING ERRCODE = '55000',
                  HINT = CASE p.status
                             WHEN 'posted' THEN 'It was already published.'
                             WHEN 'scheduled' THEN 'The dispatcher will publish it; set it back to draft to publish now.'
                             ELSE 'Set it back to draft (or schedule it) first.' END;
    END IF;

    IF EXISTS (SELECT 1 FROM vibescaling.posts t WHERE t.parent_id = p.id) THEN
        RAISE EXCEPTION 'post % has targets: it is sent to accounts through them', p.id
            USING ERRCODE = '55000', HINT = 'publish_targets(post_id, targets) adds accounts.';
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

-- The id of the post's latest init in the durable dispatch log (0: none):
-- what a settlement decided on.
CREATE FUNCTION vibescaling._last_init_log_id(p_post_id uuid)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_since timestamptz := coalesce((SELECT p.created_at FROM vibescaling.posts p WHERE p.id = p_post_id), '-infinity');
BEGIN
    RETURN coalesce((SELECT max(l.id) FROM vibescaling.dispatch_logs l
                      WHERE l.post_id = p_post_id AND l.created_at >= v_since
                        AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')), 0);
END
$$;
REVOKE ALL ON FUNCTION vibescaling._last_init_log_id(uuid) FROM PUBLIC;

-- Records a decision on a post (row locked by the caller) whose init had
-- an unknown outcome, and applies it. on_tiktok: TikTok has it, as
-- publish_id or as the public video public_post_id (a publish record, the
-- post posted); else it does not, and requeue puts a post the dispatcher
-- sent back on the queue (due now), or the post stays as it is (a
-- 'publishing' one fails, so that nothing sends it again unasked).
-- decided_by and evidence say who decided and why (vibescaling.settlements).
-- Returns the settlement's id.
CREATE FUNCTION vibescaling._settle(p vibescaling.posts, p_on_tiktok boolean, p_publish_id text,
                                    p_public_post_id bigint, p_decided_by text, p_evidence jsonb,
                                    p_requeue boolean)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_endpoint text := CASE WHEN p.media_type = 'photo' THEN 'content_init'
                            WHEN p.mode = 'inbox' THEN 'inbox_video_init' ELSE 'video_init' END;
    v_why      text := CASE p_decided_by WHEN 'operator' THEN 'by an operator'
                                         WHEN 'quiet_period' THEN 'after the quiet period without a sign of it'
                                         ELSE format('from TikTok''s %s', replace(p_decided_by, '_', ' ')) END;
    -- Only a post the dispatcher sent (publishing, with a time) goes back on the queue.
    v_requeued boolean := NOT p_on_tiktok AND p_requeue AND p.status = 'publishing' AND p.scheduled_at IS NOT NULL;
    v_id       bigint;
BEGIN
    IF p_on_tiktok AND p.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'post % has no TikTok account to have been published to', p.id USING ERRCODE = '55000';
    END IF;
    -- First the decision: the posts trigger lets a settled post be scheduled again.
    INSERT INTO vibescaling.settlements (post_id, tiktok_account_id, settled_through, on_tiktok, publish_id,
                                         public_post_id, decided_by, evidence, requeued)
    VALUES (p.id, p.tiktok_account_id, vibescaling._last_init_log_id(p.id), p_on_tiktok, p_publish_id,
            p_public_post_id, p_decided_by, coalesce(p_evidence, '{}'), v_requeued)
    RETURNING id INTO v_id;
    IF p_on_tiktok THEN
        IF p_publish_id IS NOT NULL THEN
            PERFORM vibescaling._reconcile_sent(p, p_publish_id, v_endpoint);
        ELSE
            -- Found as a public video: nothing is left to follow but its metrics.
            INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode, status,
                                                     tiktok_status, public_post_ids, public_at, checked_at)
            VALUES (p.id, p.tiktok_account_id, NULL, v_endpoint, p.mode, 'published', 'PUBLISH_COMPLETE',
                    ARRAY[p_public_post_id], now(), now());
            UPDATE vibescaling.posts t SET status = 'posted', posted_at = coalesce(t.posted_at, now()) WHERE t.id = p.id;
        END IF;
        UPDATE vibescaling.posts t SET last_error = 'settled ' || v_why || ': on TikTok' WHERE t.id = p.id;
    ELSIF v_requeued THEN
        UPDATE vibescaling.posts t
           SET status = 'scheduled', next_attempt_at = now(),
               last_error = 'settled ' || v_why || ': not on TikTok; back on the queue'
         WHERE t.id = p.id;
    ELSE
        UPDATE vibescaling.posts t
           SET status = CASE WHEN t.status = 'publishing' THEN 'failed' ELSE t.status END,
               last_error = 'settled ' || v_why || ': not on TikTok'
                            || CASE WHEN p_decided_by = 'quiet_period'
                                    THEN ' (vibescaling.unknown_outcome_policy = hold: publish it again to resend)'
                                    ELSE '' END
         WHERE t.id = p.id;
    END IF;
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._settle(vibescaling.posts, boolean, text, bigint, text, jsonb, boolean) FROM PUBLIC;

-- An operator's decision on a post whose earlier init has an unknown outcome
-- (or was sent by a lost transaction): on_tiktok = true records it as posted
-- with TikTok's publish_id; false records that TikTok does not have it, so a
-- new publish may send it again (a 'publishing' post fails). Recorded in
-- vibescaling.settlements (decided_by 'operator'). Returns {"data": post}.
CREATE FUNCTION vibescaling.settle_post(post_id uuid, on_tiktok boolean, publish_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    IF settle_post.on_tiktok IS NULL THEN
        RAISE EXCEPTION 'on_tiktok is required' USING ERRCODE = '22004';
    END IF;
    p := vibescaling._lock_post(settle_post.post_id);
    IF p.status = 'posted' THEN
        RAISE EXCEPTION 'post % is %; there is nothing to settle', p.id, p.status USING ERRCODE = '55000';
    END IF;
    IF settle_post.on_tiktok AND coalesce(settle_post.publish_id, '') = '' THEN
        RAISE EXCEPTION 'publish_id is required when the post is on TikTok' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._settle(p, settle_post.on_tiktok, nullif(settle_post.publish_id, ''), NULL, 'operator',
                                '{}', false);
    SELECT * INTO p FROM vibescaling.posts t WHERE t.id = p.id;
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;
