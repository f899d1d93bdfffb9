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
-- privacy rule a 22023. A post that brings its day near a cap is
-- scheduled with a warning in the scheduling function's answer, and
-- vibescaling.caps_policy = 'warn' turns the caps' refusals into warnings
-- (_cap_findings). vibescaling.account_caps shows each account's use.

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

-- Where an account's posts are counted against TikTok's caps: by account
-- and by the time that counts (posted_at once posted, else scheduled_at).
-- Every caps query spells that time as this index does, so that each is a
-- range scan of one account's posts, whatever the size of the table.
CREATE INDEX posts_account_cap_time_idx ON vibescaling.posts
    (tiktok_account_id, (CASE WHEN status = 'posted' THEN posted_at ELSE scheduled_at END))
    WHERE status IN ('scheduled', 'publishing', 'posted');

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
       AND p.status IN ('scheduled', 'publishing', 'posted')
       AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END >= p_day_start
       AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END < p_day_end
$$;

-- Takes, for the rest of the transaction, the scheduling lock of each
-- account (the one add_to_queue takes), in one fixed order: a transaction
-- that schedules for several accounts (targets, a CSV, recurrences) takes
-- them all first, so that two such transactions never wait on each other
-- in a cycle. An account's scheduling lock is always taken before its
-- rate-limit lock (_rate_limit_lock, which a creator_info call takes),
-- never after: the posts trigger takes it before asking creator_info.
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

-- What scheduling p (the post as it will be) meets of TikTok's caps on
-- its day (see the top of this file): a JSON array of findings {"code"
-- (TikTok's error code, or near_* for a warning), "level" ("refuse" or
-- "warn"), "sqlstate", "message", "detail", "hint"}. A cap the post would
-- exceed is a refusal, or a warning under vibescaling.caps_policy 'warn'
-- (except the unaudited app's privacy rule: TikTok refuses those posts
-- whatever it counts). A post that leaves its day with little room is a
-- warning: TikTok's cap is shared by every app the creator uses, so the
-- last few are the likeliest to be refused at publish time. Counts without
-- taking a lock: _check_caps takes them.
CREATE FUNCTION vibescaling._cap_findings(p vibescaling.posts)
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

-- Refuses a post being scheduled (p: as it will be) that would break one
-- of TikTok's caps on its day (_cap_findings' refusals). It counts under
-- the account's scheduling lock (and, while the app is not audited, one
-- lock for every account), so two sessions scheduling the last post a
-- day allows take turns: the second one sees the first one's post.
CREATE FUNCTION vibescaling._check_caps(p vibescaling.posts)
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

-- The warnings of a scheduled post (p, as stored): _cap_findings' warnings
-- as [{"code", "message", "detail"}], for the answers of the scheduling
-- functions. [] when there is none.
CREATE FUNCTION vibescaling._cap_warnings(p vibescaling.posts)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('code', x->>'code', 'message', x->>'message', 'detail', x->>'detail')), '[]')
      FROM jsonb_array_elements(vibescaling._cap_findings(p)) x
     WHERE x->>'level' = 'warn'
$$;

-- Each account's use of its Direct Post cap, for today and the 7 coming
-- UTC days: the posts scheduled for the day or posted on it (as
-- _direct_posts_on counts them), the cap scheduling plans with, whether
-- TikTok showed it, and the inbox uploads of the last 24 hours (TikTok
-- holds at most 5 unfinished). Over vibescaling.accounts: a reader needs
-- no right on the token table. The caps are computed once per account
-- (the OFFSET 0 keeps the planner from computing them once per day).
CREATE VIEW vibescaling.account_caps WITH (security_invoker = true) AS
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
COMMENT ON VIEW vibescaling.account_caps IS
    'Per active account and UTC day (today and 7 more): Direct Posts scheduled or posted against the daily cap scheduling plans with; inbox uploads of the last 24 h.';

REVOKE ALL ON TABLE vibescaling.account_caps FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.learned_daily_cap(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.daily_cap(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._utc_day(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._direct_posts_on(uuid, timestamptz, timestamptz, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._check_caps(vibescaling.posts) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._cap_findings(vibescaling.posts) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._cap_warnings(vibescaling.posts) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._lock_accounts(uuid[]) FROM PUBLIC;
