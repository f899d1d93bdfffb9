-- vibescaling 0.1.5 -> 0.1.6: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.6'" to load this file. \quit

-- The dispatchers' claims lock only posts of their own kind (the videos the
-- extension uploads, or the others): the upload rule is spelled inline,
-- with the pull prefixes' patterns taken once per query.
CREATE FUNCTION vibescaling._pull_url_patterns()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(replace(replace(replace(btrim(x.prefix), '\', '\\'), '%', '\%'), '_', '\_') || '%'), '{}')
      FROM unnest(string_to_array(coalesce(current_setting('vibescaling.pull_url_prefixes', true), ''), ',')) AS x(prefix)
     WHERE btrim(x.prefix) <> ''
$$;
REVOKE ALL ON FUNCTION vibescaling._pull_url_patterns() FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._upload_method(p vibescaling.posts)
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
    v_pull      text[] := vibescaling._pull_url_patterns();
    i           integer;
    j           integer;
BEGIN
    processed := 0;
    declined := '{}';

    -- The earliest due post of each account not skipped, earliest first,
    -- among the videos the extension uploads when uploads, else among the
    -- others (_upload_method's rule, inline). Never a post of the other
    -- kind: the lock would hide it from the other dispatcher's SKIP LOCKED
    -- pass until this round ends. Candidates beyond max_posts: other
    -- dispatchers (helpers of the same run) hold the first ones, and the
    -- lock skips them.
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
                              AND (d.media_type = 'video'
                                   AND coalesce(d.upload_method, CASE WHEN d.video_url LIKE ANY (v_pull) THEN 'pull' ELSE 'upload' END) = 'upload') = uploads
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
           AND (v_room[i] = 0
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

CREATE OR REPLACE FUNCTION vibescaling._count_due(as_of timestamptz, uploads boolean, at_most integer)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer
      FROM (SELECT FROM vibescaling.posts p
                        CROSS JOIN (SELECT vibescaling._pull_url_patterns() AS pull) k
             WHERE p.status = 'scheduled'
               AND coalesce(p.next_attempt_at, p.scheduled_at) <= as_of
               AND (p.media_type = 'video'
                    AND coalesce(p.upload_method, CASE WHEN p.video_url LIKE ANY (k.pull) THEN 'pull' ELSE 'upload' END) = 'upload') = uploads
             LIMIT at_most) d
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
    v_pull      text[] := vibescaling._pull_url_patterns();
BEGIN
    SELECT p.id, p.attempts INTO v_post_id, v_attempts
      FROM vibescaling.posts p
     WHERE p.status = 'scheduled' AND coalesce(p.next_attempt_at, p.scheduled_at) <= as_of
       AND (p.media_type = 'video'
            AND coalesce(p.upload_method, CASE WHEN p.video_url LIKE ANY (v_pull) THEN 'pull' ELSE 'upload' END) = 'upload') = uploads
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

