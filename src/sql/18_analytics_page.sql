-- vibescaling: the data of the Analytics page (api/analytics/), for a
-- tenant and for an operator who sees every tenant.
--
-- A page over millions of log rows must answer in a fraction of a second,
-- so its charts read hourly rollups of the dispatch log and the posts
-- (tables of a few rows per tenant, endpoint and hour), kept by
-- roll_up_analytics() (pg_cron job vibescaling-analytics, every 5 minutes,
-- for the hours that ended 10 minutes ago or more: by then every call's
-- "in flight" row has its outcome). The hours after that are read from the
-- raw rows, through the log's BRIN index on created_at: the page is exact
-- to the second. Latencies and delays are kept as histograms with four
-- buckets per doubling, so a percentile is known to within 9 %.

-- What has been rolled up: every hour before rolled_until. No row until
-- the first roll-up (nothing rolled up): a row the install script wrote
-- would clash with the dumped one when pg_restore copies it back.
CREATE TABLE vibescaling.analytics_rollup_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_until  timestamptz NOT NULL DEFAULT '-infinity'
);
COMMENT ON TABLE vibescaling.analytics_rollup_state IS
    'The analytics rollups hold every hour before rolled_until (roll_up_analytics).';

-- Calls to TikTok per hour, tenant, endpoint, outcome and error code. The
-- tenant is the account's owner ('' for calls of no tenant's account);
-- owner '*' rows hold every tenant together, for operators.
CREATE TABLE vibescaling.analytics_calls_hourly (
    hour         timestamptz NOT NULL,
    owner        text NOT NULL,
    endpoint     text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('success', 'failure', 'unknown')),
    error_code   text NOT NULL,          -- '' when none
    calls        bigint NOT NULL,
    lat_buckets  smallint[] NOT NULL,    -- latency histogram: bucket numbers (_hist_value) ...
    lat_counts   bigint[] NOT NULL,      -- ... and the calls in each
    PRIMARY KEY (owner, hour, endpoint, outcome, error_code)
);
COMMENT ON TABLE vibescaling.analytics_calls_hourly IS
    'Calls to TikTok per hour, tenant (owner; * = all), endpoint, outcome and error code, with a latency histogram.';

-- Posts sent per account and UTC day (TikTok counts its caps per creator
-- and day): Direct Posts, inbox uploads, and refusals.
CREATE TABLE vibescaling.analytics_account_days (
    day                date NOT NULL,
    tiktok_account_id  uuid NOT NULL,
    owner              text NOT NULL,
    direct_posts       bigint NOT NULL,
    inbox_posts        bigint NOT NULL,
    failed_inits       bigint NOT NULL,
    PRIMARY KEY (owner, day, tiktok_account_id)
);
COMMENT ON TABLE vibescaling.analytics_account_days IS
    'Inits accepted (Direct Post, inbox) and refused per account and UTC day.';

-- How late scheduled posts went out (posted_at - scheduled_at), per hour
-- of posting and tenant ('*' = all).
CREATE TABLE vibescaling.analytics_delay_hourly (
    hour           timestamptz NOT NULL,
    owner          text NOT NULL,
    posts          bigint NOT NULL,
    delay_buckets  smallint[] NOT NULL,   -- delay histogram, seconds
    delay_counts   bigint[] NOT NULL,
    PRIMARY KEY (owner, hour)
);
COMMENT ON TABLE vibescaling.analytics_delay_hourly IS
    'Scheduled posts published per hour and tenant (* = all), with a histogram of their delay in seconds.';

