-- vibescaling 0.1.3 -> 0.1.4: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.4'" to load this file. \quit

-- _dispatch_next_round takes its round size: a run shares
-- max_concurrent_requests among its sessions (vibescaling.dispatch_sessions).
DROP FUNCTION vibescaling._dispatch_next_round(timestamptz, uuid[]);

-- One post of a dispatcher round on its way out: the post as claimed, its
-- init's endpoint and options (_prepare_publish), and whether it goes on
-- to its init (false once its creator_info answer stopped it).
CREATE TYPE vibescaling._round_item AS (post vibescaling.posts, endpoint text, options jsonb, going boolean);

CREATE OR REPLACE FUNCTION vibescaling._dispatch_round(as_of timestamptz, max_posts integer, skip_accounts uuid[],
                                            OUT processed integer, OUT declined uuid[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p           vibescaling.posts;
    v_prep      record;
    v_message   text;
    v_state     text;
    v_items     vibescaling._round_item[] := '{}';  -- the posts going out, in order
    v_sent      vibescaling._round_item[];          -- those whose init is sent, in order
    v_calls     jsonb;
    v_results   jsonb;
    v_claimed   vibescaling.posts[];  -- the due posts the round locked
    v_accounts  uuid[];      -- their accounts
    v_room      integer[];   -- v_room[i]: claimed post i's init room, v_room[v_claimed_n + i]: its creator_info room
    v_claimed_n integer;
    v_since     timestamptz;  -- the oldest claimed post's creation: no call for them is older
    v_init_logged uuid[];     -- the claimed posts with an init in the log
    i           integer;
    j           integer;
BEGIN
    processed := 0;
    declined := '{}';

    -- The earliest due post of each account not skipped, earliest first.
    -- Candidates beyond max_posts: other dispatchers (helpers of the same
    -- run) hold the first ones, and the lock skips them.
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
           AND ((p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload')
                OR v_room[i] = 0
                OR p.mode = 'direct' AND v_room[v_claimed_n + i] = 0
                OR NOT pg_try_advisory_xact_lock(hashtext('vibescaling.rate_limit'), hashtext(p.tiktok_account_id::text))) THEN
            declined := declined || p.tiktok_account_id;
            CONTINUE;
        END IF;
        BEGIN
            v_prep := vibescaling._prepare_publish(p, 'scheduler', NOT (p.id = ANY (v_init_logged)));
            IF v_prep.reconciled IS NULL THEN
                v_items := v_items || ROW(p, v_prep.endpoint, v_prep.options, true)::vibescaling._round_item;
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
      FROM unnest(v_items) WITH ORDINALITY t(post, endpoint, options, going, n)
     WHERE (t.post).mode = 'direct';
    IF v_calls IS NOT NULL THEN
        v_results := vibescaling._tiktok_call_many(v_calls);
        j := 0;
        FOR i IN 1 .. cardinality(v_items) LOOP
            CONTINUE WHEN ((v_items[i]).post).mode <> 'direct';
            j := j + 1;
            IF NOT vibescaling._settle_call((v_items[i]).post, v_results->(j - 1), 'creator_info', as_of) THEN
                v_items[i].going := false;
                processed := processed + 1;
            END IF;
        END LOOP;
    END IF;

    -- All the inits at once (each logged "in flight" first).
    v_sent := ARRAY(SELECT ROW(t.post, t.endpoint, t.options, t.going)::vibescaling._round_item
                      FROM unnest(v_items) WITH ORDINALITY t(post, endpoint, options, going, n)
                     WHERE t.going
                     ORDER BY t.n);
    IF cardinality(v_sent) = 0 THEN
        RETURN;
    END IF;
    SELECT jsonb_agg(jsonb_build_object('endpoint', t.endpoint, 'tiktok_account_id', (t.post).tiktok_account_id,
                                        'post_id', (t.post).id, 'trigger', 'scheduler', 'options', t.options)
                     ORDER BY t.n)
      INTO v_calls
      FROM unnest(v_sent) WITH ORDINALITY t(post, endpoint, options, going, n);
    v_results := vibescaling._tiktok_call_many(v_calls);
    processed := processed + cardinality(v_sent);
    -- What TikTok accepted is recorded for all posts at once; the rest one by one.
    PERFORM vibescaling._record_published_many(
                ARRAY(SELECT t.post FROM unnest(v_sent) WITH ORDINALITY t(post, endpoint, options, going, n) ORDER BY t.n),
                v_results,
                ARRAY(SELECT t.endpoint FROM unnest(v_sent) WITH ORDINALITY t(post, endpoint, options, going, n) ORDER BY t.n));
    FOR j IN 1 .. cardinality(v_sent) LOOP
        CONTINUE WHEN vibescaling._init_accepted(v_results->(j - 1));
        PERFORM vibescaling._settle_call((v_sent[j]).post, v_results->(j - 1), (v_sent[j]).endpoint, as_of);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_round(as_of timestamptz, skip_accounts uuid[], round_size integer)
RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_round record;
BEGIN
    DISCARD PLANS;
    v_round := vibescaling._dispatch_round(as_of, round_size, skip_accounts);
    IF v_round.processed = 0 AND cardinality(v_round.declined) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN skip_accounts || v_round.declined;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._dispatch_next_round(timestamptz, uuid[], integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._start_dispatch_helpers(as_of timestamptz, helpers integer, round_size integer,
                                                    uploads boolean)
RETURNS integer
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_start_dispatch_helpers';

REVOKE ALL ON FUNCTION vibescaling._start_dispatch_helpers(timestamptz, integer, integer, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._wait_dispatch_helpers()
RETURNS boolean
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_wait_dispatch_helpers';

REVOKE ALL ON FUNCTION vibescaling._wait_dispatch_helpers() FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._count_due(as_of timestamptz, uploads boolean, at_most integer)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer
      FROM (SELECT FROM vibescaling.posts p
             WHERE p.status = 'scheduled'
               AND coalesce(p.next_attempt_at, p.scheduled_at) <= as_of
               AND (p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload') = uploads
             LIMIT at_most) d
$$;

REVOKE ALL ON FUNCTION vibescaling._count_due(timestamptz, boolean, integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._start_dispatch_sessions(as_of timestamptz)
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

CREATE OR REPLACE FUNCTION vibescaling._start_upload_sessions(as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_due integer := vibescaling._count_due(as_of, true,
                                            current_setting('vibescaling.dispatch_sessions')::integer);
BEGIN
    IF v_due > 1 THEN
        PERFORM vibescaling._start_dispatch_helpers(as_of, v_due - 1, 1, true);
    END IF;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._start_upload_sessions(timestamptz) FROM PUBLIC;

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_posts(as_of timestamptz DEFAULT pg_catalog.now())
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

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_uploads(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    PERFORM vibescaling._start_upload_sessions(as_of);
    LOOP
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

