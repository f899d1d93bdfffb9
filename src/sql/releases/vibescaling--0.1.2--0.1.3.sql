-- vibescaling 0.1.2 -> 0.1.3: what it changes, and why, is in CHANGELOG.md.
\echo Use "ALTER EXTENSION vibescaling UPDATE TO '0.1.3'" to load this file. \quit

-- TikTok's Retry-After is kept with the call's row (the column reaches every
-- partition; existing rows have none).
ALTER TABLE vibescaling.dispatch_logs ADD COLUMN retry_after integer;

-- _rate_limit_room and the many-account _rate_limit_calls replace them (they
-- also count TikTok's Retry-After, and answer for a whole round at once).
DROP FUNCTION vibescaling._rate_limit_used(uuid, text);
DROP FUNCTION vibescaling._rate_limit_calls(uuid, text[]);

-- Failures are recorded from the call's answer, not from an error's HINT and
-- DETAIL text (_record_call_failure, _record_dispatch_error).
DROP FUNCTION vibescaling._record_dispatch_failure(uuid, integer, text, text, text, text, timestamptz);

-- _prepare_publish takes no_init_logged (a round asks the log once for all its posts).
DROP FUNCTION vibescaling._prepare_publish(vibescaling.posts, text);

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

CREATE OR REPLACE FUNCTION vibescaling._call_failure(call jsonb, endpoint text,
                                          OUT message text, OUT sqlstate text, OUT retryable boolean,
                                          OUT retry_after integer, OUT unknown_init boolean)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    unknown_init := coalesce((call->>'outcome_unknown')::boolean, false)
                    AND endpoint IN ('video_init', 'inbox_video_init', 'content_init');
    message := format('TikTok %s failed: %s (log_id %s)', endpoint, call->>'error_code',
                      coalesce(nullif(call->>'log_id', ''), 'none'))
               || CASE WHEN unknown_init THEN ': the request may have reached TikTok, its outcome is unknown' ELSE '' END;
    sqlstate := call->>'sqlstate';
    retryable := coalesce((call->>'retryable')::boolean, false) AND NOT unknown_init;
    retry_after := CASE WHEN jsonb_typeof(call->'retry_after') = 'number' THEN (call->>'retry_after')::integer END;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._call_failure(jsonb, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._raise_tiktok_error(call jsonb, endpoint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f        record := vibescaling._call_failure(call, endpoint);
    v_detail text := format('http_status=%s error_code=%s log_id=%s outcome_unknown=%s message=%s',
                            coalesce(call->>'http_status', 'none'), call->>'error_code',
                            coalesce(call->>'log_id', ''), call->>'outcome_unknown',
                            coalesce(call->>'error_message', ''))
                         || CASE WHEN f.retry_after IS NOT NULL THEN format(' retry_after=%s', f.retry_after) ELSE '' END;
BEGIN
    IF f.unknown_init THEN
        RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail,
              HINT = 'Check the TikTok account, then call vibescaling.settle_post(post_id, on_tiktok, publish_id).';
    END IF;
    IF f.retryable THEN
        RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail,
                              HINT = vibescaling._transient_hint();
    END IF;
    RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = v_detail;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._rate_limit_calls(account_ids uuid[], endpoints text[])
RETURNS TABLE (account_id uuid, endpoint text, called_at timestamptz)
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
        SELECT l.tiktok_account_id, l.endpoint, l.created_at
          FROM vibescaling.dispatch_logs l
         WHERE l.tiktok_account_id = ANY (_rate_limit_calls.account_ids)
           AND l.endpoint = ANY (_rate_limit_calls.endpoints)
           AND l.created_at > v_since
           AND (l.http_status IS NOT NULL OR l.outcome_unknown);
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
                       l.created_at + make_interval(secs => coalesce(l.duration_ms, 0) / 1000 + l.retry_after) AS until
                  FROM vibescaling.dispatch_logs l
                 WHERE l.tiktok_account_id = ANY (_rate_limit_holds.account_ids)
                   AND l.created_at > v_since
                   AND l.retry_after IS NOT NULL
                   AND l.endpoint = ANY (_rate_limit_holds.endpoints)
                   AND l.http_status IS NOT NULL) h
         WHERE h.until > v_now;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._rate_limit_wait(account_id uuid, endpoint text)
RETURNS double precision
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b        record := vibescaling._rate_limit_bucket(endpoint);
    v_window interval := current_setting('vibescaling.rate_limit_window')::interval;
    v_oldest timestamptz;   -- the oldest call still in the window when the bucket is full
    v_hold   timestamptz;
BEGIN
    IF b.endpoints IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM vibescaling._rate_limit_lock(account_id);
    SELECT max(h.until) INTO v_hold FROM vibescaling._rate_limit_holds(ARRAY[account_id], b.endpoints) h;
    -- The calls-th most recent call in the window, if there are that many.
    SELECT min(recent.called_at) INTO v_oldest
      FROM (SELECT c.called_at FROM vibescaling._rate_limit_calls(ARRAY[account_id], b.endpoints) c
             ORDER BY c.called_at DESC
             LIMIT b.calls) recent
    HAVING count(*) >= b.calls;
    IF v_oldest IS NULL AND v_hold IS NULL THEN
        RETURN 0;
    END IF;
    RETURN greatest(extract(epoch FROM greatest(v_oldest + v_window, v_hold) - clock_timestamp()), 0.001);
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._rate_limit_room(account_ids uuid[], endpoints text[])
RETURNS integer[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_room integer[];
BEGIN
    -- bucket_of: every endpoint of the buckets asked about, with its bucket
    -- (named by its first endpoint) and the bucket's limit; _rate_limit_bucket
    -- is asked once per distinct endpoint, not once per call or log row.
    WITH bucket_of AS (SELECT DISTINCT e AS endpoint, b.endpoints[1] AS bucket, b.calls
                         FROM (SELECT DISTINCT x FROM unnest(endpoints) x) d,
                              LATERAL vibescaling._rate_limit_bucket(d.x) b,
                              LATERAL unnest(b.endpoints) e),
         used AS (SELECT c.account_id, m.bucket, count(*) AS n
                    FROM vibescaling._rate_limit_calls(account_ids, ARRAY(SELECT endpoint FROM bucket_of)) c
                    JOIN bucket_of m ON m.endpoint = c.endpoint
                   GROUP BY 1, 2),
         held AS (SELECT DISTINCT h.account_id, m.bucket
                    FROM vibescaling._rate_limit_holds(account_ids, ARRAY(SELECT endpoint FROM bucket_of)) h
                    JOIN bucket_of m ON m.endpoint = h.endpoint)
    SELECT array_agg(CASE WHEN m.calls IS NULL OR w.a IS NULL THEN NULL
                          WHEN h.account_id IS NOT NULL THEN 0
                          ELSE greatest(m.calls - coalesce(u.n, 0), 0)::integer
                     END ORDER BY w.i)
      INTO v_room
      FROM unnest(account_ids, endpoints) WITH ORDINALITY w(a, e, i)
      LEFT JOIN bucket_of m ON m.endpoint = w.e
      LEFT JOIN used u ON u.account_id = w.a AND u.bucket = m.bucket
      LEFT JOIN held h ON h.account_id = w.a AND h.bucket = m.bucket;
    RETURN coalesce(v_room, '{}');
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._rate_limit_allowance(account_ids uuid[], endpoints text[])
RETURNS boolean[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_allowed boolean[];
BEGIN
    PERFORM vibescaling._rate_limit_lock(a)
       FROM (SELECT DISTINCT a FROM unnest(account_ids) a ORDER BY a) sorted;
    SELECT array_agg(x.allowed ORDER BY x.i) INTO v_allowed
      FROM (SELECT c.i,
                   c.room IS NULL
                   OR row_number() OVER (PARTITION BY c.a, b.endpoints[1] ORDER BY c.i) <= c.room AS allowed
              FROM unnest(account_ids, endpoints, vibescaling._rate_limit_room(account_ids, endpoints))
                   WITH ORDINALITY c(a, e, room, i),
                   LATERAL vibescaling._rate_limit_bucket(c.e) b) x;
    RETURN coalesce(v_allowed, '{}');
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._tiktok_post_limits(OUT video_caption integer, OUT photo_description integer,
                                                OUT photo_title integer, OUT photo_urls integer)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: a SQL function returning a record is planned again at every call.
    video_caption := 2200;
    photo_description := 4000;
    photo_title := 90;
    photo_urls := 35;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._tiktok_post_limits() FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._check_publishable(p vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limits record := vibescaling._tiktok_post_limits();
    v_account_status text;
    v_account_owner text;
    v_scopes text[];
    v_needed text;
    v_url text;
    v_sources integer;
BEGIN
    -- Publish options.
    IF p.privacy_level IS NULL THEN
        RAISE EXCEPTION 'privacy_level is required (no default): one of PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR, SELF_ONLY'
            USING ERRCODE = '22004';
    END IF;
    IF p.privacy_level NOT IN ('PUBLIC_TO_EVERYONE', 'MUTUAL_FOLLOW_FRIENDS', 'FOLLOWER_OF_CREATOR', 'SELF_ONLY') THEN
        RAISE EXCEPTION 'unknown privacy_level "%"', p.privacy_level
            USING ERRCODE = '22023',
                  HINT = 'Use PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR or SELF_ONLY.';
    END IF;
    IF p.mode IS NULL THEN
        RAISE EXCEPTION 'mode is required: direct or inbox' USING ERRCODE = '22004';
    END IF;
    IF p.mode NOT IN ('direct', 'inbox') THEN
        RAISE EXCEPTION 'unknown mode "%": use direct or inbox', p.mode USING ERRCODE = '22023';
    END IF;
    IF p.brand_content_toggle AND p.privacy_level = 'SELF_ONLY' THEN
        RAISE EXCEPTION 'branded content (brand_content_toggle) cannot be posted with privacy_level SELF_ONLY'
            USING ERRCODE = '22023';
    END IF;

    -- The account.
    IF p.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    SELECT a.status, a.scopes, a.owner INTO v_account_status, v_scopes, v_account_owner
      FROM vibescaling.tiktok_accounts a WHERE a.id = p.tiktok_account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'TikTok account % not found', p.tiktok_account_id USING ERRCODE = 'P0002';
    END IF;
    -- Tenants: a post goes only to an account of its own owner.
    IF v_account_owner IS DISTINCT FROM p.owner THEN
        RAISE EXCEPTION 'TikTok account % does not belong to the owner of post %', p.tiktok_account_id, p.id
            USING ERRCODE = '42501';
    END IF;
    IF v_account_status <> 'active' THEN
        RAISE EXCEPTION 'TikTok account % is %, it cannot publish', p.tiktok_account_id, v_account_status
            USING ERRCODE = '55000', HINT = 'Reconnect the account with vibescaling.connect_account().';
    END IF;
    -- Direct Post needs video.publish, the inbox video.upload (unknown scopes: TikTok decides).
    v_needed := CASE p.mode WHEN 'direct' THEN 'video.publish' ELSE 'video.upload' END;
    IF v_scopes IS NOT NULL AND NOT v_needed = ANY (v_scopes) THEN
        RAISE EXCEPTION 'TikTok account % has not granted the % scope that % mode needs',
                        p.tiktok_account_id, v_needed, p.mode
            USING ERRCODE = '42501', HINT = 'Reconnect the account and grant the scope.';
    END IF;

    -- The media.
    IF p.media_type = 'video' THEN
        v_sources := (p.video_url IS NOT NULL)::integer + (p.video_lo IS NOT NULL)::integer
                     + (p.media_id IS NOT NULL)::integer;
        IF v_sources = 0 THEN
            RAISE EXCEPTION 'video post % has no video: set video_url, video_lo or media_id', p.id
                USING ERRCODE = '22023';
        END IF;
        IF v_sources > 1 THEN
            RAISE EXCEPTION 'video post % has more than one of video_url, video_lo and media_id', p.id
                USING ERRCODE = '22023';
        END IF;
        IF vibescaling._upload_method(p) = 'pull' THEN
            IF p.video_url IS NULL THEN
                RAISE EXCEPTION 'upload_method pull needs a video_url TikTok can pull' USING ERRCODE = '22023';
            END IF;
            IF p.video_url !~* '^https://[^/?#]+' THEN
                RAISE EXCEPTION 'video_url must be an https URL that TikTok can pull' USING ERRCODE = '22023';
            END IF;
        ELSIF p.video_url IS NOT NULL AND p.video_url !~* '^https?://[^/?#]+' THEN
            RAISE EXCEPTION 'video_url must be an http(s) URL' USING ERRCODE = '22023';
        END IF;
        IF p.video_lo IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_largeobject_metadata m WHERE m.oid = p.video_lo) THEN
            RAISE EXCEPTION 'large object % not found', p.video_lo USING ERRCODE = 'P0002';
        END IF;
        -- The role that set the source must still be able to read it (its
        -- rights may have been revoked since, or the object replaced).
        IF (p.video_lo IS NOT NULL OR p.media_id IS NOT NULL)
           AND NOT vibescaling._role_can_read_source(p.source_role, p.video_lo, p.media_id) THEN
            RAISE EXCEPTION 'permission denied: the role that set the video source of post % may not read it', p.id
                USING ERRCODE = '42501',
                      HINT = 'Grant that role SELECT on the large object (or on vibescaling.media), or set the source again.';
        END IF;
        IF vibescaling._utf16_length(coalesce(p.caption, '')) > v_limits.video_caption THEN
            RAISE EXCEPTION 'caption is % UTF-16 units long; TikTok accepts at most % for a video',
                            vibescaling._utf16_length(p.caption), v_limits.video_caption USING ERRCODE = '22023';
        END IF;
    ELSE
        IF coalesce(cardinality(p.photo_urls), 0) NOT BETWEEN 1 AND v_limits.photo_urls THEN
            RAISE EXCEPTION 'a photo post needs 1 to % photo_urls, post % has %',
                            v_limits.photo_urls, p.id, coalesce(cardinality(p.photo_urls), 0) USING ERRCODE = '22023';
        END IF;
        FOREACH v_url IN ARRAY p.photo_urls LOOP
            IF v_url IS NULL OR v_url !~* '^https://[^/?#]+' THEN
                RAISE EXCEPTION 'photo_urls must be https URLs, got "%"', v_url USING ERRCODE = '22023';
            END IF;
        END LOOP;
        IF p.photo_cover_index < 0 OR p.photo_cover_index >= cardinality(p.photo_urls) THEN
            RAISE EXCEPTION 'photo_cover_index % is outside the % photos', p.photo_cover_index,
                            cardinality(p.photo_urls) USING ERRCODE = '22023';
        END IF;
        IF vibescaling._utf16_length(coalesce(p.title, '')) > v_limits.photo_title THEN
            RAISE EXCEPTION 'title is % UTF-16 units long; TikTok accepts at most % for a photo post',
                            vibescaling._utf16_length(p.title), v_limits.photo_title USING ERRCODE = '22023';
        END IF;
        IF vibescaling._utf16_length(coalesce(p.caption, '')) > v_limits.photo_description THEN
            RAISE EXCEPTION 'caption is % UTF-16 units long; TikTok accepts at most % for a photo description',
                            vibescaling._utf16_length(p.caption), v_limits.photo_description USING ERRCODE = '22023';
        END IF;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._check_post_limits(p_new vibescaling.posts, p_old vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limits      record := vibescaling._tiktok_post_limits();
    v_caption_max integer := CASE WHEN p_new.media_type = 'photo' THEN v_limits.photo_description
                                  ELSE v_limits.video_caption END;
    v_quota       integer := current_setting('vibescaling.max_open_posts_per_owner')::integer;
    v_open        bigint;
BEGIN
    -- A UTF-16 unit is at most 4 bytes of UTF-8: byte lengths first, so that a
    -- huge value is refused without being scanned.
    IF octet_length(p_new.caption) > 4 * v_caption_max
       OR vibescaling._utf16_length(coalesce(p_new.caption, '')) > v_caption_max THEN
        RAISE EXCEPTION 'caption is longer than % UTF-16 units, the most TikTok accepts for a % post',
                        v_caption_max, p_new.media_type USING ERRCODE = '22023';
    END IF;
    IF octet_length(p_new.title) > 4 * v_limits.photo_title
       OR vibescaling._utf16_length(coalesce(p_new.title, '')) > v_limits.photo_title THEN
        RAISE EXCEPTION 'title is longer than % UTF-16 units, the most TikTok accepts', v_limits.photo_title
            USING ERRCODE = '22023';
    END IF;
    IF octet_length(p_new.video_url) > vibescaling._max_url_bytes() THEN
        RAISE EXCEPTION 'video_url is longer than % bytes', vibescaling._max_url_bytes() USING ERRCODE = '22023';
    END IF;
    IF cardinality(p_new.photo_urls) > v_limits.photo_urls THEN
        RAISE EXCEPTION 'a photo post has at most % photo_urls, got %', v_limits.photo_urls, cardinality(p_new.photo_urls)
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_new.photo_urls) u WHERE octet_length(u) > vibescaling._max_url_bytes()) THEN
        RAISE EXCEPTION 'photo_urls has a URL longer than % bytes', vibescaling._max_url_bytes() USING ERRCODE = '22023';
    END IF;

    -- A tenant's open posts: counted when one is created, or reopened from a final state.
    IF p_new.owner IS NOT NULL AND v_quota > 0 AND p_new.status IN ('draft', 'scheduled')
       AND (p_old.id IS NULL OR p_old.status NOT IN ('draft', 'scheduled')) THEN
        -- One writer per owner at a time, so that two sessions cannot both take the last place.
        PERFORM pg_advisory_xact_lock(hashtext('vibescaling.open_posts'), hashtext(p_new.owner));
        SELECT count(*) INTO v_open
          FROM (SELECT 1 FROM vibescaling.posts o
                 WHERE o.owner = p_new.owner AND o.status IN ('draft', 'scheduled') AND o.id <> p_new.id
                 LIMIT v_quota) x;
        IF v_open >= v_quota THEN
            RAISE EXCEPTION 'owner % has % posts in draft or scheduled, the most vibescaling.max_open_posts_per_owner allows',
                            p_new.owner, v_quota
                USING ERRCODE = '53400',
                      HINT = 'Publish, cancel or delete some first.';
        END IF;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._prepare_publish(p vibescaling.posts, p_trigger text, no_init_logged boolean DEFAULT false,
                                             OUT reconciled jsonb, OUT endpoint text, OUT options jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- What the log says of the post's earlier inits (_earlier_init); NULL: none.
    v_state      text;
    v_publish_id text;
    v_endpoint   text;
BEGIN
    PERFORM vibescaling._check_publishable(p);

    -- Never a second init for a post TikTok has, or may have.
    IF NOT no_init_logged THEN
        SELECT e.state, e.publish_id, e.endpoint INTO v_state, v_publish_id, v_endpoint
          FROM vibescaling._earlier_init(p.id) e;
    END IF;
    IF v_state = 'sent' AND p_trigger = 'scheduler' THEN
        -- The dispatcher's earlier run published it, then its transaction was lost.
        reconciled := vibescaling._reconcile_sent(p, v_publish_id, v_endpoint);
        RETURN;
    ELSIF v_state = 'sent' THEN
        RAISE EXCEPTION 'post % was already sent to TikTok (publish_id %)', p.id, v_publish_id
            USING ERRCODE = '55000',
                  DETAIL = 'An earlier init succeeded; its transaction did not record the post as posted.',
                  HINT = 'Check vibescaling.dispatch_logs and the TikTok account; settle_post() records the decision.';
    ELSIF v_state = 'unknown' THEN
        RAISE EXCEPTION 'post % may already be on TikTok: an earlier init''s outcome is unknown', p.id
            USING ERRCODE = '55000',
                  DETAIL = 'The request was sent, but no answer was recorded (timeout, dropped connection or a server stop).',
                  HINT = 'Check the TikTok account, then call vibescaling.settle_post(post_id, on_tiktok, publish_id).';
    END IF;

    endpoint := CASE WHEN p.media_type = 'photo' THEN 'content_init'
                     WHEN p.mode = 'inbox'       THEN 'inbox_video_init'
                     ELSE 'video_init' END;
    options := jsonb_strip_nulls(jsonb_build_object(
        'caption', p.caption, 'title', p.title, 'privacy_level', p.privacy_level, 'mode', p.mode,
        'disable_comment', p.disable_comment, 'disable_duet', p.disable_duet,
        'disable_stitch', p.disable_stitch, 'brand_content_toggle', p.brand_content_toggle,
        'brand_organic_toggle', p.brand_organic_toggle, 'video_url', p.video_url,
        'video_cover_timestamp_ms', p.video_cover_timestamp_ms,
        'is_aigc', CASE WHEN p.media_type = 'video' AND p.mode = 'direct' THEN p.is_aigc END,
        'photo_urls', to_jsonb(p.photo_urls), 'photo_cover_index', p.photo_cover_index));
END
$$;

REVOKE ALL ON FUNCTION vibescaling._prepare_publish(vibescaling.posts, text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._publish_attempt(p_post_id uuid, p_trigger text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p       vibescaling.posts;
    v_prep  record;
    v_call  jsonb;
BEGIN
    SELECT * INTO STRICT p FROM vibescaling.posts WHERE id = p_post_id;
    v_prep := vibescaling._prepare_publish(p, p_trigger);
    IF v_prep.reconciled IS NOT NULL THEN
        RETURN v_prep.reconciled;
    END IF;

    -- TikTok requires a fresh creator_info before every Direct Post.
    IF p.mode = 'direct' THEN
        v_call := vibescaling._tiktok_call('creator_info', p.tiktok_account_id, p.id, p_trigger, '{}');
        IF NOT (v_call->>'ok')::boolean THEN
            RETURN jsonb_build_object('failed_call', v_call, 'endpoint', 'creator_info');
        END IF;
        PERFORM vibescaling._check_creator_allows(p, v_call->'data');
    END IF;

    -- TikTok pulls photos and videos under verified prefixes; we upload the rest.
    IF p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload' THEN
        v_call := vibescaling._upload_video(p, p_trigger, v_prep.endpoint, v_prep.options);
    ELSE
        v_call := vibescaling._tiktok_call(v_prep.endpoint, p.tiktok_account_id, p.id, p_trigger, v_prep.options);
    END IF;
    IF NOT (v_call->>'ok')::boolean THEN
        RETURN jsonb_build_object('failed_call', v_call, 'endpoint', coalesce(v_call->>'endpoint', v_prep.endpoint));
    END IF;
    RETURN vibescaling._record_published(p, v_call, v_prep.endpoint);
END
$$;

REVOKE ALL ON FUNCTION vibescaling._publish_attempt(uuid, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._publish_locked(p_post_id uuid, p_trigger text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_result jsonb := vibescaling._publish_attempt(p_post_id, p_trigger);
BEGIN
    IF v_result ? 'failed_call' THEN
        PERFORM vibescaling._raise_tiktok_error(v_result->'failed_call', v_result->>'endpoint');
    END IF;
    RETURN v_result;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._record_dispatch_failure(p_post_id uuid, p_attempts integer, p_message text,
                                                     p_state text, p_retryable boolean, p_retry_after integer,
                                                     as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_retry boolean := p_retryable AND p_attempts + 1 < current_setting('vibescaling.max_attempts')::integer;
BEGIN
    UPDATE vibescaling.posts
       SET status = CASE WHEN v_retry THEN 'scheduled' ELSE 'failed' END,
           attempts = p_attempts + 1,
           next_attempt_at = CASE WHEN v_retry
                                  THEN as_of + (clock_timestamp() - statement_timestamp())
                                       + greatest(vibescaling._retry_delay(p_attempts + 1),
                                                  make_interval(secs => coalesce(p_retry_after, 0)))
                             END,
           last_error = format('%s [SQLSTATE %s]%s', p_message, p_state,
                               CASE WHEN v_retry THEN format(' (attempt %s, will retry)', p_attempts + 1)
                                    WHEN p_retryable THEN format(' (attempt %s, no attempts left)', p_attempts + 1)
                                    ELSE '' END)
     WHERE id = p_post_id;
END
$$;

REVOKE ALL ON FUNCTION vibescaling._record_dispatch_failure(uuid, integer, text, text, boolean, integer, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._record_call_failure(p_post_id uuid, p_attempts integer, call jsonb, p_endpoint text,
                                                 as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record := vibescaling._call_failure(call, p_endpoint);
BEGIN
    PERFORM vibescaling._record_dispatch_failure(p_post_id, p_attempts, f.message, f.sqlstate, f.retryable,
                                                 f.retry_after, as_of);
END
$$;

REVOKE ALL ON FUNCTION vibescaling._record_call_failure(uuid, integer, jsonb, text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._record_dispatch_error(p_post_id uuid, p_attempts integer, p_message text, p_state text,
                                                   as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM vibescaling._record_dispatch_failure(p_post_id, p_attempts, p_message, p_state, left(p_state, 2) = '53',
                                                 NULL, as_of);
END
$$;

REVOKE ALL ON FUNCTION vibescaling._record_dispatch_error(uuid, integer, text, text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vibescaling._settle_call(p vibescaling.posts, call jsonb, p_endpoint text, as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
BEGIN
    IF NOT (call->>'ok')::boolean THEN
        PERFORM vibescaling._record_call_failure(p.id, p.attempts, call, p_endpoint, as_of);
        RETURN false;
    END IF;
    BEGIN
        IF p_endpoint = 'creator_info' THEN
            PERFORM vibescaling._check_creator_allows(p, call->'data');
        ELSE
            PERFORM vibescaling._record_published(p, call, p_endpoint);
        END IF;
        RETURN true;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM vibescaling._record_dispatch_error(p.id, p.attempts, v_message, v_state, as_of);
        RETURN false;
    END;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_round(as_of timestamptz, max_posts integer, skip_accounts uuid[],
                                            OUT processed integer, OUT declined uuid[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p           vibescaling.posts;
    v_prep      record;
    v_message   text;
    v_state     text;
    -- The posts going out, in order, with their init endpoints and options;
    -- v_going[i] becomes false when post i stops after its creator_info.
    v_posts     vibescaling.posts[] := '{}';
    v_endpoints text[] := '{}';
    v_options   jsonb[] := '{}';
    v_going     boolean[] := '{}';
    v_calls     jsonb;
    v_results   jsonb;
    v_sent      integer[];   -- the indexes (into v_posts) of the inits sent
    v_claimed   vibescaling.posts[];  -- the due posts the round locked
    v_accounts  uuid[];      -- their accounts
    v_room      integer[];   -- v_room[i]: claimed post i's init room, v_room[v_claimed_n + i]: its creator_info room
    v_claimed_n integer;
    v_since     timestamptz;  -- the oldest claimed post's creation: no call for them is older
    v_init_logged uuid[];     -- the claimed posts with an init in the log
    i           integer;
    j           integer;
BEGIN
    processed := 0;
    declined := '{}';

    -- The earliest due post of each account not skipped, earliest first.
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
                            ORDER BY d.tiktok_account_id, coalesce(d.next_attempt_at, d.scheduled_at), d.id) c
                    ORDER BY c.due, c.id
                    LIMIT max_posts))
           AND t.status = 'scheduled'
         ORDER BY coalesce(t.next_attempt_at, t.scheduled_at), t.id
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
           AND ((p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload')
                OR v_room[i] = 0
                OR p.mode = 'direct' AND v_room[v_claimed_n + i] = 0
                OR NOT pg_try_advisory_xact_lock(hashtext('vibescaling.rate_limit'), hashtext(p.tiktok_account_id::text))) THEN
            declined := declined || p.tiktok_account_id;
            CONTINUE;
        END IF;
        BEGIN
            v_prep := vibescaling._prepare_publish(p, 'scheduler', NOT (p.id = ANY (v_init_logged)));
            IF v_prep.reconciled IS NULL THEN
                v_posts := v_posts || p;
                v_endpoints := v_endpoints || v_prep.endpoint;
                v_options := v_options || v_prep.options;
                v_going := v_going || true;
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
    SELECT jsonb_agg(jsonb_build_object('endpoint', 'creator_info', 'tiktok_account_id', (v_posts[k]).tiktok_account_id,
                                        'post_id', (v_posts[k]).id, 'trigger', 'scheduler') ORDER BY k)
      INTO v_calls
      FROM generate_subscripts(v_posts, 1) k
     WHERE (v_posts[k]).mode = 'direct';
    IF v_calls IS NOT NULL THEN
        v_results := vibescaling._tiktok_call_many(v_calls);
        j := 0;
        FOR i IN 1 .. cardinality(v_posts) LOOP
            CONTINUE WHEN (v_posts[i]).mode <> 'direct';
            j := j + 1;
            IF NOT vibescaling._settle_call(v_posts[i], v_results->(j - 1), 'creator_info', as_of) THEN
                v_going[i] := false;
                processed := processed + 1;
            END IF;
        END LOOP;
    END IF;

    -- All the inits at once (each logged "in flight" first).
    SELECT jsonb_agg(jsonb_build_object('endpoint', v_endpoints[k], 'tiktok_account_id', (v_posts[k]).tiktok_account_id,
                                        'post_id', (v_posts[k]).id, 'trigger', 'scheduler', 'options', v_options[k])
                     ORDER BY k),
           array_agg(k ORDER BY k)
      INTO v_calls, v_sent
      FROM generate_subscripts(v_posts, 1) k
     WHERE v_going[k];
    IF v_calls IS NULL THEN
        RETURN;
    END IF;
    v_results := vibescaling._tiktok_call_many(v_calls);
    processed := processed + cardinality(v_sent);
    -- What TikTok accepted is recorded for all posts at once; the rest one by one.
    PERFORM vibescaling._record_published_many(ARRAY(SELECT v_posts[k] FROM unnest(v_sent) WITH ORDINALITY s(k, n) ORDER BY n),
                                               v_results,
                                               ARRAY(SELECT v_endpoints[k] FROM unnest(v_sent) WITH ORDINALITY s(k, n) ORDER BY n));
    FOR j IN 1 .. cardinality(v_sent) LOOP
        CONTINUE WHEN vibescaling._init_accepted(v_results->(j - 1));
        PERFORM vibescaling._settle_call(v_posts[v_sent[j]], v_results->(j - 1), v_endpoints[v_sent[j]], as_of);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_round(as_of timestamptz, skip_accounts uuid[])
RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_round record;
BEGIN
    DISCARD PLANS;
    v_round := vibescaling._dispatch_round(as_of, current_setting('vibescaling.max_concurrent_requests')::integer,
                                           skip_accounts);
    IF v_round.processed = 0 AND cardinality(v_round.declined) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN skip_accounts || v_round.declined;
END
$$;

CREATE OR REPLACE FUNCTION vibescaling._dispatch_next_single(as_of timestamptz, uploads boolean)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id   uuid;
    v_attempts  integer;
    v_result    jsonb;
    v_message   text;
    v_state     text;
BEGIN
    SELECT p.id, p.attempts INTO v_post_id, v_attempts
      FROM vibescaling.posts p
     WHERE p.status = 'scheduled' AND coalesce(p.next_attempt_at, p.scheduled_at) <= as_of
       AND (p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload') = uploads
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
    IF v_result ? 'failed_call' THEN
        PERFORM vibescaling._record_call_failure(v_post_id, v_attempts, v_result->'failed_call',
                                                 v_result->>'endpoint', as_of);
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_posts(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_skip uuid[] := ARRAY[]::uuid[];
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    LOOP
        v_skip := vibescaling._dispatch_next_round(as_of, v_skip);
        EXIT WHEN v_skip IS NULL;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    LOOP
        EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, false);
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;

CREATE OR REPLACE PROCEDURE vibescaling.dispatch_due_uploads(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    LOOP
        EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, true);
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;

CREATE OR REPLACE PROCEDURE vibescaling.maintain_logs()
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_state jsonb;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM vibescaling._require_primary();
    LOOP
        v_state := vibescaling._maintain_logs_step(v_state);
        EXIT WHEN v_state IS NULL;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;


-- Every existing partition gets the index of the answers that asked for a
-- wait (_set_up_log_partition, as replaced above, adds what is missing).
-- Partial, so small; building it reads each partition once.
SELECT vibescaling._set_up_log_partition('vibescaling.dispatch_logs', i.inhrelid::regclass)
  FROM pg_catalog.pg_inherits i
 WHERE i.inhparent = 'vibescaling.dispatch_logs'::regclass;
