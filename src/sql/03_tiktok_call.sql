-- vibescaling: the one function that talks to TikTok, and how its refusals are raised.

-- What one call to TikTok gave, as _tiktok_call and _tiktok_call_many
-- return it (built in C from the parsed reply, never from JSON text):
--   ok               TikTok answered and accepted (error.code "ok");
--   http_status      0 when no reply arrived;
--   error_code       TikTok's error.code, or ours for what never reached it
--                    (timeout, connect_failed, rate_limited, ...);
--   error_message    secrets masked;
--   log_id           TikTok's, '' without one;
--   publish_id       data.publish_id, '' without one;
--   data             the reply's data object ({} without one);
--   sqlstate         the failure's SQLSTATE (docs/errors.md), 00000 on success;
--   duration_ms      the HTTP exchange's wall time;
--   retryable        trying again later is safe and may succeed;
--   outcome_unknown  the request may have reached TikTok and we cannot tell
--                    what it did;
--   retry_after      the reply's Retry-After in seconds, NULL without one.
CREATE TYPE vibescaling._call_result AS (
    ok              boolean,
    http_status     integer,
    error_code      text,
    error_message   text,
    log_id          text,
    publish_id      text,
    data            jsonb,
    sqlstate        text,
    duration_ms     double precision,
    retryable       boolean,
    outcome_unknown boolean,
    retry_after     integer);

-- Calls one TikTok endpoint (C, src/pg/tiktok_call.cpp: a batch of one through
-- the call path of src/pg/call_batch.cpp, or an OAuth call): reads the account's
-- access token itself (tokens never travel through SQL), builds the request
-- from the flat options object, performs the HTTP call with the configured
-- timeouts, writes the dispatch_logs row in its own committed transaction,
-- and returns what TikTok answered (_call_result). It never raises for a
-- TikTok refusal: the caller decides (see _raise_tiktok_error).
CREATE FUNCTION vibescaling._tiktok_call(
    endpoint           text,
    tiktok_account_id  uuid,
    post_id            uuid,
    trigger            text,
    options            jsonb)
RETURNS vibescaling._call_result
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call_1_5'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling._tiktok_call(text, uuid, uuid, text, jsonb) FROM PUBLIC;

-- Many calls at once (C, src/pg/tiktok_call_many.cpp, through the same call
-- path as _tiktok_call): calls is an array of
-- {"endpoint", "tiktok_account_id", "post_id", "trigger", "options"}; the
-- answer is the array of their results, in order, each as _tiktok_call
-- returns it. At most vibescaling.max_concurrent_requests are in flight at
-- once, over kept-alive connections. The same rules as _tiktok_call
-- (tokens read in C, refresh before expiry and once after a 401, every
-- attempt logged, every call logged "in flight" before it is sent), except
-- that a call over its account's rate limit is not sent and not waited for:
-- its result is rate_limited (53000, retryable). OAuth endpoints are refused.
CREATE FUNCTION vibescaling._tiktok_call_many(calls jsonb)
RETURNS vibescaling._call_result[]
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call_many_1_5'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling._tiktok_call_many(jsonb) FROM PUBLIC;

-- This backend's kept-alive connections since it started, which
-- _tiktok_call_many and _tiktok_call use (all but the OAuth calls), and
-- chunk PUTs and video source downloads:
-- {"transfers", "connections_opened", "connections_reused"} (C,
-- src/pg/pool_stats.cpp). Fewer connections than transfers means
-- keep-alive spared the handshakes.
CREATE FUNCTION vibescaling.http_pool_stats()
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_http_pool_stats'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling.http_pool_stats() FROM PUBLIC;

-- The HINT of a failure worth retrying later (for people and the HTTP API).
CREATE FUNCTION vibescaling._transient_hint()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'The failure is transient; try again later.'::text $$;

