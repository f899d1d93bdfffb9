-- vibescaling 0.1.1 -> 0.1.2: bounded logs. What it changes, and why, is in
-- CHANGELOG.md; in short: dispatch_logs and webhook_events become tables
-- partitioned by week, maintain_logs (run hourly by the vibescaling-logs
-- pg_cron job) drops the weeks older than vibescaling.log_retention, and
-- webhook dedupe looks a body's hash up instead of relying on a unique key.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.2'" to load this file. \quit

-- Each log's 0.1.1 table, with its rows and indexes as they are, becomes
-- one partition of the new partitioned table: the one for everything
-- before next week (or before the week after its newest row). No row is
-- copied; only the new primary key (id plus the partition key) and
-- webhook_events' dedupe index are built. It stops belonging to the
-- extension, like the weekly partitions maintain_logs creates: pg_dump
-- dumps it with its rows, and maintain_logs drops it once all of it is past
-- the retention period. Its grants go (reading a partition directly would
-- bypass the log's row level security); setup_api_roles() grants the new
-- table as it granted the old.
DO $$
DECLARE
    v_log       record;
    v_old_seq   text;
    v_last      bigint;
    v_called    boolean;
    v_bound     timestamptz;
    v_legacy    text;
    v_index     text;
    v_con       text;
    v_grantee   text;
BEGIN
    FOR v_log IN SELECT * FROM (VALUES
            ('dispatch_logs', 'created_at',
             ARRAY['dispatch_logs_post_idx', 'dispatch_logs_account_idx'],
             ARRAY['dispatch_logs_pkey']),
            ('webhook_events', 'received_at',
             ARRAY['webhook_events_publish_idx'],
             ARRAY['webhook_events_pkey', 'webhook_events_body_sha256_key'])) AS l(name, time_column, indexes, constraints) LOOP
        v_old_seq := pg_catalog.pg_get_serial_sequence('vibescaling.' || v_log.name, 'id');
        EXECUTE format('SELECT last_value, is_called FROM %s', v_old_seq) INTO v_last, v_called;
        EXECUTE format('SELECT pg_catalog.date_trunc(''week'', greatest(pg_catalog.now(), max(%I)) AT TIME ZONE ''UTC'') AT TIME ZONE ''UTC'' + interval ''7 days'' FROM vibescaling.%I',
                       v_log.time_column, v_log.name) INTO v_bound;
        v_legacy := v_log.name || '_before_' || pg_catalog.to_char(v_bound AT TIME ZONE 'UTC', 'YYYYMMDD');

        EXECUTE format('ALTER EXTENSION vibescaling DROP TABLE vibescaling.%I', v_log.name);
        EXECUTE format('ALTER EXTENSION vibescaling DROP SEQUENCE %s', v_old_seq);
        EXECUTE format('ALTER TABLE vibescaling.%I RENAME TO %I', v_log.name, v_legacy);
        EXECUTE format('ALTER TABLE vibescaling.%I ALTER COLUMN id DROP IDENTITY', v_legacy);
        FOREACH v_con IN ARRAY v_log.constraints LOOP
            EXECUTE format('ALTER TABLE vibescaling.%I DROP CONSTRAINT %I', v_legacy, v_con);
        END LOOP;
        -- Failures are found by a scan of their week's partition now: an
        -- index on outcome kept the outcome's update from being HOT.
        DROP INDEX IF EXISTS vibescaling.dispatch_logs_failures_idx;
        FOREACH v_index IN ARRAY v_log.indexes LOOP
            EXECUTE format('ALTER INDEX vibescaling.%I RENAME TO %I', v_index,
                           v_legacy || pg_catalog.substr(v_index, pg_catalog.length(v_log.name) + 1));
        END LOOP;
        -- Its CHECK constraints step aside while the new table takes their
        -- names (attaching pairs constraints by name), then take them back.
        FOR v_con IN SELECT c.conname FROM pg_catalog.pg_constraint c
                      WHERE c.conrelid = pg_catalog.to_regclass('vibescaling.' || quote_ident(v_legacy)) AND c.contype = 'c' LOOP
            EXECUTE format('ALTER TABLE vibescaling.%I RENAME CONSTRAINT %I TO %I', v_legacy, v_con, v_con || '_0_1_1');
        END LOOP;
        IF v_log.name = 'dispatch_logs' THEN
            EXECUTE format('DROP POLICY tenant_dispatch_logs ON vibescaling.%I', v_legacy);
            EXECUTE format('ALTER TABLE vibescaling.%I DISABLE ROW LEVEL SECURITY', v_legacy);
        END IF;
        FOR v_grantee IN SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
                           FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
                          WHERE c.oid = pg_catalog.to_regclass('vibescaling.' || quote_ident(v_legacy)) AND a.grantee <> c.relowner LOOP
            EXECUTE format('REVOKE ALL ON vibescaling.%I FROM %s', v_legacy, v_grantee);
        END LOOP;
        -- For the second half (below, once the new table exists).
        PERFORM pg_catalog.set_config('vibescaling_upgrade.' || v_log.name, pg_catalog.jsonb_build_object(
            'legacy', v_legacy, 'bound', v_bound, 'last', v_last, 'called', v_called)::text, true);
    END LOOP;
END
$$;

-- One row per call to TikTok. Rows are written by a background worker in a
-- transaction of their own, so they survive the caller's rollback; hence no
-- foreign keys (the post may not be committed yet, or may be deleted later).
-- Partitioned by week of created_at so that old rows go as whole partitions
-- (vibescaling.maintain_logs, 17_retention.sql, which also creates the
-- weekly partitions). The default partition holds the few old rows kept
-- past the retention period because the extension still needs them, and
-- any row whose week has no partition yet.
CREATE TABLE vibescaling.dispatch_logs (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY,
    post_id            uuid,
    tiktok_account_id  uuid,
    trigger            text NOT NULL
                       CHECK (trigger IN ('manual', 'scheduler', 'status', 'connect', 'refresh', 'disconnect', 'webhook')),
    endpoint           text NOT NULL,
    http_status        integer,          -- NULL when no HTTP reply arrived
    outcome            text NOT NULL CHECK (outcome IN ('success', 'failure')),
    error_code         text,             -- TikTok's error.code, or a transport code (timeout, connect_failed, ...)
    error_message      text,
    log_id             text,             -- TikTok's log_id: TikTok support asks for it
    publish_id         text,
    duration_ms        double precision,
    uploaded_bytes     bigint,           -- upload_chunk rows: bytes TikTok has after this chunk
    outcome_unknown    boolean NOT NULL DEFAULT false,  -- request may have reached TikTok, no reply read
    backend_pid        integer,          -- the backend that made the call
    created_at         timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at);
COMMENT ON TABLE vibescaling.dispatch_logs IS
    'Every call to TikTok, committed independently of the caller''s transaction (weekly partitions, see vibescaling.log_retention).';
CREATE TABLE vibescaling.dispatch_logs_default PARTITION OF vibescaling.dispatch_logs DEFAULT;

-- Sets up a partition of dispatch_logs or webhook_events: the keys and
-- indexes it lacks (by name) and its fillfactor. Each partition has its
-- own indexes rather than the log having partitioned ones: pg_dump dumps
-- the weekly partitions (tables of maintain_logs, not of the extension)
-- and their indexes after attaching them, and an attach to a log with
-- partitioned indexes would already have made them (a restore would fail
-- on the copy). A call's "in flight" row is replaced by its outcome a
-- moment later: no index covers the columns that change, and a tenth of
-- each page is left free, so that the replacement is a HOT update (no new
-- index entries).
CREATE FUNCTION vibescaling._set_up_log_partition(parent regclass, partition regclass)
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
REVOKE ALL ON FUNCTION vibescaling._set_up_log_partition(regclass, regclass) FROM PUBLIC;
SELECT vibescaling._set_up_log_partition('vibescaling.dispatch_logs', 'vibescaling.dispatch_logs_default');

SELECT pg_catalog.pg_extension_config_dump('vibescaling.dispatch_logs_default', '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.dispatch_logs', 'id'), '');

