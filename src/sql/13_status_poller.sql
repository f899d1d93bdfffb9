-- vibescaling: the status poller. TikTok processes a publish asynchronously;
-- poll_publish_statuses() (pg_cron runs it every minute, see
-- _schedule_status_poller) asks TikTok about every publish record that is not
-- final yet, through publish_status(), until it is: sent_to_inbox, failed,
-- published with its public post id, or published without one once
-- give_up_after has passed (moderation may never make a private post public).
-- A record still processing after give_up_after gets a final answer of its
-- own: failed, timed out (and its post fails too).

-- How long the poller waits after a record's last check before it asks
-- TikTok again, by the record's age: long jobs are not hammered.
CREATE FUNCTION vibescaling._status_poll_delay(age interval)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN age < interval '1 minute'   THEN interval '10 seconds'
                WHEN age < interval '10 minutes' THEN interval '30 seconds'
                WHEN age < interval '1 hour'     THEN interval '2 minutes'
                ELSE interval '10 minutes'
           END
$$;

-- The poller; only_accounts (NULL: every account) limits it to some accounts'
-- records (the tests use it so as not to touch other sessions' records).
-- See poll_publish_statuses below for what it does and returns.
CREATE FUNCTION vibescaling._poll_publish_statuses(max_records integer, give_up_after interval,
                                                   only_accounts uuid[])
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- TikTok allows 30 status fetches per minute per token; the rest of the
    -- minute is left to publish_status callers.
    c_fetches_per_account constant integer := 25;
    v_cutoff      timestamptz;   -- created before this: past give_up_after
    v_id          bigint;
    v_account     uuid;
    v_timed_out   boolean;
    v_fetched     boolean;
    v_reason      text;
    v_fetches     jsonb := '{}';   -- account id -> status fetches made this run
    r             vibescaling.publish_records;
    v_acted       integer := 0;
    v_polled      integer := 0;
    v_final       integer := 0;
    v_processing  integer := 0;
    v_timeouts    integer := 0;
    v_errors      integer := 0;
    v_skipped     integer := 0;
    v_message     text;
    v_state       text;
BEGIN
    IF max_records IS NULL OR max_records < 0 THEN
        RAISE EXCEPTION 'max_records must be 0 or more' USING ERRCODE = '22023';
    END IF;
    IF give_up_after IS NULL OR give_up_after <= interval '0' THEN
        RAISE EXCEPTION 'give_up_after must be a positive interval' USING ERRCODE = '22023';
    END IF;
    v_cutoff := now() - give_up_after;

    -- Not final, and not timed out, but checked too recently.
    SELECT count(*) INTO v_skipped
      FROM vibescaling.publish_records pr
     WHERE (pr.status = 'processing' AND pr.created_at >= v_cutoff
            OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
       AND (only_accounts IS NULL OR pr.tiktok_account_id = ANY (only_accounts))
       AND pr.checked_at + vibescaling._status_poll_delay(now() - pr.created_at) > now()
       -- Only a post's latest publish: publish_status follows that one.
       AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                        WHERE n.post_id = pr.post_id AND (n.created_at, n.id) > (pr.created_at, pr.id));

    FOR v_id, v_account, v_timed_out IN
        SELECT pr.id, pr.tiktok_account_id, pr.status = 'processing' AND pr.created_at < v_cutoff
          FROM vibescaling.publish_records pr
         WHERE (pr.status = 'processing'
                OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
           AND (only_accounts IS NULL OR pr.tiktok_account_id = ANY (only_accounts))
           AND (pr.created_at < v_cutoff   -- timed out (only processing ones are left at that age)
                OR pr.checked_at IS NULL
                OR pr.checked_at + vibescaling._status_poll_delay(now() - pr.created_at) <= now())
           AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                            WHERE n.post_id = pr.post_id AND (n.created_at, n.id) > (pr.created_at, pr.id))
         ORDER BY pr.checked_at NULLS FIRST, pr.created_at, pr.id
    LOOP
        EXIT WHEN v_acted >= max_records;
        IF NOT v_timed_out AND coalesce((v_fetches->>v_account::text)::integer, 0) >= c_fetches_per_account THEN
            v_skipped := v_skipped + 1;   -- this account's budget for the run is spent
            CONTINUE;
        END IF;

        v_fetched := false;
        BEGIN
            -- Lock it again, as it is now: another poller (or a publish_status
            -- caller) holding it is skipped; one that just checked or settled it
            -- makes it not due any more.
            SELECT * INTO r FROM vibescaling.publish_records pr
             WHERE pr.id = v_id
               AND (pr.status = 'processing'
                    OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
               AND (pr.created_at < v_cutoff
                    OR pr.checked_at IS NULL
                    OR pr.checked_at + vibescaling._status_poll_delay(now() - pr.created_at) <= now())
               FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                v_acted := v_acted + 1;
                IF r.status = 'processing' AND r.created_at < v_cutoff THEN
                    -- No final status within give_up_after: that is the final answer.
                    v_reason := format('timed out: no final status from TikTok after %s', give_up_after);
                    UPDATE vibescaling.publish_records
                       SET status = 'failed', fail_reason = v_reason, updated_at = now()
                     WHERE id = r.id;
                    UPDATE vibescaling.posts
                       SET status = 'failed', last_error = format('TikTok: publish %s failed: %s', r.publish_id, v_reason)
                     WHERE id = r.post_id;
                    v_timeouts := v_timeouts + 1;
                ELSE
                    v_fetches := jsonb_set(v_fetches, ARRAY[r.tiktok_account_id::text],
                                           to_jsonb(coalesce((v_fetches->>r.tiktok_account_id::text)::integer, 0) + 1));
                    v_fetched := true;
                    v_polled := v_polled + 1;
                    -- r is its post's latest record, which is what publish_status
                    -- asks TikTok about (and fails the post on FAILED).
                    PERFORM vibescaling.publish_status(r.post_id);
                    SELECT * INTO r FROM vibescaling.publish_records WHERE id = v_id;
                    IF r.status IN ('sent_to_inbox', 'failed')
                       OR r.status = 'published' AND (cardinality(r.public_post_ids) > 0 OR r.created_at < v_cutoff) THEN
                        v_final := v_final + 1;
                    ELSE
                        v_processing := v_processing + 1;
                    END IF;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- TikTok refused or could not be reached (its dispatch_logs row
            -- stays), or anything else went wrong with this record: count it,
            -- go on with the others. (OTHERS never catches a query cancel.)
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            v_errors := v_errors + 1;
            RAISE LOG 'vibescaling: status poll of publish record % failed: % [SQLSTATE %]', v_id, v_message, v_state;
            IF v_fetched THEN
                -- A failed check backs off like a successful one (a 429 or an
                -- outage must not be hammered either).
                BEGIN
                    UPDATE vibescaling.publish_records pr SET checked_at = now()
                     WHERE pr.id = v_id
                       AND pr.id IN (SELECT l.id FROM vibescaling.publish_records l
                                      WHERE l.id = v_id FOR UPDATE SKIP LOCKED);
                EXCEPTION WHEN OTHERS THEN
                    NULL;
                END;
            END IF;
        END;
    END LOOP;

    RETURN jsonb_build_object('polled', v_polled, 'final', v_final, 'still_processing', v_processing,
                              'timed_out', v_timeouts, 'errors', v_errors, 'skipped_backoff', v_skipped);
END
$$;

-- Brings publish records that are not final to their final state: up to
-- max_records of them, least recently checked first, each locked with SKIP
-- LOCKED (several pollers may run). A record still processing more than
-- give_up_after after its publish fails as timed out, and so does its post;
-- every other one is due again _status_poll_delay(its age) after its last
-- check, and then publish_status() asks TikTok about it (at most 25 status
-- fetches per account per run: TikTok allows 30 a minute per token). A
-- TikTok error on one record is counted and the run goes on. Only a post's
-- latest publish record is followed, as publish_status does. Returns
-- {"polled": TikTok asked (= final + still_processing + errors), "final",
--  "still_processing", "timed_out", "errors", "skipped_backoff": not due yet,
--  or deferred because the account's fetches for this run were spent}.
-- Runs in the caller's transaction: the records it polled stay locked, and
-- its updates invisible to others, until that transaction ends.
CREATE FUNCTION vibescaling.poll_publish_statuses(max_records integer DEFAULT 100,
                                                  give_up_after interval DEFAULT '2 hours')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN vibescaling._poll_publish_statuses(max_records, give_up_after, NULL);
END
$$;
COMMENT ON FUNCTION vibescaling.poll_publish_statuses(integer, interval) IS
    'Polls TikTok for publish records that are not final (backoff by age, 25 fetches per account per run), times out those older than give_up_after; {"polled","final","still_processing","timed_out","errors","skipped_backoff"}.';

-- Registers (or updates) the pg_cron job vibescaling-poll-status, which runs
-- the poller every minute; enable_scheduler() calls it. Returns the job's id,
-- NULL when pg_cron is not installed in this database.
CREATE FUNCTION vibescaling._schedule_status_poller()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
       INTO v_job_id
      USING 'vibescaling-poll-status', '* * * * *', 'SELECT vibescaling.poll_publish_statuses()';
    RETURN v_job_id;
END
$$;

-- Drops the pg_cron job vibescaling-poll-status; false when there was none
-- (or pg_cron is not installed). disable_scheduler() calls it.
CREATE FUNCTION vibescaling._unschedule_status_poller()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_found boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)' INTO v_found USING 'vibescaling-poll-status';
    IF v_found THEN
        EXECUTE 'SELECT cron.unschedule($1)' USING 'vibescaling-poll-status';
    END IF;
    RETURN v_found;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._status_poll_delay(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._poll_publish_statuses(integer, interval, uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.poll_publish_statuses(integer, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._schedule_status_poller() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._unschedule_status_poller() FROM PUBLIC;
