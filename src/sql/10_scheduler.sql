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

-- Publishes every scheduled post due at as_of, one transaction per post.
-- FOR UPDATE SKIP LOCKED lets several dispatchers run at once without
-- touching the same post. A transient failure (TikTok 5xx or 429, no
-- connection, timeout before sending) leaves the post scheduled with
-- attempts + 1 and next_attempt_at set by exponential backoff, until
-- vibescaling.max_attempts. When TikTok's reply asked for a wait with a
-- Retry-After header (the error's DETAIL then ends with " retry_after=N",
-- see _raise_tiktok_error), next_attempt_at is as_of plus the larger of the
-- backoff and N seconds: never sooner than TikTok asked, and not capped by
-- vibescaling.retry_max_delay. Any other failure, or one whose request may
-- have reached TikTok (outcome unknown: resending could post twice), fails
-- the post with last_error. Query cancel stops the run (committed posts
-- stay done). Call it as a statement of its own:
--   CALL vibescaling.dispatch_due_posts();
CREATE PROCEDURE vibescaling.dispatch_due_posts(as_of timestamptz DEFAULT now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_post_id   uuid;
    v_attempts  integer;
    v_message   text;
    v_state     text;
    v_hint      text;
    v_detail    text;
    v_retry     boolean;
    v_retry_after bigint;
BEGIN
    LOOP
        SELECT p.id, p.attempts INTO v_post_id, v_attempts
          FROM vibescaling.posts p
         WHERE p.status = 'scheduled' AND coalesce(p.next_attempt_at, p.scheduled_at) <= as_of
         ORDER BY coalesce(p.next_attempt_at, p.scheduled_at), p.id
         LIMIT 1
           FOR UPDATE SKIP LOCKED;
        EXIT WHEN NOT FOUND;

        BEGIN
            PERFORM vibescaling._publish_locked(v_post_id, 'scheduler');
        EXCEPTION WHEN OTHERS THEN
            -- The subtransaction rolled back; the row lock and the
            -- dispatch_logs rows remain. (OTHERS never catches query_canceled.)
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                                    v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
            v_retry := v_hint = vibescaling._transient_hint()
                       AND v_attempts + 1 < current_setting('vibescaling.max_attempts')::integer;
            -- TikTok's Retry-After, in seconds (the core caps it at 2147483647, 10 digits).
            v_retry_after := (regexp_match(v_detail, ' retry_after=([0-9]{1,10})$'))[1]::bigint;
            UPDATE vibescaling.posts
               SET status = CASE WHEN v_retry THEN 'scheduled' ELSE 'failed' END,
                   attempts = v_attempts + 1,
                   -- Counted from as_of, the dispatcher's notion of now.
                   next_attempt_at = CASE WHEN v_retry
                                          THEN as_of + greatest(vibescaling._retry_delay(v_attempts + 1),
                                                                make_interval(secs => coalesce(v_retry_after, 0)))
                                     END,
                   last_error = format('%s [SQLSTATE %s]%s', v_message, v_state,
                                       CASE WHEN v_retry THEN format(' (attempt %s, will retry)', v_attempts + 1)
                                            WHEN v_hint = vibescaling._transient_hint()
                                            THEN format(' (attempt %s, no attempts left)', v_attempts + 1)
                                            ELSE '' END)
             WHERE id = v_post_id;
        END;
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE vibescaling.dispatch_due_posts(timestamptz) IS
    'Publishes scheduled posts due at as_of, each in its own transaction, retrying transient failures with backoff (never sooner than TikTok''s Retry-After); safe to run concurrently.';

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
-- dispatcher on the given schedule; vibescaling-refresh refreshes tokens
-- that expire within 30 minutes, every 15 minutes; vibescaling-poll-status
-- follows publishes to their final state, every minute. Returns the
-- dispatch job's id.
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
      USING 'vibescaling-refresh', '*/15 * * * *', 'SELECT vibescaling.refresh_expiring_tokens()';
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
    FOR v_job IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname IN ($1, $2)'
                 USING 'vibescaling-dispatch', 'vibescaling-refresh' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job;
        v_found := true;
    END LOOP;
    IF vibescaling._unschedule_status_poller() THEN
        v_found := true;
    END IF;
    RETURN v_found;
END
$$;