-- Every webhook accepted (signature valid, body well-formed), once: a
-- redelivery of the same body is recognised by body_sha256 (handle_webhook
-- looks it up under an advisory lock on the hash: a key of a partitioned
-- table must include the partition key). Partitioned by week of
-- received_at, like dispatch_logs, and dropped by maintain_logs after
-- vibescaling.log_retention (at least 7 days: TikTok redelivers for 72 h).
CREATE TABLE vibescaling.webhook_events (
    id           bigint GENERATED BY DEFAULT AS IDENTITY,
    event        text NOT NULL,
    publish_id   text,               -- content.publish_id (post.publish.* events)
    user_openid  text,
    create_time  timestamptz,        -- TikTok's create_time (epoch seconds)
    body_sha256  text NOT NULL,      -- hex SHA-256 of the raw body: the dedupe key
    content      jsonb,              -- content, parsed (TikTok sends it as a JSON string)
    received_at  timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (received_at);
COMMENT ON TABLE vibescaling.webhook_events IS
    'TikTok webhook events received by handle_webhook(), one row per distinct body (weekly partitions, see vibescaling.log_retention).';
CREATE TABLE vibescaling.webhook_events_default PARTITION OF vibescaling.webhook_events DEFAULT;
SELECT vibescaling._set_up_log_partition('vibescaling.webhook_events', 'vibescaling.webhook_events_default');

SELECT pg_catalog.pg_extension_config_dump('vibescaling.webhook_events_default', '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.webhook_events', 'id'), '');

ALTER TABLE vibescaling.dispatch_logs ENABLE ROW LEVEL SECURITY;
-- Dispatch logs of the tenant's posts and accounts.
CREATE POLICY tenant_dispatch_logs ON vibescaling.dispatch_logs
    USING (NOT (SELECT vibescaling._is_api_role())
           OR post_id IN (SELECT p.id FROM vibescaling.posts p)
           OR tiktok_account_id IN (SELECT vibescaling._own_account_ids()));

-- The views over dispatch_logs followed the 0.1.1 table when it was
-- renamed: point them at the new one.
-- Every call made to TikTok for the tenant's posts and accounts.
CREATE OR REPLACE VIEW vibescaling_api.dispatch_logs WITH (security_invoker = true) AS
    SELECT id, post_id, tiktok_account_id, trigger, endpoint, http_status, outcome, error_code, error_message,
           log_id, publish_id, duration_ms, uploaded_bytes, outcome_unknown, created_at
      FROM vibescaling.dispatch_logs;
-- Per endpoint: calls to TikTok, how they ended, and their latency.
CREATE OR REPLACE VIEW vibescaling.dispatch_stats WITH (security_invoker = true) AS
    SELECT l.endpoint,
           count(*)                                           AS attempts,
           count(*) FILTER (WHERE l.outcome = 'success')      AS successes,
           count(*) FILTER (WHERE l.outcome = 'failure')      AS failures,
           count(*) FILTER (WHERE l.outcome_unknown)          AS unknown_outcomes,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY l.duration_ms))::numeric, 1)  AS p50_ms,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY l.duration_ms))::numeric, 1) AS p95_ms,
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY l.duration_ms))::numeric, 1) AS p99_ms,
           min(l.created_at)                                  AS first_at,
           max(l.created_at)                                  AS last_at
      FROM vibescaling.dispatch_logs l
     GROUP BY l.endpoint;
