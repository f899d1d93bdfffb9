-- vibescaling: the status poller. TikTok processes a publish asynchronously
-- and tells its final status by webhook (handle_webhook) and to whoever
-- asks (status/fetch). Webhooks first: poll_publish_statuses() (pg_cron
-- runs it every minute, see _schedule_status_poller) is the fallback that
-- asks TikTok about every publish record that is not final yet, as
-- publish_status() does but many at once, until it is: sent_to_inbox,
-- failed, published with its public post id, or published without one once
-- give_up_after has passed (moderation may never make a private post
-- public). While webhooks arrive for an account it asks less often
-- (_status_poll_wait).
-- A record still processing after give_up_after (default
-- vibescaling.publish_confirm_timeout) gets a final answer of its own:
-- unconfirmed. Its post stays posted (TikTok accepted it); a late webhook
-- still settles the record.

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

-- How long the poller waits after a record's last check (_status_poll_delay),
-- and at least 5 minutes while TikTok's webhooks arrive for the record's
-- account (webhooks: _webhook_accounts), which tell the final status sooner.
CREATE FUNCTION vibescaling._status_poll_wait(age interval, webhooks boolean)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN webhooks THEN greatest(vibescaling._status_poll_delay(age), interval '5 minutes')
                ELSE vibescaling._status_poll_delay(age) END
$$;

