-- vibescaling 0.1.5 -> 0.1.6: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.6'" to load this file. \quit

-- The Analytics page's rollups (tables, the schedule delay's index on
-- posts, row level security) and the view of unknown outcomes' table,
-- before the functions that read them are created.
CREATE TABLE vibescaling.analytics_rollup_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_until  timestamptz NOT NULL DEFAULT '-infinity'
);
COMMENT ON TABLE vibescaling.analytics_rollup_state IS
    'The analytics rollups hold every hour before rolled_until (roll_up_analytics).';
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
CREATE INDEX posts_posted_at_idx ON vibescaling.posts (posted_at) WHERE posted_at IS NOT NULL;
ALTER TABLE vibescaling.analytics_calls_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.analytics_account_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.analytics_delay_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_calls_hourly ON vibescaling.analytics_calls_hourly
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE POLICY tenant_account_days ON vibescaling.analytics_account_days
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE POLICY tenant_delay_hourly ON vibescaling.analytics_delay_hourly
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE VIEW vibescaling._log_unknown_inits AS
    SELECT l.post_id, l.created_at, l.tiktok_account_id, l.endpoint, l.error_code, l.log_id
      FROM vibescaling.dispatch_logs l
     WHERE l.outcome_unknown AND l.post_id IS NOT NULL
       AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init');
REVOKE ALL ON vibescaling.analytics_rollup_state, vibescaling.analytics_calls_hourly,
              vibescaling.analytics_account_days, vibescaling.analytics_delay_hourly, vibescaling.analytics_unknown_inits, vibescaling._log_unknown_inits FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_rollup_state', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_calls_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_account_days', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_delay_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_unknown_inits', '');

-- The functions: the dispatchers' claims lock only posts of their own kind
-- (the pull prefixes' patterns taken once per query); log partitions get a
-- BRIN index on created_at; the pg_cron job vibescaling-analytics; the
-- operator role; the Analytics page's functions.

CREATE OR REPLACE FUNCTION vibescaling._jwt_claim(claim text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN SESSION_USER = 'vibescaling_authenticator'
                     OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER)
                THEN NULLIF(NULLIF(current_setting('request.jwt.claims', true), '')::jsonb ->> claim, '') END
$$;

CREATE OR REPLACE FUNCTION vibescaling._jwt_sub()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._jwt_claim('sub')
$$;

CREATE OR REPLACE FUNCTION vibescaling._set_up_log_partition(parent regclass, partition regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name   text := (SELECT c.relname FROM pg_class c WHERE c.oid = partition);
    v_time   text;
BEGIN
    CASE parent
        WHEN 'vibescaling.dispatch_logs'::regclass THEN
            v_time := 'created_at';
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (post_id, created_at)', v_name || '_post_idx', partition);
            -- The rate limiter's look-back: an account's recent calls.
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (tiktok_account_id, created_at)', v_name || '_account_idx', partition);
            -- The answers that asked for a wait (_rate_limit_holds): few rows.
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (tiktok_account_id, created_at) WHERE retry_after IS NOT NULL',
                           v_name || '_retry_idx', partition);
            -- The Analytics page reads the hours not rolled up yet by time:
            -- a BRIN index costs next to nothing on insert (rows arrive in
            -- time order), finds the last hour's pages, and, created_at never
            -- changing, keeps the outcome's replacement a HOT update.
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING brin (created_at) WITH (autosummarize = on)',
                           v_name || '_time_brin', partition);
        WHEN 'vibescaling.webhook_events'::regclass THEN
            v_time := 'received_at';
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (publish_id) WHERE publish_id IS NOT NULL',
                           v_name || '_publish_idx', partition);
            -- handle_webhook's dedupe.
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (body_sha256)', v_name || '_body_idx', partition);
        ELSE
            RAISE EXCEPTION '% is not dispatch_logs or webhook_events', parent USING ERRCODE = '22023';
    END CASE;
    EXECUTE format('ALTER TABLE %s SET (fillfactor = 90)', partition);
    -- Ids come from the log's identity column: unique, hence a key per partition.
    IF NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = partition AND c.contype = 'p') THEN
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (id, %I)', partition, v_name || '_pkey', v_time);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._rate_limit_holds(account_ids uuid[], endpoints text[])
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