-- Failures per endpoint and error code (TikTok's, or a transport code).
CREATE OR REPLACE VIEW vibescaling.dispatch_failures WITH (security_invoker = true) AS
    SELECT l.endpoint,
           coalesce(l.error_code, 'unknown') AS error_code,
           count(*)                          AS failures,
           max(l.created_at)                 AS last_at,
           (array_agg(l.error_message ORDER BY l.id DESC))[1] AS last_message
      FROM vibescaling.dispatch_logs l
     WHERE l.outcome = 'failure'
     GROUP BY l.endpoint, coalesce(l.error_code, 'unknown');

-- The 0.1.1 tables join as the partitions of what came before.
DO $$
DECLARE
    v_log  text;
    v      jsonb;
    v_con  text;
BEGIN
    FOREACH v_log IN ARRAY ARRAY['dispatch_logs', 'webhook_events'] LOOP
        v := pg_catalog.current_setting('vibescaling_upgrade.' || v_log)::jsonb;
        FOR v_con IN SELECT c.conname FROM pg_catalog.pg_constraint c
                      WHERE c.conrelid = pg_catalog.to_regclass('vibescaling.' || quote_ident(v->>'legacy'))
                        AND c.contype = 'c' AND c.conname LIKE '%\_0\_1\_1' LOOP
            EXECUTE format('ALTER TABLE vibescaling.%I RENAME CONSTRAINT %I TO %I', v->>'legacy', v_con,
                           pg_catalog.left(v_con, -6));
        END LOOP;
        -- Set up as a partition: the renamed old indexes are kept; built
        -- here: the new primary key (id plus the partition key) and, for
        -- webhook_events, the dedupe index.
        PERFORM vibescaling._set_up_log_partition(pg_catalog.to_regclass('vibescaling.' || v_log),
                                                 pg_catalog.to_regclass('vibescaling.' || quote_ident(v->>'legacy')));
        EXECUTE format('ALTER TABLE vibescaling.%I ATTACH PARTITION vibescaling.%I FOR VALUES FROM (MINVALUE) TO (%L)',
                       v_log, v->>'legacy', v->>'bound');
        PERFORM pg_catalog.setval(pg_catalog.pg_get_serial_sequence('vibescaling.' || v_log, 'id'),
                                  (v->>'last')::bigint, (v->>'called')::boolean);
    END LOOP;
END
$$;

-- No call for a post is older than the post, from now on (_earlier_init
-- reads only the log's partitions since the post's created_at, which
-- _post_write_checked keeps from moving forward). 0.1.1 let an application
-- set created_at to anything: a post whose created_at is ahead of now or of
-- its first logged call gets the earlier of those.
ALTER TABLE vibescaling.posts DISABLE TRIGGER posts_before_write;
UPDATE vibescaling.posts SET created_at = now() WHERE created_at > now();
UPDATE vibescaling.posts p
   SET created_at = l.first_call
  FROM (SELECT d.post_id, min(d.created_at) AS first_call
          FROM vibescaling.dispatch_logs d WHERE d.post_id IS NOT NULL GROUP BY d.post_id) l
 WHERE l.post_id = p.id AND l.first_call < p.created_at;
ALTER TABLE vibescaling.posts ENABLE TRIGGER posts_before_write;

-- The routines, new and changed.
CREATE OR REPLACE FUNCTION vibescaling._rate_limit_calls(account_id uuid, endpoints text[])
RETURNS TABLE (called_at timestamptz)
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
        SELECT l.created_at
          FROM vibescaling.dispatch_logs l
         WHERE l.tiktok_account_id = _rate_limit_calls.account_id
           AND l.endpoint = ANY (_rate_limit_calls.endpoints)
           AND l.created_at > v_since
           AND (l.http_status IS NOT NULL OR l.outcome_unknown);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._check_upload_quota(p vibescaling.posts, video_size bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_quota bigint := current_setting('vibescaling.max_upload_mb_per_owner_day')::bigint * 1048576;
    v_since timestamptz := now() - interval '1 day';   -- a variable: the log's older partitions are left out
    v_used  bigint;
BEGIN
    IF p.owner IS NULL OR v_quota <= 0 THEN
        RETURN;
    END IF;
    -- What TikTok holds of each upload (the last chunk's uploaded_bytes), per publish.
    SELECT coalesce(sum(x.bytes), 0) INTO v_used
      FROM (SELECT max(l.uploaded_bytes) AS bytes
              FROM vibescaling.dispatch_logs l
             WHERE l.endpoint = 'upload_chunk' AND l.created_at > v_since
               AND l.post_id IN (SELECT q.id FROM vibescaling.posts q WHERE q.owner = p.owner)
             GROUP BY l.post_id, l.publish_id) x;
    IF v_used + video_size > v_quota THEN
        RAISE EXCEPTION 'owner % has uploaded % MB in the last 24 hours: this % MB video would pass vibescaling.max_upload_mb_per_owner_day (% MB)',
                        p.owner, v_used / 1048576, ceil(video_size / 1048576.0), v_quota / 1048576
            USING ERRCODE = '53400', HINT = vibescaling._transient_hint();
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._earlier_init(p_post_id uuid, OUT state text, OUT publish_id text, OUT endpoint text)
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
                AND d.id > coalesce((SELECT max(s.id) FROM vibescaling.dispatch_logs s
                                      WHERE s.post_id = p_post_id AND s.created_at >= v_since
                                        AND s.endpoint = 'settlement'), 0)
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

CREATE OR REPLACE FUNCTION vibescaling._post_write_checked(p_new vibescaling.posts, p_old vibescaling.posts,
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
    IF p_old.id IS NOT NULL THEN
        IF p_new IS NOT DISTINCT FROM p_old THEN
            RETURN p_new;
        END IF;
        p_new.updated_at := now();
        -- The dispatcher's bookkeeping on a post that stays scheduled (a retry
        -- after a transient failure) changes nothing the checks look at.
        IF p_old.status = 'scheduled' AND p_new.status = 'scheduled'
           AND to_jsonb(p_new) - ARRAY['attempts', 'next_attempt_at', 'last_error', 'updated_at']
               = to_jsonb(p_old) - ARRAY['attempts', 'next_attempt_at', 'last_error', 'updated_at'] THEN
            RETURN p_new;
        END IF;
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

CREATE OR REPLACE FUNCTION vibescaling._publish_progress_from_log(p_post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_since timestamptz := coalesce((SELECT p.created_at FROM vibescaling.posts p WHERE p.id = p_post_id), '-infinity');
BEGIN
    RETURN (
        SELECT jsonb_build_object(
                   'publish_id', i.publish_id,
                   'status', CASE WHEN c.chunks > 0 AND NOT c.complete THEN 'uploading' ELSE 'processing' END,
                   'tiktok_status', NULL,
                   'uploaded_bytes', c.uploaded_bytes)
          FROM (SELECT l.publish_id, l.created_at FROM vibescaling.dispatch_logs l
                 WHERE l.post_id = p_post_id AND l.created_at >= v_since AND l.outcome = 'success'
                   AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                 ORDER BY l.id DESC LIMIT 1) i,
               LATERAL (SELECT count(*) AS chunks, coalesce(bool_or(u.http_status = 201), false) AS complete,
                               max(u.uploaded_bytes) AS uploaded_bytes
                          FROM vibescaling.dispatch_logs u
                         WHERE u.post_id = p_post_id AND u.created_at >= v_since
                           AND u.publish_id = i.publish_id AND u.endpoint = 'upload_chunk') c);
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
    FOR v_job IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname IN ($1, $2, $3, $4)'
                 USING 'vibescaling-dispatch', 'vibescaling-uploads', 'vibescaling-refresh', 'vibescaling-logs' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job;
        v_found := true;
    END LOOP;
    IF vibescaling._unschedule_status_poller() THEN
        v_found := true;
    END IF;
    RETURN v_found;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.handle_webhook(body text, signature text)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_secret      text := current_setting('vibescaling.client_secret', true);
    v_tol_text    text := nullif(btrim(current_setting('vibescaling.webhook_tolerance', true)), '');
    v_tolerance   double precision;
    v_part        text;
    v_t           text;
    v_s           text;
    v_given       bytea;
    v_expected    bytea;
    v_diff        integer := 0;
    v_skew        double precision;
    v_body        jsonb;
    v_content     jsonb;
    v_event       text;
    v_publish_id  text;
    v_openid      text;
    v_create_time timestamptz;
    v_post_id     text;
    v_sha         text;
    v_event_id    bigint;
    v_applied     boolean := false;
    v_duplicate   boolean := false;
    r             vibescaling.publish_records;
    v_local       text;
    v_log_post    uuid;
    v_log_account uuid;
BEGIN
    IF coalesce(v_secret, '') = '' THEN
        RAISE EXCEPTION 'vibescaling.client_secret is not set: webhook signatures cannot be checked'
            USING ERRCODE = '55000',
                  HINT = 'Set the TikTok app''s client secret in postgresql.conf (a superuser-only setting) and reload.';
    END IF;

    -- Tolerance: the GUC may not exist (current_setting(..., true) is NULL:
    -- 300 s). Read as an interval: a plain number is seconds, and a GUC with
    -- a unit shows as '5min', '2h', ... which the interval input reads too.
    BEGIN
        v_tolerance := CASE WHEN v_tol_text IS NULL THEN 300
                            ELSE extract(epoch FROM v_tol_text::interval) END;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
        v_tolerance := NULL;
    END;
    IF v_tolerance IS NULL OR v_tolerance < 0 THEN
        RAISE EXCEPTION 'vibescaling.webhook_tolerance is not a valid number of seconds: "%"', v_tol_text
            USING ERRCODE = '22023';
    END IF;

    IF octet_length(body) > 65536 THEN
        RAISE EXCEPTION 'TikTok webhook body is over 64 kB' USING ERRCODE = '22023';
    END IF;

    -- The header: "t=<unix ts>,s=<hex>" (parts in any order, spaces ignored).
    IF coalesce(btrim(signature), '') = '' THEN
        PERFORM vibescaling._refuse_webhook('bad_signature', 'TikTok-Signature header missing');
    END IF;
    FOREACH v_part IN ARRAY string_to_array(signature, ',') LOOP
        v_part := btrim(v_part);
        IF v_part LIKE 't=%' AND v_t IS NULL THEN
            v_t := btrim(substr(v_part, 3));
        ELSIF v_part LIKE 's=%' AND v_s IS NULL THEN
            v_s := lower(btrim(substr(v_part, 3)));
        END IF;
    END LOOP;
    IF v_t IS NULL OR v_t !~ '^[0-9]{1,12}$' OR v_s IS NULL OR v_s !~ '^[0-9a-f]{64}$' THEN
        PERFORM vibescaling._refuse_webhook('bad_signature',
            'TikTok-Signature header malformed (expected t=<unix ts>,s=<64 hex digits>)');
    END IF;

    -- s = HMAC-SHA256(client_secret, "<t>.<body>"), over the body's UTF-8 bytes.
    -- Compared as 32 bytes with a fixed number of steps (no early exit at the
    -- first differing byte), which is as close to constant time as plpgsql gets.
    v_expected := vibescaling._webhook_hmac(convert_to(v_t || '.' || coalesce(body, ''), 'UTF8'),
                                            convert_to(v_secret, 'UTF8'));
    v_given := decode(v_s, 'hex');
    FOR i IN 0 .. 31 LOOP
        v_diff := v_diff | (get_byte(v_given, i) # get_byte(v_expected, i));
    END LOOP;
    IF v_diff <> 0 THEN
        PERFORM vibescaling._refuse_webhook('bad_signature', 'TikTok-Signature does not match the body');
    END IF;

    -- Replays: the signed timestamp must be recent.
    v_skew := abs(extract(epoch FROM clock_timestamp()) - v_t::bigint);
    IF v_skew > v_tolerance THEN
        PERFORM vibescaling._refuse_webhook('stale_timestamp',
            format('signature timestamp %s is %s s from now (tolerance %s s)', v_t, round(v_skew::numeric), v_tolerance));
    END IF;

    -- The body. TikTok signed it, so a malformed one is a bug, not an attack:
    -- 22023, and TikTok retries.
    BEGIN
        v_body := body::jsonb;
    EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
        RAISE EXCEPTION 'TikTok webhook body is not JSON' USING ERRCODE = '22023';
    END;
    IF jsonb_typeof(v_body) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'TikTok webhook body is not a JSON object' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(v_body->'event') IS DISTINCT FROM 'string' OR v_body->>'event' = '' THEN
        RAISE EXCEPTION 'TikTok webhook body has no event' USING ERRCODE = '22023';
    END IF;
    v_event := v_body->>'event';
    v_openid := v_body->>'user_openid';
    IF v_body ? 'create_time' AND jsonb_typeof(v_body->'create_time') <> 'null' THEN
        IF v_body->>'create_time' !~ '^[0-9]{1,12}$' THEN
            RAISE EXCEPTION 'TikTok webhook create_time is not epoch seconds' USING ERRCODE = '22023';
        END IF;
        v_create_time := to_timestamp((v_body->>'create_time')::bigint);
    END IF;
    -- content: a JSON object serialized as a string (an object is accepted too).
    CASE coalesce(jsonb_typeof(v_body->'content'), 'null')
        WHEN 'null' THEN
            v_content := '{}';
        WHEN 'object' THEN
            v_content := v_body->'content';
        WHEN 'string' THEN
            BEGIN
                v_content := (v_body->>'content')::jsonb;
            EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
                RAISE EXCEPTION 'TikTok webhook content is not JSON' USING ERRCODE = '22023';
            END;
        ELSE
            v_content := NULL;
    END CASE;
    IF jsonb_typeof(v_content) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'TikTok webhook content is not a JSON object' USING ERRCODE = '22023';
    END IF;
    v_publish_id := nullif(v_content->>'publish_id', '');
    IF v_event IN ('post.publish.publicly_available', 'post.publish.no_longer_publicaly_available') THEN
        -- A 19-digit int64, as a number or a string: ->> keeps its digits exactly.
        v_post_id := v_content->>'post_id';
        IF v_post_id IS NULL OR v_post_id !~ '^[0-9]{1,19}$'
           OR v_post_id::numeric > 9223372036854775807 THEN
            RAISE EXCEPTION 'TikTok webhook % has no valid content.post_id', v_event USING ERRCODE = '22023';
        END IF;
    END IF;

    -- Dedupe: the same body is the same delivery (retries carry a new t).
    -- Concurrent deliveries of one body queue on the hash's lock, and the
    -- second sees the first's row once it commits.
    v_sha := encode(sha256(convert_to(body, 'UTF8')), 'hex');
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.webhook_events'), hashtext(v_sha));
    IF NOT EXISTS (SELECT 1 FROM vibescaling.webhook_events e WHERE e.body_sha256 = v_sha) THEN
        INSERT INTO vibescaling.webhook_events (event, publish_id, user_openid, create_time, body_sha256, content)
        VALUES (v_event, v_publish_id, v_openid, v_create_time, v_sha, v_content)
        RETURNING id INTO v_event_id;
    END IF;
    v_duplicate := v_event_id IS NULL;

    IF NOT v_duplicate THEN
        IF v_event LIKE 'post.publish.%' AND v_publish_id IS NOT NULL THEN
            SELECT * INTO r FROM vibescaling.publish_records pr WHERE pr.publish_id = v_publish_id FOR UPDATE;
            IF FOUND THEN
                v_log_post := r.post_id;
                v_log_account := r.tiktok_account_id;
                CASE v_event
                    WHEN 'post.publish.complete' THEN
                        IF r.status <> 'failed' THEN
                            v_local := vibescaling._local_publish_status('PUBLISH_COMPLETE');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'PUBLISH_COMPLETE', updated_at = now()
                             WHERE id = r.id;
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.inbox_delivered' THEN
                        IF r.status IN ('processing', 'sent_to_inbox') THEN
                            v_local := vibescaling._local_publish_status('SEND_TO_USER_INBOX');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'SEND_TO_USER_INBOX', updated_at = now()
                             WHERE id = r.id;
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.failed' THEN
                        IF r.status <> 'published' THEN
                            v_local := vibescaling._local_publish_status('FAILED');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'FAILED',
                                   fail_reason = coalesce(v_content->>'reason', fail_reason), updated_at = now()
                             WHERE id = r.id
                            RETURNING * INTO r;
                            -- As publish_status does; only when this is the post's latest
                            -- publish (a post published again is not failed by an old one).
                            UPDATE vibescaling.posts p
                               SET status = 'failed',
                                   last_error = format('TikTok: publish %s failed: %s', r.publish_id, r.fail_reason)
                             WHERE p.id = r.post_id
                               AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                                                WHERE n.post_id = r.post_id
                                                  AND (n.created_at, n.id) > (r.created_at, r.id));
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.publicly_available' THEN
                        UPDATE vibescaling.publish_records
                           SET public_post_ids = public_post_ids || v_post_id::bigint, updated_at = now()
                         WHERE id = r.id AND NOT (v_post_id::bigint = ANY (public_post_ids));
                        v_applied := FOUND;
                    WHEN 'post.publish.no_longer_publicaly_available' THEN
                        UPDATE vibescaling.publish_records
                           SET public_post_ids = array_remove(public_post_ids, v_post_id::bigint), updated_at = now()
                         WHERE id = r.id AND v_post_id::bigint = ANY (public_post_ids);
                        v_applied := FOUND;
                    ELSE
                        NULL;   -- an event TikTok added later: stored only
                END CASE;
            END IF;
        ELSIF v_event = 'authorization.removed' AND v_openid IS NOT NULL THEN
            -- A disconnected account stays disconnected.
            UPDATE vibescaling.tiktok_accounts a
               SET status = 'needs_reauth',
                   status_reason = format('authorization removed on TikTok (reason %s)',
                                          coalesce(v_content->>'reason', 'unknown')),
                   updated_at = now()
             WHERE a.open_id = v_openid AND a.status <> 'disconnected'
            RETURNING a.id INTO v_log_account;
            v_applied := FOUND;
        END IF;
    END IF;

    -- Every accepted webhook (duplicates too) is a dispatch_logs row.
    IF v_log_account IS NULL AND v_openid IS NOT NULL THEN
        SELECT a.id INTO v_log_account FROM vibescaling.tiktok_accounts a WHERE a.open_id = v_openid;
    END IF;
    PERFORM vibescaling._durable_log(jsonb_build_object(
        'post_id', v_log_post, 'tiktok_account_id', v_log_account,
        'trigger', 'webhook', 'endpoint', 'webhook', 'outcome', 'success',
        'error_code', v_event, 'publish_id', v_publish_id,
        'error_message', CASE WHEN v_duplicate THEN 'duplicate delivery: not applied again'
                              WHEN NOT v_applied THEN 'stored, not applied' END));

    RETURN jsonb_build_object('data', jsonb_build_object(
        'event', v_event, 'publish_id', v_publish_id, 'applied', v_applied, 'duplicate', v_duplicate));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._log_week(t timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT date_trunc('week', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

CREATE OR REPLACE FUNCTION vibescaling._log_tables(OUT parent regclass, OUT default_partition regclass, OUT time_column text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('vibescaling.dispatch_logs'::regclass, 'vibescaling.dispatch_logs_default'::regclass, 'created_at'),
           ('vibescaling.webhook_events'::regclass, 'vibescaling.webhook_events_default'::regclass, 'received_at')
$$;

CREATE OR REPLACE FUNCTION vibescaling._log_partition_bounds(parent regclass)
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::regclass,
           (substring(b.expr FROM 'FROM \(''([^'']+)''\)'))::timestamptz,
           (substring(b.expr FROM 'TO \(''([^'']+)''\)'))::timestamptz
      FROM pg_catalog.pg_inherits i
      JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS expr) b
     WHERE i.inhparent = parent AND b.expr <> 'DEFAULT'
     ORDER BY 3
$$;

CREATE OR REPLACE FUNCTION vibescaling._require_log_owner(parent regclass)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = parent), 'USAGE') THEN
        RAISE EXCEPTION 'permission denied: only the owner of % may maintain its partitions', parent
            USING ERRCODE = '42501', HINT = 'Run vibescaling.maintain_logs() as the extension''s owner.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._create_log_partition(parent regclass, week_start timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_log        record;
    v_week_end   timestamptz := week_start + interval '7 days';
    v_name       text;
    v_partition  text;
BEGIN
    PERFORM vibescaling._require_log_owner(parent);
    SELECT * INTO STRICT v_log FROM vibescaling._log_tables() t WHERE t.parent = _create_log_partition.parent;
    IF week_start IS DISTINCT FROM vibescaling._log_week(week_start) THEN
        RAISE EXCEPTION 'week_start % is not the start of a UTC week', week_start USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM vibescaling._log_partition_bounds(parent) p
                WHERE coalesce(p.lower_bound < v_week_end, true) AND p.upper_bound > week_start) THEN
        RETURN false;
    END IF;
    v_name := (SELECT c.relname FROM pg_class c WHERE c.oid = parent)
              || '_' || to_char(week_start AT TIME ZONE 'UTC', 'YYYYMMDD');
    v_partition := format('vibescaling.%I', v_name);
    PERFORM set_config('lock_timeout', current_setting('vibescaling.log_lock_timeout'), true);
    BEGIN
        EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_partition, parent);
        EXECUTE format('ALTER TABLE %s OWNER TO %I', v_partition,
                       (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = parent));
        PERFORM vibescaling._set_up_log_partition(parent, v_partition::regclass);
        -- The week's rows that wait in the default partition (none, unless
        -- maintenance did not run for a while): attaching would refuse them.
        EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
                       'INSERT INTO %s SELECT * FROM moved',
                       v_log.default_partition, v_log.time_column, v_log.time_column, v_partition)
          USING week_start, v_week_end;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)',
                       parent, v_partition, week_start, v_week_end);
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_logs_to_keep(partition regclass)
RETURNS TABLE (id bigint, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT l.id, l.created_at
          FROM %s l
          JOIN vibescaling.posts p ON p.id = l.post_id
         WHERE l.endpoint IN ('video_init', 'inbox_video_init', 'content_init', 'upload_chunk', 'settlement')
           AND (p.status <> 'posted'
                OR (l.outcome_unknown
                    AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                    AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs s
                                     WHERE s.post_id = l.post_id AND s.endpoint = 'settlement' AND s.id > l.id)))
        $q$, partition);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._drop_log_partition(parent regclass, partition regclass)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bounds  record;
    v_keep    bigint[];
    v_kept    bigint;
