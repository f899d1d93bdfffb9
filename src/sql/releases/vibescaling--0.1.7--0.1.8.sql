-- vibescaling 0.1.7 -> 0.1.8: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.8'" to load this file. \quit

-- Caps queries read one account's posts by the time that counts against a
-- cap (building it reads the posts table once).
CREATE INDEX posts_account_cap_time_idx ON vibescaling.posts
    (tiktok_account_id, (CASE WHEN status = 'posted' THEN posted_at ELSE scheduled_at END))
    WHERE status IN ('scheduled', 'publishing', 'posted');

-- account_caps computes each account's cap once, and shows the owner (a
-- new last column), before the functions that read it.
CREATE OR REPLACE VIEW vibescaling.account_caps WITH (security_invoker = true) AS
    SELECT a.id AS tiktok_account_id, d.day::date AS day,
           (SELECT count(*) FROM vibescaling.posts p
             WHERE p.tiktok_account_id = a.id AND p.mode = 'direct' AND p.status IN ('scheduled', 'publishing', 'posted')
               AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END >= b.day_start
               AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END < b.day_end) AS direct_posts,
           a.daily_cap,
           a.cap_learned_from_tiktok,
           (SELECT count(*) FROM vibescaling.posts x
             WHERE x.tiktok_account_id = a.id AND x.mode = 'inbox' AND x.status = 'posted'
               AND CASE WHEN x.status = 'posted' THEN x.posted_at ELSE x.scheduled_at END > now() - interval '24 hours')
           AS inbox_uploads_24h,
           a.owner
      FROM (SELECT a.id, a.owner, vibescaling.daily_cap(a.id) AS daily_cap,
                   vibescaling.learned_daily_cap(a.id) IS NOT NULL AS cap_learned_from_tiktok
              FROM vibescaling.accounts a
             WHERE a.status = 'active'
            OFFSET 0) a,
           generate_series(date_trunc('day', now() AT TIME ZONE 'UTC'), date_trunc('day', now() AT TIME ZONE 'UTC') + interval '7 days',
                           interval '1 day') d(day),
           LATERAL (SELECT d.day AT TIME ZONE 'UTC' AS day_start, (d.day + interval '1 day') AT TIME ZONE 'UTC' AS day_end) b;

