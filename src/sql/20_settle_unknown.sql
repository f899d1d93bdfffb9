-- vibescaling: posts whose init had an unknown outcome settle themselves.
--
-- An init sent without an answer read (a timeout after sending, a dropped
-- connection, a server stop) may or may not have made a post on TikTok,
-- and TikTok has no idempotency key: sending it again could post twice.
-- settle_unknown_outcomes() (pg_cron job vibescaling-settle, every 5
-- minutes, see enable_scheduler) looks for each such post
-- (vibescaling.unknown_outcomes) in TikTok's own signals, within a day of
-- its init (_evidence_window):
--   1. the creator's recent videos (Display API video/list, scope
--      video.list; public posts only): one whose caption is the post's and
--      whose create time follows the init is the post;
--   2. webhooks that name a publish_id no publish record has, for the
--      post's account (user_openid), received after the init: when the
--      account has one such init and one such publish_id, that is the post;
--      as many of each: all are on TikTok, paired in time order; a
--      publicly_available event's post_id ties a publish_id to a video
--      found in step 1;
--   3. a publish_id learned that way is asked about (status/fetch with the
--      account's token: another app's or another account's publish is
--      refused), and its record follows TikTok's status from then on.
-- A post found is settled as posted, with the evidence in
-- vibescaling.settlements. One of which TikTok showed no sign within
-- vibescaling.unknown_outcome_quiet_period is settled as not on TikTok,
-- and vibescaling.unknown_outcome_policy says what follows: hold (it fails,
-- a person publishes it again) or retry_after_quiet_period (a scheduled
-- post goes back on the queue). Evidence that cannot be told apart (two
-- posts of one account with the same caption; an account with more lost
-- inits than unexplained publishes, or fewer) settles nothing: those wait
-- for an operator's settle_post.

-- A caption as TikTok shows it back, for comparison: trimmed, runs of
-- white space as one space, and its first 150 characters (the Display
-- API's title and video_description are cut there).
CREATE FUNCTION vibescaling._caption_key(caption text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(btrim(left(regexp_replace(btrim(coalesce(caption, '')), '\s+', ' ', 'g'), 150)), '')
$$;

-- The account's videos TikTok lists (video/list, newest first) created at
-- or after since: up to three pages of 20. NULL when the account did not
-- grant video.list (its scopes say so, or TikTok does); raises (the call's error) when TikTok refused or could
-- not be reached, so that absence is never concluded from a failed look.
-- Each row: id (text: 19 digits), create_time, caption key.
CREATE FUNCTION vibescaling._listed_videos(p_account_id uuid, p_post_id uuid, p_since timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes text[] := (SELECT a.scopes FROM vibescaling.tiktok_accounts a WHERE a.id = p_account_id);
    v_call   vibescaling._call_result;
    v_cursor bigint;
    v_videos jsonb := '[]';
    v_page   jsonb;
BEGIN
    -- Unknown scopes (an account added with a token alone): ask all the same.
    IF NOT coalesce('video.list' = ANY (v_scopes), true) THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. 3 LOOP
        v_call := vibescaling._tiktok_call('video_list', p_account_id, p_post_id, 'settle',
                                           jsonb_strip_nulls(jsonb_build_object('max_count', 20, 'cursor', v_cursor)));
        IF NOT v_call.ok AND v_call.error_code = 'scope_not_authorized' AND v_scopes IS NULL THEN
            RETURN NULL;     -- the account's scopes were unknown: now we know
        ELSIF NOT v_call.ok THEN
            PERFORM vibescaling._raise_tiktok_error(v_call, 'video_list');
        END IF;
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', v->>'id',
                   'create_time', to_timestamp((v->>'create_time')::bigint),
                   'caption', vibescaling._caption_key(coalesce(nullif(v->>'title', ''), v->>'video_description')))), '[]')
          INTO v_page
          FROM jsonb_array_elements(coalesce(v_call.data->'videos', '[]')) v
         WHERE v->>'id' ~ '^[0-9]{1,19}$' AND v->>'create_time' ~ '^[0-9]{1,12}$';
        v_videos := v_videos || v_page;
        EXIT WHEN NOT coalesce((v_call.data->>'has_more')::boolean, false)
               OR NOT (v_call.data->>'cursor' ~ '^[0-9]{1,19}$')
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_page) v
                           WHERE (v->>'create_time')::timestamptz < p_since);
        v_cursor := (v_call.data->>'cursor')::bigint;
    END LOOP;
    RETURN (SELECT coalesce(jsonb_agg(v), '[]') FROM jsonb_array_elements(v_videos) v
             WHERE (v->>'create_time')::timestamptz >= p_since);