BEGIN
    PERFORM vibescaling._require_log_owner(parent);
    SELECT * INTO v_bounds FROM vibescaling._log_partition_bounds(parent) p WHERE p.partition = _drop_log_partition.partition;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a dated partition of %', partition, parent USING ERRCODE = '22023';
    END IF;
    IF v_bounds.upper_bound > now() - vibescaling._log_retention() THEN
        RAISE EXCEPTION 'partition % holds rows newer than vibescaling.log_retention (%)',
                        partition, current_setting('vibescaling.log_retention')
            USING ERRCODE = '55000';
    END IF;
    IF parent = 'vibescaling.dispatch_logs'::regclass THEN
        SELECT array_agg(k.id) INTO v_keep FROM vibescaling._dispatch_logs_to_keep(partition) k;
    END IF;
    PERFORM set_config('lock_timeout', current_setting('vibescaling.log_lock_timeout'), true);
    BEGIN
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, partition);
        EXECUTE format('INSERT INTO %s SELECT * FROM %s WHERE id = ANY ($1)', parent, partition) USING v_keep;
        GET DIAGNOSTICS v_kept = ROW_COUNT;
        EXECUTE format('DROP TABLE %s', partition);
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    RETURN v_kept;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._prune_log_default(parent regclass)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_log      record;
    v_deleted  bigint;