-- The functions: new ones (warnings, the scheduling locks, the campaign
-- API) and changed ones, in an order where each finds what it calls.
CREATE OR REPLACE FUNCTION vibescaling._check_post_write(p_new vibescaling.posts, p_old vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_creator jsonb;   -- creator_info's data, when it could be had
    v_caps    boolean; -- whether TikTok's caps are checked (see below)
BEGIN
    -- A post TikTok has is never a draft or scheduled again (that would
    -- publish it twice); only TikTok's verdict (publish_status, a webhook) may turn it failed.
    IF p_old.id IS NOT NULL AND p_old.status = 'posted' AND p_new.status NOT IN ('posted', 'failed') THEN
        RAISE EXCEPTION 'post % is already posted; its status cannot become %', p_old.id, p_new.status
            USING ERRCODE = '55000';
    END IF;

    IF p_new.status = 'scheduled' THEN
        -- A publishing post is scheduled again only once settled (a requeue:
        -- its time was set before, so the 5-minute rule is not for it).
        IF p_old.id IS NOT NULL AND p_old.status = 'publishing'
           AND (SELECT e.state FROM vibescaling._earlier_init(p_old.id) e) IS NOT DISTINCT FROM 'unknown' THEN
            RAISE EXCEPTION 'post % is publishing: its init''s outcome is unknown; it cannot be scheduled', p_old.id
                USING ERRCODE = '55000',
                      HINT = 'settle_unknown_outcomes() settles it from TikTok''s signals; an operator may call settle_post().';
        END IF;
        IF p_new.scheduled_at IS NULL THEN
            RAISE EXCEPTION 'scheduled_at is required to schedule a post' USING ERRCODE = '22004';
        END IF;
        IF p_old.id IS NOT NULL AND EXISTS (SELECT 1 FROM vibescaling.posts t WHERE t.parent_id = p_old.id) THEN
            RAISE EXCEPTION 'post % has targets: they are scheduled, not the post', p_old.id
                USING ERRCODE = '55000', HINT = 'schedule_targets(post_id, scheduled_at, targets) adds accounts.';
        END IF;
        -- The 5-minute rule applies when the time is set, not to later edits
        -- of an already scheduled post.
        IF (p_old.id IS NULL OR p_old.status NOT IN ('scheduled', 'publishing')
            OR p_new.scheduled_at IS DISTINCT FROM p_old.scheduled_at)
           AND p_new.scheduled_at < now() + interval '5 minutes' THEN
            RAISE EXCEPTION 'scheduled_at must be at least 5 minutes in the future'
                USING ERRCODE = '22023',
                      DETAIL = format('scheduled_at is %s; the earliest allowed now is %s.',
                                      p_new.scheduled_at, now() + interval '5 minutes');
        END IF;
        PERFORM vibescaling._check_publishable(p_new);
        -- TikTok's caps on the post's day, when a person schedules it or
        -- changes its time, account or kind; not when the extension puts a
        -- post it already counted back on the queue. The account's
        -- scheduling lock is taken here, before creator_info may take its
        -- rate-limit lock: every path takes an account's scheduling lock
        -- before its rate-limit lock, never after, so that none waits on
        -- the other in a cycle (test/isolation/specs/targets_deadlock.spec).
        v_caps := p_old.id IS NULL OR p_old.status NOT IN ('scheduled', 'publishing', 'posted')
                  OR (p_new.scheduled_at, p_new.tiktok_account_id, p_new.mode, p_new.privacy_level)
                     IS DISTINCT FROM (p_old.scheduled_at, p_old.tiktok_account_id, p_old.mode, p_old.privacy_level);
        IF v_caps THEN
            PERFORM vibescaling._lock_accounts(ARRAY[p_new.tiktok_account_id]);
        END IF;
        -- What the creator allows (cached creator_info); the dispatcher checks
        -- again with a fresh answer. TikTok being unreachable does not stop
        -- scheduling.
        IF p_new.mode = 'direct' THEN
            BEGIN
                v_creator := vibescaling.creator_info(p_new.tiktok_account_id)->'data';
                PERFORM vibescaling._check_creator_allows(p_new, v_creator);
            EXCEPTION WHEN connection_exception OR insufficient_resources THEN
                NULL;
            END;
        END IF;
        -- The media, when it or the post's account is new to the schedule
        -- (the dispatcher does not probe again; publish_post does).
        IF p_old.id IS NULL OR p_old.status <> 'scheduled'
           OR (p_new.video_url, p_new.video_lo, p_new.media_id, p_new.photo_urls, p_new.upload_method,
               p_new.media_type, p_new.tiktok_account_id)
              IS DISTINCT FROM (p_old.video_url, p_old.video_lo, p_old.media_id, p_old.photo_urls, p_old.upload_method,
                                p_old.media_type, p_old.tiktok_account_id) THEN
            PERFORM vibescaling._check_media(p_new, (v_creator->>'max_video_post_duration_sec')::integer);
        END IF;
        IF v_caps THEN
            PERFORM vibescaling._check_caps(p_new);
        END IF;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.schedule_post(
    post_id               uuid,
    scheduled_at          timestamptz,
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
    p          vibescaling.posts;
    v_warnings jsonb;
BEGIN
    PERFORM vibescaling._require_primary();
    IF schedule_post.post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    UPDATE vibescaling.posts AS t
       SET status = 'scheduled', scheduled_at = schedule_post.scheduled_at,
           tiktok_account_id = schedule_post.tiktok_account_id,
           privacy_level = schedule_post.privacy_level, mode = schedule_post.mode,
           disable_comment = coalesce(schedule_post.disable_comment, false),
           disable_duet = coalesce(schedule_post.disable_duet, false),
           disable_stitch = coalesce(schedule_post.disable_stitch, false),
           brand_content_toggle = coalesce(schedule_post.brand_content_toggle, false),
           brand_organic_toggle = coalesce(schedule_post.brand_organic_toggle, false),
           last_error = NULL, attempts = 0, next_attempt_at = NULL
     WHERE t.id = schedule_post.post_id
    RETURNING t.* INTO p;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'post % not found', schedule_post.post_id USING ERRCODE = 'P0002';
    END IF;
    v_warnings := vibescaling._cap_warnings(p);
    IF v_warnings = '[]' THEN
        RETURN jsonb_build_object('data', to_jsonb(p));
    END IF;
    RETURN jsonb_build_object('data', to_jsonb(p), 'warnings', v_warnings);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling_api.publish_post(
    post_id               uuid    DEFAULT NULL,
    tiktok_account_id     uuid    DEFAULT NULL,
    privacy_level         text    DEFAULT NULL,
    mode                  text    DEFAULT 'direct',
    disable_comment       boolean DEFAULT false,
    disable_duet          boolean DEFAULT false,
    disable_stitch        boolean DEFAULT false,
    brand_content_toggle  boolean DEFAULT false,
    brand_organic_toggle  boolean DEFAULT false,
    targets               jsonb   DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(publish_post.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    -- Another request publishing this post holds its row: 409 at once, not a wait.
    PERFORM 1 FROM vibescaling.posts p WHERE p.id = v_post_id FOR UPDATE NOWAIT;
    -- Several accounts: each target's account must be the tenant's.
    IF publish_post.targets IS NOT NULL THEN
        IF publish_post.tiktok_account_id IS NOT NULL THEN
            RAISE EXCEPTION 'give tiktok_account_id or targets, not both' USING ERRCODE = '22023';
        END IF;
        PERFORM vibescaling._api_check_targets(publish_post.targets);
        RETURN vibescaling.publish_targets(v_post_id, publish_post.targets);
    END IF;
    PERFORM vibescaling._api_check_account(publish_post.tiktok_account_id);
    RETURN vibescaling.publish_post(v_post_id, publish_post.tiktok_account_id, publish_post.privacy_level,
                                    publish_post.mode, publish_post.disable_comment, publish_post.disable_duet,
                                    publish_post.disable_stitch, publish_post.brand_content_toggle,
                                    publish_post.brand_organic_toggle);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

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
    GRANT SELECT ON vibescaling_api.post_metrics, vibescaling_api.account_metrics,
                    vibescaling.post_metrics_latest, vibescaling.account_metrics_latest,
                    vibescaling.post_metrics, vibescaling.account_metrics TO vibescaling_user, vibescaling_operator;
    GRANT SELECT ON vibescaling_api.posting_slots, vibescaling.posting_slots,
                    vibescaling_api.recurrences, vibescaling.recurrences TO vibescaling_user;
    GRANT EXECUTE ON FUNCTION
        vibescaling_api.publish_post(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean, jsonb),
        vibescaling_api.schedule_post(uuid, timestamptz, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.cancel_post(uuid),
        vibescaling_api.publish_status(uuid),
        vibescaling_api.creator_info(uuid),
        vibescaling_api.authorize_url(text, text),
        vibescaling_api.connect_account(text, text, text),
        vibescaling_api.disconnect_account(uuid),
        vibescaling_api.analytics(timestamptz, timestamptz, text, text),
        vibescaling_api.set_posting_slots(uuid, text, jsonb),
        vibescaling_api.add_to_queue(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean),
        vibescaling_api.schedule_targets(uuid, timestamptz, jsonb),
        vibescaling_api.repeat_post(uuid, uuid, jsonb, text, jsonb, timestamptz, timestamptz, integer),
        vibescaling_api.change_recurrence(bigint, jsonb, text, jsonb, timestamptz, integer, boolean),
        vibescaling_api.import_schedule(text),
        vibescaling_api.export_schedule(),
        vibescaling_api.account_caps()
        TO vibescaling_user;
    -- The operator: not a tenant, so row level security shows it every row.
    GRANT USAGE ON SCHEMA vibescaling_api, vibescaling TO vibescaling_operator;
    GRANT SELECT ON vibescaling_api.posts, vibescaling_api.publish_records, vibescaling_api.dispatch_logs,
                    vibescaling.posts, vibescaling.publish_records, vibescaling.dispatch_logs TO vibescaling_operator;
    GRANT EXECUTE ON FUNCTION vibescaling_api.analytics(timestamptz, timestamptz, text, text),
                              vibescaling_api.settle_post(uuid, boolean, text),
                              vibescaling_api.account_caps() TO vibescaling_operator;
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

CREATE OR REPLACE FUNCTION vibescaling.publish_targets(post_id uuid, targets jsonb)
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

CREATE OR REPLACE FUNCTION vibescaling.schedule_targets(post_id uuid, scheduled_at timestamptz, targets jsonb)
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

CREATE OR REPLACE FUNCTION vibescaling.set_posting_slots(tiktok_account_id uuid, time_zone text, slots jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner text;
    s       jsonb;
    v_day   smallint;
    v_time  time;
BEGIN
    PERFORM vibescaling.at_local('2000-01-01', time_zone);   -- the zone is known
    SELECT a.owner INTO v_owner FROM vibescaling.tiktok_accounts a WHERE a.id = set_posting_slots.tiktok_account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'TikTok account % not found', set_posting_slots.tiktok_account_id USING ERRCODE = 'P0002';
    END IF;
    IF jsonb_typeof(slots) IS DISTINCT FROM 'array' OR jsonb_array_length(slots) > 168 THEN
        RAISE EXCEPTION 'slots must be an array of at most 168 {"weekday", "time"}' USING ERRCODE = '22023';
    END IF;
    PERFORM vibescaling._lock_accounts(ARRAY[set_posting_slots.tiktok_account_id]);
    DELETE FROM vibescaling.posting_slots p WHERE p.tiktok_account_id = set_posting_slots.tiktok_account_id;
    FOR s IN SELECT x FROM jsonb_array_elements(slots) x LOOP
        v_day := CASE WHEN jsonb_typeof(s->'weekday') = 'number' AND (s->>'weekday') ~ '^[1-7]$' THEN (s->>'weekday')::smallint
                      ELSE array_position(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], lower(s->>'weekday'))::smallint END;
        IF v_day IS NULL THEN
            RAISE EXCEPTION 'a slot''s weekday is 1 (Monday) to 7, or mon .. sun: %', s->'weekday' USING ERRCODE = '22023';
        END IF;
        BEGIN
            v_time := (s->>'time')::time;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
            v_time := NULL;
        END;
        IF v_time IS NULL OR (s->>'time') !~ '^\d{1,2}:\d{2}(:\d{2})?$' THEN
            RAISE EXCEPTION 'a slot''s time is HH:MM: %', s->'time' USING ERRCODE = '22023';
        END IF;
        INSERT INTO vibescaling.posting_slots (tiktok_account_id, weekday, local_time, time_zone, owner)
        VALUES (set_posting_slots.tiktok_account_id, v_day, v_time, time_zone, v_owner)
        ON CONFLICT DO NOTHING;
    END LOOP;
    RETURN jsonb_build_object('data', jsonb_build_object(
        'tiktok_account_id', set_posting_slots.tiktok_account_id, 'time_zone', time_zone,
        'slots', coalesce((SELECT jsonb_agg(jsonb_build_object('weekday', p.weekday, 'time', to_char(p.local_time, 'HH24:MI'))
                                            ORDER BY p.weekday, p.local_time)
                             FROM vibescaling.posting_slots p WHERE p.tiktok_account_id = set_posting_slots.tiktok_account_id), '[]')));
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.next_free_slot(tiktok_account_id uuid, not_before timestamptz DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- The planner prices the 8 weeks of candidates at a thousand rows per
-- slot (generate_series of timestamps has no row estimate), above
-- jit_above_cost once the posts table is large: JIT then compiled the
-- query at every call (about 0.4 s, for a 7 ms query; test/bench/campaign.sh).
SET jit = off
AS $$
DECLARE
    v_from timestamptz := greatest(coalesce(not_before, now()), now() + interval '5 minutes');
    v_cap  integer;
BEGIN
    IF next_free_slot.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.tiktok_accounts a WHERE a.id = next_free_slot.tiktok_account_id) THEN
        RAISE EXCEPTION 'TikTok account % not found', next_free_slot.tiktok_account_id USING ERRCODE = 'P0002';
    END IF;
    v_cap := vibescaling.daily_cap(next_free_slot.tiktok_account_id);
    -- The candidates in time order, the first free one wins; each test is
    -- a range scan of the account's posts (posts_account_cap_time_idx).
    RETURN (
        SELECT o.at
          FROM (SELECT (d::date + s.local_time) AT TIME ZONE s.time_zone AS at
                  FROM vibescaling.posting_slots s,
                       generate_series((v_from AT TIME ZONE s.time_zone)::date,
                                       (v_from AT TIME ZONE s.time_zone)::date + 56, interval '1 day') d
                 WHERE s.tiktok_account_id = next_free_slot.tiktok_account_id
                   AND extract(isodow FROM d) = s.weekday) o
         WHERE o.at >= v_from
           AND NOT EXISTS (SELECT 1 FROM vibescaling.posts p
                            WHERE p.tiktok_account_id = next_free_slot.tiktok_account_id
                              AND p.status IN ('scheduled', 'publishing', 'posted')
                              AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END = o.at)
           AND (SELECT count(*) FROM vibescaling.posts p
                 WHERE p.tiktok_account_id = next_free_slot.tiktok_account_id
                   AND p.mode = 'direct'   -- as _direct_posts_on counts: inbox uploads have their own cap
                   AND p.status IN ('scheduled', 'publishing', 'posted')
                   AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END
                       >= date_trunc('day', o.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                   AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END
                       < (date_trunc('day', o.at AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC')
               < v_cap
         ORDER BY o.at LIMIT 1);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.add_to_queue(
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
    v_at timestamptz;
BEGIN
    IF add_to_queue.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._lock_accounts(ARRAY[add_to_queue.tiktok_account_id]);
    v_at := vibescaling.next_free_slot(add_to_queue.tiktok_account_id);
    IF v_at IS NULL THEN
        RAISE EXCEPTION 'account % has no free posting slot in the coming 8 weeks', add_to_queue.tiktok_account_id
            USING ERRCODE = '55000', HINT = 'Add slots with set_posting_slots, or schedule the post at a time of your own.';
    END IF;
    RETURN vibescaling.schedule_post(add_to_queue.post_id, v_at, add_to_queue.tiktok_account_id, add_to_queue.privacy_level,
                                     add_to_queue.mode, add_to_queue.disable_comment, add_to_queue.disable_duet,
                                     add_to_queue.disable_stitch, add_to_queue.brand_content_toggle,
                                     add_to_queue.brand_organic_toggle);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._direct_posts_on(p_account_id uuid, p_day_start timestamptz, p_day_end timestamptz,
                                             p_except uuid)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer FROM vibescaling.posts p
     WHERE p.tiktok_account_id = p_account_id AND p.id IS DISTINCT FROM p_except AND p.mode = 'direct'
       AND p.status IN ('scheduled', 'publishing', 'posted')
       AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END >= p_day_start
       AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END < p_day_end
$$;

CREATE OR REPLACE FUNCTION vibescaling._lock_accounts(p_accounts uuid[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k integer;
BEGIN
    FOR k IN SELECT DISTINCT hashtext(a::text) FROM unnest(p_accounts) a WHERE a IS NOT NULL ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtext('vibescaling.queue'), k);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._cap_findings(p vibescaling.posts)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_day     record := vibescaling._utc_day(p.scheduled_at);
    v_date    text := to_char(v_day.day_start AT TIME ZONE 'UTC', 'YYYY-MM-DD');
    v_over    text := CASE current_setting('vibescaling.caps_policy') WHEN 'warn' THEN 'warn' ELSE 'refuse' END;
    v_found   jsonb := '[]';
    v_cap     integer;
    v_count   integer;
    v_posting integer;
    v_here    boolean;
BEGIN
    IF p.tiktok_account_id IS NULL OR p.scheduled_at IS NULL THEN
        RETURN v_found;
    END IF;
    IF NOT current_setting('vibescaling.app_audited')::boolean THEN
        IF p.mode = 'direct' AND p.privacy_level IS DISTINCT FROM 'SELF_ONLY' THEN
            v_found := v_found || jsonb_build_object(
                'code', 'unaudited_client_can_only_post_to_private_accounts', 'level', 'refuse', 'sqlstate', '22023',
                'message', 'the TikTok app is not audited: it may only post SELF_ONLY (TikTok: unaudited_client_can_only_post_to_private_accounts)',
                'detail', format('privacy_level=%s', p.privacy_level),
                'hint', 'Choose SELF_ONLY, or set vibescaling.app_audited once TikTok has audited the app.');
        END IF;
        -- The other accounts posting that day, and whether this one already does.
        SELECT count(DISTINCT x.tiktok_account_id) FILTER (WHERE x.tiktok_account_id <> p.tiktok_account_id)::integer,
               bool_or(x.tiktok_account_id = p.tiktok_account_id AND x.id <> p.id)
          INTO v_posting, v_here
          FROM vibescaling.posts x
         WHERE x.status IN ('scheduled', 'publishing') AND x.scheduled_at >= v_day.day_start AND x.scheduled_at < v_day.day_end
            OR x.status = 'posted' AND x.posted_at >= v_day.day_start AND x.posted_at < v_day.day_end;
        IF v_posting >= 5 THEN
            v_found := v_found || jsonb_build_object(
                'code', 'reached_active_user_cap', 'level', v_over, 'sqlstate', '53400',
                'message', format('the TikTok app is not audited: 5 other accounts already post on %s (UTC) (TikTok: reached_active_user_cap)', v_date),
                'detail', format('accounts_posting=%s day=%s', v_posting, v_date),
                'hint', 'An unaudited app may have at most 5 accounts posting a day.');
        ELSIF v_posting = 4 AND NOT coalesce(v_here, false) THEN
            v_found := v_found || jsonb_build_object(
                'code', 'near_active_user_cap', 'level', 'warn', 'sqlstate', '01000',
                'message', format('the TikTok app is not audited: account %s is the 5th and last account it may have posting on %s (UTC)',
                                  p.tiktok_account_id, v_date),
                'detail', format('accounts_posting=%s day=%s', v_posting + 1, v_date),
                'hint', 'No other account can be scheduled that day until TikTok audits the app.');
        END IF;
    END IF;
    IF p.mode = 'direct' THEN
        v_cap := vibescaling.daily_cap(p.tiktok_account_id);
        v_count := vibescaling._direct_posts_on(p.tiktok_account_id, v_day.day_start, v_day.day_end, p.id);
        IF v_count >= v_cap THEN
            v_found := v_found || jsonb_build_object(
                'code', 'spam_risk_too_many_posts', 'level', v_over, 'sqlstate', '53400',
                'message', format('account %s already has %s Direct Posts on %s (UTC), its daily cap (TikTok: spam_risk_too_many_posts)',
                                  p.tiktok_account_id, v_count, v_date),
                'detail', format('daily_cap=%s learned_from_tiktok=%s', v_cap,
                                 vibescaling.learned_daily_cap(p.tiktok_account_id) IS NOT NULL),
                'hint', 'Schedule it on another day (add_to_queue finds the next free slot under the cap).');
        ELSIF v_count + 1 >= ceil(v_cap * 0.8) THEN
            v_found := v_found || jsonb_build_object(
                'code', 'near_daily_cap', 'level', 'warn', 'sqlstate', '01000',
                'message', format('account %s will have %s of its %s Direct Posts a day on %s (UTC)',
                                  p.tiktok_account_id, v_count + 1, v_cap, v_date),
                'detail', format('direct_posts=%s daily_cap=%s learned_from_tiktok=%s', v_count + 1, v_cap,
                                 vibescaling.learned_daily_cap(p.tiktok_account_id) IS NOT NULL),
                'hint', 'TikTok counts the creator''s posts from every app against this cap: the last ones of a day are the likeliest to be refused.');
        END IF;
    ELSE
        SELECT count(*)::integer INTO v_count FROM vibescaling.posts x
         WHERE x.tiktok_account_id = p.tiktok_account_id AND x.id <> p.id AND x.mode = 'inbox'
           AND x.status IN ('scheduled', 'publishing', 'posted')
           AND CASE WHEN x.status = 'posted' THEN x.posted_at ELSE x.scheduled_at END > p.scheduled_at - interval '24 hours'
           AND CASE WHEN x.status = 'posted' THEN x.posted_at ELSE x.scheduled_at END <= p.scheduled_at;
        IF v_count >= 5 THEN
            v_found := v_found || jsonb_build_object(
                'code', 'spam_risk_too_many_pending_share', 'level', v_over, 'sqlstate', '53400',
                'message', format('account %s already has %s inbox uploads in the 24 hours up to %s (TikTok: spam_risk_too_many_pending_share)',
                                  p.tiktok_account_id, v_count, p.scheduled_at),
                'detail', format('inbox_uploads_24h=%s limit=5', v_count),
                'hint', 'TikTok holds at most 5 unfinished inbox drafts per creator in 24 hours.');
        ELSIF v_count + 1 >= 4 THEN
            v_found := v_found || jsonb_build_object(
                'code', 'near_pending_share_limit', 'level', 'warn', 'sqlstate', '01000',
                'message', format('account %s will have %s of the 5 inbox uploads TikTok holds in the 24 hours up to %s',
                                  p.tiktok_account_id, v_count + 1, p.scheduled_at),
                'detail', format('inbox_uploads_24h=%s limit=5', v_count + 1),
                'hint', 'Drafts the creator has not finished in the TikTok app count until they are posted or deleted.');
        END IF;
    END IF;
    RETURN v_found;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._check_caps(p vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f jsonb;
BEGIN
    IF p.tiktok_account_id IS NULL OR p.scheduled_at IS NULL THEN
        RETURN;
    END IF;
    PERFORM vibescaling._lock_accounts(ARRAY[p.tiktok_account_id]);
    IF NOT current_setting('vibescaling.app_audited')::boolean THEN
        PERFORM pg_advisory_xact_lock(hashtext('vibescaling.active_users'));
    END IF;
    SELECT x INTO f FROM jsonb_array_elements(vibescaling._cap_findings(p)) x WHERE x->>'level' = 'refuse' LIMIT 1;
    IF f IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = f->>'message', ERRCODE = f->>'sqlstate', DETAIL = f->>'detail',
                              HINT = f->>'hint';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._cap_warnings(p vibescaling.posts)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('code', x->>'code', 'message', x->>'message', 'detail', x->>'detail')), '[]')
      FROM jsonb_array_elements(vibescaling._cap_findings(p)) x
     WHERE x->>'level' = 'warn'
$$;

REVOKE ALL ON FUNCTION vibescaling._cap_findings(vibescaling.posts) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling._cap_warnings(vibescaling.posts) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling._lock_accounts(uuid[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling.repeat_post(post_id uuid, tiktok_account_id uuid, rule jsonb, time_zone text,
                                        options jsonb, starts_at timestamptz DEFAULT NULL,
                                        ends_at timestamptz DEFAULT NULL, max_count integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p    vibescaling.posts := vibescaling._lock_post(repeat_post.post_id);
    v_id bigint;
BEGIN
    IF p.status <> 'draft' OR p.parent_id IS NOT NULL OR p.recurrence_id IS NOT NULL THEN
        RAISE EXCEPTION 'post % is not a draft of its own; only a draft repeats', p.id USING ERRCODE = '55000';
    END IF;
    IF repeat_post.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling.at_local('2000-01-01', repeat_post.time_zone);
    PERFORM vibescaling._check_rule(rule);
    IF jsonb_typeof(options) IS DISTINCT FROM 'object' OR options->>'privacy_level' IS NULL THEN
        RAISE EXCEPTION 'options must hold the privacy_level (and may hold mode and the toggles)' USING ERRCODE = '22023';
    END IF;
    INSERT INTO vibescaling.recurrences (post_id, tiktok_account_id, options, rule, time_zone, starts_at, ends_at,
                                         max_count, owner)
    VALUES (p.id, repeat_post.tiktok_account_id, options, rule, repeat_post.time_zone,
            coalesce(repeat_post.starts_at, now()), repeat_post.ends_at, repeat_post.max_count, p.owner)
    RETURNING id INTO v_id;
    PERFORM vibescaling._expand_recurrence(v_id, interval '7 days');
    RETURN jsonb_build_object('data', jsonb_build_object('recurrence_id', v_id, 'occurrences',
        coalesce((SELECT jsonb_agg(o.scheduled_at ORDER BY o.scheduled_at) FROM vibescaling.posts o
                   WHERE o.recurrence_id = v_id), '[]')))
           || vibescaling._recurrence_warnings(v_id);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._recurrence_warnings(p_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN count(*) = 0 THEN '{}'::jsonb
                ELSE jsonb_build_object('warnings', jsonb_agg(jsonb_build_object('post_id', o.id, 'scheduled_at', o.scheduled_at)
                                                               || w ORDER BY o.scheduled_at)) END
      FROM vibescaling.posts o, jsonb_array_elements(vibescaling._cap_warnings(o)) w
     WHERE o.recurrence_id = p_id AND o.status = 'scheduled'
$$;

CREATE OR REPLACE FUNCTION vibescaling.expand_recurrences()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id    bigint;
    v_rules integer := 0;
    v_n     integer := 0;
BEGIN
    PERFORM vibescaling._require_primary();
    -- Every rule's account's scheduling lock first, in _lock_accounts'
    -- order, so that this run and a transaction scheduling for several
    -- accounts never wait on each other in a cycle.
    PERFORM vibescaling._lock_accounts(ARRAY(
        SELECT x.tiktok_account_id FROM vibescaling.recurrences x
         WHERE x.stopped_at IS NULL AND (x.max_count IS NULL OR x.occurrences < x.max_count)
           AND (x.ends_at IS NULL OR x.ends_at > now())));
    FOR v_id IN SELECT x.id FROM vibescaling.recurrences x
                 WHERE x.stopped_at IS NULL AND (x.max_count IS NULL OR x.occurrences < x.max_count)
                   AND (x.ends_at IS NULL OR x.ends_at > now())
                 ORDER BY x.id LOOP
        v_rules := v_rules + 1;
        v_n := v_n + vibescaling._expand_recurrence(v_id, interval '7 days');
    END LOOP;
    RETURN jsonb_build_object('rules', v_rules, 'scheduled', v_n);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling.change_recurrence(recurrence_id bigint, rule jsonb DEFAULT NULL, time_zone text DEFAULT NULL,
                                              options jsonb DEFAULT NULL, ends_at timestamptz DEFAULT NULL,
                                              max_count integer DEFAULT NULL, stop boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r         vibescaling.recurrences;
    v_removed integer;
BEGIN
    SELECT * INTO r FROM vibescaling.recurrences x WHERE x.id = change_recurrence.recurrence_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recurrence % not found', change_recurrence.recurrence_id USING ERRCODE = 'P0002';
    END IF;
    IF change_recurrence.rule IS NOT NULL THEN
        PERFORM vibescaling._check_rule(change_recurrence.rule);
    END IF;
    IF change_recurrence.time_zone IS NOT NULL THEN
        PERFORM vibescaling.at_local('2000-01-01', change_recurrence.time_zone);
    END IF;
    -- The future goes: occurrences still scheduled (locked: one the
    -- dispatcher holds is being sent, and stays).
    DELETE FROM vibescaling.posts o
     WHERE o.id IN (SELECT x.id FROM vibescaling.posts x
                     WHERE x.recurrence_id = r.id AND x.status IN ('scheduled', 'draft')
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_removed = ROW_COUNT;
    UPDATE vibescaling.recurrences x
       SET rule = coalesce(change_recurrence.rule, x.rule), time_zone = coalesce(change_recurrence.time_zone, x.time_zone),
           options = coalesce(change_recurrence.options, x.options), ends_at = coalesce(change_recurrence.ends_at, x.ends_at),
           max_count = coalesce(change_recurrence.max_count, x.max_count),
           occurrences = x.occurrences - v_removed, last_at = now(),
           stopped_at = CASE WHEN change_recurrence.stop THEN now() ELSE x.stopped_at END
     WHERE x.id = r.id;
    PERFORM vibescaling._expand_recurrence(r.id, interval '7 days');
    SELECT * INTO r FROM vibescaling.recurrences x WHERE x.id = r.id;
    RETURN jsonb_build_object('data', to_jsonb(r) || jsonb_build_object('removed', v_removed, 'scheduled',
        coalesce((SELECT jsonb_agg(o.scheduled_at ORDER BY o.scheduled_at) FROM vibescaling.posts o
                   WHERE o.recurrence_id = r.id AND o.status = 'scheduled'), '[]')))
           || vibescaling._recurrence_warnings(r.id);
END
$$;

REVOKE ALL ON FUNCTION vibescaling._recurrence_warnings(bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling.import_schedule(csv text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_header   text[];
    v_row      text[];
    v_line     integer := 1;
    v_rec      jsonb;
    v_post     uuid;
    v_posts    jsonb := '[]';
    v_rejected jsonb := '[]';
    v_state    text;
    v_message  text;
    v_unknown  text;
    v_first    boolean := true;
    v_col      integer;
    v_accounts uuid[] := '{}';
    v_answer   jsonb;
    v_warnings jsonb := '[]';
BEGIN
    IF csv IS NULL THEN
        RAISE EXCEPTION 'a CSV text is required' USING ERRCODE = '22004';
    END IF;
    -- The scheduling locks of every account the file names, first and in
    -- _lock_accounts' order (a pass over the rows for that column alone).
    FOR v_row IN SELECT r FROM vibescaling._csv_rows(csv) r LOOP
        IF v_first THEN
            v_col := array_position(ARRAY(SELECT lower(btrim(h)) FROM unnest(v_row) h), 'tiktok_account_id');
            v_first := false;
        ELSIF v_row[v_col] ~* '^\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\s*$' THEN
            v_accounts := v_accounts || btrim(v_row[v_col])::uuid;
        END IF;
    END LOOP;
    PERFORM vibescaling._lock_accounts(v_accounts);
    -- All or nothing: a refused row undoes the others (the block's
    -- rollback); the report outlives it.
    BEGIN
    FOR v_row IN SELECT r FROM vibescaling._csv_rows(csv) r LOOP
        IF v_header IS NULL THEN
            v_header := (SELECT array_agg(lower(btrim(h)) ORDER BY o) FROM unnest(v_row) WITH ORDINALITY u(h, o));
            SELECT h INTO v_unknown FROM unnest(v_header) h WHERE NOT (h = ANY (vibescaling._csv_columns())) LIMIT 1;
            IF v_unknown IS NOT NULL THEN
                RAISE EXCEPTION 'unknown CSV column "%"', v_unknown USING ERRCODE = '22023',
                      HINT = 'The columns: ' || array_to_string(vibescaling._csv_columns(), ', ') || '.';
            END IF;
            CONTINUE;
        END IF;
        v_line := v_line + 1;
        IF v_line > 1001 THEN
            RAISE EXCEPTION 'at most 1000 rows a file' USING ERRCODE = '22023';
        END IF;
        BEGIN
            IF cardinality(v_row) <> cardinality(v_header) THEN
                RAISE EXCEPTION 'the row has % fields, the header %', cardinality(v_row), cardinality(v_header)
                    USING ERRCODE = '22023';
            END IF;
            SELECT jsonb_object_agg(v_header[o], nullif(f, '')) INTO v_rec FROM unnest(v_row) WITH ORDINALITY u(f, o);
            INSERT INTO vibescaling.posts (caption, video_url) VALUES (v_rec->>'caption', v_rec->>'video_url')
            RETURNING id INTO v_post;
            v_answer := vibescaling._schedule_with(v_post, (v_rec->>'scheduled_at')::timestamptz,
                                                   (v_rec->>'tiktok_account_id')::uuid, v_rec);
            v_posts := v_posts || to_jsonb(v_post);
            v_warnings := v_warnings || coalesce((SELECT jsonb_agg(jsonb_build_object('line', v_line) || w)
                                                    FROM jsonb_array_elements(v_answer->'warnings') w), '[]');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            v_rejected := v_rejected || jsonb_build_object('line', v_line, 'error', v_message, 'sqlstate', v_state);
        END;
    END LOOP;
    IF v_header IS NULL THEN
        RAISE EXCEPTION 'the CSV has no header row' USING ERRCODE = '22023';
    END IF;
    IF jsonb_array_length(v_rejected) > 0 THEN
        RAISE EXCEPTION 'vibescaling: import refused' USING ERRCODE = 'P0001';
    END IF;
    EXCEPTION WHEN raise_exception THEN
        IF jsonb_array_length(v_rejected) = 0 THEN
            RAISE;
        END IF;
        RETURN jsonb_build_object('data', jsonb_build_object('imported', 0, 'rejected', v_rejected));
    END;
    RETURN jsonb_build_object('data', jsonb_build_object('imported', jsonb_array_length(v_posts), 'post_ids', v_posts))
           || CASE WHEN v_warnings = '[]' THEN '{}' ELSE jsonb_build_object('warnings', v_warnings) END;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._export_schedule(p_owner text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_to_string(vibescaling._csv_columns(), ',') || E'\n'
           || coalesce(string_agg(concat_ws(',',
                  vibescaling._csv_field(p.caption), vibescaling._csv_field(p.video_url),
                  vibescaling._csv_field(p.tiktok_account_id::text), vibescaling._csv_field(p.privacy_level),
                  vibescaling._csv_field(to_char(p.scheduled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                  vibescaling._csv_field(p.mode), p.disable_comment::text, p.disable_duet::text, p.disable_stitch::text,
                  p.brand_content_toggle::text, p.brand_organic_toggle::text) || E'\n',
                  '' ORDER BY p.scheduled_at, p.id), '')
      FROM vibescaling.posts p
     WHERE p.status = 'scheduled' AND p.media_type = 'video' AND p.video_url IS NOT NULL
       AND (p_owner IS NULL OR p.owner = p_owner)
$$;

CREATE OR REPLACE FUNCTION vibescaling.export_schedule()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._export_schedule(NULL)
$$;

REVOKE ALL ON FUNCTION vibescaling._export_schedule(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._api_check_recurrence(p_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'recurrence_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.recurrences r WHERE r.id = p_id AND r.owner = vibescaling._api_tenant()) THEN
        RAISE EXCEPTION 'recurrence % not found', p_id USING ERRCODE = 'PT404', DETAIL = 'sqlstate=P0002';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._api_check_targets(targets jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t jsonb;
BEGIN
    IF jsonb_typeof(targets) = 'array' THEN
        FOR t IN SELECT x FROM jsonb_array_elements(targets) x LOOP
            PERFORM vibescaling._api_check_account(CASE WHEN jsonb_typeof(t) = 'object'
                                                        AND t->>'tiktok_account_id' ~* '^[0-9a-f-]{36}$'
                                                        THEN (t->>'tiktok_account_id')::uuid END);
        END LOOP;
    END IF;
END
$$;

-- The campaign API's view and CSV media type.
CREATE VIEW vibescaling_api.recurrences WITH (security_invoker = true) AS
    SELECT id, post_id, tiktok_account_id, options, rule, time_zone, starts_at, ends_at, max_count, occurrences,
           last_at, last_error, stopped_at, created_at
      FROM vibescaling.recurrences;
COMMENT ON VIEW vibescaling_api.recurrences IS 'The tenant''s repeating posts'' rules.';
REVOKE ALL ON TABLE vibescaling_api.recurrences FROM PUBLIC;
CREATE DOMAIN vibescaling_api."text/csv" AS text;

CREATE OR REPLACE FUNCTION vibescaling_api.schedule_targets(post_id uuid DEFAULT NULL, scheduled_at timestamptz DEFAULT NULL,
                                                 targets jsonb DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(schedule_targets.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    PERFORM vibescaling._api_check_targets(schedule_targets.targets);
    RETURN vibescaling.schedule_targets(v_post_id, schedule_targets.scheduled_at, schedule_targets.targets);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling_api.repeat_post(post_id uuid DEFAULT NULL, tiktok_account_id uuid DEFAULT NULL,
                                            rule jsonb DEFAULT NULL, time_zone text DEFAULT NULL,
                                            options jsonb DEFAULT NULL, starts_at timestamptz DEFAULT NULL,
                                            ends_at timestamptz DEFAULT NULL, max_count integer DEFAULT NULL)
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
    PERFORM vibescaling._api_check_post(repeat_post.post_id);
    PERFORM vibescaling._api_check_account(repeat_post.tiktok_account_id);
    RETURN vibescaling.repeat_post(repeat_post.post_id, repeat_post.tiktok_account_id, repeat_post.rule,
                                   repeat_post.time_zone, repeat_post.options, repeat_post.starts_at,
                                   repeat_post.ends_at, repeat_post.max_count);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling_api.change_recurrence(recurrence_id bigint DEFAULT NULL, rule jsonb DEFAULT NULL,
                                                  time_zone text DEFAULT NULL, options jsonb DEFAULT NULL,
                                                  ends_at timestamptz DEFAULT NULL, max_count integer DEFAULT NULL,
                                                  stop boolean DEFAULT false)
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
    PERFORM vibescaling._api_check_recurrence(change_recurrence.recurrence_id);
    RETURN vibescaling.change_recurrence(change_recurrence.recurrence_id, change_recurrence.rule,
                                         change_recurrence.time_zone, change_recurrence.options,
                                         change_recurrence.ends_at, change_recurrence.max_count,
                                         coalesce(change_recurrence.stop, false));
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling_api.import_schedule(csv text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_answer  jsonb;
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_tenant();
    v_answer := vibescaling.import_schedule(import_schedule.csv);
    IF v_answer->'data' ? 'rejected' THEN
        PERFORM set_config('response.status', '400', true);
    END IF;
    RETURN v_answer;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling_api.export_schedule()
RETURNS vibescaling_api."text/csv"
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
    RETURN vibescaling._export_schedule(vibescaling._api_tenant());
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling_api.account_caps()
RETURNS TABLE (tiktok_account_id uuid, day date, direct_posts bigint, daily_cap integer,
               cap_learned_from_tiktok boolean, inbox_uploads_24h bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scope   text;
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    v_scope := vibescaling._analytics_scope(NULL);
    RETURN QUERY SELECT c.tiktok_account_id, c.day, c.direct_posts, c.daily_cap, c.cap_learned_from_tiktok,
                        c.inbox_uploads_24h
                   FROM vibescaling.account_caps c
                  WHERE v_scope = '*' OR c.owner = v_scope
                  ORDER BY c.tiktok_account_id, c.day;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

REVOKE ALL ON FUNCTION vibescaling._api_check_recurrence(bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling._api_check_targets(jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling_api.schedule_targets(uuid, timestamptz, jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling_api.repeat_post(uuid, uuid, jsonb, text, jsonb, timestamptz, timestamptz, integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling_api.change_recurrence(bigint, jsonb, text, jsonb, timestamptz, integer, boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling_api.import_schedule(text) FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling_api.export_schedule() FROM PUBLIC;

REVOKE ALL ON FUNCTION vibescaling_api.account_caps() FROM PUBLIC;