END
$$;

-- What TikTok's webhooks say of publishes no publish record has, for an
-- account, received since p_since: one row per publish_id with when it was
-- first heard of (TikTok's create_time), its events, and the public post
-- id a publicly_available event gave. publish_ids that an init logged for
-- the account since then (a publish whose transaction was lost, which
-- _earlier_init reconciles) or a settlement took are left out.
CREATE FUNCTION vibescaling._unexplained_publishes(p_account_id uuid, p_since timestamptz)
RETURNS TABLE (publish_id text, first_seen timestamptz, events text[], public_post_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_open_id text := (SELECT a.open_id FROM vibescaling.tiktok_accounts a WHERE a.id = p_account_id);
BEGIN
    RETURN QUERY
        SELECT e.publish_id, min(coalesce(e.create_time, e.received_at)),
               array_agg(DISTINCT e.event ORDER BY e.event),
               max((e.content->>'post_id')::bigint) FILTER (WHERE e.event = 'post.publish.publicly_available'
                                                             AND e.content->>'post_id' ~ '^[0-9]{1,19}$')
          FROM vibescaling.webhook_events e
         WHERE e.received_at >= p_since
           AND e.user_openid = v_open_id
           AND e.publish_id IS NOT NULL
           AND e.event LIKE 'post.publish.%'
           AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records r WHERE r.publish_id = e.publish_id)
           AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s WHERE s.publish_id = e.publish_id)
           AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs l
                            WHERE l.tiktok_account_id = p_account_id AND l.created_at >= p_since - interval '1 hour'
                              AND l.publish_id = e.publish_id
                              AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init'))
         GROUP BY e.publish_id;
END
$$;