BEGIN
    PERFORM vibescaling._require_log_owner(parent);
    SELECT * INTO STRICT v_log FROM vibescaling._log_tables() t WHERE t.parent = _prune_log_default.parent;
    IF parent = 'vibescaling.dispatch_logs'::regclass THEN
        DELETE FROM vibescaling.dispatch_logs_default d
         WHERE d.created_at < now() - vibescaling._log_retention()
           AND d.id NOT IN (SELECT k.id FROM vibescaling._dispatch_logs_to_keep('vibescaling.dispatch_logs_default') k);
    ELSE
        EXECUTE format('DELETE FROM %s WHERE %I < $1', v_log.default_partition, v_log.time_column)
          USING now() - vibescaling._log_retention();
    END IF;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._log_retention()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT current_setting('vibescaling.log_retention')::interval
$$;

CREATE OR REPLACE FUNCTION vibescaling._log_weeks_needed(parent regclass)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_log record;
BEGIN
    SELECT * INTO STRICT v_log FROM vibescaling._log_tables() t WHERE t.parent = _log_weeks_needed.parent;
    RETURN QUERY
        SELECT vibescaling._log_week(now()) + make_interval(weeks => w)
          FROM generate_series(0, 2) w
        UNION
        SELECT * FROM vibescaling._log_default_weeks(v_log.default_partition, v_log.time_column);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._log_default_weeks(default_partition regclass, time_column text)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT DISTINCT vibescaling._log_week(%I) FROM %s WHERE %I >= $1',
                                time_column, default_partition, time_column)
        USING vibescaling._log_week(now() - vibescaling._log_retention());
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._maintain_logs_plan()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(s.step ORDER BY s.log_order, s.kind, s.at), '[]')
      FROM (SELECT t.parent::text AS log_order, 1 AS kind, w AS at,
                   jsonb_build_object('op', 'create', 'log', t.parent::text, 'week', w) AS step
              FROM vibescaling._log_tables() t, vibescaling._log_weeks_needed(t.parent) w
            UNION ALL
            SELECT t.parent::text, 2, p.upper_bound,
                   jsonb_build_object('op', 'drop', 'log', t.parent::text, 'partition', p.partition::text)
              FROM vibescaling._log_tables() t, vibescaling._log_partition_bounds(t.parent) p
             WHERE p.upper_bound <= now() - vibescaling._log_retention()
            UNION ALL
            SELECT t.parent::text, 3, NULL, jsonb_build_object('op', 'prune', 'log', t.parent::text)
              FROM vibescaling._log_tables() t) s