-- What a failed call (call: _tiktok_call's answer) means, decided in one
-- place for those who raise it (_raise_tiktok_error) and for the
-- dispatcher, which records it on the post (_record_call_failure):
--   message      TikTok's code and log_id; for an init whose request may
--                have reached TikTok, that its outcome is unknown;
--   sqlstate     from the core's mapping table (docs/errors.md);
--   retryable    whether trying again later may succeed: the core's
--                verdict, never for an init of unknown outcome (resending
--                could post twice; other calls create nothing);
--   retry_after  TikTok's Retry-After in seconds, NULL without one;
--   unknown_init the init may have reached TikTok (settle_post decides).
CREATE FUNCTION vibescaling._call_failure(call vibescaling._call_result, endpoint text,
                                          OUT message text, OUT sqlstate text, OUT retryable boolean,
                                          OUT retry_after integer, OUT unknown_init boolean)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    unknown_init := coalesce(call.outcome_unknown, false)
                    AND endpoint IN ('video_init', 'inbox_video_init', 'content_init');
    message := format('TikTok %s failed: %s (log_id %s)', endpoint, call.error_code,
                      coalesce(nullif(call.log_id, ''), 'none'))
               || CASE WHEN unknown_init THEN ': the request may have reached TikTok, its outcome is unknown' ELSE '' END;
    sqlstate := call.sqlstate;
    retryable := coalesce(call.retryable, false) AND NOT unknown_init;
    retry_after := call.retry_after;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._call_failure(vibescaling._call_result, text) FROM PUBLIC;

-- Raises the error for a failed TikTok call (_call_failure says what it
-- means): the message, the SQLSTATE, and a DETAIL with what TikTok
-- answered for people and the HTTP API (" retry_after=N" last when TikTok
-- sent a Retry-After). Its HINT says what to do: wait and try again, or
-- settle an init of unknown outcome. Nothing in the extension reads the
-- DETAIL or HINT back: the dispatcher records failed calls from their
-- answers (_record_call_failure).
CREATE FUNCTION vibescaling._raise_tiktok_error(call vibescaling._call_result, endpoint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f        record := vibescaling._call_failure(call, endpoint);
    v_detail text := format('http_status=%s error_code=%s log_id=%s outcome_unknown=%s message=%s',
                            coalesce(call.http_status::text, 'none'), call.error_code,
                            coalesce(call.log_id, ''), call.outcome_unknown::text,
                            coalesce(call.error_message, ''))
                         || CASE WHEN f.retry_after IS NOT NULL THEN format(' retry_after=%s', f.retry_after) ELSE '' END;
BEGIN
    IF f.unknown_init THEN
        RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail,
              HINT = 'Check the TikTok account, then call vibescaling.settle_post(post_id, on_tiktok, publish_id).';
    END IF;
    IF f.retryable THEN
        RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail,
                              HINT = vibescaling._transient_hint();
    END IF;
    RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._raise_tiktok_error(vibescaling._call_result, text) FROM PUBLIC;

-- TikTok's per-token rate limits: the endpoints that share a limit, and the
-- limit per window (video/init, inbox/video/init and content/init: 6;
-- status/fetch: 30; creator_info/query: 20; the Display API's video/list
-- and video/query, and user/info: 600 each). NULL: not limited.
CREATE FUNCTION vibescaling._rate_limit_bucket(endpoint text, OUT endpoints text[], OUT calls integer)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: a SQL function returning a record is never inlined,
    -- and is planned again at every call.
    IF endpoint IN ('video_init', 'inbox_video_init', 'content_init') THEN
        endpoints := ARRAY['video_init', 'inbox_video_init', 'content_init'];
        calls := 6;
    ELSIF endpoint = 'status_fetch' THEN
        endpoints := ARRAY[endpoint];
        calls := 30;
    ELSIF endpoint = 'creator_info' THEN
        endpoints := ARRAY[endpoint];
        calls := 20;
    ELSIF endpoint IN ('video_list', 'video_query', 'user_stats') THEN
        endpoints := ARRAY[endpoint];
        calls := 600;
    END IF;
END
$$;

-- The advisory lock that makes an account's rate-limit count and the calls
-- that follow it one step across backends (held until the transaction ends).
-- plpgsql, not sql: a sql function with a SET clause is never inlined, so
-- PostgreSQL 15 would parse and plan its body at every call (twice a publish).
CREATE FUNCTION vibescaling._rate_limit_lock(account_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.rate_limit'), hashtext(account_id::text));
END
$$;

-- The calls of these accounts to any of these endpoints that count against
-- TikTok's rate limit, made within the current window: what the durable
-- dispatch log holds, where every call for an account is logged "in
-- flight" before it is sent. Calls that never reached TikTok (no HTTP
-- status, outcome known) do not count.
CREATE FUNCTION vibescaling._rate_limit_calls(account_ids uuid[], endpoints text[])
RETURNS TABLE (account_id uuid, endpoint text, called_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    -- A variable rather than an expression in the query: plpgsql hands the
    -- planner its value, which then leaves out the log's older partitions
    -- (neither planning nor locking them).
    v_since timestamptz := clock_timestamp() - current_setting('vibescaling.rate_limit_window')::interval;
BEGIN
    RETURN QUERY
        SELECT l.tiktok_account_id, l.endpoint, l.created_at
          FROM vibescaling.dispatch_logs l
         WHERE l.tiktok_account_id = ANY (_rate_limit_calls.account_ids)
           AND l.endpoint = ANY (_rate_limit_calls.endpoints)
           AND l.created_at > v_since
           AND (l.http_status IS NOT NULL OR l.outcome_unknown);
END
$$;

-- Until when TikTok asked these accounts to wait before their next call of
-- these endpoints: each answer of the last day with a Retry-After whose
-- wait has not passed, counted from the moment of the answer (the call's
-- in-flight row was written just before it was sent, and the answer came
-- duration_ms later), plus one second: the row's created_at is the log
-- writer's transaction start, a few milliseconds before the request left,
-- so without it the hold could end that much before TikTok's (CI saw an
-- init arrive 0.000 s early: test/system/crash_inflight.sh, part c). It is read from the durable log, so a wait outlives
-- the caller's transaction: a round that is cancelled or crashes after a
-- 429 has lost its record of the backoff, never TikTok's Retry-After.
CREATE FUNCTION vibescaling._rate_limit_holds(account_ids uuid[], endpoints text[])
RETURNS TABLE (account_id uuid, endpoint text, until timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_since timestamptz := v_now - interval '1 day';
BEGIN
    RETURN QUERY
        SELECT h.tiktok_account_id, h.endpoint, h.until
          FROM (SELECT l.tiktok_account_id, l.endpoint,
                       l.created_at + make_interval(secs => coalesce(l.duration_ms, 0) / 1000 + l.retry_after + 1) AS until
                  FROM vibescaling.dispatch_logs l
                 WHERE l.tiktok_account_id = ANY (_rate_limit_holds.account_ids)
                   AND l.created_at > v_since
                   AND l.retry_after IS NOT NULL
                   AND l.endpoint = ANY (_rate_limit_holds.endpoints)
                   AND l.http_status IS NOT NULL) h
         WHERE h.until > v_now;
END
$$;

-- Seconds until the account may make one more call of this endpoint's rate
-- limit bucket (0: now): after TikTok's last Retry-After for the bucket
-- (_rate_limit_holds), and once the window has room, counting its calls in
-- the durable dispatch log, which every backend sees at once
-- (_rate_limit_calls). The account's advisory lock (_rate_limit_lock)
-- makes the count and the call that follows one step across backends
-- (held until the caller's transaction ends: the dispatcher commits per
-- round).
CREATE FUNCTION vibescaling._rate_limit_wait(account_id uuid, endpoint text)
RETURNS double precision
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b        record := vibescaling._rate_limit_bucket(endpoint);
    v_window interval := current_setting('vibescaling.rate_limit_window')::interval;
    v_oldest timestamptz;   -- the oldest call still in the window when the bucket is full
    v_hold   timestamptz;
BEGIN
    IF b.endpoints IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM vibescaling._rate_limit_lock(account_id);
    SELECT max(h.until) INTO v_hold FROM vibescaling._rate_limit_holds(ARRAY[account_id], b.endpoints) h;
    -- The calls-th most recent call in the window, if there are that many.
    SELECT min(recent.called_at) INTO v_oldest
      FROM (SELECT c.called_at FROM vibescaling._rate_limit_calls(ARRAY[account_id], b.endpoints) c
             ORDER BY c.called_at DESC
             LIMIT b.calls) recent
    HAVING count(*) >= b.calls;
    IF v_oldest IS NULL AND v_hold IS NULL THEN
        RETURN 0;
    END IF;
    RETURN greatest(extract(epoch FROM greatest(v_oldest + v_window, v_hold) - clock_timestamp()), 0.001);
END
$$;

-- For each (account_ids[i], endpoints[i]): how many more calls of the
-- endpoint's bucket the account may make now. None while TikTok's
-- Retry-After holds it back (_rate_limit_holds), else the bucket's limit
-- less its calls within the window (_rate_limit_calls), as
-- _rate_limit_wait counts them; NULL for an endpoint without a limit (or
-- no account). Two queries of the log for the whole batch, however many
-- accounts: a dispatcher round asks once for all its posts.
CREATE FUNCTION vibescaling._rate_limit_room(account_ids uuid[], endpoints text[])
RETURNS integer[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_room integer[];
BEGIN
    -- bucket_of: every endpoint of the buckets asked about, with its bucket
    -- (named by its first endpoint) and the bucket's limit; _rate_limit_bucket
    -- is asked once per distinct endpoint, not once per call or log row.
    WITH bucket_of AS (SELECT DISTINCT e AS endpoint, b.endpoints[1] AS bucket, b.calls
                         FROM (SELECT DISTINCT x FROM unnest(endpoints) x) d,
                              LATERAL vibescaling._rate_limit_bucket(d.x) b,
                              LATERAL unnest(b.endpoints) e),
         used AS (SELECT c.account_id, m.bucket, count(*) AS n
                    FROM vibescaling._rate_limit_calls(account_ids, ARRAY(SELECT endpoint FROM bucket_of)) c
                    JOIN bucket_of m ON m.endpoint = c.endpoint
                   GROUP BY 1, 2),
         held AS (SELECT DISTINCT h.account_id, m.bucket
                    FROM vibescaling._rate_limit_holds(account_ids, ARRAY(SELECT endpoint FROM bucket_of)) h
                    JOIN bucket_of m ON m.endpoint = h.endpoint)
    SELECT array_agg(CASE WHEN m.calls IS NULL OR w.a IS NULL THEN NULL
                          WHEN h.account_id IS NOT NULL THEN 0
                          ELSE greatest(m.calls - coalesce(u.n, 0), 0)::integer
                     END ORDER BY w.i)
      INTO v_room
      FROM unnest(account_ids, endpoints) WITH ORDINALITY w(a, e, i)
      LEFT JOIN bucket_of m ON m.endpoint = w.e
      LEFT JOIN used u ON u.account_id = w.a AND u.bucket = m.bucket
      LEFT JOIN held h ON h.account_id = w.a AND h.bucket = m.bucket;
    RETURN coalesce(v_room, '{}');
END
$$;

-- For a batch of calls (account_ids[i], endpoints[i]): which may be sent now
-- without exceeding the accounts' rate limits or TikTok's Retry-After, in
-- order (earlier calls get the free slots first). Takes the accounts'
-- advisory locks, in a fixed order so that two batches never deadlock,
-- until the transaction ends.
CREATE FUNCTION vibescaling._rate_limit_allowance(account_ids uuid[], endpoints text[])
RETURNS boolean[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_allowed boolean[];
BEGIN
    PERFORM vibescaling._rate_limit_lock(a)
       FROM (SELECT DISTINCT a FROM unnest(account_ids) a ORDER BY a) sorted;
    SELECT array_agg(x.allowed ORDER BY x.i) INTO v_allowed
      FROM (SELECT c.i,
                   c.room IS NULL
                   OR row_number() OVER (PARTITION BY c.a, b.endpoints[1] ORDER BY c.i) <= c.room AS allowed
              FROM unnest(account_ids, endpoints, vibescaling._rate_limit_room(account_ids, endpoints))
                   WITH ORDINALITY c(a, e, room, i),
                   LATERAL vibescaling._rate_limit_bucket(c.e) b) x;
    RETURN coalesce(v_allowed, '{}');
END
$$;
REVOKE ALL ON FUNCTION vibescaling._rate_limit_allowance(uuid[], text[]) FROM PUBLIC;