-- Asks TikTok about a publish_id learned from a webhook, with the
-- account's token: its status/fetch data, or NULL when TikTok says it is
-- not this account's (invalid_publish_id,
-- token_not_authorized_for_specified_publish_id). Raises when TikTok could
-- not answer.
CREATE FUNCTION vibescaling._confirm_publish(p_account_id uuid, p_post_id uuid, p_publish_id text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call vibescaling._call_result := vibescaling._tiktok_call('status_fetch', p_account_id, p_post_id, 'settle',
                                                                 jsonb_build_object('publish_id', p_publish_id));
BEGIN
    IF v_call.ok THEN
        RETURN v_call.data;
    END IF;
    IF v_call.error_code IN ('invalid_publish_id', 'token_not_authorized_for_specified_publish_id') THEN
        RETURN NULL;
    END IF;
    PERFORM vibescaling._raise_tiktok_error(v_call, 'status_fetch');
    RETURN NULL;
END
$$;

-- How long after an init TikTok's signs of it may come: processing,
-- moderation ("a few hours" at most, TikTok says) and webhook retries. A
-- video or publish first seen later is not this init's.
CREATE FUNCTION vibescaling._evidence_window()
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT interval '1 day' $$;

-- Settles one post of unknown outcome (u: its vibescaling.unknown_outcomes
-- row; the post's row locked by the caller) from what TikTok shows:
-- videos (_listed_videos' answer for its account, NULL without video.list)
-- and publishes (_unexplained_publishes' rows as jsonb) of its account,
-- and siblings, how many unsettled inits of unknown outcome the account
-- has in the same window, and rank, this one's place among them (by
-- time). Returns how it was settled: 'video_list', 'webhook',
-- 'quiet_period', 'ambiguous' (evidence that cannot be told apart: an
-- operator decides) or NULL (nothing yet: it waits).
CREATE FUNCTION vibescaling._settle_from_evidence(p vibescaling.posts, u vibescaling.unknown_outcomes, videos jsonb,
                                                  publishes jsonb, siblings integer, rank integer, quiet interval,
                                                  requeue boolean)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key        text := vibescaling._caption_key(coalesce(p.caption, p.title));
    v_window_end timestamptz := u.created_at + vibescaling._evidence_window();
    v_matches    jsonb;
    v_video      jsonb;
    v_publish    jsonb;
    v_unclaimed  jsonb;
    v_status     jsonb;
    v_publish_id text;
    v_paired     boolean := false;
    v_video_id   bigint;
    v_settled    text;
    r            vibescaling.publish_records;
BEGIN
    -- TikTok's clock and ours may differ a little: a minute's slack before the init.
    IF videos IS NOT NULL AND v_key IS NOT NULL THEN
        SELECT coalesce(jsonb_agg(v), '[]') INTO v_matches
          FROM jsonb_array_elements(videos) v
         WHERE v->>'caption' = v_key
           AND (v->>'create_time')::timestamptz BETWEEN u.created_at - interval '1 minute' AND v_window_end
           AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records k
                            WHERE k.tiktok_account_id = p.tiktok_account_id
                              AND (v->>'id')::bigint = ANY (k.public_post_ids))
           AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s WHERE s.public_post_id = (v->>'id')::bigint);
        IF jsonb_array_length(v_matches) > 1 THEN
            RETURN 'ambiguous';
        ELSIF jsonb_array_length(v_matches) = 1 THEN
            v_video := v_matches->0;
            v_video_id := (v_video->>'id')::bigint;
            -- A webhook may name the publish behind the video.
            SELECT x INTO v_publish FROM jsonb_array_elements(publishes) x
             WHERE (x->>'public_post_id')::bigint = v_video_id;
            -- Else TikTok's status of each unexplained publish of the window
            -- may: one whose public post is this video is its publish, so
            -- that it explains nothing else (another lost init of the account
            -- must not be paired with it).
            IF v_publish IS NULL THEN
                SELECT x INTO v_publish FROM jsonb_array_elements(publishes) x
                 WHERE (x->>'first_seen')::timestamptz BETWEEN u.created_at - interval '1 minute' AND v_window_end
                   AND v_video->>'id' IN (SELECT jsonb_array_elements_text(
                                              vibescaling._confirm_publish(p.tiktok_account_id, p.id, x->>'publish_id')
                                              -> 'publicaly_available_post_id'))
                 LIMIT 1;
            END IF;
        END IF;
    END IF;

    IF v_video IS NULL THEN
        -- Without a video, a webhook's publish_id names the post when it is
        -- the one unexplained publish after the account's one such init.
        -- When the account has as many unexplained publishes as lost inits,
        -- every one of those posts is on TikTok: they are paired in time
        -- order (TikTok finishes them in the order they came, unless their
        -- sizes differ much), which the evidence says (paired_by_order).
        -- Fewer or more: which post is missing cannot be told.
        SELECT coalesce(jsonb_agg(x ORDER BY (x->>'first_seen')::timestamptz, x->>'publish_id'), '[]') INTO v_unclaimed
          FROM jsonb_array_elements(publishes) x
         WHERE (x->>'first_seen')::timestamptz BETWEEN u.created_at - interval '1 minute' AND v_window_end;
        IF jsonb_array_length(v_unclaimed) = 1 AND siblings = 1 THEN
            v_publish := v_unclaimed->0;
        ELSIF jsonb_array_length(v_unclaimed) = siblings AND siblings > 1 THEN
            v_publish := v_unclaimed->(rank - 1);
            v_paired := true;
        ELSIF jsonb_array_length(v_unclaimed) > 0 THEN
            RETURN 'ambiguous';
        END IF;
    END IF;

    IF v_publish IS NOT NULL THEN
        v_publish_id := v_publish->>'publish_id';
        v_status := vibescaling._confirm_publish(p.tiktok_account_id, p.id, v_publish_id);
        -- A publish whose public post another record of the account holds
        -- (a post found in the video list) is that post's: no evidence here.
        IF v_video IS NULL AND EXISTS (SELECT 1 FROM vibescaling.publish_records k,
                                              jsonb_array_elements_text(v_status->'publicaly_available_post_id') x
                                        WHERE k.tiktok_account_id = p.tiktok_account_id
                                          AND x ~ '^[0-9]{1,19}$' AND x::bigint = ANY (k.public_post_ids)) THEN
            RETURN 'ambiguous';
        END IF;
        IF v_status IS NULL AND v_paired THEN
            RETURN 'ambiguous';       -- one of the publishes is not the account's: the pairing fails
        ELSIF v_status IS NULL THEN
            v_publish_id := NULL;     -- not this account's: the webhook's publish is no evidence
        END IF;
    END IF;

    IF v_publish_id IS NOT NULL THEN
        PERFORM vibescaling._settle(p, true, v_publish_id, v_video_id,
                                    CASE WHEN v_video IS NOT NULL THEN 'video_list' ELSE 'webhook' END,
                                    jsonb_strip_nulls(jsonb_build_object(
                                        'init_at', u.created_at, 'video', v_video, 'webhook', v_publish,
                                        'status', v_status, 'paired_by_order', CASE WHEN v_paired THEN siblings END)),
                                    false);
        -- From now on the record follows TikTok's status, FAILED included.
        SELECT * INTO r FROM vibescaling.publish_records pr WHERE pr.publish_id = v_publish_id;
        PERFORM vibescaling._apply_status_reply(r, v_status);
        RETURN CASE WHEN v_video IS NOT NULL THEN 'video_list' ELSE 'webhook' END;
    ELSIF v_video IS NOT NULL THEN
        PERFORM vibescaling._settle(p, true, NULL, v_video_id, 'video_list',
                                    jsonb_build_object('init_at', u.created_at, 'video', v_video), false);
        RETURN 'video_list';
    END IF;

    -- No sign of it. After the quiet period that is the answer.
    IF now() >= u.created_at + quiet THEN
        PERFORM vibescaling._settle(p, false, NULL, NULL, 'quiet_period',
                                    jsonb_build_object('init_at', u.created_at, 'quiet_period', quiet,
                                                       'video_list', CASE WHEN videos IS NULL THEN 'not granted'
                                                                          ELSE 'no video with this caption' END,
                                                       'webhooks', 'no unexplained publish for the account'),
                                    requeue);
        RETURN 'quiet_period';
    END IF;
    RETURN NULL;
END
$$;

-- Settles the posts whose init had an unknown outcome from TikTok's
-- signals (see the top of this file): up to max_posts of them, oldest
-- init first, each post locked with SKIP LOCKED. quiet_period NULL:
-- vibescaling.unknown_outcome_quiet_period. An account whose look-ups fail
-- (TikTok unreachable, a refusal) is left for the next run. Returns
-- {"examined", "video_list", "webhook", "quiet_period", "requeued",
--  "ambiguous", "waiting", "errors"}: posts settled by each signal, those
-- put back on the queue, those left to an operator, those still within
-- their quiet period, and accounts whose look-ups failed.
CREATE FUNCTION vibescaling.settle_unknown_outcomes(max_posts integer DEFAULT 100, quiet_period interval DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_quiet    interval := coalesce(quiet_period, current_setting('vibescaling.unknown_outcome_quiet_period')::interval);
    v_requeue  boolean := current_setting('vibescaling.unknown_outcome_policy') = 'retry_after_quiet_period';
    v_counts   jsonb := jsonb_build_object('examined', 0, 'video_list', 0, 'webhook', 0, 'quiet_period', 0,
                                           'requeued', 0, 'ambiguous', 0, 'waiting', 0, 'errors', 0);
    v_account  uuid;
    v_inits    vibescaling.unknown_outcomes[];
    v_since    timestamptz;
    v_videos   jsonb;
    v_publishes jsonb;
    u          vibescaling.unknown_outcomes;
    p          vibescaling.posts;
    v_result   text;
    v_message  text;
    v_settled  uuid[] := '{}';   -- the run's posts settled from evidence
    v_siblings integer;
    v_rank     integer;
BEGIN
    PERFORM vibescaling._require_primary();
    IF max_posts IS NULL OR max_posts < 1 THEN
        RAISE EXCEPTION 'max_posts must be 1 or more' USING ERRCODE = '22023';
    END IF;
    IF v_quiet <= interval '0' THEN
        RAISE EXCEPTION 'quiet_period must be a positive interval' USING ERRCODE = '22023';
    END IF;

    -- Account by account: one look at its videos and webhooks serves all its posts.
    FOR v_account, v_inits IN
        SELECT o.tiktok_account_id, array_agg(o ORDER BY o.created_at)
          FROM (SELECT * FROM vibescaling.unknown_outcomes o
                 WHERE o.tiktok_account_id IS NOT NULL
                 ORDER BY o.created_at LIMIT max_posts) o
         GROUP BY o.tiktok_account_id
    LOOP
        v_since := (v_inits[1]).created_at - interval '1 minute';
        BEGIN
            v_videos := vibescaling._listed_videos(v_account, (v_inits[1]).post_id, v_since);
            SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]') INTO v_publishes
              FROM vibescaling._unexplained_publishes(v_account, v_since) x;
            FOREACH u IN ARRAY v_inits LOOP
                SELECT * INTO p FROM vibescaling.posts t
                 WHERE t.id = u.post_id AND t.status <> 'posted'
                   FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                v_counts := jsonb_set(v_counts, '{examined}', to_jsonb((v_counts->>'examined')::integer + 1));
                SELECT count(*)::integer, count(*) FILTER (WHERE s.created_at <= u.created_at)::integer
                  INTO v_siblings, v_rank
                  FROM unnest(v_inits) s
                 WHERE s.created_at BETWEEN u.created_at - vibescaling._evidence_window()
                                        AND u.created_at + vibescaling._evidence_window()
                   AND NOT (s.post_id = ANY (v_settled));
                v_result := vibescaling._settle_from_evidence(p, u, v_videos, v_publishes, v_siblings, v_rank,
                                                              v_quiet, v_requeue);
                v_result := coalesce(v_result, 'waiting');
                v_counts := jsonb_set(v_counts, ARRAY[v_result], to_jsonb((v_counts->>v_result)::integer + 1));
                IF v_result = 'quiet_period' AND v_requeue AND p.status = 'publishing' AND p.scheduled_at IS NOT NULL THEN
                    v_counts := jsonb_set(v_counts, '{requeued}', to_jsonb((v_counts->>'requeued')::integer + 1));
                END IF;
                -- A publish settled here explains nothing else.
                IF v_result IN ('video_list', 'webhook') THEN
                    v_settled := v_settled || p.id;
                    SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]') INTO v_publishes
                      FROM vibescaling._unexplained_publishes(v_account, v_since) x;
                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            -- TikTok refused or could not be reached: nothing of this
            -- account is concluded; its calls' dispatch_logs rows stay.
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
            RAISE LOG 'vibescaling: settling unknown outcomes of account % failed: %', v_account, v_message;
            v_counts := jsonb_set(v_counts, '{errors}', to_jsonb((v_counts->>'errors')::integer + 1));
        END;
    END LOOP;
    RETURN v_counts;
END
$$;
COMMENT ON FUNCTION vibescaling.settle_unknown_outcomes(integer, interval) IS
    'Settles posts whose init had an unknown outcome from TikTok''s signals (video list, webhooks, status) or their absence after the quiet period; {"examined","video_list","webhook","quiet_period","requeued","ambiguous","waiting","errors"}.';

REVOKE ALL ON FUNCTION vibescaling._caption_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._evidence_window() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._listed_videos(uuid, uuid, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._unexplained_publishes(uuid, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._confirm_publish(uuid, uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._settle_from_evidence(vibescaling.posts, vibescaling.unknown_outcomes, jsonb, jsonb,
                                                         integer, integer, interval, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.settle_unknown_outcomes(integer, interval) FROM PUBLIC;