$$;

CREATE OR REPLACE FUNCTION vibescaling._maintain_logs_step(state jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    max_attempts constant integer := 12;
    v_step    jsonb;
    v_i       integer;
    v_log     regclass;
    v_part    regclass;
    v_done    boolean;
    v_kept    bigint;
    v_attempt integer;
BEGIN
    IF state IS NULL THEN
        PERFORM vibescaling._require_log_owner(t.parent) FROM vibescaling._log_tables() t;
        state := jsonb_build_object('steps', vibescaling._maintain_logs_plan(), 'next', 0, 'created', 0,
                                    'dropped', 0, 'kept', 0, 'retried', 0, 'skipped', 0, 'pruned', 0);
    END IF;
    v_i := (state->>'next')::integer;
    IF v_i >= jsonb_array_length(state->'steps') THEN
        RAISE NOTICE 'vibescaling.maintain_logs: % partitions created, % dropped (% rows still needed kept), % old rows pruned from the default partitions; % steps retried after a lock wait, % left to the next run',
                     state->'created', state->'dropped', state->'kept', state->'pruned', state->'retried', state->'skipped';
        RETURN NULL;
    END IF;
    state := jsonb_set(state, '{next}', to_jsonb(v_i + 1));
    v_step := state->'steps'->v_i;
    IF v_step->>'op' = 'pause' THEN
        PERFORM pg_sleep((v_step->>'seconds')::double precision);
        RETURN state;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.maintain_logs'));
    v_log := (v_step->>'log')::regclass;
    v_done := true;
    CASE v_step->>'op'
        WHEN 'create' THEN
            v_done := vibescaling._create_log_partition(v_log, (v_step->>'week')::timestamptz);
            IF v_done THEN
                state := jsonb_set(state, '{created}', to_jsonb((state->>'created')::integer + 1));
            END IF;
        WHEN 'drop' THEN
            -- A run that went before this one may have dropped it already.
            v_part := to_regclass(v_step->>'partition');
            IF v_part IS NOT NULL
               AND EXISTS (SELECT 1 FROM vibescaling._log_partition_bounds(v_log) p WHERE p.partition = v_part) THEN
                v_kept := vibescaling._drop_log_partition(v_log, v_part);
                v_done := CASE WHEN v_kept IS NOT NULL THEN true END;   -- NULL: its lock was not granted
                IF v_done THEN
                    state := jsonb_set(state, '{dropped}', to_jsonb((state->>'dropped')::integer + 1));
                    state := jsonb_set(state, '{kept}', to_jsonb((state->>'kept')::bigint + v_kept));
                END IF;
            END IF;
        WHEN 'prune' THEN
            state := jsonb_set(state, '{pruned}',
                               to_jsonb((state->>'pruned')::bigint + vibescaling._prune_log_default(v_log)));
    END CASE;
    IF v_done IS NULL THEN
        v_attempt := coalesce((v_step->>'attempt')::integer, 1);
        IF v_attempt >= max_attempts THEN
            state := jsonb_set(state, '{skipped}', to_jsonb((state->>'skipped')::integer + 1));
        ELSE
            state := jsonb_set(state, '{retried}', to_jsonb((state->>'retried')::integer + 1));
            state := jsonb_set(state, '{steps}', (state->'steps')
                         || jsonb_build_object('op', 'pause', 'seconds', least(15, 2 ^ (v_attempt - 1)))
                         || jsonb_build_array(jsonb_set(v_step, '{attempt}', to_jsonb(v_attempt + 1))));
        END IF;
    END IF;
    RETURN state;
END
$$;

CREATE OR REPLACE PROCEDURE vibescaling.maintain_logs()
LANGUAGE plpgsql
AS $$
DECLARE
    v_state jsonb;
BEGIN
    PERFORM vibescaling._require_primary();
    LOOP
        v_state := vibescaling._maintain_logs_step(v_state);
        EXIT WHEN v_state IS NULL;
        COMMIT;
    END LOOP;
END
$$;

REVOKE ALL ON PROCEDURE vibescaling.maintain_logs() FROM PUBLIC;

COMMENT ON PROCEDURE vibescaling.maintain_logs() IS
    'Creates the coming weeks'' partitions of dispatch_logs and webhook_events and drops those older than vibescaling.log_retention, keeping the rows the extension still needs.';

-- The partitions of dispatch_logs and webhook_events, for DBAs: bounds,
-- approximate rows (as of the last ANALYZE) and size.
CREATE VIEW vibescaling.log_partitions AS
    SELECT i.inhparent::regclass AS log, c.oid::regclass AS partition,
           (substring(b.expr FROM 'FROM \(''([^'']+)''\)'))::timestamptz AS lower_bound,
           (substring(b.expr FROM 'TO \(''([^'']+)''\)'))::timestamptz AS upper_bound,
           c.reltuples::bigint AS approximate_rows,
           pg_size_pretty(pg_total_relation_size(c.oid)) AS total_size
      FROM pg_catalog.pg_inherits i
      JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS expr) b
     WHERE i.inhparent IN ('vibescaling.dispatch_logs'::regclass, 'vibescaling.webhook_events'::regclass)
     ORDER BY i.inhparent::regclass::text, 4 NULLS FIRST;
