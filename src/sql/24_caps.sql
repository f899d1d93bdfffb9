-- vibescaling: TikTok's caps, known when a post is scheduled rather than
-- met when it is sent. Scheduling (schedule_post, a PATCH to scheduled,
-- schedule_targets, add_to_queue) refuses a post that would break, on its
-- day, one of:
--   - the creator's Direct Post cap (about 15 a day, shared by all apps;
--     TikTok answers spam_risk_too_many_posts): the posts of the account
--     scheduled for that UTC day or posted on it, against the smaller of
--     vibescaling.max_posts_per_account_day and the cap learned from the
--     account's last spam_risk_too_many_posts answer (daily_cap);
--   - the inbox's 5 unfinished drafts in 24 hours
--     (spam_risk_too_many_pending_share): the account's inbox uploads in
--     the 24 hours up to the post's time;
--   - while the TikTok app is not audited (vibescaling.app_audited off):
--     only SELF_ONLY posts, and at most 5 accounts posting a day
--     (unaudited_client_can_only_post_to_private_accounts,
--     reached_active_user_cap).
-- A cap is a 53400 (HTTP 429) naming TikTok's code; the unaudited app's
-- privacy rule a 22023. vibescaling.account_caps shows each account's use.

-- The Direct Post cap TikTok showed for an account: the Direct Posts it
-- accepted in the 24 hours before its last spam_risk_too_many_posts answer
-- of the last 30 days (the durable log), at least 1. NULL when TikTok never
-- refused one. 22004 for a NULL account, P0002 for an unknown one.
CREATE FUNCTION vibescaling.learned_daily_cap(p_account_id uuid)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_since   timestamptz := now() - interval '30 days';
    v_refused timestamptz;
BEGIN
    IF p_account_id IS NULL THEN
        RAISE EXCEPTION 'an account id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.accounts a WHERE a.id = p_account_id) THEN
        RAISE EXCEPTION 'TikTok account % not found', p_account_id USING ERRCODE = 'P0002';
    END IF;
    SELECT max(l.created_at) INTO v_refused FROM vibescaling.dispatch_logs l
     WHERE l.tiktok_account_id = p_account_id AND l.created_at > v_since
       AND l.error_code = 'spam_risk_too_many_posts';
    IF v_refused IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN greatest(1, (SELECT count(*)::integer FROM vibescaling.dispatch_logs l
                         WHERE l.tiktok_account_id = p_account_id
                           AND l.created_at > v_refused - interval '24 hours' AND l.created_at < v_refused
                           AND l.endpoint IN ('video_init', 'content_init') AND l.outcome = 'success'));
END
$$;

-- The Direct Posts an account may make a day, as scheduling plans with
-- it: vibescaling.max_posts_per_account_day, or less when TikTok showed a
-- lower cap (learned_daily_cap).
CREATE FUNCTION vibescaling.daily_cap(p_account_id uuid)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN least(current_setting('vibescaling.max_posts_per_account_day')::integer,
                 coalesce(vibescaling.learned_daily_cap(p_account_id), 2147483647));
END
$$;
COMMENT ON FUNCTION vibescaling.daily_cap(uuid) IS
    'The Direct Posts a UTC day scheduling plans for an account: max_posts_per_account_day, or the lower cap TikTok showed.';