-- The inits of unknown outcome (sent, no answer read) of the rolled-up
-- hours, for vibescaling.unknown_outcomes: the log has no index on
-- outcome_unknown (replacing a call's "in flight" row stays a HOT update).
CREATE TABLE vibescaling.analytics_unknown_inits (
    post_id            uuid NOT NULL,
    created_at         timestamptz NOT NULL,
    tiktok_account_id  uuid,
    endpoint           text NOT NULL,
    error_code         text,
    log_id             text,
    PRIMARY KEY (post_id, created_at)
);
COMMENT ON TABLE vibescaling.analytics_unknown_inits IS
    'Inits of unknown outcome found by roll_up_analytics (the rolled-up hours of dispatch_logs).';

-- The schedule delay's rollup finds an hour's posts by posted_at.
CREATE INDEX posts_posted_at_idx ON vibescaling.posts (posted_at) WHERE posted_at IS NOT NULL;

-- Tenants read their own rows (the page's function filters by tenant
-- itself; these keep a direct read honest too).
ALTER TABLE vibescaling.analytics_calls_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.analytics_account_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.analytics_delay_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_calls_hourly ON vibescaling.analytics_calls_hourly
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE POLICY tenant_account_days ON vibescaling.analytics_account_days
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE POLICY tenant_delay_hourly ON vibescaling.analytics_delay_hourly
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));