-- The accounts TikTok's webhooks reach this database for: one of their
-- publish events was received in the last hour (the log's BRIN index on
-- created_at finds the hour's pages).
CREATE FUNCTION vibescaling._webhook_accounts()
RETURNS uuid[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_since timestamptz := now() - interval '1 hour';
BEGIN
    RETURN coalesce((SELECT array_agg(DISTINCT l.tiktok_account_id) FROM vibescaling.dispatch_logs l
                      WHERE l.created_at > v_since AND l.trigger = 'webhook' AND l.tiktok_account_id IS NOT NULL
                        AND l.error_code LIKE 'post.publish.%'), '{}');
END
$$;

-- When the poller asks TikTok about a record next: _status_poll_wait after
-- its last check; one never checked at once, or, while webhooks arrive for
-- its account, _status_poll_wait after its publish.
CREATE FUNCTION vibescaling._status_poll_due_at(r vibescaling.publish_records, webhooks boolean)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN r.checked_at IS NULL AND NOT webhooks THEN '-infinity'::timestamptz
                ELSE coalesce(r.checked_at, r.created_at) + vibescaling._status_poll_wait(now() - r.created_at, webhooks) END
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
    v_deferred    boolean;
    v_reason      text;
    v_fetch       bigint[] := '{}';   -- the records TikTok is asked about, in order
    v_results     vibescaling._call_result[];
    v_call        vibescaling._call_result;
    r             vibescaling.publish_records;
    v_polled      integer := 0;
    v_final       integer := 0;
    v_processing  integer := 0;
    v_timeouts    integer := 0;
    v_errors      integer := 0;
    v_skipped     integer := 0;
    v_message     text;
    v_state       text;
    v_webhooks    uuid[] := vibescaling._webhook_accounts();
    i             integer;
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
     WHERE pr.publish_id IS NOT NULL
       AND (pr.status = 'processing' AND pr.created_at >= v_cutoff
            OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
       AND (only_accounts IS NULL OR pr.tiktok_account_id = ANY (only_accounts))
       AND vibescaling._status_poll_due_at(pr, pr.tiktok_account_id = ANY (v_webhooks)) > now()
       -- Only a post's latest publish: publish_status follows that one.
       AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                        WHERE n.post_id = pr.post_id AND (n.created_at, n.id) > (pr.created_at, pr.id));

    -- The due records in the order they are served, least recently checked
    -- first: up to max_records of them acted on; an account's records past
    -- its fetch budget for the run are deferred (counted as skipped when
    -- met before max_records is reached).
    FOR v_id, v_deferred IN
        SELECT x.id, NOT x.actable
          FROM (SELECT d.*, sum(d.actable::integer) OVER (ORDER BY d.checked_at NULLS FIRST, d.created_at, d.id)
                            AS acted_through
                  FROM (SELECT pr.id, pr.checked_at, pr.created_at,
                               pr.status = 'processing' AND pr.created_at < v_cutoff
                               OR row_number() OVER (PARTITION BY pr.tiktok_account_id,
                                                                  pr.status = 'processing' AND pr.created_at < v_cutoff
                                                     ORDER BY pr.checked_at NULLS FIRST, pr.created_at, pr.id)
                                  <= c_fetches_per_account AS actable
                          FROM vibescaling.publish_records pr
                         WHERE pr.publish_id IS NOT NULL
                           AND (pr.status = 'processing'
                                OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
                           AND (only_accounts IS NULL OR pr.tiktok_account_id = ANY (only_accounts))
                           AND (pr.created_at < v_cutoff   -- timed out (only processing ones are left at that age)
                                OR vibescaling._status_poll_due_at(pr, pr.tiktok_account_id = ANY (v_webhooks)) <= now())
                           AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                                            WHERE n.post_id = pr.post_id AND (n.created_at, n.id) > (pr.created_at, pr.id))) d) x
         WHERE x.acted_through < max_records OR x.actable AND x.acted_through = max_records
         ORDER BY x.checked_at NULLS FIRST, x.created_at, x.id
    LOOP
        IF v_deferred THEN
            v_skipped := v_skipped + 1;   -- this account's budget for the run is spent
            CONTINUE;
        END IF;
        -- Lock it again, as it is now: another poller (or a publish_status
        -- caller) holding it is skipped; one that just checked or settled it
        -- makes it not due any more.
        SELECT * INTO r FROM vibescaling.publish_records pr
         WHERE pr.id = v_id
           AND (pr.status = 'processing'
                OR pr.status = 'published' AND cardinality(pr.public_post_ids) = 0 AND pr.created_at >= v_cutoff)
           AND (pr.created_at < v_cutoff
                OR vibescaling._status_poll_due_at(pr, pr.tiktok_account_id = ANY (v_webhooks)) <= now())
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        IF r.status = 'processing' AND r.created_at < v_cutoff THEN
            -- No final status within give_up_after: unconfirmed is the final
            -- answer. TikTok accepted the post, so it is not failed; a late
            -- webhook still settles the record.
            v_reason := format('no final status from TikTok after %s', give_up_after);
            UPDATE vibescaling.publish_records
               SET status = 'unconfirmed', fail_reason = v_reason, updated_at = now()
             WHERE id = r.id;
            UPDATE vibescaling.posts
               SET last_error = format('TikTok: publish %s unconfirmed: %s', r.publish_id, v_reason)
             WHERE id = r.post_id;
            v_timeouts := v_timeouts + 1;
        ELSE
            v_fetch := v_fetch || r.id;
        END IF;
    END LOOP;

    IF cardinality(v_fetch) = 0 THEN
        RETURN jsonb_build_object('polled', 0, 'final', 0, 'still_processing', 0,
                                  'timed_out', v_timeouts, 'errors', 0, 'skipped_backoff', v_skipped);
    END IF;

    -- Every status fetch at once (at most vibescaling.max_concurrent_requests in flight).
    v_results := vibescaling._tiktok_call_many(
        (SELECT jsonb_agg(jsonb_build_object('endpoint', 'status_fetch', 'tiktok_account_id', pr.tiktok_account_id,
                                             'post_id', pr.post_id, 'trigger', 'status',
                                             'options', jsonb_build_object('publish_id', pr.publish_id)) ORDER BY f.i)
           FROM unnest(v_fetch) WITH ORDINALITY f(id, i) JOIN vibescaling.publish_records pr ON pr.id = f.id));
    v_polled := cardinality(v_fetch);
    FOR i IN 1 .. cardinality(v_fetch) LOOP
        SELECT * INTO r FROM vibescaling.publish_records WHERE id = v_fetch[i];
        v_call := v_results[i];
        BEGIN
            IF NOT v_call.ok THEN
                PERFORM vibescaling._raise_tiktok_error(v_call, 'status_fetch');
            END IF;
            r := vibescaling._apply_status_reply(r, v_call.data);
            IF r.status IN ('sent_to_inbox', 'failed')
               OR r.status = 'published' AND (cardinality(r.public_post_ids) > 0 OR r.created_at < v_cutoff) THEN
                v_final := v_final + 1;
            ELSE
                v_processing := v_processing + 1;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- TikTok refused or could not be reached (its dispatch_logs row
            -- stays), or its answer could not be recorded: count it, go on
            -- with the others, and back off like a successful check (a 429
            -- or an outage must not be hammered either).
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            v_errors := v_errors + 1;
            RAISE LOG 'vibescaling: status poll of publish record % failed: % [SQLSTATE %]', r.id, v_message, v_state;
            UPDATE vibescaling.publish_records pr SET checked_at = now() WHERE pr.id = r.id;
        END;
    END LOOP;

    RETURN jsonb_build_object('polled', v_polled, 'final', v_final, 'still_processing', v_processing,
                              'timed_out', v_timeouts, 'errors', v_errors, 'skipped_backoff', v_skipped);
END
$$;

-- Brings publish records that are not final to their final state: up to
-- max_records of them, least recently checked first, each locked with SKIP
-- LOCKED (several pollers may run). A record still processing more than
-- give_up_after (NULL: vibescaling.publish_confirm_timeout) after its
-- publish becomes unconfirmed ("timed_out" counts them); every other one is
-- due again _status_poll_wait(its age) after its last check, and then TikTok is asked about it, as publish_status() does, all
-- the run's records at once (at most vibescaling.max_concurrent_requests
-- in flight; at most 25 status fetches per account per run: TikTok allows
-- 30 a minute per token). A TikTok error on one record is counted and the
-- run goes on. Only a post's
-- latest publish record is followed, as publish_status does. Returns
-- {"polled": TikTok asked (= final + still_processing + errors), "final",
--  "still_processing", "timed_out", "errors", "skipped_backoff": not due yet,
--  or deferred because the account's fetches for this run were spent}.
-- Runs in the caller's transaction: the records it polled stay locked, and
-- its updates invisible to others, until that transaction ends.
CREATE FUNCTION vibescaling.poll_publish_statuses(max_records integer DEFAULT 100,
                                                  give_up_after interval DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM vibescaling._require_primary();
    RETURN vibescaling._poll_publish_statuses(
        max_records, coalesce(give_up_after, current_setting('vibescaling.publish_confirm_timeout')::interval), NULL);
END
$$;
COMMENT ON FUNCTION vibescaling.poll_publish_statuses(integer, interval) IS
    'Polls TikTok for publish records that are not final (backoff by age, 25 fetches per account per run), turns those older than give_up_after (default vibescaling.publish_confirm_timeout) unconfirmed; {"polled","final","still_processing","timed_out","errors","skipped_backoff"}.';

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
REVOKE ALL ON FUNCTION vibescaling._status_poll_wait(interval, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._webhook_accounts() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._status_poll_due_at(vibescaling.publish_records, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._poll_publish_statuses(integer, interval, uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.poll_publish_statuses(integer, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._schedule_status_poller() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._unschedule_status_poller() FROM PUBLIC;