CREATE OR REPLACE FUNCTION vibescaling._pull_url_patterns()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(replace(replace(replace(btrim(x.prefix), '\', '\\'), '%', '\%'), '_', '\_') || '%'), '{}')
      FROM unnest(string_to_array(coalesce(current_setting('vibescaling.pull_url_prefixes', true), ''), ',')) AS x(prefix)
     WHERE btrim(x.prefix) <> ''
$$;

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

CREATE OR REPLACE FUNCTION vibescaling.enable_scheduler(schedule text DEFAULT '*/5 * * * *')
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
    -- The logs' partitions for this week and the next, now rather than at the job's first run.
    PERFORM vibescaling._create_log_partition(t.parent, w)
       FROM vibescaling._log_tables() t, vibescaling._log_weeks_needed(t.parent) w;
    PERFORM vibescaling._schedule_status_poller();
    RETURN v_job_id;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.disable_scheduler()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job text;
    v_found boolean := false;
BEGIN
    PERFORM vibescaling._require_pg_cron();
    FOR v_job IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname IN ($1, $2, $3, $4, $5)'
                 USING 'vibescaling-dispatch', 'vibescaling-uploads', 'vibescaling-refresh', 'vibescaling-logs',
                       'vibescaling-analytics' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job;
        v_found := true;
    END LOOP;
    IF vibescaling._unschedule_status_poller() THEN
        v_found := true;
    END IF;
    RETURN v_found;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._jwt_role()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._jwt_claim('role')
$$;

REVOKE ALL ON FUNCTION vibescaling._jwt_role() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION vibescaling._jwt_sub(), vibescaling._jwt_claim(text) TO PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling.setup_api_roles(authenticator_password text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role    text;
    v_columns text := 'media_type, caption, title, video_url, upload_method, video_cover_timestamp_ms, is_aigc, photo_urls, '
                      'photo_cover_index, status, scheduled_at, tiktok_account_id, privacy_level, mode, '
                      'disable_comment, disable_duet, disable_stitch, brand_content_toggle, brand_organic_toggle';
BEGIN
    FOREACH v_role IN ARRAY ARRAY['vibescaling_anon', 'vibescaling_user', 'vibescaling_webhook', 'vibescaling_operator'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vibescaling_authenticator') THEN
        EXECUTE 'CREATE ROLE vibescaling_authenticator LOGIN NOINHERIT';
    END IF;
    IF authenticator_password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE vibescaling_authenticator PASSWORD %L', authenticator_password);
    END IF;
    -- No JIT in PostgREST's sessions: an API request reads a few rows, but
    -- over a large log the planner prices it above jit_above_cost, and
    -- compiling cost a page of the dispatch history 200 ms of its 230
    -- (10 million rows, test/bench/analytics.sh).
    ALTER ROLE vibescaling_authenticator SET jit = off;
    GRANT vibescaling_anon, vibescaling_user, vibescaling_webhook, vibescaling_operator TO vibescaling_authenticator;

    -- anon: nothing (not even the schema). The tenant role: the API schema, and
    -- what its invoker-rights views reach through (filtered by row level security).
    GRANT USAGE ON SCHEMA vibescaling_api TO vibescaling_user, vibescaling_webhook;
    GRANT USAGE ON SCHEMA vibescaling TO vibescaling_user;
    GRANT SELECT, DELETE ON vibescaling_api.posts, vibescaling.posts TO vibescaling_user;
    EXECUTE format('GRANT INSERT (%s), UPDATE (%s) ON vibescaling_api.posts, vibescaling.posts TO vibescaling_user',
                   v_columns, v_columns);
    GRANT SELECT ON vibescaling_api.accounts, vibescaling_api.publish_records, vibescaling_api.dispatch_logs,
                    vibescaling.publish_records, vibescaling.dispatch_logs TO vibescaling_user;
    GRANT SELECT ON vibescaling_api.dispatch_stats, vibescaling_api.dispatch_failures,
                    vibescaling_api.posts_per_account_day, vibescaling_api.schedule_delay,
                    vibescaling.dispatch_stats, vibescaling.dispatch_failures,
                    vibescaling.posts_per_account_day, vibescaling.schedule_delay TO vibescaling_user;
    GRANT EXECUTE ON FUNCTION
        vibescaling_api.publish_post(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.schedule_post(uuid, timestamptz, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.cancel_post(uuid),
        vibescaling_api.publish_status(uuid),
        vibescaling_api.creator_info(uuid),
        vibescaling_api.authorize_url(text, text),
        vibescaling_api.connect_account(text, text, text),
        vibescaling_api.disconnect_account(uuid),
        vibescaling_api.analytics(timestamptz, timestamptz, text, text)
        TO vibescaling_user;
    -- The operator: not a tenant, so row level security shows it every row.
    GRANT USAGE ON SCHEMA vibescaling_api, vibescaling TO vibescaling_operator;
    GRANT SELECT ON vibescaling_api.posts, vibescaling_api.publish_records, vibescaling_api.dispatch_logs,
                    vibescaling.posts, vibescaling.publish_records, vibescaling.dispatch_logs TO vibescaling_operator;
    GRANT EXECUTE ON FUNCTION vibescaling_api.analytics(timestamptz, timestamptz, text, text),
                              vibescaling_api.settle_post(uuid, boolean, text) TO vibescaling_operator;
    GRANT EXECUTE ON FUNCTION vibescaling_api.handle_webhook(json) TO vibescaling_webhook;
    -- What 0.1.0 granted that no API role may call any more: the posts
    -- trigger's checks run as the table's owner now.
    REVOKE ALL ON FUNCTION vibescaling._check_post_write(vibescaling.posts, vibescaling.posts),
                           vibescaling._raise_http_error(text, text, text, text) FROM vibescaling_user;

    RETURN jsonb_build_object(
        'vibescaling_authenticator', 'login (PostgREST''s db-uri), switches to the roles below',
        'vibescaling_anon', 'nothing',
        'vibescaling_user', 'the vibescaling_api schema, its own rows only (JWT sub)',
        'vibescaling_webhook', 'POST /rpc/handle_webhook',
        'vibescaling_operator', 'every tenant''s posts, publishes, calls and analytics; POST /rpc/settle_post');
END
$$;

COMMENT ON FUNCTION vibescaling.setup_api_roles(text) IS
    'Creates the PostgREST roles (vibescaling_authenticator, _anon, _user, _webhook, _operator) and grants them the API; idempotent.';

CREATE OR REPLACE FUNCTION vibescaling._hist_value(bucket integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT power(2, (bucket + 0.5) / 4.0) - 1
$$;

CREATE OR REPLACE FUNCTION vibescaling._hist_quantile(buckets smallint[], counts bigint[], q double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._hist_value(min(h.b))
      FROM (SELECT b, sum(sum(n)) OVER (ORDER BY b) AS cum, sum(sum(n)) OVER () AS total
              FROM unnest(buckets, counts) AS u(b, n) GROUP BY b) h
     WHERE h.cum >= q * h.total
$$;

CREATE OR REPLACE FUNCTION vibescaling._analytics_calls_from_log(p_from timestamptz, p_to timestamptz)
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
               AND l.endpoint NOT IN ('webhook', 'settlement')),
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

CREATE OR REPLACE FUNCTION vibescaling._analytics_account_days_from_log(p_from timestamptz, p_to timestamptz)
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

CREATE OR REPLACE FUNCTION vibescaling._analytics_delay_from_posts(p_from timestamptz, p_to timestamptz)
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

CREATE OR REPLACE FUNCTION vibescaling.roll_up_analytics()
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

CREATE OR REPLACE FUNCTION vibescaling._analytics_scope(p_owner text)
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

CREATE OR REPLACE FUNCTION vibescaling.analytics(p_from timestamptz, p_to timestamptz, p_tz text DEFAULT 'UTC',
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
        'caps', jsonb_build_object('direct_posts_per_day', 15, 'pending_inbox_per_24h', 5),
        'schedule_delay', coalesce((SELECT jsonb_agg(jsonb_build_object(
                      't', b.t, 'posts', coalesce(d.posts, 0),
                      'p50_s', round(vibescaling._hist_quantile(d.b, d.n, 0.5)::numeric, 1),
                      'p95_s', round(vibescaling._hist_quantile(d.b, d.n, 0.95)::numeric, 1))
                      ORDER BY b.t) FROM buckets b LEFT JOIN delay_t d ON d.t = b.t), '[]'))
      INTO v_result;
    RETURN v_result || vibescaling._analytics_now(v_scope);
END
$$;

COMMENT ON FUNCTION vibescaling.analytics(timestamptz, timestamptz, text, text) IS
    'The Analytics page''s charts for a period, one tenant or all (*): calls, failures, latency, caps, delays, current state.';

CREATE VIEW vibescaling.unknown_outcomes AS
    SELECT u.post_id, u.tiktok_account_id, u.endpoint, u.created_at, u.error_code, u.log_id, p.caption, p.status
      FROM (SELECT * FROM vibescaling.analytics_unknown_inits
            UNION ALL
            SELECT * FROM vibescaling._log_unknown_inits l
             WHERE l.created_at >= coalesce((SELECT s.rolled_until FROM vibescaling.analytics_rollup_state s), '-infinity')) u
      JOIN vibescaling.posts p ON p.id = u.post_id
     WHERE p.status NOT IN ('posted', 'publishing')
       AND NOT (u.error_code = 'in_flight' AND u.created_at > now() - interval '10 minutes')
       AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs s
                        WHERE s.post_id = u.post_id AND s.created_at >= u.created_at
                          AND (s.endpoint = 'settlement'
                               OR s.endpoint = u.endpoint AND s.created_at > u.created_at AND NOT s.outcome_unknown));
COMMENT ON VIEW vibescaling.unknown_outcomes IS
    'Posts whose latest init has an unknown outcome and no operator decision yet (settle_post).';
REVOKE ALL ON vibescaling.unknown_outcomes FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._analytics_now(p_scope text)
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
        'needs_reauth', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'tiktok_account_id', a.id, 'account', coalesce(a.display_name, a.open_id),
                'status_reason', a.status_reason, 'since', a.updated_at) ORDER BY a.updated_at)
              FROM vibescaling.tiktok_accounts a
             WHERE a.status = 'needs_reauth' AND (p_scope = '*' OR a.owner = p_scope)), '[]'),
        'unknown_outcomes', CASE WHEN p_scope = '*' THEN coalesce((SELECT jsonb_agg(jsonb_build_object(
                'post_id', u.post_id, 'tiktok_account_id', u.tiktok_account_id, 'endpoint', u.endpoint,
                'sent_at', u.created_at, 'error_code', u.error_code, 'caption', left(u.caption, 80))
                ORDER BY u.created_at)
              FROM vibescaling.unknown_outcomes u), '[]') END)
$$;

CREATE OR REPLACE FUNCTION vibescaling_api.analytics("from" timestamptz DEFAULT NULL, "to" timestamptz DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION vibescaling_api.settle_post(post_id uuid DEFAULT NULL, on_tiktok boolean DEFAULT NULL,
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

REVOKE ALL ON FUNCTION vibescaling._hist_value(integer), vibescaling._hist_quantile(smallint[], bigint[], double precision),
                       vibescaling._analytics_calls_from_log(timestamptz, timestamptz),
                       vibescaling._analytics_account_days_from_log(timestamptz, timestamptz),
                       vibescaling._analytics_delay_from_posts(timestamptz, timestamptz),
                       vibescaling.roll_up_analytics(), vibescaling._analytics_scope(text),
                       vibescaling.analytics(timestamptz, timestamptz, text, text), vibescaling._analytics_now(text),
                       vibescaling_api.analytics(timestamptz, timestamptz, text, text),
                       vibescaling_api.settle_post(uuid, boolean, text) FROM PUBLIC;

-- (New in 06_upload.sql, whose routines 11_privileges.sql revokes at install.)
REVOKE ALL ON FUNCTION vibescaling._pull_url_patterns() FROM PUBLIC;

-- The existing log partitions get the BRIN index on created_at (built
-- quickly, even on a large log).
SELECT vibescaling._set_up_log_partition('vibescaling.dispatch_logs', i.inhrelid::regclass)
  FROM pg_catalog.pg_inherits i WHERE i.inhparent = 'vibescaling.dispatch_logs'::regclass;

-- A database whose scheduler is on gets the rollup job too.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        EXECUTE 'SELECT cron.schedule($1, $2, $3) FROM cron.job WHERE jobname = $4'
          USING 'vibescaling-analytics', '*/5 * * * *', 'SELECT vibescaling.roll_up_analytics()', 'vibescaling-dispatch';
    END IF;
END
$$;

-- A tenant's page of the log reads the posts only for calls made with no
-- account (14_tenancy.sql says why).
ALTER POLICY tenant_dispatch_logs ON vibescaling.dispatch_logs
    USING (NOT (SELECT vibescaling._is_api_role())
           OR tiktok_account_id IN (SELECT vibescaling._own_account_ids())
           OR tiktok_account_id IS NULL AND post_id IN (SELECT p.id FROM vibescaling.posts p));