-- The value a histogram bucket stands for: the geometric middle of
-- [2^(b/4) - 1, 2^((b+1)/4) - 1). The bucket of a value v >= 0 is
-- floor(4 * ln(v + 1) / ln 2), spelled inline where rows are bucketed (a
-- function call per row would cost more than the rest of the query).
CREATE FUNCTION vibescaling._hist_value(bucket integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT power(2, (bucket + 0.5) / 4.0) - 1
$$;

-- The q-quantile (0 < q < 1) of a histogram given as parallel arrays of
-- bucket numbers and counts (a bucket may appear more than once).
CREATE FUNCTION vibescaling._hist_quantile(buckets smallint[], counts bigint[], q double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._hist_value(min(h.b))
      FROM (SELECT b, sum(sum(n)) OVER (ORDER BY b) AS cum, sum(sum(n)) OVER () AS total
              FROM unnest(buckets, counts) AS u(b, n) GROUP BY b) h
     WHERE h.cum >= q * h.total
$$;

-- The calls rows of [p_from, p_to) from the raw log, as the rollup holds
-- them: per hour, tenant (and '*'), endpoint, outcome, error code.
-- These readers of the raw rows are plpgsql planned for each call's own
-- period (force_custom_plan): a generic plan cannot tell the last hour of
-- the log (a few BRIN ranges) from all of it.
CREATE FUNCTION vibescaling._analytics_calls_from_log(p_from timestamptz, p_to timestamptz)
RETURNS SETOF vibescaling.analytics_calls_hourly
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
        WITH calls AS (
            SELECT date_trunc('hour', l.created_at) AS hour, coalesce(a.owner, '') AS owner, l.endpoint,
                   CASE WHEN l.outcome_unknown THEN 'unknown' ELSE l.outcome END AS outcome,
                   coalesce(l.error_code, '') AS error_code,
                   least(63, floor(4 * ln(greatest(coalesce(l.duration_ms, 0), 0) + 1) / 0.6931471805599453))::smallint AS bucket
              FROM vibescaling.dispatch_logs l
              LEFT JOIN vibescaling.tiktok_accounts a ON a.id = l.tiktok_account_id
             WHERE l.created_at >= p_from AND l.created_at < p_to
               AND l.endpoint <> 'webhook'),
        per_bucket AS (
            SELECT hour, CASE WHEN grouping(owner) = 1 THEN '*' ELSE owner END AS owner,
                   endpoint, outcome, error_code, bucket, count(*) AS n
              FROM calls
             GROUP BY GROUPING SETS ((hour, owner, endpoint, outcome, error_code, bucket),
                                     (hour, endpoint, outcome, error_code, bucket)))
        SELECT hour, owner, endpoint, outcome, error_code, sum(n)::bigint,
               array_agg(bucket ORDER BY bucket), array_agg(n ORDER BY bucket)
          FROM per_bucket
         GROUP BY hour, owner, endpoint, outcome, error_code;
END
$$;

-- The account-day rows of [p_from, p_to) from the raw log: each accepted
-- init is a post sent (the post's mode says Direct Post or inbox); a
-- refused one is counted apart (an unknown outcome is neither).
CREATE FUNCTION vibescaling._analytics_account_days_from_log(p_from timestamptz, p_to timestamptz)
RETURNS SETOF vibescaling.analytics_account_days
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
        SELECT (l.created_at AT TIME ZONE 'UTC')::date, l.tiktok_account_id, coalesce(a.owner, ''),
               count(*) FILTER (WHERE l.outcome = 'success' AND NOT l.outcome_unknown
                                  AND l.endpoint <> 'inbox_video_init' AND coalesce(p.mode, 'direct') = 'direct'),
               count(*) FILTER (WHERE l.outcome = 'success' AND NOT l.outcome_unknown
                                  AND (l.endpoint = 'inbox_video_init' OR p.mode = 'inbox')),
               count(*) FILTER (WHERE l.outcome = 'failure' AND NOT l.outcome_unknown)
          FROM vibescaling.dispatch_logs l
          LEFT JOIN vibescaling.tiktok_accounts a ON a.id = l.tiktok_account_id
          LEFT JOIN vibescaling.posts p ON p.id = l.post_id
         WHERE l.created_at >= p_from AND l.created_at < p_to
           AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
           AND l.tiktok_account_id IS NOT NULL
         GROUP BY 1, 2, 3;
END
$$;

-- The delay rows of [p_from, p_to) from the posts: scheduled posts
-- published in it, per hour of posting and tenant (and '*').
CREATE FUNCTION vibescaling._analytics_delay_from_posts(p_from timestamptz, p_to timestamptz)
RETURNS SETOF vibescaling.analytics_delay_hourly
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
        WITH delays AS (
            SELECT date_trunc('hour', p.posted_at) AS hour, coalesce(p.owner, '') AS owner,
                   least(63, floor(4 * ln(greatest(extract(epoch FROM p.posted_at - p.scheduled_at)::float8, 0) + 1)
                                    / 0.6931471805599453))::smallint
                       AS bucket
              FROM vibescaling.posts p
             WHERE p.posted_at >= p_from AND p.posted_at < p_to
               AND p.status = 'posted' AND p.scheduled_at IS NOT NULL),
        per_bucket AS (
            SELECT hour, CASE WHEN grouping(owner) = 1 THEN '*' ELSE owner END AS owner, bucket, count(*) AS n
              FROM delays
             GROUP BY GROUPING SETS ((hour, owner, bucket), (hour, bucket)))
        SELECT hour, owner, sum(n)::bigint, array_agg(bucket ORDER BY bucket), array_agg(n ORDER BY bucket)
          FROM per_bucket
         GROUP BY hour, owner;
END
$$;

-- The inits of unknown outcome in the raw log (a query over it names its
-- hours, and the BRIN index on created_at finds them).
CREATE VIEW vibescaling._log_unknown_inits AS
    SELECT l.post_id, l.created_at, l.tiktok_account_id, l.endpoint, l.error_code, l.log_id
      FROM vibescaling.dispatch_logs l
     WHERE l.outcome_unknown AND l.post_id IS NOT NULL
       AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init');

-- Rolls up every hour that ended 10 minutes ago or more and is not rolled
-- up yet (all of the log's history on the first run); returns the new
-- rolled_until. One transaction; a concurrent run waits for this one.
CREATE FUNCTION vibescaling.roll_up_analytics()
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_from timestamptz;
    v_to   timestamptz := date_trunc('hour', now() - interval '10 minutes');
BEGIN
    INSERT INTO vibescaling.analytics_rollup_state DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT s.rolled_until INTO v_from FROM vibescaling.analytics_rollup_state s FOR UPDATE;
    IF v_from = '-infinity' THEN
        -- The first run: from the log's (and the posts') first hour.
        v_from := date_trunc('hour', least((SELECT min(l.created_at) FROM vibescaling.dispatch_logs l),
                                           (SELECT min(p.posted_at) FROM vibescaling.posts p)));
    END IF;
    IF v_from IS NULL OR v_from >= v_to THEN
        UPDATE vibescaling.analytics_rollup_state SET rolled_until = greatest(rolled_until, v_to);
        RETURN v_to;
    END IF;
    INSERT INTO vibescaling.analytics_calls_hourly
    SELECT * FROM vibescaling._analytics_calls_from_log(v_from, v_to);
    -- A UTC day can span two runs: add to it.
    INSERT INTO vibescaling.analytics_account_days AS d
    SELECT * FROM vibescaling._analytics_account_days_from_log(v_from, v_to)
        ON CONFLICT (owner, day, tiktok_account_id) DO UPDATE
       SET direct_posts = d.direct_posts + excluded.direct_posts,
           inbox_posts = d.inbox_posts + excluded.inbox_posts,
           failed_inits = d.failed_inits + excluded.failed_inits;
    INSERT INTO vibescaling.analytics_delay_hourly
    SELECT * FROM vibescaling._analytics_delay_from_posts(v_from, v_to);
    INSERT INTO vibescaling.analytics_unknown_inits
    SELECT * FROM vibescaling._log_unknown_inits u WHERE u.created_at >= v_from AND u.created_at < v_to
        ON CONFLICT DO NOTHING;
    -- Those settled, answered or published since wait no more.
    DELETE FROM vibescaling.analytics_unknown_inits u
     WHERE NOT EXISTS (SELECT 1 FROM vibescaling.unknown_outcomes o
                        WHERE o.post_id = u.post_id AND o.created_at = u.created_at);
    UPDATE vibescaling.analytics_rollup_state SET rolled_until = v_to;
    RETURN v_to;
END
$$;
COMMENT ON FUNCTION vibescaling.roll_up_analytics() IS
    'Rolls up the dispatch log and the posts into the Analytics page''s hourly tables (pg_cron job vibescaling-analytics).';

-- Whose analytics the caller may see. Through PostgREST (the JWT's role
-- claim): a tenant (vibescaling_user) its own, the owner argument absent or
-- the same; an operator (vibescaling_operator) any tenant's, or '*' for all
-- of them. A session that is not PostgREST's (a DBA, an application role
-- granted vibescaling.analytics) is no tenant: any, or all. 42501 else.
CREATE FUNCTION vibescaling._analytics_scope(p_owner text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role text := vibescaling._jwt_role();
    v_sub  text := vibescaling._jwt_sub();
BEGIN
    IF v_role = 'vibescaling_operator' THEN
        RETURN coalesce(p_owner, '*');
    ELSIF v_role = 'vibescaling_user' AND v_sub IS NOT NULL AND coalesce(p_owner, v_sub) = v_sub THEN
        RETURN v_sub;
    ELSIF v_role IS NULL AND SESSION_USER <> 'vibescaling_authenticator' THEN
        RETURN coalesce(p_owner, '*');
    END IF;
    RAISE EXCEPTION 'these analytics are not yours to read' USING ERRCODE = '42501';
END
$$;

-- Everything the Analytics page draws, for [p_from, p_to) and one tenant
-- (or every tenant: '*'), with days in time zone p_tz: see
-- vibescaling_api.analytics. The period starts at a whole hour (p_from is
-- taken down to its hour, as the rollups count whole hours); the posts per
-- account count whole UTC days.
-- JIT is off: over a large log the planner prices its queries above
-- jit_above_cost while they read a few thousand rows, and compiling them
-- cost 200 ms of a 240 ms call (10 million rows, test/bench/analytics.sh).
CREATE FUNCTION vibescaling.analytics(p_from timestamptz, p_to timestamptz, p_tz text DEFAULT 'UTC',
                                      p_owner text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_scope    text := vibescaling._analytics_scope(p_owner);
    v_rolled   timestamptz := coalesce((SELECT s.rolled_until FROM vibescaling.analytics_rollup_state s), '-infinity');
    v_split    timestamptz;
    v_bucket   text;
    v_result   jsonb;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'a period is required: from before to' USING ERRCODE = '22023';
    END IF;
    IF p_to - p_from > interval '400 days' THEN
        RAISE EXCEPTION 'a period is at most 400 days' USING ERRCODE = '22023';
    END IF;
    p_from := date_trunc('hour', p_from);
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names z WHERE z.name = p_tz) THEN
        RAISE EXCEPTION 'unknown time zone %', p_tz USING ERRCODE = '22023', HINT = 'An IANA name, such as Europe/Paris.';
    END IF;
    -- Hours for a period of up to two days, else days in the viewer's zone.
    v_bucket := CASE WHEN p_to - p_from <= interval '48 hours' THEN 'hour' ELSE 'day' END;
    -- Rolled-up hours before v_split, raw rows from it on.
    v_split := least(greatest(coalesce(v_rolled, '-infinity'), date_trunc('hour', p_from)), p_to);

    WITH
    -- Every bucket of the period, empty ones included, counted in the
    -- viewer's wall time (a day across a DST change has 23 or 25 hours).
    buckets AS (
        SELECT b AT TIME ZONE p_tz AS t
          FROM generate_series(date_trunc(v_bucket, p_from, p_tz) AT TIME ZONE p_tz, p_to AT TIME ZONE p_tz,
                               ('1 ' || v_bucket)::interval) b
         WHERE b AT TIME ZONE p_tz < p_to),
    calls AS (
        SELECT * FROM vibescaling.analytics_calls_hourly c
         WHERE c.owner = v_scope AND c.hour >= date_trunc('hour', p_from) AND c.hour < v_split
        UNION ALL
        SELECT * FROM vibescaling._analytics_calls_from_log(greatest(p_from, v_split), p_to) c
         WHERE c.owner = v_scope),
    calls_t AS (
        SELECT date_trunc(v_bucket, c.hour, p_tz) AS t, sum(c.calls) AS calls,
               sum(c.calls) FILTER (WHERE c.outcome = 'failure') AS failures,
               sum(c.calls) FILTER (WHERE c.outcome = 'unknown') AS unknown
          FROM calls c GROUP BY 1),
    latency AS (
        SELECT c.endpoint, sum(n) AS calls, array_agg(b) AS b, array_agg(n) AS n
          FROM calls c, unnest(c.lat_buckets, c.lat_counts) AS u(b, n)
         GROUP BY c.endpoint),
    failures AS (
        SELECT c.error_code, c.endpoint, sum(c.calls) AS failures
          FROM calls c WHERE c.outcome = 'failure'
         GROUP BY c.error_code, c.endpoint),
    days AS (
        SELECT d.day, d.tiktok_account_id, sum(d.direct_posts) AS direct_posts, sum(d.inbox_posts) AS inbox_posts,
               sum(d.failed_inits) AS failed_inits
          FROM (SELECT * FROM vibescaling.analytics_account_days d
                 WHERE (v_scope = '*' OR d.owner = v_scope)
                   AND d.day >= (p_from AT TIME ZONE 'UTC')::date
                   AND d.day <= ((v_split - interval '1 microsecond') AT TIME ZONE 'UTC')::date
                UNION ALL
                SELECT * FROM vibescaling._analytics_account_days_from_log(greatest(p_from, v_split), p_to) d
                 WHERE (v_scope = '*' OR d.owner = v_scope)) d
         GROUP BY d.day, d.tiktok_account_id),
    -- The accounts closest to TikTok's caps: the 20 with the most posts in
    -- a day (an operator's page would otherwise carry every account).
    busiest AS (
        SELECT d.tiktok_account_id FROM days d
         GROUP BY d.tiktok_account_id
         ORDER BY max(d.direct_posts + d.inbox_posts) DESC, sum(d.direct_posts + d.inbox_posts) DESC, d.tiktok_account_id
         LIMIT 20),
    delays AS (
        SELECT * FROM vibescaling.analytics_delay_hourly d
         WHERE d.owner = v_scope AND d.hour >= date_trunc('hour', p_from) AND d.hour < v_split
        UNION ALL
        SELECT * FROM vibescaling._analytics_delay_from_posts(greatest(p_from, v_split), p_to) d
         WHERE d.owner = v_scope),
    delay_t AS (
        SELECT date_trunc(v_bucket, d.hour, p_tz) AS t, sum(n) AS posts, array_agg(b) AS b, array_agg(n) AS n
          FROM delays d, unnest(d.delay_buckets, d.delay_counts) AS u(b, n)
         GROUP BY 1)
    SELECT jsonb_build_object(
        'period', jsonb_build_object('from', p_from, 'to', p_to, 'time_zone', p_tz, 'bucket', v_bucket,
                                     'owner', v_scope, 'rolled_up_until', v_rolled, 'as_of', now()),
        'calls', coalesce((SELECT jsonb_agg(jsonb_build_object(
                      't', b.t, 'calls', coalesce(c.calls, 0), 'failures', coalesce(c.failures, 0),
                      'unknown', coalesce(c.unknown, 0),
                      'success_rate', round(1 - (coalesce(c.failures, 0) + coalesce(c.unknown, 0))::numeric / c.calls, 4))
                      ORDER BY b.t) FROM buckets b LEFT JOIN calls_t c ON c.t = b.t), '[]'),
        'latency', coalesce((SELECT jsonb_agg(jsonb_build_object(
                      'endpoint', l.endpoint, 'calls', l.calls,
                      'p50_ms', round(vibescaling._hist_quantile(l.b, l.n, 0.5)::numeric, 1),
                      'p95_ms', round(vibescaling._hist_quantile(l.b, l.n, 0.95)::numeric, 1),
                      'p99_ms', round(vibescaling._hist_quantile(l.b, l.n, 0.99)::numeric, 1))
                      ORDER BY l.endpoint) FROM latency l), '[]'),
        'failures_by_code', coalesce((SELECT jsonb_agg(jsonb_build_object(
                      'error_code', f.error_code, 'endpoint', f.endpoint, 'failures', f.failures)
                      ORDER BY f.failures DESC, f.error_code, f.endpoint) FROM failures f), '[]'),
        'posts_per_account_day', coalesce((SELECT jsonb_agg(jsonb_build_object(
                      'day', d.day, 'tiktok_account_id', d.tiktok_account_id,
                      'account', coalesce(a.display_name, a.open_id),
                      'direct_posts', d.direct_posts, 'inbox_posts', d.inbox_posts, 'failed_inits', d.failed_inits)
                      ORDER BY d.day, coalesce(a.display_name, a.open_id), d.tiktok_account_id)
                      FROM days d LEFT JOIN vibescaling.tiktok_accounts a ON a.id = d.tiktok_account_id
                     WHERE d.tiktok_account_id IN (SELECT b.tiktok_account_id FROM busiest b)), '[]'),
        'accounts_posting', (SELECT count(DISTINCT d.tiktok_account_id) FROM days d),
        'caps', jsonb_build_object('direct_posts_per_day', current_setting('vibescaling.max_posts_per_account_day')::integer,
                                   'pending_inbox_per_24h', 5),
        'schedule_delay', coalesce((SELECT jsonb_agg(jsonb_build_object(
                      't', b.t, 'posts', coalesce(d.posts, 0),
                      'p50_s', round(vibescaling._hist_quantile(d.b, d.n, 0.5)::numeric, 1),
                      'p95_s', round(vibescaling._hist_quantile(d.b, d.n, 0.95)::numeric, 1))
                      ORDER BY b.t) FROM buckets b LEFT JOIN delay_t d ON d.t = b.t), '[]'))
      INTO v_result;
    RETURN v_result || vibescaling._analytics_now(v_scope)
                    || vibescaling._analytics_metrics(v_scope, p_from, p_to, p_tz);
END
$$;
COMMENT ON FUNCTION vibescaling.analytics(timestamptz, timestamptz, text, text) IS
    'The Analytics page''s charts for a period, one tenant or all (*): calls, failures, latency, caps, delays, current state.';

-- Posts whose latest init has an unknown outcome (sent, no answer read)
-- and that nothing settled since (vibescaling.settlements): each waits for
-- settle_unknown_outcomes, or an operator's settle_post. The
-- inits come from the rolled-up hours (analytics_unknown_inits) and the raw
-- rows after them; a call still under way (in flight for less than 10
-- minutes, its backend alive) is not unknown yet.
CREATE VIEW vibescaling.unknown_outcomes AS
    SELECT u.post_id, u.tiktok_account_id, u.endpoint, u.created_at, u.error_code, u.log_id, p.caption, p.status
      FROM (SELECT * FROM vibescaling.analytics_unknown_inits
            UNION ALL
            SELECT * FROM vibescaling._log_unknown_inits l
             WHERE l.created_at >= coalesce((SELECT s.rolled_until FROM vibescaling.analytics_rollup_state s), '-infinity')) u
      JOIN vibescaling.posts p ON p.id = u.post_id
     WHERE p.status <> 'posted'
       -- A call "in flight" may still be under way, for 10 minutes at most,
       -- and only while the backend that made it lives.
       AND NOT (u.error_code = 'in_flight' AND u.created_at > now() - interval '10 minutes'
                AND EXISTS (SELECT 1 FROM vibescaling.dispatch_logs l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.backend_pid
                             WHERE l.post_id = u.post_id AND l.created_at = u.created_at AND l.error_code = 'in_flight'))
       AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s
                        WHERE s.post_id = u.post_id AND s.created_at >= u.created_at)
       AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs s
                        WHERE s.post_id = u.post_id AND s.created_at > u.created_at
                          AND s.endpoint = u.endpoint AND NOT s.outcome_unknown);
COMMENT ON VIEW vibescaling.unknown_outcomes IS
    'Posts whose latest init has an unknown outcome and no settlement yet (settle_unknown_outcomes, settle_post).';

-- The page's "now": posts scheduled in the next 24 hours, publishes TikTok
-- is still processing, publishes of the last 30 days TikTok never
-- confirmed (unconfirmed), accounts that need the creator to authorise
-- again, each account's use of TikTok's caps (account_caps: today and the
-- 7 coming UTC days; the 100 busiest accounts; beside analytics' "caps",
-- the caps scheduling plans with by default), and (for every tenant
-- only, i.e. operators) the posts whose init has an unknown outcome and
-- wait for a settlement.
CREATE FUNCTION vibescaling._analytics_now(p_scope text)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'scheduled_next_24h', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'post_id', p.id, 'caption', left(p.caption, 80), 'scheduled_at', p.scheduled_at,
                'due_at', coalesce(p.next_attempt_at, p.scheduled_at), 'tiktok_account_id', p.tiktok_account_id,
                'account', coalesce(a.display_name, a.open_id))
                ORDER BY coalesce(p.next_attempt_at, p.scheduled_at), p.id)
              FROM (SELECT * FROM vibescaling.posts p
                     WHERE p.status = 'scheduled'
                       AND coalesce(p.next_attempt_at, p.scheduled_at) < now() + interval '24 hours'
                       AND (p_scope = '*' OR p.owner = p_scope)
                     ORDER BY coalesce(p.next_attempt_at, p.scheduled_at), p.id LIMIT 200) p
              LEFT JOIN vibescaling.tiktok_accounts a ON a.id = p.tiktok_account_id), '[]'),
        'processing', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'post_id', r.post_id, 'publish_id', r.publish_id, 'tiktok_status', r.tiktok_status,
                'since', r.created_at, 'checked_at', r.checked_at)
                ORDER BY r.created_at)
              FROM (SELECT r.* FROM vibescaling.publish_records r JOIN vibescaling.posts p ON p.id = r.post_id
                     WHERE r.status = 'processing' AND (p_scope = '*' OR p.owner = p_scope)
                     ORDER BY r.created_at LIMIT 200) r), '[]'),
        'unconfirmed', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'post_id', r.post_id, 'publish_id', r.publish_id, 'tiktok_status', r.tiktok_status,
                'since', r.created_at, 'caption', left(r.caption, 80))
                ORDER BY r.created_at DESC)
              FROM (SELECT r.*, p.caption FROM vibescaling.publish_records r JOIN vibescaling.posts p ON p.id = r.post_id
                     WHERE r.status = 'unconfirmed' AND r.created_at > now() - interval '30 days'
                       AND (p_scope = '*' OR p.owner = p_scope)
                     ORDER BY r.created_at DESC LIMIT 200) r), '[]'),
        'needs_reauth', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'tiktok_account_id', a.id, 'account', coalesce(a.display_name, a.open_id),
                'status_reason', a.status_reason, 'since', a.updated_at) ORDER BY a.updated_at)
              FROM vibescaling.tiktok_accounts a
             WHERE a.status = 'needs_reauth' AND (p_scope = '*' OR a.owner = p_scope)), '[]'),
        'account_caps', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'tiktok_account_id', c.tiktok_account_id, 'account', c.account, 'daily_cap', c.daily_cap,
                'cap_learned_from_tiktok', c.cap_learned_from_tiktok, 'inbox_uploads_24h', c.inbox_uploads_24h,
                'days', c.days) ORDER BY c.busiest DESC, c.account, c.tiktok_account_id)
              FROM (SELECT c.tiktok_account_id, coalesce(a.display_name, a.open_id) AS account, c.daily_cap,
                           c.cap_learned_from_tiktok, max(c.inbox_uploads_24h) AS inbox_uploads_24h,
                           max(c.direct_posts) AS busiest,
                           jsonb_agg(jsonb_build_object('day', c.day, 'direct_posts', c.direct_posts) ORDER BY c.day) AS days
                      FROM vibescaling.account_caps c JOIN vibescaling.tiktok_accounts a ON a.id = c.tiktok_account_id
                     WHERE p_scope = '*' OR c.owner = p_scope
                     GROUP BY c.tiktok_account_id, a.display_name, a.open_id, c.daily_cap, c.cap_learned_from_tiktok
                     ORDER BY max(c.direct_posts) DESC, 2, 1 LIMIT 100) c), '[]'),
        'unknown_outcomes', CASE WHEN p_scope = '*' THEN coalesce((SELECT jsonb_agg(jsonb_build_object(
                'post_id', u.post_id, 'tiktok_account_id', u.tiktok_account_id, 'endpoint', u.endpoint,
                'sent_at', u.created_at, 'error_code', u.error_code, 'caption', left(u.caption, 80))
                ORDER BY u.created_at)
              FROM vibescaling.unknown_outcomes u), '[]') END)
