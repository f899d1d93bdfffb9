-- vibescaling: the campaign functions over HTTP (PostgREST, schema
-- vibescaling_api): one post scheduled for several accounts, repeating
-- posts, CSV in and out, and each account's use of TikTok's caps. Like
-- every API function they run as the extension's owner, check the tenant
-- first (_api_check_post, _api_check_account, _api_check_recurrence), and
-- turn errors into HTTP statuses (_raise_http_error). The posting slots'
-- API is with the slots (23_slots.sql); publishing to several accounts is
-- POST /rpc/publish_post with "targets" (15_api.sql).

-- Raises unless the repeating rule exists and is the tenant's: 400 for a
-- NULL id, 404 otherwise (another tenant's rule is not found either).
CREATE FUNCTION vibescaling._api_check_recurrence(p_id bigint)
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

-- Raises unless every target names one of the tenant's accounts (403 for
-- another tenant's, before anything is written). Malformed targets are
-- left to _check_targets, which says what is wrong with them.
CREATE FUNCTION vibescaling._api_check_targets(targets jsonb)
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

-- The tenant's repeating rules (row level security).
CREATE VIEW vibescaling_api.recurrences WITH (security_invoker = true) AS
    SELECT id, post_id, tiktok_account_id, options, rule, time_zone, starts_at, ends_at, max_count, occurrences,
           last_at, last_error, stopped_at, created_at
      FROM vibescaling.recurrences;
COMMENT ON VIEW vibescaling_api.recurrences IS 'The tenant''s repeating posts'' rules.';

-- POST /rpc/schedule_targets {"post_id", "scheduled_at", "targets": [...]}:
-- the tenant's draft scheduled for several of its accounts
-- (schedule_targets: each target answers alone, with its warnings).
CREATE FUNCTION vibescaling_api.schedule_targets(post_id uuid DEFAULT NULL, scheduled_at timestamptz DEFAULT NULL,
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

-- POST /rpc/repeat_post {"post_id", "tiktok_account_id", "rule", "time_zone",
-- "options", "starts_at", "ends_at", "max_count"}: the tenant's draft
-- repeats on its account (repeat_post).
CREATE FUNCTION vibescaling_api.repeat_post(post_id uuid DEFAULT NULL, tiktok_account_id uuid DEFAULT NULL,
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

-- POST /rpc/change_recurrence {"recurrence_id", "rule", "time_zone",
-- "options", "ends_at", "max_count", "stop"}: changes or stops one of the
-- tenant's rules; only occurrences not yet sent change (change_recurrence).
CREATE FUNCTION vibescaling_api.change_recurrence(recurrence_id bigint DEFAULT NULL, rule jsonb DEFAULT NULL,
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

-- POST /rpc/import_schedule {"csv": "..."}: the tenant's posts of a CSV
-- text, all or none (import_schedule). 200 with the posts' ids; 400 with
-- the report of refused rows when any row is refused (nothing written).
-- A row naming another tenant's account is refused like any bad row.
CREATE FUNCTION vibescaling_api.import_schedule(csv text DEFAULT NULL)
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

-- CSV as PostgREST serves it: a function returning this domain answers
-- "Accept: text/csv" with its text as is (a media type handler).
CREATE DOMAIN vibescaling_api."text/csv" AS text;

-- GET /rpc/export_schedule with "Accept: text/csv": the tenant's scheduled
-- posts as the CSV text import_schedule reads.
CREATE FUNCTION vibescaling_api.export_schedule()
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

-- GET /rpc/account_caps[?tiktok_account_id=eq.<id>]: each of the tenant's
-- active accounts' use of TikTok's caps, today and the 7 coming UTC days
-- (vibescaling.account_caps); an operator's: every tenant's. A function,
-- not a view: the caps come from functions a tenant may not execute.
CREATE FUNCTION vibescaling_api.account_caps()
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
REVOKE ALL ON TABLE vibescaling_api.recurrences FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.schedule_targets(uuid, timestamptz, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.repeat_post(uuid, uuid, jsonb, text, jsonb, timestamptz, timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.change_recurrence(bigint, jsonb, text, jsonb, timestamptz, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.import_schedule(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.export_schedule() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.account_caps() FROM PUBLIC;