-- The UTC day that holds t, as [start, end).
CREATE FUNCTION vibescaling._utc_day(t timestamptz, OUT day_start timestamptz, OUT day_end timestamptz)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT date_trunc('day', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           (date_trunc('day', t AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
$$;

-- The posts of an account (but p_except) that count on a UTC day against
-- its Direct Post cap: scheduled (or publishing) for the day, or posted on
-- it, not to the inbox.
CREATE FUNCTION vibescaling._direct_posts_on(p_account_id uuid, p_day_start timestamptz, p_day_end timestamptz,
                                             p_except uuid)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer FROM vibescaling.posts p
     WHERE p.tiktok_account_id = p_account_id AND p.id IS DISTINCT FROM p_except AND p.mode = 'direct'
       AND (p.status IN ('scheduled', 'publishing') AND p.scheduled_at >= p_day_start AND p.scheduled_at < p_day_end
            OR p.status = 'posted' AND p.posted_at >= p_day_start AND p.posted_at < p_day_end)
$$;

-- Takes, for the rest of the transaction, the scheduling lock of each
-- account (the one add_to_queue takes), in one fixed order: a transaction
-- that schedules for several accounts (targets, a CSV, recurrences) takes
-- them all first, so that two such transactions never wait on each other
-- in a cycle.
CREATE FUNCTION vibescaling._lock_accounts(p_accounts uuid[])
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

-- Refuses a post being scheduled (p: as it will be) that would break one
-- of TikTok's caps on its day (see the top of this file). It counts under
-- the account's scheduling lock (and, while the app is not audited, one
-- lock for every account), so two sessions scheduling the last post a
-- day allows take turns: the second one sees the first one's post.
CREATE FUNCTION vibescaling._check_caps(p vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_day     record := vibescaling._utc_day(p.scheduled_at);
    v_cap     integer;
    v_count   integer;
    v_posting integer;
BEGIN
    IF p.tiktok_account_id IS NULL OR p.scheduled_at IS NULL THEN
        RETURN;
    END IF;
    PERFORM vibescaling._lock_accounts(ARRAY[p.tiktok_account_id]);
    IF NOT current_setting('vibescaling.app_audited')::boolean THEN
        PERFORM pg_advisory_xact_lock(hashtext('vibescaling.active_users'));
        IF p.mode = 'direct' AND p.privacy_level IS DISTINCT FROM 'SELF_ONLY' THEN
            RAISE EXCEPTION 'the TikTok app is not audited: it may only post SELF_ONLY (TikTok: unaudited_client_can_only_post_to_private_accounts)'
                USING ERRCODE = '22023',
                      HINT = 'Choose SELF_ONLY, or set vibescaling.app_audited once TikTok has audited the app.';
        END IF;
        SELECT count(DISTINCT x.tiktok_account_id)::integer INTO v_posting FROM vibescaling.posts x
         WHERE x.tiktok_account_id <> p.tiktok_account_id
           AND (x.status IN ('scheduled', 'publishing') AND x.scheduled_at >= v_day.day_start AND x.scheduled_at < v_day.day_end
                OR x.status = 'posted' AND x.posted_at >= v_day.day_start AND x.posted_at < v_day.day_end);
        IF v_posting >= 5 THEN
            RAISE EXCEPTION 'the TikTok app is not audited: 5 other accounts already post on % (UTC) (TikTok: reached_active_user_cap)',
                            to_char(v_day.day_start AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                USING ERRCODE = '53400', HINT = 'An unaudited app may have at most 5 accounts posting a day.';
        END IF;
    END IF;
    IF p.mode = 'direct' THEN
        v_cap := vibescaling.daily_cap(p.tiktok_account_id);
        v_count := vibescaling._direct_posts_on(p.tiktok_account_id, v_day.day_start, v_day.day_end, p.id);
        IF v_count >= v_cap THEN
            RAISE EXCEPTION 'account % already has % Direct Posts on % (UTC), its daily cap (TikTok: spam_risk_too_many_posts)',
                            p.tiktok_account_id, v_count, to_char(v_day.day_start AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                USING ERRCODE = '53400',
                      DETAIL = format('daily_cap=%s learned_from_tiktok=%s', v_cap,
                                      vibescaling.learned_daily_cap(p.tiktok_account_id) IS NOT NULL),
                      HINT = 'Schedule it on another day (add_to_queue finds the next free slot under the cap).';
        END IF;
    ELSE
        SELECT count(*)::integer INTO v_count FROM vibescaling.posts x
         WHERE x.tiktok_account_id = p.tiktok_account_id AND x.id <> p.id AND x.mode = 'inbox'
           AND (x.status IN ('scheduled', 'publishing') AND x.scheduled_at > p.scheduled_at - interval '24 hours'
                                                       AND x.scheduled_at <= p.scheduled_at
                OR x.status = 'posted' AND x.posted_at > p.scheduled_at - interval '24 hours'
                                       AND x.posted_at <= p.scheduled_at);
        IF v_count >= 5 THEN
            RAISE EXCEPTION 'account % already has % inbox uploads in the 24 hours up to % (TikTok: spam_risk_too_many_pending_share)',
                            p.tiktok_account_id, v_count, p.scheduled_at
                USING ERRCODE = '53400', HINT = 'TikTok holds at most 5 unfinished inbox drafts per creator in 24 hours.';
        END IF;
    END IF;
END
$$;

-- Each account's use of its Direct Post cap, for today and the 7 coming
-- UTC days: the posts scheduled for the day or posted on it (as
-- _direct_posts_on counts them), the cap scheduling plans with, whether
-- TikTok showed it, and the inbox uploads of the last 24 hours (TikTok
-- holds at most 5 unfinished). Over vibescaling.accounts: a reader needs
-- no right on the token table.
CREATE VIEW vibescaling.account_caps WITH (security_invoker = true) AS
    SELECT a.id AS tiktok_account_id, d.day::date AS day,
           (SELECT count(*) FROM vibescaling.posts p
             WHERE p.tiktok_account_id = a.id AND p.mode = 'direct'
               AND (p.status IN ('scheduled', 'publishing') AND p.scheduled_at >= b.day_start AND p.scheduled_at < b.day_end
                    OR p.status = 'posted' AND p.posted_at >= b.day_start AND p.posted_at < b.day_end)) AS direct_posts,
           vibescaling.daily_cap(a.id) AS daily_cap,
           vibescaling.learned_daily_cap(a.id) IS NOT NULL AS cap_learned_from_tiktok,
           (SELECT count(*) FROM vibescaling.posts x
             WHERE x.tiktok_account_id = a.id AND x.mode = 'inbox' AND x.status = 'posted'
               AND x.posted_at > now() - interval '24 hours') AS inbox_uploads_24h
      FROM vibescaling.accounts a,
           generate_series(date_trunc('day', now() AT TIME ZONE 'UTC'), date_trunc('day', now() AT TIME ZONE 'UTC') + interval '7 days',
                           interval '1 day') d(day),
           LATERAL (SELECT d.day AT TIME ZONE 'UTC' AS day_start, (d.day + interval '1 day') AT TIME ZONE 'UTC' AS day_end) b
     WHERE a.status = 'active';
COMMENT ON VIEW vibescaling.account_caps IS
    'Per active account and UTC day (today and 7 more): Direct Posts scheduled or posted against the daily cap scheduling plans with; inbox uploads of the last 24 h.';

REVOKE ALL ON TABLE vibescaling.account_caps FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.learned_daily_cap(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.daily_cap(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._utc_day(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._direct_posts_on(uuid, timestamptz, timestamptz, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._check_caps(vibescaling.posts) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._lock_accounts(uuid[]) FROM PUBLIC;