COMMENT ON VIEW vibescaling.log_partitions IS
    'Partitions of dispatch_logs and webhook_events: bounds (NULL: the default partition), approximate rows, size.';

REVOKE ALL ON FUNCTION vibescaling._create_log_partition(regclass, timestamptz),
                       vibescaling._drop_log_partition(regclass, regclass),
                       vibescaling._prune_log_default(regclass),
                       vibescaling._dispatch_logs_to_keep(regclass),
                       vibescaling._log_default_weeks(regclass, text),
                       vibescaling._log_weeks_needed(regclass),
                       vibescaling._log_partition_bounds(regclass),
                       vibescaling._log_tables(),
                       vibescaling._log_week(timestamptz),
                       vibescaling._log_retention(),
                       vibescaling._require_log_owner(regclass),
                       vibescaling._maintain_logs_plan(),
                       vibescaling._maintain_logs_step(jsonb) FROM PUBLIC;
REVOKE ALL ON vibescaling.log_partitions FROM PUBLIC;

-- A scheduler enabled before: maintain_logs gets its job.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'cron' AND c.relname = 'job') THEN
            EXECUTE 'SELECT cron.schedule($1, $2, $3) FROM cron.job WHERE jobname = $4'
              USING 'vibescaling-logs', '17 * * * *', 'CALL vibescaling.maintain_logs()', 'vibescaling-dispatch';
        END IF;
    END IF;
END
$$;