$$;

-- GET /rpc/analytics?from=&to=&tz=[&owner=]: the Analytics page's charts
-- and current state for the caller's tenant (an operator: every tenant, or
-- one with owner). SECURITY DEFINER like every API function: it reads the
-- rollups and checks the tenant itself (_analytics_scope). STABLE so that
-- PostgREST serves it on GET.
CREATE FUNCTION vibescaling_api.analytics("from" timestamptz DEFAULT NULL, "to" timestamptz DEFAULT NULL,
                                          tz text DEFAULT 'UTC', owner text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    RETURN vibescaling.analytics(coalesce(analytics."from", now() - interval '7 days'),
                                 coalesce(analytics."to", now()), coalesce(analytics.tz, 'UTC'), analytics.owner);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/settle_post {"post_id", "on_tiktok", "publish_id"}: an
-- operator's decision on a post of unknown outcome (vibescaling.settle_post).
-- Operators only (JWT role vibescaling_operator; setup_api_roles grants it
-- to no other role).
CREATE FUNCTION vibescaling_api.settle_post(post_id uuid DEFAULT NULL, on_tiktok boolean DEFAULT NULL,
                                            publish_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    IF vibescaling._jwt_role() IS DISTINCT FROM 'vibescaling_operator' THEN
        RAISE EXCEPTION 'only an operator settles a post' USING ERRCODE = '42501';
    END IF;
    IF settle_post.post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.posts p WHERE p.id = settle_post.post_id) THEN
        RAISE EXCEPTION 'post % not found', settle_post.post_id USING ERRCODE = 'P0002';
    END IF;
    RETURN vibescaling.settle_post(settle_post.post_id, settle_post.on_tiktok, settle_post.publish_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

REVOKE ALL ON vibescaling.analytics_rollup_state, vibescaling.analytics_calls_hourly,
              vibescaling.analytics_account_days, vibescaling.analytics_delay_hourly, vibescaling.analytics_unknown_inits,
              vibescaling._log_unknown_inits, vibescaling.unknown_outcomes FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._hist_value(integer), vibescaling._hist_quantile(smallint[], bigint[], double precision),
                       vibescaling._analytics_calls_from_log(timestamptz, timestamptz),
                       vibescaling._analytics_account_days_from_log(timestamptz, timestamptz),
                       vibescaling._analytics_delay_from_posts(timestamptz, timestamptz),
                       vibescaling.roll_up_analytics(), vibescaling._analytics_scope(text),
                       vibescaling.analytics(timestamptz, timestamptz, text, text), vibescaling._analytics_now(text),
                       vibescaling_api.analytics(timestamptz, timestamptz, text, text),
                       vibescaling_api.settle_post(uuid, boolean, text) FROM PUBLIC;

-- The rollups' data is the extension's: pg_dump keeps it.
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_rollup_state', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_calls_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_account_days', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_delay_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_unknown_inits', '');
