-- vibescaling: the due-post dispatcher and its pg_cron job.

-- The delay before retry number `attempt` (1 = the first retry): exponential
-- from vibescaling.retry_base_delay, capped at vibescaling.retry_max_delay,
-- with jitter (a random point in its upper half) so that a burst of failed
-- posts does not come back at the same instant.
CREATE FUNCTION vibescaling._retry_delay(attempt integer)
RETURNS interval
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT make_interval(secs => least(extract(epoch FROM current_setting('vibescaling.retry_max_delay')::interval),
                                       extract(epoch FROM current_setting('vibescaling.retry_base_delay')::interval)
                                       * power(2, least(attempt - 1, 30)))
                                 * (0.5 + random() / 2))
$$;

-- Records a failed dispatch of a post: its message and SQLSTATE, whether
-- trying again later may succeed (retryable), and TikTok's Retry-After in
-- seconds (NULL without one). A retryable failure leaves the post
-- scheduled with attempts + 1 and next_attempt_at set by exponential
-- backoff, until vibescaling.max_attempts; with a Retry-After, the wait is
-- the larger of the backoff and Retry-After: never sooner than TikTok
-- asked, and not capped by vibescaling.retry_max_delay. Both are counted
-- from the answer's moment on the run's clock: as_of plus the time since
-- the CALL began (statement_timestamp() stays the CALL's start across its
-- COMMITs), so a round that ends a minute into a run waits from then, and
-- a run for another moment (as_of in the past or future) stays on its own
-- timeline. Any other failure fails the post with last_error.
CREATE FUNCTION vibescaling._record_dispatch_failure(p_post_id uuid, p_attempts integer, p_message text,
                                                     p_state text, p_retryable boolean, p_retry_after integer,
                                                     as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_retry boolean := p_retryable AND p_attempts + 1 < current_setting('vibescaling.max_attempts')::integer;
BEGIN
    UPDATE vibescaling.posts
       SET status = CASE WHEN v_retry THEN 'scheduled' ELSE 'failed' END,
           attempts = p_attempts + 1,
           next_attempt_at = CASE WHEN v_retry
                                  THEN as_of + (clock_timestamp() - statement_timestamp())
                                       + greatest(vibescaling._retry_delay(p_attempts + 1),
                                                  make_interval(secs => coalesce(p_retry_after, 0)))
                             END,
           last_error = format('%s [SQLSTATE %s]%s', p_message, p_state,
                               CASE WHEN v_retry THEN format(' (attempt %s, will retry)', p_attempts + 1)
                                    WHEN p_retryable THEN format(' (attempt %s, no attempts left)', p_attempts + 1)
                                    ELSE '' END)
     WHERE id = p_post_id;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._record_dispatch_failure(uuid, integer, text, text, boolean, integer, timestamptz) FROM PUBLIC;

-- Records on a post a TikTok call that failed (call: its answer), as
-- _call_failure reads it: retried later when TikTok or the network may
-- answer otherwise, never an init whose outcome is unknown: that post is
-- 'publishing' until a settlement says whether TikTok has it
-- (settle_unknown_outcomes, or an operator's settle_post).
CREATE FUNCTION vibescaling._record_call_failure(p_post_id uuid, p_attempts integer, call vibescaling._call_result,
                                                 p_endpoint text, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record := vibescaling._call_failure(call, p_endpoint);
BEGIN
    IF f.unknown_init THEN
        UPDATE vibescaling.posts
           SET status = 'publishing', attempts = p_attempts + 1, next_attempt_at = NULL,
               last_error = format('%s [SQLSTATE %s] (attempt %s; settle_unknown_outcomes looks for it on TikTok)',
                                   f.message, f.sqlstate, p_attempts + 1)
         WHERE id = p_post_id;
        RETURN;
    END IF;
    PERFORM vibescaling._record_dispatch_failure(p_post_id, p_attempts, f.message, f.sqlstate, f.retryable,
                                                 f.retry_after, as_of);
END
$$;
REVOKE ALL ON FUNCTION vibescaling._record_call_failure(uuid, integer, vibescaling._call_result, text, timestamptz) FROM PUBLIC;

-- Records on a post an error the publish steps raised (a refusal of our
-- own: a check, a lock, the log writer). Retried later only for class 53,
-- insufficient resources (the log writer or worker slots busy, the
-- tenant's upload quota for now): those pass; any other refusal fails the
-- post. TikTok's answers never come this way (_record_call_failure).
CREATE FUNCTION vibescaling._record_dispatch_error(p_post_id uuid, p_attempts integer, p_message text, p_state text,
                                                   as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM vibescaling._record_dispatch_failure(p_post_id, p_attempts, p_message, p_state, left(p_state, 2) = '53',
                                                 NULL, as_of);
END
$$;
REVOKE ALL ON FUNCTION vibescaling._record_dispatch_error(uuid, integer, text, text, timestamptz) FROM PUBLIC;

-- Applies the answer to one of a dispatcher round's calls (call: what
-- _tiktok_call_many gave) to its post, as _publish_locked would have (not
-- to be confused with settle_post, an operator's verdict): a
-- failed call is recorded from its answer (_record_call_failure); a
-- creator_info answer is checked against the post (_check_creator_allows);
-- an init answer is recorded (_record_published). A refusal these raise is
-- recorded by _record_dispatch_error. Returns true when the post goes on.
CREATE FUNCTION vibescaling._apply_call_answer(p vibescaling.posts, call vibescaling._call_result, p_endpoint text,
                                               as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
BEGIN
    IF NOT call.ok THEN
        PERFORM vibescaling._record_call_failure(p.id, p.attempts, call, p_endpoint, as_of);
        RETURN false;
    END IF;
    BEGIN
        IF p_endpoint = 'creator_info' THEN
            PERFORM vibescaling._check_creator_allows(p, call.data);
        ELSE
            PERFORM vibescaling._record_published(p, call, p_endpoint);
        END IF;
        RETURN true;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM vibescaling._record_dispatch_error(p.id, p.attempts, v_message, v_state, as_of);
        RETURN false;
    END;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._apply_call_answer(vibescaling.posts, vibescaling._call_result, text, timestamptz) FROM PUBLIC;

-- One post of a dispatcher round on its way out: the post as claimed, its
-- init's endpoint and options (_prepare_publish), whether it goes on (false
-- once a call's answer stopped it), and for a video the extension uploads,
-- what _prepare_upload found (NULL for the others).
CREATE TYPE vibescaling._round_item AS (post vibescaling.posts, endpoint text, options jsonb, going boolean,
                                        upload jsonb);

-- The end of a video's upload in an upload round, once TikTok accepted its
-- init (init: that answer): streams the chunks (_upload_accepted_video).
-- An expired upload URL gets a fresh init and upload, as publish_post's
-- would (_upload_video). uploaded: the video is all at TikTok, and init is
-- the result to record (its data, which holds the upload URL, left out);
-- else the failure is recorded on the post (_record_call_failure, or
-- _record_dispatch_error for a refusal of our own, such as an unreadable
-- source).
CREATE FUNCTION vibescaling._finish_round_upload(item vibescaling._round_item, INOUT init vibescaling._call_result,
                                                 as_of timestamptz, OUT uploaded boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p         vibescaling.posts := item.post;
    v_chunks  jsonb;
    v_again   record;
    v_message text;
    v_state   text;
BEGIN
    uploaded := false;
    BEGIN
        v_chunks := vibescaling._upload_accepted_video(p, 'scheduler', item.upload, init);
        IF (v_chunks->>'ok')::boolean THEN
            init.data := '{}';
            uploaded := true;
        ELSIF v_chunks->>'error_code' = 'upload_url_expired' THEN
            v_again := vibescaling._upload_video(p, 'scheduler', item.endpoint, item.options);
            IF v_again.failed_endpoint IS NULL THEN
                init := v_again.call;
                uploaded := true;
            ELSE
                PERFORM vibescaling._record_call_failure(p.id, p.attempts, v_again.call, v_again.failed_endpoint, as_of);
            END IF;
        ELSE
            PERFORM vibescaling._record_call_failure(p.id, p.attempts,
                                                     jsonb_populate_record(NULL::vibescaling._call_result, v_chunks),
                                                     'upload_chunk', as_of);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM vibescaling._record_dispatch_error(p.id, p.attempts, v_message, v_state, as_of);
    END;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._finish_round_upload(vibescaling._round_item, vibescaling._call_result, timestamptz) FROM PUBLIC;

-- One round of the dispatcher: up to max_posts due posts, one per account,
-- published together in the caller's transaction. All their creator_info
-- calls go out at once, then all their inits (_tiktok_call_many: at most
-- vibescaling.max_concurrent_requests in flight). The checks, the failure
-- handling and the records are those of _publish_locked, post by post.
-- With uploads, the round takes only the videos the extension uploads
-- (dispatch_due_uploads): each is checked and described before the calls
-- (_prepare_upload), and once TikTok accepted the inits their chunks are
-- streamed, one video after another (_finish_round_upload), before the
-- posts are recorded. Without, it takes the others.
-- Accounts in skip_accounts are left alone; the round declines (adds to
-- declined) accounts it should not batch: one whose earliest due post is
-- of the other kind (upload or not), one whose init or creator_info rate
-- limit is full now or held back by TikTok's Retry-After, one another
-- session is calling TikTok for (its advisory lock is taken), so that the
-- sequential pass, which waits for rate limits and locks, takes them.
-- processed: the posts it settled (posted, failed or rescheduled).
--
-- Safe as one transaction for many posts: every init is in the durable log
-- ("in flight", then its outcome) before and after it is sent. If the
-- round's transaction is lost (crash, cancel), the next run reconciles each
-- post TikTok accepted as posted, and fails (never resends) one whose init
-- has an unknown outcome (_prepare_publish).
CREATE FUNCTION vibescaling._dispatch_round(as_of timestamptz, max_posts integer, skip_accounts uuid[],
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
REVOKE ALL ON FUNCTION vibescaling._dispatch_round(timestamptz, integer, uuid[], boolean) FROM PUBLIC;

-- The dispatcher's next round (_dispatch_round, up to round_size posts; with
-- uploads, of the videos the extension uploads) in the caller's
-- transaction: returns skip_accounts with the accounts the round declined
-- added, or NULL when the round found nothing to do.
--
-- Each round starts by discarding the session's cached plans (DISCARD
-- PLANS), so that the round's log lookups are planned for the log as it
-- is now. A generic plan made while this week's partition was nearly
-- empty (and ANALYZEd so: a sequential scan then looks free) would
-- otherwise read the growing partition from start to end for every post
-- of every later round of a burst: there is no statistics update, hence no
-- replanning, before autovacuum's next analyze. The planner sizes the
-- partition from its current number of pages, whatever its statistics
-- say; replanning costs a few milliseconds a round.
CREATE FUNCTION vibescaling._dispatch_next_round(as_of timestamptz, skip_accounts uuid[], round_size integer,
                                                 uploads boolean DEFAULT false)
RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_round record;
BEGIN
    DISCARD PLANS;
    v_round := vibescaling._dispatch_round(as_of, round_size, skip_accounts, uploads);
    IF v_round.processed = 0 AND cardinality(v_round.declined) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN skip_accounts || v_round.declined;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._dispatch_next_round(timestamptz, uuid[], integer, boolean) FROM PUBLIC;

-- Starts up to helpers background workers (src/pg/dispatch_helpers.cpp)
-- that dispatch the posts due at as_of beside the caller, in rounds of
-- round_size posts (with uploads: of the videos the extension uploads,
-- streamed one at a time), as the calling role with its vibescaling.* settings;
-- returns how many started (fewer when worker slots are short).
CREATE FUNCTION vibescaling._start_dispatch_helpers(as_of timestamptz, helpers integer, round_size integer,
                                                    uploads boolean)
RETURNS integer
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_start_dispatch_helpers';
REVOKE ALL ON FUNCTION vibescaling._start_dispatch_helpers(timestamptz, integer, integer, boolean) FROM PUBLIC;

-- Waits until the session's dispatch helpers have stopped; true if there were any.
CREATE FUNCTION vibescaling._wait_dispatch_helpers()
RETURNS boolean
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_wait_dispatch_helpers';
REVOKE ALL ON FUNCTION vibescaling._wait_dispatch_helpers() FROM PUBLIC;

-- How many posts are due at as_of, counted up to at_most: with uploads the
-- videos the extension uploads itself (dispatch_due_uploads sends them),
-- else the others (dispatch_due_posts), as _dispatch_next_single tells them
-- apart. Enough to size a run.
CREATE FUNCTION vibescaling._count_due(as_of timestamptz, uploads boolean, at_most integer)
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
REVOKE ALL ON FUNCTION vibescaling._count_due(timestamptz, boolean, integer) FROM PUBLIC;

-- Shares a dispatcher run among vibescaling.dispatch_sessions sessions:
-- starts the helpers the posts due at as_of call for (one per share of
-- max_concurrent_requests they fill) and returns the caller's own round
-- size, the part of max_concurrent_requests the helpers do not take. So
-- the run never has more than max_concurrent_requests calls in flight, and
-- a run with a few due posts starts no worker at all.
CREATE FUNCTION vibescaling._start_dispatch_sessions(as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_concurrency integer := current_setting('vibescaling.max_concurrent_requests')::integer;
    v_sessions    integer := least(current_setting('vibescaling.dispatch_sessions')::integer, v_concurrency);
    v_share       integer := v_concurrency / v_sessions;
    v_due         integer := vibescaling._count_due(as_of, false, v_concurrency);
    v_helpers     integer;
BEGIN
    v_helpers := least(v_sessions, ceil(v_due::numeric / v_share)::integer) - 1;
    IF v_helpers > 0 THEN
        v_helpers := vibescaling._start_dispatch_helpers(as_of, v_helpers, v_share, false);
    END IF;
    RETURN v_concurrency - greatest(v_helpers, 0) * v_share;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._start_dispatch_sessions(timestamptz) FROM PUBLIC;

-- Shares a run of dispatch_due_uploads among up to
-- vibescaling.dispatch_sessions sessions: spreads the videos due at as_of
-- that the extension uploads over the sessions, every session first (a
-- session streams one video at a time, so as many videos stream at once as
-- there are sessions), in rounds of up to 8 (a round's inits go out
-- together, then its videos stream one after another: a larger round
-- would keep its last upload URL waiting). Starts the helpers beyond the
-- caller and returns the round size.
CREATE FUNCTION vibescaling._start_upload_sessions(as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_round_max constant integer := 8;
    v_sessions  integer := current_setting('vibescaling.dispatch_sessions')::integer;
    v_due       integer := vibescaling._count_due(as_of, true, v_sessions * c_round_max);
    v_round     integer := greatest(1, least(c_round_max, v_due / v_sessions));
    v_helpers   integer := least(v_sessions, ceil(v_due::numeric / v_round)::integer) - 1;
BEGIN
    IF v_helpers > 0 THEN
        PERFORM vibescaling._start_dispatch_helpers(as_of, v_helpers, v_round, true);
    END IF;
    RETURN v_round;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._start_upload_sessions(timestamptz) FROM PUBLIC;

-- Publishes the earliest due post no other session holds, alone, in the
-- caller's transaction (FOR UPDATE SKIP LOCKED; _publish_attempt waits for
-- the account's rate limit): among the videos the extension uploads itself
-- when uploads, else among the others. A failure is recorded on the post
-- (_record_dispatch_failure). False when no such post is due.
CREATE FUNCTION vibescaling._dispatch_next_single(as_of timestamptz, uploads boolean)
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
REVOKE ALL ON FUNCTION vibescaling._dispatch_next_single(timestamptz, boolean) FROM PUBLIC;

-- Publishes every scheduled post due at as_of but the videos the extension
-- uploads itself (dispatch_due_uploads sends those, so that a slow video
-- source never holds up other posts). First in rounds (_dispatch_round): up
-- to a share of vibescaling.max_concurrent_requests posts, one per account,
-- whose calls go out together; each round is a transaction of its own.
-- Then one post at a time, one transaction each, for what the rounds
-- declined (accounts at their rate limit or busy in another session): that
-- pass waits for rate limits as publish_post does.
--
-- A burst is shared among up to vibescaling.dispatch_sessions sessions
-- (_start_dispatch_sessions): background workers run the same rounds and
-- pass beside this one, so that calls are in flight while a session works
-- through its round's checks and records. The run waits for them, then
-- looks once more for what a failed helper may have left.
--
-- FOR UPDATE SKIP LOCKED lets several dispatchers run at once without
-- touching the same post. Failures are recorded by _record_dispatch_failure
-- (transient ones retried with backoff, never sooner than TikTok's
-- Retry-After; an init of unknown outcome is never resent). Query cancel
-- stops the run and its helpers (committed rounds and posts stay done).
-- Call it as a statement of its own (inside a transaction block it raises
-- 2D000 before it sends anything):
--   CALL vibescaling.dispatch_due_posts();
--
-- pg_cron runs it as a superuser with search_path "$user", public, and a
-- procedure that COMMITs cannot pin its search_path with SET. So it pins it
-- for each of its transactions (set_config, local: at the start and after
-- every COMMIT, which ends the setting), and its body calls only the
-- schema-qualified functions above, which pin their own. It gives the
-- caller's path back at the end (for a caller whose transaction goes on).
CREATE PROCEDURE vibescaling.dispatch_due_posts(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_skip        uuid[];
    v_round_size  integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    -- A run commits each round, which it cannot do inside a transaction
    -- block or a query string of several statements. Committing here,
    -- before anything is sent, raises 2D000 in that case, instead of at a
    -- round's end after its calls went out. (The security suite reads
    -- this body: no unqualified call, a pin after every commit.)
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_round_size := vibescaling._start_dispatch_sessions(as_of);
    LOOP
        v_skip := ARRAY[]::uuid[];
        LOOP
            v_skip := vibescaling._dispatch_next_round(as_of, v_skip, v_round_size);
            EXIT WHEN v_skip IS NULL;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        LOOP
            EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, false);
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        -- Alone from here: once more, with the whole of max_concurrent_requests.
        EXIT WHEN NOT vibescaling._wait_dispatch_helpers();
        v_round_size := pg_catalog.current_setting('vibescaling.max_concurrent_requests')::integer;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;

-- Publishes every scheduled video due at as_of that the extension uploads
-- itself (FILE_UPLOAD from a URL it downloads, a large object or a media
-- row), as dispatch_due_posts does for the rest: in rounds (_dispatch_round
-- with uploads: their creator_info calls at once, then their inits, then
-- each video's chunks), each a transaction of its own, then one at a time
-- for what the rounds declined. Up to vibescaling.dispatch_sessions
-- sessions upload at once (_start_upload_sessions: background workers
-- beside the caller, which waits for them). Its own pg_cron job
-- (vibescaling-uploads): a source that is slow or never answers costs this
-- job its download budget (vibescaling.source_connect_timeout_ms,
-- source_stall_timeout_ms), never the other posts. Like dispatch_due_posts,
-- it pins the search path for each of its transactions and calls only
-- schema-qualified functions. Call it as a statement of its own:
--   CALL vibescaling.dispatch_due_uploads();
CREATE PROCEDURE vibescaling.dispatch_due_uploads(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_skip        uuid[];
    v_round_size  integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    -- A run commits each round, which it cannot do inside a transaction
    -- block or a query string of several statements. Committing here,
    -- before anything is sent, raises 2D000 in that case, instead of at a
    -- round's end after its calls went out. (The security suite reads
    -- this body: no unqualified call, a pin after every commit.)
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_round_size := vibescaling._start_upload_sessions(as_of);
    LOOP
        v_skip := ARRAY[]::uuid[];
        LOOP
            v_skip := vibescaling._dispatch_next_round(as_of, v_skip, v_round_size, true);
            EXIT WHEN v_skip IS NULL;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        LOOP
            EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, true);
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        -- Once more, alone, for what a failed helper may have left.
        EXIT WHEN NOT vibescaling._wait_dispatch_helpers();
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;
REVOKE ALL ON PROCEDURE vibescaling.dispatch_due_uploads(timestamptz) FROM PUBLIC;
COMMENT ON PROCEDURE vibescaling.dispatch_due_uploads(timestamptz) IS
    'Publishes scheduled videos the extension uploads itself (its own pg_cron job, so that slow sources hold up nothing else).';
COMMENT ON PROCEDURE vibescaling.dispatch_due_posts(timestamptz) IS
    'Publishes scheduled posts due at as_of (all but the videos the extension uploads: dispatch_due_uploads): in rounds of concurrent calls (vibescaling.max_concurrent_requests), then one by one for rate-limited accounts; retries transient failures with backoff (never sooner than TikTok''s Retry-After); safe to run concurrently.';

-- Raises unless pg_cron is installed in this database.
CREATE FUNCTION vibescaling._require_pg_cron()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
            USING ERRCODE = '55000',
                  HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, then CREATE EXTENSION pg_cron.';
    END IF;
END
$$;

-- Registers (or updates) the pg_cron jobs: vibescaling-dispatch runs the
-- dispatcher on the given schedule, vibescaling-uploads the uploads
-- (dispatch_due_uploads) on the same; vibescaling-refresh refreshes tokens
-- that expire within 30 minutes, every 15 minutes; vibescaling-logs keeps
-- the logs' weekly partitions (maintain_logs), hourly;
-- vibescaling-analytics rolls up the Analytics page's hourly tables
-- (roll_up_analytics), every 5 minutes; vibescaling-settle settles posts
-- whose init had an unknown outcome (settle_unknown_outcomes), every 5
-- minutes; vibescaling-metrics takes snapshots of public posts' and
-- accounts' counts (collect_metrics), every 15 minutes; vibescaling-recur
-- schedules the coming week's occurrences of repeating posts
-- (expand_recurrences), every 15 minutes;
-- vibescaling-poll-status follows publishes to their final state, every
-- minute. Returns the dispatch job's id.
CREATE FUNCTION vibescaling.enable_scheduler(schedule text DEFAULT '*/5 * * * *')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job_id bigint;
BEGIN
    IF enable_scheduler.schedule IS NULL THEN
        RAISE EXCEPTION 'schedule is required (cron syntax, e.g. ''*/5 * * * *'')' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_pg_cron();
    -- pg_cron runs a procedure that COMMITs only when the command is exactly one CALL.
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
       INTO v_job_id
      USING 'vibescaling-dispatch', enable_scheduler.schedule, 'CALL vibescaling.dispatch_due_posts()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-uploads', enable_scheduler.schedule, 'CALL vibescaling.dispatch_due_uploads()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-refresh', '*/15 * * * *', 'SELECT vibescaling.refresh_expiring_tokens()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-logs', '17 * * * *', 'CALL vibescaling.maintain_logs()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-analytics', '*/5 * * * *', 'SELECT vibescaling.roll_up_analytics()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-settle', '*/5 * * * *', 'SELECT vibescaling.settle_unknown_outcomes()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-metrics', '*/15 * * * *', 'SELECT vibescaling.collect_metrics()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-recur', '*/15 * * * *', 'SELECT vibescaling.expand_recurrences()';
    -- The logs' partitions for this week and the next, now rather than at the job's first run.
    PERFORM vibescaling._create_log_partition(t.parent, w)
       FROM vibescaling._log_tables() t, vibescaling._log_weeks_needed(t.parent) w;
    PERFORM vibescaling._schedule_status_poller();
    RETURN v_job_id;
END
$$;

-- Drops vibescaling's pg_cron jobs; false when there were none.
CREATE FUNCTION vibescaling.disable_scheduler()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job text;
    v_found boolean := false;
BEGIN
    PERFORM vibescaling._require_pg_cron();
    FOR v_job IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname IN ($1, $2, $3, $4, $5, $6, $7, $8)'
                 USING 'vibescaling-dispatch', 'vibescaling-uploads', 'vibescaling-refresh', 'vibescaling-logs',
                       'vibescaling-analytics', 'vibescaling-settle', 'vibescaling-metrics', 'vibescaling-recur' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job;
        v_found := true;
    END LOOP;
    IF vibescaling._unschedule_status_poller() THEN
        v_found := true;
    END IF;
    RETURN v_found;
END
$$;
