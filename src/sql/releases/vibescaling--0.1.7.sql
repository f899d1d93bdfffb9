-- vibescaling: tables.
-- The extension script is the concatenation of src/sql/*.sql in name order
-- (see the Makefile); each file holds one part of the SQL surface.
\echo Use "CREATE EXTENSION vibescaling" to load this file. \quit

-- A claim of the JWT of a PostgREST request (PostgREST puts the claims in
-- request.jwt.claims); NULL outside PostgREST or without that claim. Any
-- session can set request.jwt.claims, so the claims are believed only in a
-- session that logged in as PostgREST's role (vibescaling_authenticator,
-- which verified the JWT) or as a superuser (an operator replaying a
-- request). The tenant a request acts for is its "sub" (_jwt_sub): posts and
-- accounts created through the API belong to it, and row level security
-- shows API roles only their own (14_tenancy.sql); elsewhere there is none.
CREATE FUNCTION vibescaling._jwt_claim(claim text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN SESSION_USER = 'vibescaling_authenticator'
                     OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER)
                THEN NULLIF(NULLIF(current_setting('request.jwt.claims', true), '')::jsonb ->> claim, '') END
$$;

-- The tenant: the JWT's sub claim, where claims are believed (_jwt_claim).
CREATE FUNCTION vibescaling._jwt_sub()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._jwt_claim('sub')
$$;

-- Connected TikTok accounts. Tokens are encrypted at rest (pgcrypto, key in
-- the superuser-only setting vibescaling.token_encryption_key) and no role
-- but the owner can read this table; vibescaling.accounts is the token-free view.
CREATE TABLE vibescaling.tiktok_accounts (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    open_id                   text NOT NULL UNIQUE,
    union_id                  text,
    display_name              text,
    avatar_url                text,
    access_token_enc          bytea,           -- NULL once disconnected
    refresh_token_enc         bytea,
    access_token_expires_at   timestamptz,
    refresh_token_expires_at  timestamptz,
    scopes                    text[],          -- what the user granted; NULL = unknown
    token_version             bigint NOT NULL DEFAULT 0,  -- bumped by every refresh
    last_refreshed_at         timestamptz,
    status                    text NOT NULL DEFAULT 'active'
                              CHECK (status IN ('active', 'needs_reauth', 'disconnected')),
    status_reason             text,
    owner                     text DEFAULT vibescaling._jwt_sub(),  -- the tenant (JWT sub); NULL: none
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tiktok_accounts_owner_idx ON vibescaling.tiktok_accounts (owner);
COMMENT ON TABLE vibescaling.tiktok_accounts IS
    'Connected TikTok accounts with their encrypted OAuth tokens (never grant SELECT on this table).';

-- The accounts without their secrets.
CREATE VIEW vibescaling.accounts AS
    SELECT id, open_id, union_id, display_name, avatar_url, access_token_expires_at,
           refresh_token_expires_at, scopes, last_refreshed_at, status, status_reason,
           created_at, updated_at, owner
      FROM vibescaling.tiktok_accounts;
COMMENT ON VIEW vibescaling.accounts IS 'Connected TikTok accounts, without tokens.';

-- creator_info() answers, cached for vibescaling.creator_info_ttl. A table of
-- its own so that caching never locks the account row (token refreshes do).
CREATE TABLE vibescaling.creator_info_cache (
    tiktok_account_id  uuid PRIMARY KEY REFERENCES vibescaling.tiktok_accounts (id) ON DELETE CASCADE,
    data               jsonb NOT NULL,
    fetched_at         timestamptz NOT NULL DEFAULT now()
);

-- Video bytes kept in the database (a post's media_id). STORAGE EXTERNAL:
-- uncompressed out-of-line storage, so the uploader reads one chunk at a
-- time with substring() instead of decompressing the whole video.
CREATE TABLE vibescaling.media (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    data          bytea NOT NULL,
    content_type  text,          -- NULL: sniffed from the bytes (MP4, MOV, WebM)
    created_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE vibescaling.media ALTER COLUMN data SET STORAGE EXTERNAL;

-- Posts: drafts, scheduled posts and their outcome.
CREATE TABLE vibescaling.posts (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    media_type            text NOT NULL DEFAULT 'video' CHECK (media_type IN ('video', 'photo')),
    caption               text,   -- video: TikTok's title (<= 2200 UTF-16 units); photo: the description (<= 4000)
    title                 text,   -- photo posts only: TikTok's short title (<= 90 UTF-16 units)
    -- A video's source: exactly one of video_url, video_lo, media_id.
    video_url             text,   -- pulled by TikTok (PULL_FROM_URL) or downloaded and uploaded by us
    video_lo              oid,    -- a large object, uploaded by us (FILE_UPLOAD)
    media_id              uuid REFERENCES vibescaling.media (id),  -- bytea in vibescaling.media, uploaded by us
    upload_method         text CHECK (upload_method IN ('pull', 'upload')),  -- NULL: pull when
                                  -- video_url starts with a vibescaling.pull_url_prefixes entry, else upload
    video_cover_timestamp_ms integer CHECK (video_cover_timestamp_ms >= 0),
    is_aigc               boolean NOT NULL DEFAULT false,  -- TikTok's AI-generated content label
    photo_urls            text[], -- photo posts: 1 to 35 https image URLs (TikTok pulls photos)
    photo_cover_index     integer NOT NULL DEFAULT 0,
    status                text NOT NULL DEFAULT 'draft'
                          -- publishing: an init went out and no answer was read (its
                          -- outcome is unknown) until a settlement (vibescaling.settlements) says
                          -- whether TikTok has it.
                          CHECK (status IN ('draft', 'scheduled', 'publishing', 'posted', 'failed')),
    scheduled_at          timestamptz,
    tiktok_account_id     uuid REFERENCES vibescaling.tiktok_accounts (id),
    privacy_level         text CHECK (privacy_level IN ('PUBLIC_TO_EVERYONE', 'MUTUAL_FOLLOW_FRIENDS',
                                                        'FOLLOWER_OF_CREATOR', 'SELF_ONLY')),
    mode                  text NOT NULL DEFAULT 'direct' CHECK (mode IN ('direct', 'inbox')),
    disable_comment       boolean NOT NULL DEFAULT false,
    disable_duet          boolean NOT NULL DEFAULT false,
    disable_stitch        boolean NOT NULL DEFAULT false,
    brand_content_toggle  boolean NOT NULL DEFAULT false,
    brand_organic_toggle  boolean NOT NULL DEFAULT false,
    posted_at             timestamptz,
    last_error            text,
    attempts              integer NOT NULL DEFAULT 0,   -- dispatch attempts since it was (re)scheduled
    next_attempt_at       timestamptz,                  -- after a transient failure: not before this
    owner                 text DEFAULT vibescaling._jwt_sub(),  -- the tenant (JWT sub); must match the account's
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    source_role           oid,    -- the role that set video_lo / media_id: it must still be able to read it when sent
    -- A target of a post sent to several accounts (22_targets.sql): that
    -- post's id. A target is a post of its own, for one account.
    parent_id             uuid REFERENCES vibescaling.posts (id) ON DELETE CASCADE,
    -- An occurrence of a repeating rule (25_recurrence.sql adds the key).
    recurrence_id         bigint
);
CREATE INDEX posts_owner_idx ON vibescaling.posts (owner);
-- A post's targets, one per account.
CREATE UNIQUE INDEX posts_target_idx ON vibescaling.posts (parent_id, tiktok_account_id) WHERE parent_id IS NOT NULL;
COMMENT ON TABLE vibescaling.posts IS
    'TikTok posts. status: draft -> scheduled -> posted | failed (publish_post goes draft -> posted); publishing: an init''s outcome is unknown until settled.';

-- The dispatcher's scan: scheduled posts by due time.
CREATE INDEX posts_due_idx ON vibescaling.posts (coalesce(next_attempt_at, scheduled_at)) WHERE status = 'scheduled';

-- What TikTok said about each publish (one row per publish_id). A post
-- found on TikTok through the Display API (settle_unknown_outcomes) has a
-- record without a publish_id: TikTok's video list names the video, not the
-- publish.
CREATE TABLE vibescaling.publish_records (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    post_id            uuid NOT NULL REFERENCES vibescaling.posts (id) ON DELETE CASCADE,
    tiktok_account_id  uuid NOT NULL,
    publish_id         text UNIQUE,     -- NULL: known only by its public post id
    endpoint           text NOT NULL,   -- video_init | inbox_video_init | content_init
    mode               text NOT NULL,
    -- unconfirmed: TikTok gave no final status within
    -- vibescaling.publish_confirm_timeout (a webhook may still settle it).
    status             text NOT NULL DEFAULT 'processing'
                       CHECK (status IN ('processing', 'sent_to_inbox', 'published', 'failed', 'unconfirmed')),
    tiktok_status      text,            -- TikTok's data.status at the last check
    fail_reason        text,
    public_post_ids    bigint[] NOT NULL DEFAULT '{}',  -- 19-digit ids, kept exactly
    uploaded_bytes     bigint,
    downloaded_bytes   bigint,
    checked_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- The last time TikTok made the post public (publicly_available), and
    -- the last time it took it down (no_longer_publicaly_available): down
    -- now when taken_down_at is the later one.
    public_at          timestamptz,
    taken_down_at      timestamptz
);
CREATE INDEX publish_records_post_idx ON vibescaling.publish_records (post_id, created_at DESC);

-- One row per call to TikTok, and the event that is not a call but
-- belongs with them: each accepted webhook delivery from TikTok (endpoint
-- 'webhook'). Call rows are written by a background worker in a
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
                       -- settle: settle_unknown_outcomes' look-ups; metrics: collect_metrics'
                       CHECK (trigger IN ('manual', 'scheduler', 'status', 'connect', 'refresh', 'disconnect', 'webhook',
                                          'settle', 'metrics')),
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
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- TikTok's Retry-After (seconds) on this call's answer: the account
    -- makes no call of the endpoint's rate limit bucket before it has
    -- passed, counted from the answer (_rate_limit_holds).
    retry_after        integer
) PARTITION BY RANGE (created_at);
COMMENT ON TABLE vibescaling.dispatch_logs IS
    'Every call to TikTok (committed independently of the caller''s transaction) and each accepted webhook delivery (endpoint webhook); weekly partitions, see vibescaling.log_retention.';
CREATE TABLE vibescaling.dispatch_logs_default PARTITION OF vibescaling.dispatch_logs DEFAULT;

-- Sets up a partition of dispatch_logs or webhook_events: the keys and
-- indexes it lacks (by name) and its fillfactor. Each partition has its
-- own indexes rather than the log having partitioned ones: pg_dump dumps
-- the weekly partitions (tables of maintain_logs, not of the extension)
-- and their indexes after attaching them, and an attach to a log with
-- partitioned indexes would already have made them (a restore would fail
-- on the copy). A call's "in flight" row is replaced by its outcome a
-- moment later: no index covers the columns that change (but retry_after,
-- set on the rare answers with a Retry-After), and a tenth of each page is
-- left free, so that the replacement is a HOT update (no new index
-- entries).
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
REVOKE ALL ON FUNCTION vibescaling._set_up_log_partition(regclass, regclass) FROM PUBLIC;
SELECT vibescaling._set_up_log_partition('vibescaling.dispatch_logs', 'vibescaling.dispatch_logs_default');

-- Every decision on a post whose init had an unknown outcome: whether
-- TikTok has it, who decided and on what evidence. An operator's
-- settle_post, or settle_unknown_outcomes() from TikTok's own signals (a
-- webhook naming a publish we never recorded, the creator's video list, the
-- status of a publish_id learned that way) or from their absence after
-- vibescaling.unknown_outcome_quiet_period. It settles the post's inits
-- logged up to settled_through (a dispatch_logs id): a later init is a new
-- attempt (_earlier_init).
CREATE TABLE vibescaling.settlements (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    post_id            uuid NOT NULL REFERENCES vibescaling.posts (id) ON DELETE CASCADE,
    tiktok_account_id  uuid,
    settled_through    bigint NOT NULL DEFAULT 0,  -- the post's last init in dispatch_logs when decided
    on_tiktok          boolean NOT NULL,
    publish_id         text,            -- TikTok's, when known
    public_post_id     bigint,          -- the video, when found in the creator's list
    -- operator: settle_post; webhook, video_list: the signal that found the
    -- post; quiet_period: no signal within the quiet period.
    decided_by         text NOT NULL CHECK (decided_by IN ('operator', 'webhook', 'video_list', 'quiet_period')),
    evidence           jsonb NOT NULL DEFAULT '{}',
    requeued           boolean NOT NULL DEFAULT false,  -- the post went back to the queue
    decided_by_role    text NOT NULL DEFAULT current_user,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlements_post_idx ON vibescaling.settlements (post_id, settled_through);
COMMENT ON TABLE vibescaling.settlements IS
    'Decisions on posts whose init had an unknown outcome: by an operator (settle_post) or by settle_unknown_outcomes() from TikTok''s signals.';

-- pg_dump keeps the data of these extension tables (and their id sequences).
SELECT pg_catalog.pg_extension_config_dump('vibescaling.tiktok_accounts', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.posts', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.media', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.publish_records', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.settlements', '');
-- dispatch_logs: its partitions hold the rows. The weekly ones are created
-- by maintain_logs, not by this script, so they are ordinary tables that
-- pg_dump dumps, attached, with their rows; the default partition belongs
-- to the extension and its rows are dumped as configuration data.
SELECT pg_catalog.pg_extension_config_dump('vibescaling.dispatch_logs_default', '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.publish_records', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.dispatch_logs', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.settlements', 'id'), '');
-- vibescaling: tokens at rest. Access and refresh tokens are encrypted with
-- pgcrypto's PGP symmetric encryption (AES-256) under the key in the
-- superuser-only setting vibescaling.token_encryption_key, in C
-- (src/pg/token_seal.cpp): a token or the key never becomes a constant or a
-- parameter of a planned statement, where auto_explain would log it. The
-- key must be a long random secret, not a password, so it is not stretched
-- (s2k-mode=1). The sealed form is pgcrypto's: pgp_sym_decrypt() reads it.
-- Only the owner (and superusers) may call these.

-- Encrypts a token (NULL stays NULL); 55000 when no key is set.
CREATE FUNCTION vibescaling._seal(token text)
RETURNS bytea
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_seal'
LANGUAGE C VOLATILE STRICT;

-- Decrypts a token (NULL stays NULL); 55000 when no key is set.
CREATE FUNCTION vibescaling._unseal(sealed bytea)
RETURNS text
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_unseal'
LANGUAGE C VOLATILE STRICT;

-- Stores the tokens of a TikTok token reply (code exchange or refresh) on
-- an account: the tokens as C sealed them (access_token_sealed and
-- refresh_token_sealed, hex; see token_seal.h), expiry times from expires_in /
-- refresh_expires_in (TikTok changed the lifetimes; never hard-coded), the
-- scopes granted, a new token_version. The reply is rotated: the refresh
-- token it carries replaces the old one, which TikTok no longer accepts.
CREATE FUNCTION vibescaling._store_tokens(account_id uuid, reply jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(reply->>'access_token_sealed', '') = '' OR jsonb_typeof(reply->'expires_in') IS DISTINCT FROM 'number' THEN
        RAISE EXCEPTION 'TikTok''s token reply has no access_token or expires_in' USING ERRCODE = '08P01';
    END IF;
    UPDATE vibescaling.tiktok_accounts a
       SET access_token_enc         = decode(reply->>'access_token_sealed', 'hex'),
           refresh_token_enc        = coalesce(decode(reply->>'refresh_token_sealed', 'hex'), a.refresh_token_enc),
           access_token_expires_at  = now() + make_interval(secs => (reply->>'expires_in')::double precision),
           refresh_token_expires_at = CASE WHEN jsonb_typeof(reply->'refresh_expires_in') = 'number'
                                           THEN now() + make_interval(secs => (reply->>'refresh_expires_in')::double precision)
                                           ELSE a.refresh_token_expires_at END,
           scopes                   = coalesce(string_to_array(nullif(reply->>'scope', ''), ','), a.scopes),
           token_version            = a.token_version + 1,
           last_refreshed_at        = now(),
           status                   = 'active',
           status_reason            = NULL,
           updated_at               = now()
     WHERE a.id = account_id;
END
$$;
-- vibescaling: the one function that talks to TikTok, and how its refusals are raised.

-- What one call to TikTok gave, as _tiktok_call and _tiktok_call_many
-- return it (built in C from the parsed reply, never from JSON text):
--   ok               TikTok answered and accepted (error.code "ok");
--   http_status      0 when no reply arrived;
--   error_code       TikTok's error.code, or ours for what never reached it
--                    (timeout, connect_failed, rate_limited, ...);
--   error_message    secrets masked;
--   log_id           TikTok's, '' without one;
--   publish_id       data.publish_id, '' without one;
--   data             the reply's data object ({} without one);
--   sqlstate         the failure's SQLSTATE (docs/errors.md), 00000 on success;
--   duration_ms      the HTTP exchange's wall time;
--   retryable        trying again later is safe and may succeed;
--   outcome_unknown  the request may have reached TikTok and we cannot tell
--                    what it did;
--   retry_after      the reply's Retry-After in seconds, NULL without one.
CREATE TYPE vibescaling._call_result AS (
    ok              boolean,
    http_status     integer,
    error_code      text,
    error_message   text,
    log_id          text,
    publish_id      text,
    data            jsonb,
    sqlstate        text,
    duration_ms     double precision,
    retryable       boolean,
    outcome_unknown boolean,
    retry_after     integer);

-- Calls one TikTok endpoint (C, src/pg/tiktok_call.cpp: a batch of one through
-- the call path of src/pg/call_batch.cpp, or an OAuth call): reads the account's
-- access token itself (tokens never travel through SQL), builds the request
-- from the flat options object, performs the HTTP call with the configured
-- timeouts, writes the dispatch_logs row in its own committed transaction,
-- and returns what TikTok answered (_call_result). It never raises for a
-- TikTok refusal: the caller decides (see _raise_tiktok_error).
CREATE FUNCTION vibescaling._tiktok_call(
    endpoint           text,
    tiktok_account_id  uuid,
    post_id            uuid,
    trigger            text,
    options            jsonb)
RETURNS vibescaling._call_result
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call_1_5'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling._tiktok_call(text, uuid, uuid, text, jsonb) FROM PUBLIC;

-- Many calls at once (C, src/pg/tiktok_call_many.cpp, through the same call
-- path as _tiktok_call): calls is an array of
-- {"endpoint", "tiktok_account_id", "post_id", "trigger", "options"}; the
-- answer is the array of their results, in order, each as _tiktok_call
-- returns it. At most vibescaling.max_concurrent_requests are in flight at
-- once, over kept-alive connections. The same rules as _tiktok_call
-- (tokens read in C, refresh before expiry and once after a 401, every
-- attempt logged, every call logged "in flight" before it is sent), except
-- that a call over its account's rate limit is not sent and not waited for:
-- its result is rate_limited (53000, retryable). OAuth endpoints are refused.
CREATE FUNCTION vibescaling._tiktok_call_many(calls jsonb)
RETURNS vibescaling._call_result[]
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_tiktok_call_many_1_5'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling._tiktok_call_many(jsonb) FROM PUBLIC;

-- This backend's kept-alive connections since it started, which
-- _tiktok_call_many and _tiktok_call use (all but the OAuth calls), and
-- chunk PUTs and video source downloads:
-- {"transfers", "connections_opened", "connections_reused"} (C,
-- src/pg/pool_stats.cpp). Fewer connections than transfers means
-- keep-alive spared the handshakes.
CREATE FUNCTION vibescaling.http_pool_stats()
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_http_pool_stats'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling.http_pool_stats() FROM PUBLIC;

-- The HINT of a failure worth retrying later (for people and the HTTP API).
CREATE FUNCTION vibescaling._transient_hint()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'The failure is transient; try again later.'::text $$;

-- What a failed call (call: _tiktok_call's answer) means, decided in one
-- place for those who raise it (_raise_tiktok_error) and for the
-- dispatcher, which records it on the post (_record_call_failure):
--   message      TikTok's code and log_id; for an init whose request may
--                have reached TikTok, that its outcome is unknown;
--   sqlstate     from the core's mapping table (docs/errors.md);
--   retryable    whether trying again later may succeed: the core's
--                verdict, never for an init of unknown outcome (resending
--                could post twice; other calls create nothing);
--   retry_after  TikTok's Retry-After in seconds, NULL without one;
--   unknown_init the init may have reached TikTok (settle_post decides).
CREATE FUNCTION vibescaling._call_failure(call vibescaling._call_result, endpoint text,
                                          OUT message text, OUT sqlstate text, OUT retryable boolean,
                                          OUT retry_after integer, OUT unknown_init boolean)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    unknown_init := coalesce(call.outcome_unknown, false)
                    AND endpoint IN ('video_init', 'inbox_video_init', 'content_init');
    message := format('TikTok %s failed: %s (log_id %s)', endpoint, call.error_code,
                      coalesce(nullif(call.log_id, ''), 'none'))
               || CASE WHEN unknown_init THEN ': the request may have reached TikTok, its outcome is unknown' ELSE '' END;
    sqlstate := call.sqlstate;
    retryable := coalesce(call.retryable, false) AND NOT unknown_init;
    retry_after := call.retry_after;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._call_failure(vibescaling._call_result, text) FROM PUBLIC;

-- Raises the error for a failed TikTok call (_call_failure says what it
-- means): the message, the SQLSTATE, and a DETAIL with what TikTok
-- answered for people and the HTTP API (" retry_after=N" last when TikTok
-- sent a Retry-After). Its HINT says what to do: wait and try again, or
-- settle an init of unknown outcome. Nothing in the extension reads the
-- DETAIL or HINT back: the dispatcher records failed calls from their
-- answers (_record_call_failure).
CREATE FUNCTION vibescaling._raise_tiktok_error(call vibescaling._call_result, endpoint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f        record := vibescaling._call_failure(call, endpoint);
    v_detail text := format('http_status=%s error_code=%s log_id=%s outcome_unknown=%s message=%s',
                            coalesce(call.http_status::text, 'none'), call.error_code,
                            coalesce(call.log_id, ''), call.outcome_unknown::text,
                            coalesce(call.error_message, ''))
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
REVOKE ALL ON FUNCTION vibescaling._raise_tiktok_error(vibescaling._call_result, text) FROM PUBLIC;

-- TikTok's per-token rate limits: the endpoints that share a limit, and the
-- limit per window (video/init, inbox/video/init and content/init: 6;
-- status/fetch: 30; creator_info/query: 20; the Display API's video/list
-- and video/query, and user/info: 600 each). NULL: not limited.
CREATE FUNCTION vibescaling._rate_limit_bucket(endpoint text, OUT endpoints text[], OUT calls integer)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: a SQL function returning a record is never inlined,
    -- and is planned again at every call.
    IF endpoint IN ('video_init', 'inbox_video_init', 'content_init') THEN
        endpoints := ARRAY['video_init', 'inbox_video_init', 'content_init'];
        calls := 6;
    ELSIF endpoint = 'status_fetch' THEN
        endpoints := ARRAY[endpoint];
        calls := 30;
    ELSIF endpoint = 'creator_info' THEN
        endpoints := ARRAY[endpoint];
        calls := 20;
    ELSIF endpoint IN ('video_list', 'video_query', 'user_stats') THEN
        endpoints := ARRAY[endpoint];
        calls := 600;
    END IF;
END
$$;

-- The advisory lock that makes an account's rate-limit count and the calls
-- that follow it one step across backends (held until the transaction ends).
-- plpgsql, not sql: a sql function with a SET clause is never inlined, so
-- PostgreSQL 15 would parse and plan its body at every call (twice a publish).
CREATE FUNCTION vibescaling._rate_limit_lock(account_id uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.rate_limit'), hashtext(account_id::text));
END
$$;

-- The calls of these accounts to any of these endpoints that count against
-- TikTok's rate limit, made within the current window: what the durable
-- dispatch log holds, where every call for an account is logged "in
-- flight" before it is sent. Calls that never reached TikTok (no HTTP
-- status, outcome known) do not count.
CREATE FUNCTION vibescaling._rate_limit_calls(account_ids uuid[], endpoints text[])
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

-- Until when TikTok asked these accounts to wait before their next call of
-- these endpoints: each answer of the last day with a Retry-After whose
-- wait has not passed, counted from the moment of the answer (the call's
-- in-flight row was written just before it was sent, and the answer came
-- duration_ms later), plus one second: the row's created_at is the log
-- writer's transaction start, a few milliseconds before the request left,
-- so without it the hold could end that much before TikTok's (CI saw an
-- init arrive 0.000 s early: test/system/crash_inflight.sh, part c). It is read from the durable log, so a wait outlives
-- the caller's transaction: a round that is cancelled or crashes after a
-- 429 has lost its record of the backoff, never TikTok's Retry-After.
CREATE FUNCTION vibescaling._rate_limit_holds(account_ids uuid[], endpoints text[])
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

-- Seconds until the account may make one more call of this endpoint's rate
-- limit bucket (0: now): after TikTok's last Retry-After for the bucket
-- (_rate_limit_holds), and once the window has room, counting its calls in
-- the durable dispatch log, which every backend sees at once
-- (_rate_limit_calls). The account's advisory lock (_rate_limit_lock)
-- makes the count and the call that follows one step across backends
-- (held until the caller's transaction ends: the dispatcher commits per
-- round).
CREATE FUNCTION vibescaling._rate_limit_wait(account_id uuid, endpoint text)
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

-- For each (account_ids[i], endpoints[i]): how many more calls of the
-- endpoint's bucket the account may make now. None while TikTok's
-- Retry-After holds it back (_rate_limit_holds), else the bucket's limit
-- less its calls within the window (_rate_limit_calls), as
-- _rate_limit_wait counts them; NULL for an endpoint without a limit (or
-- no account). Two queries of the log for the whole batch, however many
-- accounts: a dispatcher round asks once for all its posts.
CREATE FUNCTION vibescaling._rate_limit_room(account_ids uuid[], endpoints text[])
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

-- For a batch of calls (account_ids[i], endpoints[i]): which may be sent now
-- without exceeding the accounts' rate limits or TikTok's Retry-After, in
-- order (earlier calls get the free slots first). Takes the accounts'
-- advisory locks, in a fixed order so that two batches never deadlock,
-- until the transaction ends.
CREATE FUNCTION vibescaling._rate_limit_allowance(account_ids uuid[], endpoints text[])
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
REVOKE ALL ON FUNCTION vibescaling._rate_limit_allowance(uuid[], text[]) FROM PUBLIC;
-- vibescaling: checks shared by publish_post, schedule_post, the posts
-- trigger and the dispatcher. Each raises with a precise SQLSTATE before
-- anything is sent to TikTok or written to the post.

-- Length of a text in UTF-16 code units, the unit TikTok counts titles in
-- (a character outside the Basic Multilingual Plane, e.g. most emoji, counts twice).
CREATE FUNCTION vibescaling._utf16_length(t text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Plain ASCII (most captions): one unit per character, without the regex.
    IF octet_length(t) = char_length(t) THEN
        RETURN char_length(t);
    END IF;
    RETURN char_length(t) + char_length(regexp_replace(t, '[^\U00010000-\U0010FFFF]', '', 'g'));
END
$$;

-- TikTok's limits on a post's text and photos, in one place (the rules
-- that check them: _check_publishable, _check_post_limits), in UTF-16
-- units as TikTok counts: a video's caption (its title) 2200, a photo
-- post's description 4000 and title 90, and 1 to 35 photo URLs.
CREATE FUNCTION vibescaling._tiktok_post_limits(OUT video_caption integer, OUT photo_description integer,
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

-- Checks one post, with the publish options already on it, against TikTok's
-- published rules; raises 22004 / 22023 / P0002 / 55000 on the first problem.
CREATE FUNCTION vibescaling._check_publishable(p vibescaling.posts)
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
REVOKE ALL ON FUNCTION vibescaling._check_publishable(vibescaling.posts) FROM PUBLIC;

-- Longest URL accepted in video_url and each of photo_urls, in bytes.
CREATE FUNCTION vibescaling._max_url_bytes()
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 2048 $$;
REVOKE ALL ON FUNCTION vibescaling._max_url_bytes() FROM PUBLIC;

-- The limits of every write of a post, draft or not, so that no caller can
-- store what TikTok would never take (_tiktok_post_limits): the caption,
-- the photo title, the number of photo_urls, URLs of at most
-- _max_url_bytes() bytes; and, for a tenant's
-- post (an owner), at most vibescaling.max_open_posts_per_owner posts in
-- draft or scheduled (53400; 0: no quota). Raises 22023 on a bad value.
CREATE FUNCTION vibescaling._check_post_limits(p_new vibescaling.posts, p_old vibescaling.posts)
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
REVOKE ALL ON FUNCTION vibescaling._check_post_limits(vibescaling.posts, vibescaling.posts) FROM PUBLIC;

-- What creator_info's answer (creator: its data) says against the post's
-- options: the privacy level must be one the creator is offered, and an
-- interaction the creator turned off must be disabled on the post too
-- (TikTok greys those toggles out). message: the first problem (SQLSTATE
-- 22023), NULL when the creator allows the post; detail: more about it.
-- A function that does not raise, so that a dispatcher round checks all
-- its answers in one statement.
CREATE FUNCTION vibescaling._creator_refusal(p vibescaling.posts, creator jsonb, OUT message text, OUT detail text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT coalesce(creator->'privacy_level_options', '[]'::jsonb) ? p.privacy_level THEN
        message := format('privacy_level %s is not offered to this creator', p.privacy_level);
        detail := format('creator_info offers %s', creator->'privacy_level_options');
    ELSIF coalesce((creator->>'comment_disabled')::boolean, false) AND NOT p.disable_comment THEN
        message := 'the creator has turned comments off; publish with disable_comment => true';
    ELSIF p.media_type = 'video' AND coalesce((creator->>'duet_disabled')::boolean, false) AND NOT p.disable_duet THEN
        message := 'the creator has turned duets off; publish with disable_duet => true';
    ELSIF p.media_type = 'video' AND coalesce((creator->>'stitch_disabled')::boolean, false) AND NOT p.disable_stitch THEN
        message := 'the creator has turned stitches off; publish with disable_stitch => true';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._creator_refusal(vibescaling.posts, jsonb) FROM PUBLIC;

-- Raises 22023 when creator_info's answer does not allow the post
-- (_creator_refusal says why).
CREATE FUNCTION vibescaling._check_creator_allows(p vibescaling.posts, creator jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record := vibescaling._creator_refusal(p, creator);
BEGIN
    IF r.detail IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = r.message, DETAIL = r.detail;
    ELSIF r.message IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = r.message;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._check_creator_allows(vibescaling.posts, jsonb) FROM PUBLIC;

-- Raises 25006 on a standby: TikTok is called, and posts are changed, only
-- on the primary, which the message names when this role may see it
-- (pg_stat_wal_receiver). After a promotion the same calls just work.
CREATE FUNCTION vibescaling._require_primary()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_primary text;
BEGIN
    IF NOT pg_is_in_recovery() THEN
        RETURN;
    END IF;
    SELECT nullif(concat_ws(':', w.sender_host, w.sender_port), '') INTO v_primary FROM pg_stat_wal_receiver w;
    RAISE EXCEPTION 'vibescaling runs on the primary: this server is a standby%',
                    coalesce(' of ' || v_primary, '')
        USING ERRCODE = '25006',
              HINT = 'Call it on the primary' || coalesce(' (' || v_primary || ')', '')
                     || '; a standby sends nothing to TikTok and its scheduler waits for a promotion.';
END
$$;
REVOKE ALL ON FUNCTION vibescaling._require_primary() FROM PUBLIC;

-- Locks a post row FOR UPDATE and returns it: 22004 for a NULL id, P0002
-- for an unknown one. The row lock makes a racing publish, dispatcher or
-- state change wait, then see the new state.
CREATE FUNCTION vibescaling._lock_post(p_post_id uuid)
RETURNS vibescaling.posts
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    IF p_post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    SELECT * INTO p FROM vibescaling.posts t WHERE t.id = p_post_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'post % not found', p_post_id USING ERRCODE = 'P0002';
    END IF;
    RETURN p;
END
$$;
-- vibescaling: connected accounts: connect (OAuth code exchange), add with
-- tokens obtained elsewhere, disconnect (revoke), keep tokens fresh, and
-- creator_info with its short cache.

-- Connects an account whose tokens were obtained elsewhere (upsert on open_id).
CREATE FUNCTION vibescaling.add_account(
    open_id                  text,
    access_token             text,
    refresh_token            text DEFAULT NULL,
    access_token_expires_at  timestamptz DEFAULT NULL,
    display_name             text DEFAULT NULL,
    scopes                   text[] DEFAULT NULL,
    owner                    text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id      uuid;
    -- Sealed in simple assignments, which plpgsql evaluates without the
    -- executor: the tokens never appear in a statement auto_explain logs.
    v_access  bytea;
    v_refresh bytea;
BEGIN
    IF coalesce(add_account.open_id, '') = '' THEN
        RAISE EXCEPTION 'open_id is required' USING ERRCODE = '22004';
    END IF;
    IF coalesce(add_account.access_token, '') = '' THEN
        RAISE EXCEPTION 'access_token is required' USING ERRCODE = '22004';
    END IF;
    v_access := vibescaling._seal(add_account.access_token);
    v_refresh := vibescaling._seal(add_account.refresh_token);

    INSERT INTO vibescaling.tiktok_accounts AS a
           (open_id, access_token_enc, refresh_token_enc, access_token_expires_at, display_name, scopes, owner)
    VALUES (add_account.open_id, v_access, v_refresh, add_account.access_token_expires_at,
            add_account.display_name, add_account.scopes, coalesce(add_account.owner, vibescaling._jwt_sub()))
    ON CONFLICT ON CONSTRAINT tiktok_accounts_open_id_key DO UPDATE
       SET access_token_enc        = EXCLUDED.access_token_enc,
           refresh_token_enc       = coalesce(EXCLUDED.refresh_token_enc, a.refresh_token_enc),
           access_token_expires_at = EXCLUDED.access_token_expires_at,
           display_name            = coalesce(EXCLUDED.display_name, a.display_name),
           scopes                  = coalesce(EXCLUDED.scopes, a.scopes),
           token_version           = a.token_version + 1,
           status                  = 'active',
           status_reason           = NULL,
           updated_at              = now()
     -- Another tenant's account is not taken over (the owner stays as it is).
     WHERE a.owner IS NOT DISTINCT FROM EXCLUDED.owner
    RETURNING a.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'TikTok account % is connected by another owner', add_account.open_id USING ERRCODE = '42501';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION vibescaling.add_account(text, text, text, timestamptz, text, text[], text) IS
    'Connects a TikTok account whose tokens were obtained elsewhere; upserts on open_id; returns the account id. '
    'Pass the tokens as bind parameters, not literals, so they stay out of pg_stat_activity and the server log.';

-- Percent-encodes text for a URL query (RFC 3986 unreserved characters stay).
CREATE FUNCTION vibescaling._url_encode(value text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(CASE WHEN b BETWEEN 48 AND 57 OR b BETWEEN 65 AND 90 OR b BETWEEN 97 AND 122
                                         OR b IN (45, 46, 95, 126)
                                    THEN chr(b) ELSE '%' || upper(lpad(to_hex(b), 2, '0')) END, '' ORDER BY i), '')
      FROM (SELECT i, get_byte(convert_to(value, 'UTF8'), i) AS b
              FROM generate_series(0, octet_length(convert_to(value, 'UTF8')) - 1) i) bytes
$$;

-- The TikTok consent URL (Login Kit) asking for the scopes vibescaling
-- uses: to post (user.info.basic, video.publish, video.upload), and to
-- follow what happens after (video.list: the creator's videos, which settle
-- unknown outcomes and give post metrics; user.info.stats: follower
-- counts). The creator may decline the last two; nothing else needs them.
CREATE FUNCTION vibescaling.authorize_url(redirect_uri text, state text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_client_key text := current_setting('vibescaling.client_key', true);
BEGIN
    IF coalesce(v_client_key, '') = '' THEN
        RAISE EXCEPTION 'vibescaling.client_key is not set' USING ERRCODE = '55000',
            HINT = 'Set your TikTok app''s client key in postgresql.conf.';
    END IF;
    IF coalesce(redirect_uri, '') = '' OR coalesce(state, '') = '' THEN
        RAISE EXCEPTION 'redirect_uri and state are required (state protects the callback against CSRF)'
            USING ERRCODE = '22004';
    END IF;
    RETURN 'https://www.tiktok.com/v2/auth/authorize/'
        || '?client_key=' || vibescaling._url_encode(v_client_key)
        || '&scope=' || vibescaling._url_encode('user.info.basic,video.publish,video.upload,video.list,user.info.stats')
        || '&response_type=code'
        || '&redirect_uri=' || vibescaling._url_encode(redirect_uri)
        || '&state=' || vibescaling._url_encode(state);
END
$$;

-- Connects (or reconnects) an account from an OAuth authorization code:
-- exchanges it at /v2/oauth/token/, stores the tokens encrypted with their
-- expiry times and granted scopes, and fills the profile from /v2/user/info/.
-- Reconnecting the same open_id updates the account. Returns its id.
CREATE FUNCTION vibescaling.connect_account(auth_code text, redirect_uri text, code_verifier text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call  vibescaling._call_result;
    v_reply jsonb;
    v_id    uuid;
    v_user  jsonb;
BEGIN
    PERFORM vibescaling._require_primary();
    IF coalesce(auth_code, '') = '' OR coalesce(redirect_uri, '') = '' THEN
        RAISE EXCEPTION 'auth_code and redirect_uri are required' USING ERRCODE = '22004';
    END IF;

    v_call := vibescaling._tiktok_call('oauth_token', NULL, NULL, 'connect', jsonb_strip_nulls(jsonb_build_object(
        'grant_type', 'authorization_code', 'code', auth_code, 'redirect_uri', redirect_uri,
        'code_verifier', code_verifier)));
    IF NOT v_call.ok THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, 'oauth_token');
    END IF;
    v_reply := v_call.data;
    v_call := NULL;
    IF coalesce(v_reply->>'open_id', '') = '' THEN
        RAISE EXCEPTION 'TikTok''s token reply has no open_id' USING ERRCODE = '08P01';
    END IF;

    -- A new account belongs to the caller's tenant (owner's default: the JWT
    -- sub); a reconnect by another tenant is refused (an operator, without a
    -- JWT, may reconnect any).
    INSERT INTO vibescaling.tiktok_accounts AS a (open_id)
    VALUES (v_reply->>'open_id')
    ON CONFLICT ON CONSTRAINT tiktok_accounts_open_id_key DO UPDATE SET updated_at = now()
     WHERE vibescaling._jwt_sub() IS NULL OR a.owner IS NOT DISTINCT FROM vibescaling._jwt_sub()
    RETURNING a.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'TikTok account % is connected by another owner', v_reply->>'open_id' USING ERRCODE = '42501';
    END IF;
    PERFORM vibescaling._store_tokens(v_id, v_reply);
    v_reply := NULL;

    -- The profile. The account stays connected if this call fails.
    v_call := vibescaling._tiktok_call('user_info', v_id, NULL, 'connect', '{}');
    IF v_call.ok THEN
        v_user := v_call.data->'user';
        UPDATE vibescaling.tiktok_accounts
           SET display_name = coalesce(v_user->>'display_name', display_name),
               avatar_url = coalesce(v_user->>'avatar_url', avatar_url),
               union_id = coalesce(v_user->>'union_id', union_id)
         WHERE id = v_id;
    ELSE
        RAISE WARNING 'account % connected, but TikTok''s user info failed: % (log_id %)',
                      v_id, v_call.error_code, v_call.log_id;
    END IF;
    DELETE FROM vibescaling.creator_info_cache WHERE tiktok_account_id = v_id;
    RETURN v_id;
END
$$;

-- Disconnects an account: revokes its token at TikTok, wipes the tokens,
-- refuses future publishes, and fails its scheduled posts with the reason.
-- Returns {"data": {"id", "revoked", "revoke_error", "failed_scheduled_posts"}}.
CREATE FUNCTION vibescaling.disconnect_account(account_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a        vibescaling.tiktok_accounts;
    v_call   vibescaling._call_result;
    v_failed integer;
BEGIN
    PERFORM vibescaling._require_primary();
    IF disconnect_account.account_id IS NULL THEN
        RAISE EXCEPTION 'account_id is required' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO a FROM vibescaling.tiktok_accounts t WHERE t.id = account_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'TikTok account % not found', account_id USING ERRCODE = 'P0002';
    END IF;

    IF a.access_token_enc IS NOT NULL THEN
        v_call := vibescaling._tiktok_call('oauth_revoke', a.id, NULL, 'disconnect', '{}');
    END IF;

    UPDATE vibescaling.tiktok_accounts t
       SET access_token_enc = NULL, refresh_token_enc = NULL, status = 'disconnected',
           status_reason = 'disconnected by disconnect_account()', token_version = t.token_version + 1,
           updated_at = now()
     WHERE t.id = a.id;
    DELETE FROM vibescaling.creator_info_cache WHERE tiktok_account_id = a.id;
    UPDATE vibescaling.posts p
       SET status = 'failed', last_error = format('TikTok account %s was disconnected', a.id)
     WHERE p.tiktok_account_id = a.id AND p.status = 'scheduled';
    GET DIAGNOSTICS v_failed = ROW_COUNT;

    RETURN jsonb_build_object('data', jsonb_build_object(
        'id', a.id,
        'revoked', coalesce(v_call.ok, false),
        'revoke_error', CASE WHEN NOT coalesce(v_call.ok, true) THEN v_call.error_code END,
        'failed_scheduled_posts', v_failed));
END
$$;

-- The creator's posting options from TikTok's creator_info (nickname,
-- privacy_level_options, comment/duet/stitch_disabled,
-- max_video_post_duration_sec), cached for vibescaling.creator_info_ttl.
-- Returns {"data": {...}, "fetched_at": ...}. Publishing always asks TikTok
-- afresh (TikTok requires it before every Direct Post); scheduling uses this.
CREATE FUNCTION vibescaling.creator_info(account_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       vibescaling.creator_info_cache;
    v_call  vibescaling._call_result;
BEGIN
    IF creator_info.account_id IS NULL THEN
        RAISE EXCEPTION 'account_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.tiktok_accounts t WHERE t.id = account_id) THEN
        RAISE EXCEPTION 'TikTok account % not found', account_id USING ERRCODE = 'P0002';
    END IF;
    SELECT * INTO c FROM vibescaling.creator_info_cache k
     WHERE k.tiktok_account_id = account_id
       AND k.fetched_at > now() - coalesce(current_setting('vibescaling.creator_info_ttl', true), '60')::interval;
    IF FOUND THEN
        RETURN jsonb_build_object('data', c.data, 'fetched_at', c.fetched_at);
    END IF;

    v_call := vibescaling._tiktok_call('creator_info', account_id, NULL, 'manual', '{}');
    IF NOT v_call.ok THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, 'creator_info');
    END IF;
    INSERT INTO vibescaling.creator_info_cache AS k (tiktok_account_id, data, fetched_at)
    VALUES (account_id, v_call.data, now())
    ON CONFLICT (tiktok_account_id) DO UPDATE SET data = EXCLUDED.data, fetched_at = EXCLUDED.fetched_at
    RETURNING * INTO c;
    RETURN jsonb_build_object('data', c.data, 'fetched_at', c.fetched_at);
END
$$;

-- Refreshes the access tokens of active accounts that expire within the
-- window, keeping idle accounts alive (each refresh also rotates the refresh
-- token). Run by pg_cron (enable_scheduler). Returns
-- {"refreshed": n, "not_needed": n, "failed": n}.
CREATE FUNCTION vibescaling.refresh_expiring_tokens(within interval DEFAULT '30 minutes')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id      uuid;
    v_result  jsonb;
    v_counts  jsonb := '{"refreshed": 0, "not_needed": 0, "failed": 0}';
BEGIN
    PERFORM vibescaling._require_primary();
    FOR v_id IN SELECT t.id FROM vibescaling.tiktok_accounts t
                 WHERE t.status = 'active' AND t.refresh_token_enc IS NOT NULL
                   AND t.access_token_expires_at < now() + within
                 ORDER BY t.access_token_expires_at LOOP
        v_result := vibescaling._refresh_token(v_id, true, 'refresh');
        v_counts := jsonb_set(v_counts, ARRAY[v_result->>'outcome'],
                              to_jsonb((v_counts->>(v_result->>'outcome'))::integer + 1));
    END LOOP;
    RETURN v_counts;
END
$$;

-- Refreshes one account's token in a background worker that commits on its
-- own (C, src/pg/token_refresher.cpp); answers {"outcome": "refreshed" |
-- "not_needed" | "failed", "error_code", "sqlstate", "message", "log_id"}.
CREATE FUNCTION vibescaling._refresh_token(account_id uuid, force boolean, trigger text)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_refresh_token'
LANGUAGE C VOLATILE;
-- vibescaling: videos the extension uploads itself (FILE_UPLOAD), from a
-- URL it downloads, a large object, or bytea in vibescaling.media. TikTok
-- pulls a video only from URL prefixes verified for the app
-- (vibescaling.pull_url_prefixes); everything else is uploaded in chunks.

-- The LIKE patterns of vibescaling.pull_url_prefixes: each prefix, its LIKE
-- wildcards escaped, then '%'. A video_url that matches one is pulled by
-- TikTok. A query over many posts takes them once and tests each post with
-- a LIKE ANY, where a call of _upload_method per row would cost a
-- function call each (the dispatcher's claims test every due post).
CREATE FUNCTION vibescaling._pull_url_patterns()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(replace(replace(replace(btrim(x.prefix), '\', '\\'), '%', '\%'), '_', '\_') || '%'), '{}')
      FROM unnest(string_to_array(coalesce(current_setting('vibescaling.pull_url_prefixes', true), ''), ',')) AS x(prefix)
     WHERE btrim(x.prefix) <> ''
$$;

-- 'pull' or 'upload' for a video post: the post's own choice, else pull a
-- video_url under a verified prefix and upload the rest. The dispatcher's
-- claims spell the same rule inline, with _pull_url_patterns taken once.
CREATE FUNCTION vibescaling._upload_method(p vibescaling.posts)
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

-- Where an uploaded video's bytes are, as the C functions take it.
CREATE FUNCTION vibescaling._video_source(p vibescaling.posts)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('url', p.video_url, 'large_object', p.video_lo, 'media_id', p.media_id))
$$;

-- Size and container of a video source (C): {"size", "content_type"}.
CREATE FUNCTION vibescaling._describe_video(source jsonb)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_describe_video'
LANGUAGE C VOLATILE STRICT;

-- TikTok's chunk plan for a size (C; vibescaling.upload_chunk_size_mb):
-- {"video_size", "chunk_size", "total_chunk_count", "last_chunk_size"}.
CREATE FUNCTION vibescaling._plan_chunks(video_size bigint)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_plan_video_chunks'
LANGUAGE C VOLATILE STRICT;

-- Streams a video to an upload URL chunk by chunk (C, src/pg/video_upload.cpp).
CREATE FUNCTION vibescaling._upload_chunks(post_id uuid, tiktok_account_id uuid, trigger text, publish_id text,
                                           upload_url text, source jsonb, content_type text, video_size bigint)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_upload_chunks'
LANGUAGE C VOLATILE;

-- Refuses (53400, transient: the window moves) a tenant's upload that would
-- take its bytes sent to TikTok over the last 24 hours past
-- vibescaling.max_upload_mb_per_owner_day (0: no quota). Posts without an
-- owner (not a tenant's) are not counted.
CREATE FUNCTION vibescaling._check_upload_quota(p vibescaling.posts, video_size bigint)
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
REVOKE ALL ON FUNCTION vibescaling._check_upload_quota(vibescaling.posts, bigint) FROM PUBLIC;

-- What uploading a video post takes, checked before its init: the source
-- (_video_source), its size and type as read from it (_describe_video),
-- the tenant's upload quota (_check_upload_quota) and the chunk plan.
-- Returns {"source", "content_type", "size", "source_info"}, source_info
-- being the init's FILE_UPLOAD fields (_upload_init_options).
CREATE FUNCTION vibescaling._prepare_upload(p vibescaling.posts)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source  jsonb := vibescaling._video_source(p);
    v_video   jsonb := vibescaling._describe_video(v_source);
    v_plan    jsonb := vibescaling._plan_chunks((v_video->>'size')::bigint);
BEGIN
    PERFORM vibescaling._check_upload_quota(p, (v_video->>'size')::bigint);
    RETURN jsonb_build_object(
        'source', v_source, 'content_type', v_video->'content_type', 'size', v_video->'size',
        'source_info', jsonb_build_object('source', 'FILE_UPLOAD', 'video_size', v_plan->'video_size',
                                          'chunk_size', v_plan->'chunk_size',
                                          'total_chunk_count', v_plan->'total_chunk_count'));
END
$$;

-- The init options of a video the extension uploads (upload: what
-- _prepare_upload gave): the post's options, its URL replaced by the
-- FILE_UPLOAD fields.
CREATE FUNCTION vibescaling._upload_init_options(options jsonb, upload jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (options - 'video_url') || (upload->'source_info');
END
$$;

-- Streams a video's chunks once TikTok accepted its init (init: that
-- call's result, with the upload URL in its data): _upload_chunks'
-- answer, {"ok": true, ...} or the failing PUT's result.
CREATE FUNCTION vibescaling._upload_accepted_video(p vibescaling.posts, p_trigger text, upload jsonb,
                                                   init vibescaling._call_result)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN vibescaling._upload_chunks(p.id, p.tiktok_account_id, p_trigger, init.publish_id,
                                      init.data->>'upload_url', upload->'source',
                                      upload->>'content_type', (upload->>'size')::bigint);
END
$$;

-- Uploads a video post: checks and describes the source (_prepare_upload),
-- calls the init endpoint with FILE_UPLOAD, streams the chunks. An upload
-- URL that expired (TikTok keeps one an hour) gets one fresh init. call:
-- the init's result (with the publish_id; its data, which holds the upload
-- URL, a credential, left out) on success, else the failing call's, whose
-- endpoint is failed_endpoint (NULL on success).
CREATE FUNCTION vibescaling._upload_video(p vibescaling.posts, p_trigger text, p_endpoint text, p_options jsonb,
                                          OUT call vibescaling._call_result, OUT failed_endpoint text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_upload  jsonb := vibescaling._prepare_upload(p);
    v_init    vibescaling._call_result;
    v_chunks  jsonb;
BEGIN
    FOR attempt IN 1..2 LOOP
        v_init := vibescaling._tiktok_call(p_endpoint, p.tiktok_account_id, p.id, p_trigger,
                                           vibescaling._upload_init_options(p_options, v_upload));
        IF NOT v_init.ok THEN
            call := v_init;
            failed_endpoint := p_endpoint;
            RETURN;
        END IF;
        v_chunks := vibescaling._upload_accepted_video(p, p_trigger, v_upload, v_init);
        IF (v_chunks->>'ok')::boolean THEN
            v_init.data := '{}';          -- the upload URL (a credential) goes no further
            call := v_init;
            RETURN;
        END IF;
        EXIT WHEN v_chunks->>'error_code' <> 'upload_url_expired';
    END LOOP;
    -- _upload_chunks answers with the failing PUT's result, in _call_result's fields.
    call := jsonb_populate_record(NULL::vibescaling._call_result, v_chunks);
    failed_endpoint := 'upload_chunk';
END
$$;
-- vibescaling: publishing a post now (publish_post) and the publish step the
-- dispatcher shares with it (_publish_locked).

-- What the durable dispatch log says of the post's earlier inits, newest
-- first, after those the last settlement decided on (vibescaling.settlements):
--   state 'sent'    TikTok accepted one (publish_id) and it did not end FAILED
--                   (for an upload: its last chunk arrived); the transaction
--                   that made it may have rolled back or died;
--   state 'unknown' one was sent but no answer was recorded (timeout after
--                   sending, dropped connection, or the server died while it
--                   was "in flight"): TikTok may or may not have the post;
--   NULL            nothing stands in the way of an init.
-- Its queries run on generic plans: the log's weekly partitions are left
-- out when the plan starts (by v_since), where a plan made for each call's
-- values would cost a planning of every partition each time (10x slower
-- with a quarter's partitions).
CREATE FUNCTION vibescaling._earlier_init(p_post_id uuid, OUT state text, OUT publish_id text, OUT endpoint text)
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
                AND d.id > coalesce((SELECT max(s.settled_through) FROM vibescaling.settlements s
                                      WHERE s.post_id = p_post_id), 0)
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

-- Records, for a post whose earlier init TikTok accepted (per the durable
-- log), the publish record and the posted state that its lost transaction
-- never committed. Returns publish_post's answer.
CREATE FUNCTION vibescaling._reconcile_sent(p vibescaling.posts, p_publish_id text, p_endpoint text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode)
    VALUES (p.id, p.tiktok_account_id, p_publish_id, p_endpoint, p.mode)
    ON CONFLICT (publish_id) DO NOTHING;
    UPDATE vibescaling.posts
       SET status = 'posted', posted_at = coalesce(posted_at, now()),
           last_error = 'reconciled: an earlier attempt had published it (dispatch log)'
     WHERE id = p.id;
    RETURN jsonb_build_object('data', jsonb_build_object('publish_id', p_publish_id));
END
$$;

-- The first step of publishing a post whose row the caller has locked and
-- whose options are set: checks it, and makes sure TikTok does not have it
-- already. Then either reconciled is the answer (the dispatcher's earlier
-- run published it and its transaction was lost: recorded now), or
-- endpoint and options say which init to call with what. Raises on any
-- refusal (for the dispatcher, an earlier init of unknown outcome is no
-- refusal: the post becomes 'publishing', and reconciled says
-- outcome_unknown). Shared by _publish_attempt and the dispatcher's rounds, which
-- pass no_init_logged when the log holds no init of the post (asked once
-- for a whole round): _earlier_init then has nothing to find.
CREATE FUNCTION vibescaling._prepare_publish(p vibescaling.posts, p_trigger text, no_init_logged boolean DEFAULT false,
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
    ELSIF v_state = 'unknown' AND p_trigger = 'scheduler' THEN
        -- The dispatcher's earlier run sent it and read no answer, then its
        -- transaction was lost: the post waits for a settlement.
        UPDATE vibescaling.posts t
           SET status = 'publishing', next_attempt_at = NULL,
               last_error = 'an earlier init''s outcome is unknown; settle_unknown_outcomes looks for it on TikTok'
         WHERE t.id = p.id;
        reconciled := jsonb_build_object('data', NULL, 'outcome_unknown', true);
        RETURN;
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

-- True when an init's answer (_tiktok_call's) is one TikTok accepted with a
-- publish_id we can record. plpgsql, not sql: see _rate_limit_lock.
CREATE FUNCTION vibescaling._init_accepted(call vibescaling._call_result)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce(call.ok, false) AND coalesce(call.publish_id, '') <> '';
END
$$;

-- Records, for each posts[i] whose init answer calls[i] TikTok accepted
-- (_init_accepted), a publish record for endpoints[i] and the posted
-- state; the others are left alone. How the dispatcher records a round's
-- publishes in two statements, and _record_published one.
CREATE FUNCTION vibescaling._record_published_many(posts vibescaling.posts[], calls vibescaling._call_result[],
                                                   endpoints text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode)
    SELECT (posts[i]).id, (posts[i]).tiktok_account_id, (calls[i]).publish_id, endpoints[i], (posts[i]).mode
      FROM generate_subscripts(posts, 1) i
     WHERE vibescaling._init_accepted(calls[i]);
    UPDATE vibescaling.posts t
       SET status = 'posted', posted_at = now(), last_error = NULL
     WHERE t.id IN (SELECT (posts[i]).id FROM generate_subscripts(posts, 1) i
                     WHERE vibescaling._init_accepted(calls[i]));
END
$$;
REVOKE ALL ON FUNCTION vibescaling._record_published_many(vibescaling.posts[], vibescaling._call_result[], text[]) FROM PUBLIC;

-- The last step of publishing: records the init TikTok accepted (call is
-- _tiktok_call's answer) as a publish record and marks the post posted.
-- Returns publish_post's answer, {"data": {"publish_id"}}.
CREATE FUNCTION vibescaling._record_published(p vibescaling.posts, call vibescaling._call_result, p_endpoint text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(call.publish_id, '') = '' THEN
        RAISE EXCEPTION 'TikTok % answered ok without a publish_id (log_id %)', p_endpoint,
                        coalesce(nullif(call.log_id, ''), 'none')
            USING ERRCODE = '08P01';
    END IF;
    PERFORM vibescaling._record_published_many(ARRAY[p], ARRAY[call], ARRAY[p_endpoint]);
    RETURN jsonb_build_object('data', jsonb_build_object('publish_id', call.publish_id));
END
$$;
REVOKE ALL ON FUNCTION vibescaling._record_published(vibescaling.posts, vibescaling._call_result, text) FROM PUBLIC;

-- Publishes one post whose row the caller has locked and whose options are
-- set: checks it (_prepare_publish), asks creator_info (Direct Post), calls
-- the init endpoint (or uploads the video), records the publish and marks
-- the post posted. answer: publish_post's answer, {"data": {"publish_id"}};
-- or, when a call to TikTok failed, answer is NULL and failed_call is that
-- call's result, failed_endpoint its endpoint, for the caller to raise
-- (_publish_locked) or record (the dispatcher's one-by-one pass). Raises on
-- any refusal of our own; the dispatch_logs rows of the calls made stay
-- (they commit on their own).
CREATE FUNCTION vibescaling._publish_attempt(p_post_id uuid, p_trigger text, OUT answer jsonb,
                                             OUT failed_call vibescaling._call_result, OUT failed_endpoint text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p       vibescaling.posts;
    v_prep  record;
    v_call  vibescaling._call_result;
    v_up    record;
BEGIN
    SELECT * INTO STRICT p FROM vibescaling.posts WHERE id = p_post_id;
    v_prep := vibescaling._prepare_publish(p, p_trigger);
    IF v_prep.reconciled IS NOT NULL THEN
        answer := v_prep.reconciled;
        RETURN;
    END IF;

    -- TikTok requires a fresh creator_info before every Direct Post.
    IF p.mode = 'direct' THEN
        v_call := vibescaling._tiktok_call('creator_info', p.tiktok_account_id, p.id, p_trigger, '{}');
        IF NOT v_call.ok THEN
            failed_call := v_call;
            failed_endpoint := 'creator_info';
            RETURN;
        END IF;
        PERFORM vibescaling._check_creator_allows(p, v_call.data);
    END IF;
    -- Media TikTok would refuse after the upload is refused now. The
    -- dispatcher's posts were checked when they were scheduled.
    IF p_trigger = 'manual' THEN
        PERFORM vibescaling._check_media(p, CASE WHEN p.mode = 'direct'
                                                 THEN (v_call.data->>'max_video_post_duration_sec')::integer END);
    END IF;

    -- TikTok pulls photos and videos under verified prefixes; we upload the rest.
    IF p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload' THEN
        v_up := vibescaling._upload_video(p, p_trigger, v_prep.endpoint, v_prep.options);
        v_call := v_up.call;
        failed_endpoint := v_up.failed_endpoint;
    ELSE
        v_call := vibescaling._tiktok_call(v_prep.endpoint, p.tiktok_account_id, p.id, p_trigger, v_prep.options);
    END IF;
    IF NOT v_call.ok THEN
        failed_call := v_call;
        failed_endpoint := coalesce(failed_endpoint, v_prep.endpoint);
        RETURN;
    END IF;
    answer := vibescaling._record_published(p, v_call, v_prep.endpoint);
END
$$;
REVOKE ALL ON FUNCTION vibescaling._publish_attempt(uuid, text) FROM PUBLIC;

-- Publishes one post whose row the caller has locked, as _publish_attempt
-- does, raising a failed call's error (_raise_tiktok_error). Returns
-- publish_post's answer, {"data": {"publish_id"}}.
CREATE FUNCTION vibescaling._publish_locked(p_post_id uuid, p_trigger text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_result record := vibescaling._publish_attempt(p_post_id, p_trigger);
BEGIN
    IF v_result.failed_endpoint IS NOT NULL THEN
        PERFORM vibescaling._raise_tiktok_error(v_result.failed_call, v_result.failed_endpoint);
    END IF;
    RETURN v_result.answer;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._publish_locked(uuid, text) FROM PUBLIC;

-- Publishes a draft now (Direct Post or upload to the creator's inbox).
-- Returns {"data": {"publish_id": "<TikTok's publish_id>"}}; the post becomes
-- posted with posted_at set. Any refusal raises and leaves the post untouched.
CREATE FUNCTION vibescaling.publish_post(
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
    p vibescaling.posts;
BEGIN
    -- The row lock makes a racing publish or dispatcher wait, then see 'posted'.
    p := vibescaling._lock_post(publish_post.post_id);
    IF p.status <> 'draft' THEN
        RAISE EXCEPTION 'post % is %; only a draft can be published', p.id, p.status
            USING ERRCODE = '55000',
                  HINT = CASE p.status
                             WHEN 'posted' THEN 'It was already published.'
                             WHEN 'scheduled' THEN 'The dispatcher will publish it; set it back to draft to publish now.'
                             ELSE 'Set it back to draft (or schedule it) first.' END;
    END IF;

    IF EXISTS (SELECT 1 FROM vibescaling.posts t WHERE t.parent_id = p.id) THEN
        RAISE EXCEPTION 'post % has targets: it is sent to accounts through them', p.id
            USING ERRCODE = '55000', HINT = 'publish_targets(post_id, targets) adds accounts.';
    END IF;

    p.tiktok_account_id    := publish_post.tiktok_account_id;
    p.privacy_level        := publish_post.privacy_level;
    p.mode                 := publish_post.mode;
    p.disable_comment      := coalesce(publish_post.disable_comment, false);
    p.disable_duet         := coalesce(publish_post.disable_duet, false);
    p.disable_stitch       := coalesce(publish_post.disable_stitch, false);
    p.brand_content_toggle := coalesce(publish_post.brand_content_toggle, false);
    p.brand_organic_toggle := coalesce(publish_post.brand_organic_toggle, false);
    PERFORM vibescaling._check_publishable(p);

    UPDATE vibescaling.posts
       SET tiktok_account_id = p.tiktok_account_id, privacy_level = p.privacy_level, mode = p.mode,
           disable_comment = p.disable_comment, disable_duet = p.disable_duet,
           disable_stitch = p.disable_stitch, brand_content_toggle = p.brand_content_toggle,
           brand_organic_toggle = p.brand_organic_toggle
     WHERE id = p.id;

    RETURN vibescaling._publish_locked(p.id, 'manual');
END
$$;
COMMENT ON FUNCTION vibescaling.publish_post(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean) IS
    'Publishes a draft post to TikTok now; returns {"data":{"publish_id":...}}.';

-- The id of the post's latest init in the durable dispatch log (0: none):
-- what a settlement decided on.
CREATE FUNCTION vibescaling._last_init_log_id(p_post_id uuid)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see _earlier_init
AS $$
DECLARE
    v_since timestamptz := coalesce((SELECT p.created_at FROM vibescaling.posts p WHERE p.id = p_post_id), '-infinity');
BEGIN
    RETURN coalesce((SELECT max(l.id) FROM vibescaling.dispatch_logs l
                      WHERE l.post_id = p_post_id AND l.created_at >= v_since
                        AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')), 0);
END
$$;
REVOKE ALL ON FUNCTION vibescaling._last_init_log_id(uuid) FROM PUBLIC;

-- Records a decision on a post (row locked by the caller) whose init had
-- an unknown outcome, and applies it. on_tiktok: TikTok has it, as
-- publish_id or as the public video public_post_id (a publish record, the
-- post posted); else it does not, and requeue puts a post the dispatcher
-- sent back on the queue (due now), or the post stays as it is (a
-- 'publishing' one fails, so that nothing sends it again unasked).
-- decided_by and evidence say who decided and why (vibescaling.settlements).
-- Returns the settlement's id.
CREATE FUNCTION vibescaling._settle(p vibescaling.posts, p_on_tiktok boolean, p_publish_id text,
                                    p_public_post_id bigint, p_decided_by text, p_evidence jsonb,
                                    p_requeue boolean)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_endpoint text := CASE WHEN p.media_type = 'photo' THEN 'content_init'
                            WHEN p.mode = 'inbox' THEN 'inbox_video_init' ELSE 'video_init' END;
    v_why      text := CASE p_decided_by WHEN 'operator' THEN 'by an operator'
                                         WHEN 'quiet_period' THEN 'after the quiet period without a sign of it'
                                         ELSE format('from TikTok''s %s', replace(p_decided_by, '_', ' ')) END;
    -- Only a post the dispatcher sent (publishing, with a time) goes back on the queue.
    v_requeued boolean := NOT p_on_tiktok AND p_requeue AND p.status = 'publishing' AND p.scheduled_at IS NOT NULL;
    v_id       bigint;
BEGIN
    IF p_on_tiktok AND p.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'post % has no TikTok account to have been published to', p.id USING ERRCODE = '55000';
    END IF;
    -- First the decision: the posts trigger lets a settled post be scheduled again.
    INSERT INTO vibescaling.settlements (post_id, tiktok_account_id, settled_through, on_tiktok, publish_id,
                                         public_post_id, decided_by, evidence, requeued)
    VALUES (p.id, p.tiktok_account_id, vibescaling._last_init_log_id(p.id), p_on_tiktok, p_publish_id,
            p_public_post_id, p_decided_by, coalesce(p_evidence, '{}'), v_requeued)
    RETURNING id INTO v_id;
    IF p_on_tiktok THEN
        IF p_publish_id IS NOT NULL THEN
            PERFORM vibescaling._reconcile_sent(p, p_publish_id, v_endpoint);
        ELSE
            -- Found as a public video: nothing is left to follow but its metrics.
            INSERT INTO vibescaling.publish_records (post_id, tiktok_account_id, publish_id, endpoint, mode, status,
                                                     tiktok_status, public_post_ids, public_at, checked_at)
            VALUES (p.id, p.tiktok_account_id, NULL, v_endpoint, p.mode, 'published', 'PUBLISH_COMPLETE',
                    ARRAY[p_public_post_id], now(), now());
            UPDATE vibescaling.posts t SET status = 'posted', posted_at = coalesce(t.posted_at, now()) WHERE t.id = p.id;
        END IF;
        UPDATE vibescaling.posts t SET last_error = 'settled ' || v_why || ': on TikTok' WHERE t.id = p.id;
    ELSIF v_requeued THEN
        UPDATE vibescaling.posts t
           SET status = 'scheduled', next_attempt_at = now(),
               last_error = 'settled ' || v_why || ': not on TikTok; back on the queue'
         WHERE t.id = p.id;
    ELSE
        UPDATE vibescaling.posts t
           SET status = CASE WHEN t.status = 'publishing' THEN 'failed' ELSE t.status END,
               last_error = 'settled ' || v_why || ': not on TikTok'
                            || CASE WHEN p_decided_by = 'quiet_period'
                                    THEN ' (vibescaling.unknown_outcome_policy = hold: publish it again to resend)'
                                    ELSE '' END
         WHERE t.id = p.id;
    END IF;
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._settle(vibescaling.posts, boolean, text, bigint, text, jsonb, boolean) FROM PUBLIC;

-- An operator's decision on a post whose earlier init has an unknown outcome
-- (or was sent by a lost transaction): on_tiktok = true records it as posted
-- with TikTok's publish_id; false records that TikTok does not have it, so a
-- new publish may send it again (a 'publishing' post fails). Recorded in
-- vibescaling.settlements (decided_by 'operator'). Returns {"data": post}.
CREATE FUNCTION vibescaling.settle_post(post_id uuid, on_tiktok boolean, publish_id text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    IF settle_post.on_tiktok IS NULL THEN
        RAISE EXCEPTION 'on_tiktok is required' USING ERRCODE = '22004';
    END IF;
    p := vibescaling._lock_post(settle_post.post_id);
    IF p.status = 'posted' THEN
        RAISE EXCEPTION 'post % is %; there is nothing to settle', p.id, p.status USING ERRCODE = '55000';
    END IF;
    IF settle_post.on_tiktok AND coalesce(settle_post.publish_id, '') = '' THEN
        RAISE EXCEPTION 'publish_id is required when the post is on TikTok' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._settle(p, settle_post.on_tiktok, nullif(settle_post.publish_id, ''), NULL, 'operator',
                                '{}', false);
    SELECT * INTO p FROM vibescaling.posts t WHERE t.id = p.id;
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;
-- vibescaling: scheduling. A post is scheduled by schedule_post() or by any
-- UPDATE/INSERT that sets status = 'scheduled' (a PATCH through PostgREST);
-- the trigger below applies the same checks to both.

-- The checks of a post being written (p_new; p_old is NULL for an INSERT): a
-- posted post never goes back to draft or scheduled, and a post being
-- (re)scheduled is at least 5 minutes ahead, publishable, and has media
-- TikTok would take (_check_media). Runs as the table's owner, called only
-- by _post_write_checked.
CREATE FUNCTION vibescaling._check_post_write(p_new vibescaling.posts, p_old vibescaling.posts)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_creator jsonb;   -- creator_info's data, when it could be had
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
        -- TikTok's caps on the post's day, when its time, account or kind is new.
        IF p_old.id IS NULL OR p_old.status <> 'scheduled'
           OR (p_new.scheduled_at, p_new.tiktok_account_id, p_new.mode, p_new.privacy_level)
              IS DISTINCT FROM (p_old.scheduled_at, p_old.tiktok_account_id, p_old.mode, p_old.privacy_level) THEN
            PERFORM vibescaling._check_caps(p_new);
        END IF;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._check_post_write(vibescaling.posts, vibescaling.posts) FROM PUBLIC;

-- The checks of every write of a post, whoever writes it: the size limits
-- and the owner's quota (_check_post_limits), the writer's right to read a
-- video source it sets (p_writer: the role writing; the post remembers it
-- in source_role, and the publisher checks it again before sending), and
-- _check_post_write. Returns p_new with source_role set.
CREATE FUNCTION vibescaling._post_write_checks(p_new vibescaling.posts, p_old vibescaling.posts, p_writer oid)
RETURNS vibescaling.posts
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM vibescaling._check_post_limits(p_new, p_old);
    -- source_role is the extension's to set: whoever changes the source, else as it was.
    IF p_old.id IS NULL OR p_new.video_lo IS DISTINCT FROM p_old.video_lo
       OR p_new.media_id IS DISTINCT FROM p_old.media_id THEN
        p_new.source_role := CASE WHEN p_new.video_lo IS NOT NULL OR p_new.media_id IS NOT NULL THEN p_writer END;
        IF p_new.source_role IS NOT NULL
           AND NOT vibescaling._role_can_read_source(p_writer, p_new.video_lo, p_new.media_id) THEN
            RAISE EXCEPTION 'permission denied: role % may not read the video source of post %',
                            coalesce(pg_get_userbyid(p_writer), p_writer::text), p_new.id
                USING ERRCODE = '42501',
                      HINT = 'The role that sets video_lo needs SELECT on the large object; media_id needs SELECT on vibescaling.media.';
        END IF;
    ELSE
        p_new.source_role := p_old.source_role;
    END IF;
    PERFORM vibescaling._check_post_write(p_new, p_old);
    RETURN p_new;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._post_write_checks(vibescaling.posts, vibescaling.posts, oid) FROM PUBLIC;

-- The row a write of posts stores: p_new stamped and checked
-- (_post_write_checks). Through the API (p_api: the writer is an API role,
-- i.e. a PostgREST PATCH or POST on vibescaling_api.posts) a caller may only
-- set status to draft or scheduled (42501 otherwise: the publisher sets the
-- rest), and the errors carry the HTTP status PostgREST should answer
-- (_raise_http_error). Called only by the posts trigger (C,
-- src/pg/post_write_trigger.cpp) as the table's owner, so that no role can
-- run these checks, which read accounts and call TikTok, on a row of its
-- own making.
CREATE FUNCTION vibescaling._post_write_checked(p_new vibescaling.posts, p_old vibescaling.posts,
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
    -- An UPDATE that changes nothing these checks look at (none at all, the
    -- dispatcher's bookkeeping on a post that stays scheduled, the
    -- publisher's verdict posted or failed) never gets here: the trigger
    -- stores it at once (shortcut_row in src/pg/post_write_trigger.cpp).
    IF p_old.id IS NOT NULL THEN
        p_new.updated_at := now();
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
REVOKE ALL ON FUNCTION vibescaling._post_write_checked(vibescaling.posts, vibescaling.posts, boolean, oid) FROM PUBLIC;

-- Before insert/update of posts: _post_write_checked for the writing role
-- (C, src/pg/post_write_trigger.cpp).
CREATE FUNCTION vibescaling._posts_before_write()
RETURNS trigger
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_posts_before_write'
LANGUAGE C;
REVOKE ALL ON FUNCTION vibescaling._posts_before_write() FROM PUBLIC;

CREATE TRIGGER posts_before_write
    BEFORE INSERT OR UPDATE ON vibescaling.posts
    FOR EACH ROW EXECUTE FUNCTION vibescaling._posts_before_write();

-- Whether a role may read a video source: SELECT on the large object,
-- SELECT on vibescaling.media for a media row (C).
CREATE FUNCTION vibescaling._role_can_read_source(role oid, large_object oid, media_id uuid)
RETURNS boolean
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_role_can_read_source'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION vibescaling._role_can_read_source(oid, oid, uuid) FROM PUBLIC;

-- Before a post is deleted through the API: only a draft may be (409
-- otherwise: a scheduled post is cancelled first, a posted one stays).
CREATE FUNCTION vibescaling._posts_before_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF vibescaling._is_api_role() AND OLD.status <> 'draft' THEN
        RAISE EXCEPTION 'post % is %; only a draft can be deleted', OLD.id, OLD.status
            USING ERRCODE = 'PT409',
                  HINT = CASE WHEN OLD.status = 'scheduled' THEN 'Cancel it first (POST /rpc/cancel_post).' END;
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER posts_before_delete
    BEFORE DELETE ON vibescaling.posts
    FOR EACH ROW EXECUTE FUNCTION vibescaling._posts_before_delete();

-- Schedules a post (draft, already scheduled, or failed) for scheduled_at with
-- the given publish options. Returns {"data": <the post>}.
CREATE FUNCTION vibescaling.schedule_post(
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
    p vibescaling.posts;
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
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;
COMMENT ON FUNCTION vibescaling.schedule_post(uuid, timestamptz, uuid, text, text, boolean, boolean, boolean, boolean, boolean) IS
    'Schedules a post at least 5 minutes ahead; returns {"data": <post>}.';

-- Unschedules a scheduled post: it becomes a draft again (scheduled_at
-- cleared). 55000 for a post that is not scheduled (a published post
-- cannot be cancelled here), P0002 for an unknown one. Returns {"data": post}.
CREATE FUNCTION vibescaling.cancel_post(post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    p := vibescaling._lock_post(cancel_post.post_id);
    IF p.status <> 'scheduled' THEN
        RAISE EXCEPTION 'post % is %; only a scheduled post can be cancelled', p.id, p.status
            USING ERRCODE = '55000';
    END IF;
    UPDATE vibescaling.posts t
       SET status = 'draft', scheduled_at = NULL, attempts = 0, next_attempt_at = NULL, last_error = NULL
     WHERE t.id = p.id
    RETURNING t.* INTO p;
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;

-- Moves a scheduled post to a new time (at least 5 minutes ahead), starting
-- its attempts afresh. 55000 unless it is scheduled. Returns {"data": post}.
CREATE FUNCTION vibescaling.reschedule_post(post_id uuid, scheduled_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    p := vibescaling._lock_post(reschedule_post.post_id);
    IF p.status <> 'scheduled' THEN
        RAISE EXCEPTION 'post % is %; only a scheduled post can be rescheduled', p.id, p.status
            USING ERRCODE = '55000', HINT = 'Use schedule_post() for a draft or a failed post.';
    END IF;
    UPDATE vibescaling.posts t
       SET scheduled_at = reschedule_post.scheduled_at, attempts = 0, next_attempt_at = NULL, last_error = NULL
     WHERE t.id = p.id
    RETURNING t.* INTO p;
    RETURN jsonb_build_object('data', to_jsonb(p));
END
$$;

-- Schedules a post as schedule_post does, its options a JSON object
-- ({"privacy_level", "mode", "disable_comment", "disable_duet",
-- "disable_stitch", "brand_content_toggle", "brand_organic_toggle"};
-- absent: schedule_post's defaults): how targets, occurrences of a
-- repeating post and CSV rows are scheduled. Returns schedule_post's answer.
CREATE FUNCTION vibescaling._schedule_with(p_post_id uuid, p_at timestamptz, p_account_id uuid, options jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN vibescaling.schedule_post(
        p_post_id, p_at, p_account_id, options->>'privacy_level', coalesce(options->>'mode', 'direct'),
        coalesce((options->>'disable_comment')::boolean, false), coalesce((options->>'disable_duet')::boolean, false),
        coalesce((options->>'disable_stitch')::boolean, false), coalesce((options->>'brand_content_toggle')::boolean, false),
        coalesce((options->>'brand_organic_toggle')::boolean, false));
END
$$;
REVOKE ALL ON FUNCTION vibescaling._schedule_with(uuid, timestamptz, uuid, jsonb) FROM PUBLIC;
-- vibescaling: publish status.

-- Maps TikTok's data.status to the product's local status.
CREATE FUNCTION vibescaling._local_publish_status(tiktok_status text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE tiktok_status
               WHEN 'PROCESSING_UPLOAD'   THEN 'processing'
               WHEN 'PROCESSING_DOWNLOAD' THEN 'processing'
               WHEN 'SEND_TO_USER_INBOX'  THEN 'sent_to_inbox'
               WHEN 'PUBLISH_COMPLETE'    THEN 'published'
               WHEN 'FAILED'              THEN 'failed'
           END
$$;

-- TikTok's fail_reason values (data.fail_reason of a FAILED publish, and
-- a post.publish.failed webhook's reason) and whether sending the post
-- again may succeed: TikTok's status page sorts them by whose issue it is
-- (the developer's, the creator's, TikTok's). TikTok's own fault and a
-- source it could not download (a hiccup of the media host) may pass on
-- another try; media TikTok's checks refused, a cancelled publish, a
-- removed authorisation and the creator's spam verdicts will not (the
-- daily cap resets only the next day). A reason not in this list is not
-- retried. Retrying a FAILED publish is safe: TikTok has no post.
CREATE FUNCTION vibescaling._fail_reason_retryable(fail_reason text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(fail_reason IN ('internal', 'internal_error', 'video_pull_failed', 'photo_pull_failed'), false)
$$;

-- The API shape of a publish record: {"data": {publish_id, status, tiktok_status, ...}}.
-- Public post ids are strings: they have 19 digits, beyond what a JSON
-- double (JavaScript's number) holds exactly.
CREATE FUNCTION vibescaling._publish_status_json(r vibescaling.publish_records)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('data', jsonb_build_object(
        'publish_id', r.publish_id,
        'status', r.status,
        'tiktok_status', r.tiktok_status,
        'fail_reason', r.fail_reason,
        'fail_retryable', CASE WHEN r.status = 'failed' THEN vibescaling._fail_reason_retryable(r.fail_reason) END,
        'public_post_ids', to_jsonb(r.public_post_ids::text[]),
        'public_at', r.public_at,
        'taken_down_at', r.taken_down_at,
        'uploaded_bytes', r.uploaded_bytes,
        'downloaded_bytes', r.downloaded_bytes,
        'checked_at', r.checked_at))
$$;

-- What the durable dispatch log says of a post's latest init that has no
-- committed publish record: {"publish_id", "status": "uploading" while chunks
-- are still going up (else "processing"), "tiktok_status": null,
-- "uploaded_bytes"}; NULL when there is no such init.
CREATE FUNCTION vibescaling._publish_progress_from_log(p_post_id uuid)
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

-- A publish record with TikTok's status/fetch answer (its data object)
-- applied, without writing it.
CREATE FUNCTION vibescaling._merge_status_reply(r vibescaling.publish_records, data jsonb)
RETURNS vibescaling.publish_records
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    r.tiktok_status    := data->>'status';
    r.status           := coalesce(vibescaling._local_publish_status(data->>'status'), r.status);
    r.fail_reason      := data->>'fail_reason';
    -- jsonb numbers are exact decimals, so 19-digit ids survive the cast.
    r.public_post_ids  := coalesce((SELECT array_agg(x::bigint)
                                      FROM jsonb_array_elements_text(data->'publicaly_available_post_id') x),
                                   r.public_post_ids);
    IF cardinality(r.public_post_ids) > 0 AND r.public_at IS NULL THEN
        r.public_at := now();
    END IF;
    r.uploaded_bytes   := coalesce((data->>'uploaded_bytes')::bigint, r.uploaded_bytes);
    r.downloaded_bytes := coalesce((data->>'downloaded_bytes')::bigint, r.downloaded_bytes);
    r.checked_at       := now();
    r.updated_at       := now();
    RETURN r;
END
$$;

-- What a publish TikTok reports FAILED (record r, fail_reason set) does to
-- its post, when it is the post's latest publish (a post published again
-- is not failed by an old one): a post the dispatcher sent whose
-- fail_reason may pass on another try (_fail_reason_retryable) goes back on
-- the queue with backoff, until vibescaling.max_attempts; any other fails
-- with TikTok's reason. Shared by the status reply and the webhook.
CREATE FUNCTION vibescaling._apply_publish_failed(r vibescaling.publish_records)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts;
BEGIN
    SELECT * INTO p FROM vibescaling.posts t
     WHERE t.id = r.post_id
       AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records n
                        WHERE n.post_id = r.post_id AND (n.created_at, n.id) > (r.created_at, r.id));
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p.scheduled_at IS NOT NULL AND vibescaling._fail_reason_retryable(r.fail_reason) THEN
        PERFORM vibescaling._record_dispatch_failure(p.id, p.attempts,
                    format('TikTok: publish %s failed: %s', r.publish_id, r.fail_reason), '58000', true, NULL, now());
    ELSE
        UPDATE vibescaling.posts
           SET status = 'failed', last_error = format('TikTok: publish %s failed: %s', r.publish_id, r.fail_reason)
         WHERE id = p.id;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._apply_publish_failed(vibescaling.publish_records) FROM PUBLIC;

-- Records TikTok's status/fetch answer (its data object) on a publish
-- record and returns the record as it now is; a publish TikTok reports
-- FAILED fails its post too, with TikTok's fail_reason, or puts it back on
-- the queue (_apply_publish_failed). Shared by publish_status and the
-- status poller.
CREATE FUNCTION vibescaling._apply_status_reply(r vibescaling.publish_records, data jsonb)
RETURNS vibescaling.publish_records
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_was text := r.status;
BEGIN
    r := vibescaling._merge_status_reply(r, data);
    UPDATE vibescaling.publish_records pr
       SET tiktok_status = r.tiktok_status, status = r.status, fail_reason = r.fail_reason,
           public_post_ids = r.public_post_ids, uploaded_bytes = r.uploaded_bytes,
           downloaded_bytes = r.downloaded_bytes, checked_at = r.checked_at, updated_at = r.updated_at,
           public_at = r.public_at
     WHERE pr.id = r.id;

    IF r.status = 'failed' AND v_was <> 'failed' THEN
        PERFORM vibescaling._apply_publish_failed(r);
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._merge_status_reply(vibescaling.publish_records, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._apply_status_reply(vibescaling.publish_records, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._fail_reason_retryable(text) FROM PUBLIC;

-- Asks TikTok how the post's latest publish is going, records the answer and
-- returns it. P0002 when the post has no publish record. A publish TikTok
-- reports FAILED marks the post failed with TikTok's fail_reason. In a
-- read-only transaction (PostgREST runs GET /rpc/publish_status in one) it
-- asks TikTok and answers all the same, but records nothing (the status
-- poller does); the call's dispatch_logs row is written all the same.
CREATE FUNCTION vibescaling.publish_status(post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r       vibescaling.publish_records;
    v_call  vibescaling._call_result;
    v_data  jsonb;   -- what the durable log says of a publish without a committed record
    v_read_only boolean := current_setting('transaction_read_only')::boolean;
BEGIN
    IF publish_status.post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    -- A post sent to several accounts: as a whole and per target.
    IF EXISTS (SELECT 1 FROM vibescaling.posts t WHERE t.parent_id = publish_status.post_id) THEN
        RETURN vibescaling._targets_status(publish_status.post_id);
    END IF;
    IF v_read_only THEN
        SELECT * INTO r FROM vibescaling.publish_records pr
         WHERE pr.post_id = publish_status.post_id
         ORDER BY pr.created_at DESC, pr.id DESC
         LIMIT 1;
    ELSE
        SELECT * INTO r FROM vibescaling.publish_records pr
         WHERE pr.post_id = publish_status.post_id
         ORDER BY pr.created_at DESC, pr.id DESC
         LIMIT 1
           FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        -- A publish still under way in another session (its record is not
        -- committed yet), or whose transaction rolled back: the durable
        -- dispatch log knows the publish_id and the upload's progress.
        v_data := vibescaling._publish_progress_from_log(publish_status.post_id);
        IF v_data IS NOT NULL THEN
            RETURN jsonb_build_object('data', v_data);
        END IF;
        RAISE EXCEPTION 'post % has no publish record', publish_status.post_id
            USING ERRCODE = 'P0002',
                  HINT = CASE WHEN NOT EXISTS (SELECT 1 FROM vibescaling.posts WHERE id = publish_status.post_id)
                              THEN 'No such post.' ELSE 'The post has not been published.' END;
    END IF;

    -- A failure is final: no need to ask TikTok again. A record found in
    -- the creator's video list has no publish_id to ask about.
    IF r.status = 'failed' OR r.publish_id IS NULL THEN
        RETURN vibescaling._publish_status_json(r);
    END IF;

    v_call := vibescaling._tiktok_call('status_fetch', r.tiktok_account_id, r.post_id, 'status',
                                       jsonb_build_object('publish_id', r.publish_id));
    IF NOT v_call.ok THEN
        PERFORM vibescaling._raise_tiktok_error(v_call, 'status_fetch');
    END IF;
    IF v_read_only THEN
        r := vibescaling._merge_status_reply(r, v_call.data);
    ELSE
        r := vibescaling._apply_status_reply(r, v_call.data);
    END IF;
    RETURN vibescaling._publish_status_json(r);
END
$$;
COMMENT ON FUNCTION vibescaling.publish_status(uuid) IS
    'Fetches TikTok''s processing status of the post''s latest publish; {"data":{"publish_id","status","tiktok_status",...}}.';
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

-- Records a failed dispatch of a post: its message and SQLSTATE, whether
-- trying again later may succeed (retryable), and TikTok's Retry-After in
-- seconds (NULL without one). A retryable failure leaves the post
-- scheduled with attempts + 1 and next_attempt_at set by exponential
-- backoff, until vibescaling.max_attempts; with a Retry-After, the wait is
-- the larger of the backoff and Retry-After: never sooner than TikTok
-- asked, and not capped by vibescaling.retry_max_delay. Both are counted
-- from the answer's moment on the run's clock: as_of plus the time since
-- the CALL began (statement_timestamp() stays the CALL's start across its
-- COMMITs), so a round that ends a minute into a run waits from then, and
-- a run for another moment (as_of in the past or future) stays on its own
-- timeline. Any other failure fails the post with last_error.
CREATE FUNCTION vibescaling._record_dispatch_failure(p_post_id uuid, p_attempts integer, p_message text,
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

-- Records on a post a TikTok call that failed (call: its answer), as
-- _call_failure reads it: retried later when TikTok or the network may
-- answer otherwise, never an init whose outcome is unknown: that post is
-- 'publishing' until a settlement says whether TikTok has it
-- (settle_unknown_outcomes, or an operator's settle_post).
CREATE FUNCTION vibescaling._record_call_failure(p_post_id uuid, p_attempts integer, call vibescaling._call_result,
                                                 p_endpoint text, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record := vibescaling._call_failure(call, p_endpoint);
BEGIN
    IF f.unknown_init THEN
        UPDATE vibescaling.posts
           SET status = 'publishing', attempts = p_attempts + 1, next_attempt_at = NULL,
               last_error = format('%s [SQLSTATE %s] (attempt %s; settle_unknown_outcomes looks for it on TikTok)',
                                   f.message, f.sqlstate, p_attempts + 1)
         WHERE id = p_post_id;
        RETURN;
    END IF;
    PERFORM vibescaling._record_dispatch_failure(p_post_id, p_attempts, f.message, f.sqlstate, f.retryable,
                                                 f.retry_after, as_of);
END
$$;
REVOKE ALL ON FUNCTION vibescaling._record_call_failure(uuid, integer, vibescaling._call_result, text, timestamptz) FROM PUBLIC;

-- Records on a post an error the publish steps raised (a refusal of our
-- own: a check, a lock, the log writer). Retried later only for class 53,
-- insufficient resources (the log writer or worker slots busy, the
-- tenant's upload quota for now): those pass; any other refusal fails the
-- post. TikTok's answers never come this way (_record_call_failure).
CREATE FUNCTION vibescaling._record_dispatch_error(p_post_id uuid, p_attempts integer, p_message text, p_state text,
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

-- Applies the answer to one of a dispatcher round's calls (call: what
-- _tiktok_call_many gave) to its post, as _publish_locked would have (not
-- to be confused with settle_post, an operator's verdict): a
-- failed call is recorded from its answer (_record_call_failure); a
-- creator_info answer is checked against the post (_check_creator_allows);
-- an init answer is recorded (_record_published). A refusal these raise is
-- recorded by _record_dispatch_error. Returns true when the post goes on.
CREATE FUNCTION vibescaling._apply_call_answer(p vibescaling.posts, call vibescaling._call_result, p_endpoint text,
                                               as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_message text;
    v_state   text;
BEGIN
    IF NOT call.ok THEN
        PERFORM vibescaling._record_call_failure(p.id, p.attempts, call, p_endpoint, as_of);
        RETURN false;
    END IF;
    BEGIN
        IF p_endpoint = 'creator_info' THEN
            PERFORM vibescaling._check_creator_allows(p, call.data);
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
REVOKE ALL ON FUNCTION vibescaling._apply_call_answer(vibescaling.posts, vibescaling._call_result, text, timestamptz) FROM PUBLIC;

-- One post of a dispatcher round on its way out: the post as claimed, its
-- init's endpoint and options (_prepare_publish), whether it goes on (false
-- once a call's answer stopped it), and for a video the extension uploads,
-- what _prepare_upload found (NULL for the others).
CREATE TYPE vibescaling._round_item AS (post vibescaling.posts, endpoint text, options jsonb, going boolean,
                                        upload jsonb);

-- The end of a video's upload in an upload round, once TikTok accepted its
-- init (init: that answer): streams the chunks (_upload_accepted_video).
-- An expired upload URL gets a fresh init and upload, as publish_post's
-- would (_upload_video). uploaded: the video is all at TikTok, and init is
-- the result to record (its data, which holds the upload URL, left out);
-- else the failure is recorded on the post (_record_call_failure, or
-- _record_dispatch_error for a refusal of our own, such as an unreadable
-- source).
CREATE FUNCTION vibescaling._finish_round_upload(item vibescaling._round_item, INOUT init vibescaling._call_result,
                                                 as_of timestamptz, OUT uploaded boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p         vibescaling.posts := item.post;
    v_chunks  jsonb;
    v_again   record;
    v_message text;
    v_state   text;
BEGIN
    uploaded := false;
    BEGIN
        v_chunks := vibescaling._upload_accepted_video(p, 'scheduler', item.upload, init);
        IF (v_chunks->>'ok')::boolean THEN
            init.data := '{}';
            uploaded := true;
        ELSIF v_chunks->>'error_code' = 'upload_url_expired' THEN
            v_again := vibescaling._upload_video(p, 'scheduler', item.endpoint, item.options);
            IF v_again.failed_endpoint IS NULL THEN
                init := v_again.call;
                uploaded := true;
            ELSE
                PERFORM vibescaling._record_call_failure(p.id, p.attempts, v_again.call, v_again.failed_endpoint, as_of);
            END IF;
        ELSE
            PERFORM vibescaling._record_call_failure(p.id, p.attempts,
                                                     jsonb_populate_record(NULL::vibescaling._call_result, v_chunks),
                                                     'upload_chunk', as_of);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM vibescaling._record_dispatch_error(p.id, p.attempts, v_message, v_state, as_of);
    END;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._finish_round_upload(vibescaling._round_item, vibescaling._call_result, timestamptz) FROM PUBLIC;

-- One round of the dispatcher: up to max_posts due posts, one per account,
-- published together in the caller's transaction. All their creator_info
-- calls go out at once, then all their inits (_tiktok_call_many: at most
-- vibescaling.max_concurrent_requests in flight). The checks, the failure
-- handling and the records are those of _publish_locked, post by post.
-- With uploads, the round takes only the videos the extension uploads
-- (dispatch_due_uploads): each is checked and described before the calls
-- (_prepare_upload), and once TikTok accepted the inits their chunks are
-- streamed, one video after another (_finish_round_upload), before the
-- posts are recorded. Without, it takes the others.
-- Accounts in skip_accounts are left alone; the round declines (adds to
-- declined) accounts it should not batch: one whose earliest due post is
-- of the other kind (upload or not), one whose init or creator_info rate
-- limit is full now or held back by TikTok's Retry-After, one another
-- session is calling TikTok for (its advisory lock is taken), so that the
-- sequential pass, which waits for rate limits and locks, takes them.
-- processed: the posts it settled (posted, failed or rescheduled).
--
-- Safe as one transaction for many posts: every init is in the durable log
-- ("in flight", then its outcome) before and after it is sent. If the
-- round's transaction is lost (crash, cancel), the next run reconciles each
-- post TikTok accepted as posted, and fails (never resends) one whose init
-- has an unknown outcome (_prepare_publish).
CREATE FUNCTION vibescaling._dispatch_round(as_of timestamptz, max_posts integer, skip_accounts uuid[],
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
REVOKE ALL ON FUNCTION vibescaling._dispatch_round(timestamptz, integer, uuid[], boolean) FROM PUBLIC;

-- The dispatcher's next round (_dispatch_round, up to round_size posts; with
-- uploads, of the videos the extension uploads) in the caller's
-- transaction: returns skip_accounts with the accounts the round declined
-- added, or NULL when the round found nothing to do.
--
-- Each round starts by discarding the session's cached plans (DISCARD
-- PLANS), so that the round's log lookups are planned for the log as it
-- is now. A generic plan made while this week's partition was nearly
-- empty (and ANALYZEd so: a sequential scan then looks free) would
-- otherwise read the growing partition from start to end for every post
-- of every later round of a burst: there is no statistics update, hence no
-- replanning, before autovacuum's next analyze. The planner sizes the
-- partition from its current number of pages, whatever its statistics
-- say; replanning costs a few milliseconds a round.
CREATE FUNCTION vibescaling._dispatch_next_round(as_of timestamptz, skip_accounts uuid[], round_size integer,
                                                 uploads boolean DEFAULT false)
RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_round record;
BEGIN
    DISCARD PLANS;
    v_round := vibescaling._dispatch_round(as_of, round_size, skip_accounts, uploads);
    IF v_round.processed = 0 AND cardinality(v_round.declined) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN skip_accounts || v_round.declined;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._dispatch_next_round(timestamptz, uuid[], integer, boolean) FROM PUBLIC;

-- Starts up to helpers background workers (src/pg/dispatch_helpers.cpp)
-- that dispatch the posts due at as_of beside the caller, in rounds of
-- round_size posts (with uploads: of the videos the extension uploads,
-- streamed one at a time), as the calling role with its vibescaling.* settings;
-- returns how many started (fewer when worker slots are short).
CREATE FUNCTION vibescaling._start_dispatch_helpers(as_of timestamptz, helpers integer, round_size integer,
                                                    uploads boolean)
RETURNS integer
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_start_dispatch_helpers';
REVOKE ALL ON FUNCTION vibescaling._start_dispatch_helpers(timestamptz, integer, integer, boolean) FROM PUBLIC;

-- Waits until the session's dispatch helpers have stopped; true if there were any.
CREATE FUNCTION vibescaling._wait_dispatch_helpers()
RETURNS boolean
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_wait_dispatch_helpers';
REVOKE ALL ON FUNCTION vibescaling._wait_dispatch_helpers() FROM PUBLIC;

-- How many posts are due at as_of, counted up to at_most: with uploads the
-- videos the extension uploads itself (dispatch_due_uploads sends them),
-- else the others (dispatch_due_posts), as _dispatch_next_single tells them
-- apart. Enough to size a run.
CREATE FUNCTION vibescaling._count_due(as_of timestamptz, uploads boolean, at_most integer)
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
REVOKE ALL ON FUNCTION vibescaling._count_due(timestamptz, boolean, integer) FROM PUBLIC;

-- Shares a dispatcher run among vibescaling.dispatch_sessions sessions:
-- starts the helpers the posts due at as_of call for (one per share of
-- max_concurrent_requests they fill) and returns the caller's own round
-- size, the part of max_concurrent_requests the helpers do not take. So
-- the run never has more than max_concurrent_requests calls in flight, and
-- a run with a few due posts starts no worker at all.
CREATE FUNCTION vibescaling._start_dispatch_sessions(as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_concurrency integer := current_setting('vibescaling.max_concurrent_requests')::integer;
    v_sessions    integer := least(current_setting('vibescaling.dispatch_sessions')::integer, v_concurrency);
    v_share       integer := v_concurrency / v_sessions;
    v_due         integer := vibescaling._count_due(as_of, false, v_concurrency);
    v_helpers     integer;
BEGIN
    v_helpers := least(v_sessions, ceil(v_due::numeric / v_share)::integer) - 1;
    IF v_helpers > 0 THEN
        v_helpers := vibescaling._start_dispatch_helpers(as_of, v_helpers, v_share, false);
    END IF;
    RETURN v_concurrency - greatest(v_helpers, 0) * v_share;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._start_dispatch_sessions(timestamptz) FROM PUBLIC;

-- Shares a run of dispatch_due_uploads among up to
-- vibescaling.dispatch_sessions sessions: spreads the videos due at as_of
-- that the extension uploads over the sessions, every session first (a
-- session streams one video at a time, so as many videos stream at once as
-- there are sessions), in rounds of up to 8 (a round's inits go out
-- together, then its videos stream one after another: a larger round
-- would keep its last upload URL waiting). Starts the helpers beyond the
-- caller and returns the round size.
CREATE FUNCTION vibescaling._start_upload_sessions(as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_round_max constant integer := 8;
    v_sessions  integer := current_setting('vibescaling.dispatch_sessions')::integer;
    v_due       integer := vibescaling._count_due(as_of, true, v_sessions * c_round_max);
    v_round     integer := greatest(1, least(c_round_max, v_due / v_sessions));
    v_helpers   integer := least(v_sessions, ceil(v_due::numeric / v_round)::integer) - 1;
BEGIN
    IF v_helpers > 0 THEN
        PERFORM vibescaling._start_dispatch_helpers(as_of, v_helpers, v_round, true);
    END IF;
    RETURN v_round;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._start_upload_sessions(timestamptz) FROM PUBLIC;

-- Publishes the earliest due post no other session holds, alone, in the
-- caller's transaction (FOR UPDATE SKIP LOCKED; _publish_attempt waits for
-- the account's rate limit): among the videos the extension uploads itself
-- when uploads, else among the others. A failure is recorded on the post
-- (_record_dispatch_failure). False when no such post is due.
CREATE FUNCTION vibescaling._dispatch_next_single(as_of timestamptz, uploads boolean)
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
REVOKE ALL ON FUNCTION vibescaling._dispatch_next_single(timestamptz, boolean) FROM PUBLIC;

-- Publishes every scheduled post due at as_of but the videos the extension
-- uploads itself (dispatch_due_uploads sends those, so that a slow video
-- source never holds up other posts). First in rounds (_dispatch_round): up
-- to a share of vibescaling.max_concurrent_requests posts, one per account,
-- whose calls go out together; each round is a transaction of its own.
-- Then one post at a time, one transaction each, for what the rounds
-- declined (accounts at their rate limit or busy in another session): that
-- pass waits for rate limits as publish_post does.
--
-- A burst is shared among up to vibescaling.dispatch_sessions sessions
-- (_start_dispatch_sessions): background workers run the same rounds and
-- pass beside this one, so that calls are in flight while a session works
-- through its round's checks and records. The run waits for them, then
-- looks once more for what a failed helper may have left.
--
-- FOR UPDATE SKIP LOCKED lets several dispatchers run at once without
-- touching the same post. Failures are recorded by _record_dispatch_failure
-- (transient ones retried with backoff, never sooner than TikTok's
-- Retry-After; an init of unknown outcome is never resent). Query cancel
-- stops the run and its helpers (committed rounds and posts stay done).
-- Call it as a statement of its own (inside a transaction block it raises
-- 2D000 before it sends anything):
--   CALL vibescaling.dispatch_due_posts();
--
-- pg_cron runs it as a superuser with search_path "$user", public, and a
-- procedure that COMMITs cannot pin its search_path with SET. So it pins it
-- for each of its transactions (set_config, local: at the start and after
-- every COMMIT, which ends the setting), and its body calls only the
-- schema-qualified functions above, which pin their own. It gives the
-- caller's path back at the end (for a caller whose transaction goes on).
CREATE PROCEDURE vibescaling.dispatch_due_posts(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_skip        uuid[];
    v_round_size  integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    -- A run commits each round, which it cannot do inside a transaction
    -- block or a query string of several statements. Committing here,
    -- before anything is sent, raises 2D000 in that case, instead of at a
    -- round's end after its calls went out. (The security suite reads
    -- this body: no unqualified call, a pin after every commit.)
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_round_size := vibescaling._start_dispatch_sessions(as_of);
    LOOP
        v_skip := ARRAY[]::uuid[];
        LOOP
            v_skip := vibescaling._dispatch_next_round(as_of, v_skip, v_round_size);
            EXIT WHEN v_skip IS NULL;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        LOOP
            EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, false);
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        -- Alone from here: once more, with the whole of max_concurrent_requests.
        EXIT WHEN NOT vibescaling._wait_dispatch_helpers();
        v_round_size := pg_catalog.current_setting('vibescaling.max_concurrent_requests')::integer;
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;

-- Publishes every scheduled video due at as_of that the extension uploads
-- itself (FILE_UPLOAD from a URL it downloads, a large object or a media
-- row), as dispatch_due_posts does for the rest: in rounds (_dispatch_round
-- with uploads: their creator_info calls at once, then their inits, then
-- each video's chunks), each a transaction of its own, then one at a time
-- for what the rounds declined. Up to vibescaling.dispatch_sessions
-- sessions upload at once (_start_upload_sessions: background workers
-- beside the caller, which waits for them). Its own pg_cron job
-- (vibescaling-uploads): a source that is slow or never answers costs this
-- job its download budget (vibescaling.source_connect_timeout_ms,
-- source_stall_timeout_ms), never the other posts. Like dispatch_due_posts,
-- it pins the search path for each of its transactions and calls only
-- schema-qualified functions. Call it as a statement of its own:
--   CALL vibescaling.dispatch_due_uploads();
CREATE PROCEDURE vibescaling.dispatch_due_uploads(as_of timestamptz DEFAULT pg_catalog.now())
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller_path text := pg_catalog.current_setting('search_path');
    v_skip        uuid[];
    v_round_size  integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of is required' USING ERRCODE = '22004';
    END IF;
    PERFORM vibescaling._require_primary();
    -- A run commits each round, which it cannot do inside a transaction
    -- block or a query string of several statements. Committing here,
    -- before anything is sent, raises 2D000 in that case, instead of at a
    -- round's end after its calls went out. (The security suite reads
    -- this body: no unqualified call, a pin after every commit.)
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_round_size := vibescaling._start_upload_sessions(as_of);
    LOOP
        v_skip := ARRAY[]::uuid[];
        LOOP
            v_skip := vibescaling._dispatch_next_round(as_of, v_skip, v_round_size, true);
            EXIT WHEN v_skip IS NULL;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        LOOP
            EXIT WHEN NOT vibescaling._dispatch_next_single(as_of, true);
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END LOOP;
        -- Once more, alone, for what a failed helper may have left.
        EXIT WHEN NOT vibescaling._wait_dispatch_helpers();
    END LOOP;
    PERFORM pg_catalog.set_config('search_path', v_caller_path, true);
END
$$;
REVOKE ALL ON PROCEDURE vibescaling.dispatch_due_uploads(timestamptz) FROM PUBLIC;
COMMENT ON PROCEDURE vibescaling.dispatch_due_uploads(timestamptz) IS
    'Publishes scheduled videos the extension uploads itself (its own pg_cron job, so that slow sources hold up nothing else).';
COMMENT ON PROCEDURE vibescaling.dispatch_due_posts(timestamptz) IS
    'Publishes scheduled posts due at as_of (all but the videos the extension uploads: dispatch_due_uploads): in rounds of concurrent calls (vibescaling.max_concurrent_requests), then one by one for rate-limited accounts; retries transient failures with backoff (never sooner than TikTok''s Retry-After); safe to run concurrently.';

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
-- dispatcher on the given schedule, vibescaling-uploads the uploads
-- (dispatch_due_uploads) on the same; vibescaling-refresh refreshes tokens
-- that expire within 30 minutes, every 15 minutes; vibescaling-logs keeps
-- the logs' weekly partitions (maintain_logs), hourly;
-- vibescaling-analytics rolls up the Analytics page's hourly tables
-- (roll_up_analytics), every 5 minutes; vibescaling-settle settles posts
-- whose init had an unknown outcome (settle_unknown_outcomes), every 5
-- minutes; vibescaling-metrics takes snapshots of public posts' and
-- accounts' counts (collect_metrics), every 15 minutes; vibescaling-recur
-- schedules the coming week's occurrences of repeating posts
-- (expand_recurrences), every 15 minutes;
-- vibescaling-poll-status follows publishes to their final state, every
-- minute. Returns the dispatch job's id.
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
      USING 'vibescaling-uploads', enable_scheduler.schedule, 'CALL vibescaling.dispatch_due_uploads()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-refresh', '*/15 * * * *', 'SELECT vibescaling.refresh_expiring_tokens()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-logs', '17 * * * *', 'CALL vibescaling.maintain_logs()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-analytics', '*/5 * * * *', 'SELECT vibescaling.roll_up_analytics()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-settle', '*/5 * * * *', 'SELECT vibescaling.settle_unknown_outcomes()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-metrics', '*/15 * * * *', 'SELECT vibescaling.collect_metrics()';
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'vibescaling-recur', '*/15 * * * *', 'SELECT vibescaling.expand_recurrences()';
    -- The logs' partitions for this week and the next, now rather than at the job's first run.
    PERFORM vibescaling._create_log_partition(t.parent, w)
       FROM vibescaling._log_tables() t, vibescaling._log_weeks_needed(t.parent) w;
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
    FOR v_job IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname IN ($1, $2, $3, $4, $5, $6, $7, $8)'
                 USING 'vibescaling-dispatch', 'vibescaling-uploads', 'vibescaling-refresh', 'vibescaling-logs',
                       'vibescaling-analytics', 'vibescaling-settle', 'vibescaling-metrics', 'vibescaling-recur' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING v_job;
        v_found := true;
    END LOOP;
    IF vibescaling._unschedule_status_poller() THEN
        v_found := true;
    END IF;
    RETURN v_found;
END
$$;
-- vibescaling: privileges. Nothing is executable by PUBLIC: publishing
-- spends the accounts' tokens, so the DBA grants EXECUTE on the API
-- functions (and the needed table privileges) to the application's roles.
REVOKE ALL ON ALL ROUTINES IN SCHEMA vibescaling FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA vibescaling FROM PUBLIC;
-- vibescaling: TikTok webhooks (server to server). TikTok POSTs an event
-- with the header `TikTok-Signature: t=<unix ts>,s=<hex>`, where s is
-- HMAC-SHA256(key = client_secret, "<t>.<raw body>"). handle_webhook checks
-- it, refuses stale timestamps, dedupes (delivery is at least once, retried
-- for 72 h), stores the event and applies it to publish_records, posts and
-- tiktok_accounts. Meant to be exposed through PostgREST (it is SECURITY
-- DEFINER: it reads the superuser-only vibescaling.client_secret).

-- Webhook deliveries are dispatch_logs rows with trigger 'webhook'.

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

-- Webhook refusals (bad or stale signatures), counted per day and reason
-- by the HTTP API (vibescaling_api.handle_webhook) in the request's own
-- transaction: a flood of forged deliveries adds to a counter, not a row
-- each, and starts no worker.
CREATE TABLE vibescaling.webhook_refusals (
    day          date NOT NULL DEFAULT current_date,
    error_code   text NOT NULL,      -- bad_signature | stale_timestamp
    refusals     bigint NOT NULL DEFAULT 0,
    first_at     timestamptz NOT NULL DEFAULT now(),
    last_at      timestamptz NOT NULL DEFAULT now(),
    last_reason  text,
    PRIMARY KEY (day, error_code)
);
COMMENT ON TABLE vibescaling.webhook_refusals IS
    'Refused TikTok webhook deliveries through the HTTP API, counted per day and reason.';
SELECT pg_catalog.pg_extension_config_dump('vibescaling.webhook_refusals', '');

-- Writes one dispatch_logs row (a JSON object with the table's columns)
-- committed on its own, through the dispatch log writer (C,
-- src/pg/dispatch_log_writer.cpp): it survives the caller's rollback. (The
-- parameter is log_row: ROW is a keyword and cannot name a parameter.)
CREATE FUNCTION vibescaling._durable_log(log_row jsonb)
RETURNS void
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_durable_log'
LANGUAGE C VOLATILE STRICT;

-- HMAC-SHA256 (C, PostgreSQL's own implementation: no search_path, no pgcrypto).
CREATE FUNCTION vibescaling._webhook_hmac(message bytea, key bytea)
RETURNS bytea
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_hmac_sha256'
LANGUAGE C IMMUTABLE STRICT;

-- Raises 42501 for a refused webhook. The message says why in words; never
-- the secret, the expected signature or the body. The DETAIL names the
-- reason's code (error_code=bad_signature | stale_timestamp), which the
-- HTTP API counts in webhook_refusals.
CREATE FUNCTION vibescaling._refuse_webhook(error_code text, reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'TikTok webhook refused: %', reason
        USING ERRCODE = '42501',
              DETAIL = 'error_code=' || error_code,
              HINT = CASE error_code
                         WHEN 'stale_timestamp' THEN 'The signature''s timestamp is outside vibescaling.webhook_tolerance; check the server clock.'
                         ELSE 'The TikTok-Signature header must be "t=<unix ts>,s=<hex HMAC-SHA256 of ''<t>.<body>'' under the app''s client secret>".'
                     END;
END
$$;

-- Checks a TikTok webhook and applies it. body: the raw request body;
-- signature: the TikTok-Signature header. Returns
-- {"data": {"event", "publish_id", "applied", "duplicate"}}.
--   42501  signature missing, malformed or wrong, or timestamp further than
--          vibescaling.webhook_tolerance (default 300 s) from now (DETAIL
--          error_code=bad_signature | stale_timestamp).
--   22023  a body over 64 kB (TikTok's are a few hundred bytes).
--   55000  vibescaling.client_secret is not set.
--   22023  the body (or its content) is not the JSON TikTok sends.
-- A body received before is a duplicate: nothing is applied again.
-- Events: post.publish.complete / inbox_delivered / failed set the publish
-- record's status (never backwards: a failed or published record is final,
-- and inbox_delivered does not undo published; an unconfirmed one takes
-- them); failed also fails the post, or puts it back on the queue, when the
-- record is its latest publish (_apply_publish_failed).
-- post.publish.publicly_available / no_longer_publicaly_available add /
-- remove content.post_id in public_post_ids and set public_at /
-- taken_down_at (a takedown and a re-publication each keep their time).
-- A publish_id no record has is stored: settle_unknown_outcomes() matches
-- it to an init of unknown outcome. authorization.removed marks the account needs_reauth.
-- Other events are stored and not applied.
CREATE FUNCTION vibescaling.handle_webhook(body text, signature text)
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
                        -- Also after the poller gave up (unconfirmed).
                        IF r.status <> 'failed' THEN
                            v_local := vibescaling._local_publish_status('PUBLISH_COMPLETE');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'PUBLISH_COMPLETE', updated_at = now()
                             WHERE id = r.id;
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.inbox_delivered' THEN
                        IF r.status IN ('processing', 'sent_to_inbox', 'unconfirmed') THEN
                            v_local := vibescaling._local_publish_status('SEND_TO_USER_INBOX');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'SEND_TO_USER_INBOX', updated_at = now()
                             WHERE id = r.id;
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.failed' THEN
                        IF r.status NOT IN ('published', 'failed') THEN
                            v_local := vibescaling._local_publish_status('FAILED');
                            UPDATE vibescaling.publish_records
                               SET status = v_local, tiktok_status = 'FAILED',
                                   fail_reason = coalesce(v_content->>'reason', fail_reason), updated_at = now()
                             WHERE id = r.id
                            RETURNING * INTO r;
                            -- As publish_status does: the post fails, or goes back on
                            -- the queue for a reason worth another try.
                            PERFORM vibescaling._apply_publish_failed(r);
                            v_applied := true;
                        END IF;
                    WHEN 'post.publish.publicly_available' THEN
                        -- Public (again, after a takedown): the time is TikTok's.
                        UPDATE vibescaling.publish_records
                           SET public_post_ids = CASE WHEN v_post_id::bigint = ANY (public_post_ids) THEN public_post_ids
                                                      ELSE public_post_ids || v_post_id::bigint END,
                               public_at = coalesce(v_create_time, now()), updated_at = now()
                         WHERE id = r.id
                           AND (NOT (v_post_id::bigint = ANY (public_post_ids))
                                OR public_at IS NULL OR taken_down_at >= public_at);
                        v_applied := FOUND;
                    WHEN 'post.publish.no_longer_publicaly_available' THEN
                        -- Taken down: the id goes, the time stays on the record.
                        UPDATE vibescaling.publish_records
                           SET public_post_ids = array_remove(public_post_ids, v_post_id::bigint),
                               taken_down_at = coalesce(v_create_time, now()), updated_at = now()
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
COMMENT ON FUNCTION vibescaling.handle_webhook(text, text) IS
    'Checks a TikTok webhook (raw body, TikTok-Signature header), dedupes, stores and applies it; {"data":{"event","publish_id","applied","duplicate"}}.';

-- Nothing is executable by PUBLIC (11_privileges.sql ran before these were created).
REVOKE ALL ON FUNCTION vibescaling._durable_log(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._webhook_hmac(bytea, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._refuse_webhook(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.handle_webhook(text, text) FROM PUBLIC;
REVOKE ALL ON TABLE vibescaling.webhook_events FROM PUBLIC;
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
-- vibescaling: tenants. Through PostgREST every request acts for the tenant
-- in its JWT's "sub" claim (_jwt_sub, 01_tables.sql): posts and accounts it
-- creates are its own (their owner column), and row level security shows
-- the API roles only their own posts, accounts, publish records and
-- dispatch logs. Sessions of other roles (application backends calling SQL,
-- DBAs, the dispatcher) are not tenants and see every row, as before.

-- True when the current role is one of the roles PostgREST switches to
-- (setup_api_roles creates them). Name-based, so that the policies below
-- exist before the roles do. The policies call it (and _jwt_sub) as a
-- sub-select, evaluated once per statement, not once per row.
CREATE FUNCTION vibescaling._is_api_role()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CURRENT_USER OPERATOR(pg_catalog.=) ANY (ARRAY['vibescaling_anon', 'vibescaling_user',
                                                          'vibescaling_webhook', 'vibescaling_authenticator']::pg_catalog.name[])
$$;

-- The role claim of the current request's JWT (vibescaling_user,
-- vibescaling_operator, ...), where claims are believed (_jwt_claim); else NULL.
CREATE FUNCTION vibescaling._jwt_role()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._jwt_claim('role')
$$;

-- The ids of the accounts of the current request's tenant (none without a
-- sub). SECURITY DEFINER: API roles cannot read tiktok_accounts.
CREATE FUNCTION vibescaling._own_account_ids()
RETURNS SETOF uuid
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.id FROM vibescaling.tiktok_accounts a
     WHERE a.owner = vibescaling._jwt_sub()
$$;

-- Raises an error again with the SQLSTATE that makes PostgREST answer the
-- product's HTTP status: P0002 (not found) -> PT404; 55000 (wrong state),
-- 55P03 (the row is locked: being published) and 23505 -> PT409; a class 08
-- error (TikTok unreachable, or a TikTok failure mapped to 08xxx) -> PT502;
-- 53400 (a quota of the extension's, e.g. open posts per owner) -> PT429;
-- the rest of class 53 (rate limits, TikTok's caps) -> PT503. Everything else keeps its
-- SQLSTATE, which PostgREST already maps: 22xxx -> 400, 42501 -> 401/403.
-- The message, detail and hint are kept; the original SQLSTATE is added to
-- the detail ("sqlstate=P0002; ..."), so a client can still tell them apart.
CREATE FUNCTION vibescaling._raise_http_error(p_state text, p_message text, p_detail text, p_hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_http text := CASE WHEN p_state = 'P0002' THEN 'PT404'
                        WHEN p_state IN ('55000', '55P03', '23505') THEN 'PT409'
                        WHEN p_state LIKE '08%' THEN 'PT502'
                        WHEN p_state = '53400' THEN 'PT429'
                        WHEN p_state LIKE '53%' THEN 'PT503'
                        ELSE p_state END;
BEGIN
    IF v_http = p_state THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = coalesce(p_detail, ''),
                              HINT = coalesce(p_hint, '');
    END IF;
    RAISE EXCEPTION USING ERRCODE = v_http, MESSAGE = p_message,
                          DETAIL = 'sqlstate=' || p_state || coalesce('; ' || nullif(p_detail, ''), ''),
                          HINT = coalesce(p_hint, '');
END
$$;

-- Row level security. The table owner (the extension's owner, the
-- dispatcher, the log writer) is not subject to it.
ALTER TABLE vibescaling.posts ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.tiktok_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.publish_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.dispatch_logs ENABLE ROW LEVEL SECURITY;

-- An API role sees and writes only its tenant's posts; others see all.
CREATE POLICY tenant_posts ON vibescaling.posts
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()))
    WITH CHECK (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));

-- The same for accounts (API roles get no privilege on this table anyway:
-- they read vibescaling_api.accounts, which has no tokens).
CREATE POLICY tenant_accounts ON vibescaling.tiktok_accounts
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()))
    WITH CHECK (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));

-- Publish records of the tenant's posts (the subquery is itself filtered by
-- the posts policy).
CREATE POLICY tenant_publish_records ON vibescaling.publish_records
    USING (NOT (SELECT vibescaling._is_api_role()) OR post_id IN (SELECT p.id FROM vibescaling.posts p));

-- Dispatch logs of the tenant's accounts, and of its posts for the calls
-- made with no account. A post is only ever sent with an account of its
-- own owner, so the account decides every call that has one; the posts
-- are looked at only for the others (PostgreSQL evaluates the OR's terms
-- in order and builds the posts' hash only if a row reaches it), which
-- keeps a tenant's page of the log from reading every post.
CREATE POLICY tenant_dispatch_logs ON vibescaling.dispatch_logs
    USING (NOT (SELECT vibescaling._is_api_role())
           OR tiktok_account_id IN (SELECT vibescaling._own_account_ids())
           OR tiktok_account_id IS NULL AND post_id IN (SELECT p.id FROM vibescaling.posts p));

REVOKE ALL ON FUNCTION vibescaling._own_account_ids() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._jwt_role() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._raise_http_error(text, text, text, text) FROM PUBLIC;

-- Policies run with the querying role's rights: every role that reads these
-- tables must be able to call the functions in them. They reveal nothing
-- but the caller's own tenant and role.
GRANT EXECUTE ON FUNCTION vibescaling._jwt_sub(), vibescaling._jwt_claim(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION vibescaling._is_api_role() TO PUBLIC;
GRANT EXECUTE ON FUNCTION vibescaling._own_account_ids() TO PUBLIC;
-- vibescaling: the HTTP API. PostgREST exposes the schema vibescaling_api
-- (db-schemas = "vibescaling_api", see api/postgrest.conf): the views are
-- tables to it (GET, POST, PATCH, DELETE /posts, GET /accounts, ...), the
-- functions are RPCs (POST /rpc/publish_post, GET /rpc/publish_status, ...).
-- Each request acts for the tenant in its JWT's sub claim. Functions are
-- SECURITY DEFINER with a pinned search_path and check ownership themselves;
-- views either run with the caller's rights (row level security filters
-- them, 14_tenancy.sql) or filter by tenant themselves (accounts). Errors
-- carry the SQLSTATE PostgREST turns into the documented HTTP status
-- (_raise_http_error; docs/errors.md has the table). The roles are created by
-- vibescaling.setup_api_roles(), not by CREATE EXTENSION.
CREATE SCHEMA vibescaling_api;
COMMENT ON SCHEMA vibescaling_api IS 'The HTTP API that PostgREST exposes (db-schemas = vibescaling_api).';

-- The current request's tenant (JWT sub); 42501 when it has none.
CREATE FUNCTION vibescaling._api_tenant()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sub text := vibescaling._jwt_sub();
BEGIN
    IF v_sub IS NULL THEN
        RAISE EXCEPTION 'this request acts for no tenant: its JWT has no sub claim' USING ERRCODE = '42501';
    END IF;
    RETURN v_sub;
END
$$;

-- Raises unless the post exists and is the tenant's: 400 for a NULL id, 404
-- otherwise (another tenant's post is not found either).
CREATE FUNCTION vibescaling._api_check_post(p_post_id uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_post_id IS NULL THEN
        RAISE EXCEPTION 'post_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.posts p WHERE p.id = p_post_id AND p.owner = vibescaling._api_tenant()) THEN
        RAISE EXCEPTION 'post % not found', p_post_id USING ERRCODE = 'PT404', DETAIL = 'sqlstate=P0002';
    END IF;
END
$$;

-- Raises unless the TikTok account exists (404) and is the tenant's (42501:
-- publishing to another tenant's account is refused, 403).
CREATE FUNCTION vibescaling._api_check_account(p_account_id uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner text;
BEGIN
    IF p_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    SELECT a.owner INTO v_owner FROM vibescaling.tiktok_accounts a WHERE a.id = p_account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'TikTok account % not found', p_account_id USING ERRCODE = 'PT404', DETAIL = 'sqlstate=P0002';
    END IF;
    IF v_owner IS DISTINCT FROM vibescaling._api_tenant() THEN
        RAISE EXCEPTION 'TikTok account % belongs to another tenant', p_account_id USING ERRCODE = '42501';
    END IF;
END
$$;

-- The post id of a request made through the documented paths: nginx passes
-- /api/v1/posts/:id/... as the X-Post-Id header (api/nginx.conf).
CREATE FUNCTION vibescaling._api_path_post_id()
RETURNS uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(nullif(current_setting('request.headers', true), '')::jsonb->>'x-post-id', '')::uuid
$$;

-- ---------------------------------------------------------------------------
-- Tables, as PostgREST sees them.

-- The tenant's posts: GET /posts, POST /posts (a draft; owner = the JWT sub),
-- PATCH /posts?id=eq.<id> (setting status 'scheduled' schedules it, with
-- the checks of schedule_post), DELETE /posts?id=eq.<id> (drafts only).
CREATE VIEW vibescaling_api.posts WITH (security_invoker = true) AS
    SELECT id, media_type, caption, title, video_url, upload_method, video_cover_timestamp_ms, is_aigc,
           photo_urls, photo_cover_index, status, scheduled_at, tiktok_account_id, privacy_level, mode,
           disable_comment, disable_duet, disable_stitch, brand_content_toggle, brand_organic_toggle,
           posted_at, last_error, attempts, next_attempt_at, created_at, updated_at, parent_id
      FROM vibescaling.posts;
COMMENT ON VIEW vibescaling_api.posts IS 'The tenant''s posts (row level security).';

-- The tenant's connected TikTok accounts, without tokens.
CREATE VIEW vibescaling_api.accounts WITH (security_barrier = true) AS
    SELECT a.id, a.open_id, a.display_name, a.avatar_url, a.scopes, a.status, a.status_reason,
           a.access_token_expires_at, a.refresh_token_expires_at, a.last_refreshed_at, a.created_at, a.updated_at
      FROM vibescaling.tiktok_accounts a
     WHERE a.owner = vibescaling._jwt_sub();
COMMENT ON VIEW vibescaling_api.accounts IS 'The tenant''s TikTok accounts, without tokens.';

-- What TikTok said of the tenant's publishes.
CREATE VIEW vibescaling_api.publish_records WITH (security_invoker = true) AS
    SELECT id, post_id, tiktok_account_id, publish_id, endpoint, mode, status, tiktok_status, fail_reason,
           public_post_ids::text[] AS public_post_ids, uploaded_bytes, downloaded_bytes, checked_at,
           created_at, updated_at
      FROM vibescaling.publish_records;
COMMENT ON VIEW vibescaling_api.publish_records IS
    'The tenant''s publish records (public_post_ids as strings: 19 digits do not fit a JSON number).';

-- Every call made to TikTok for the tenant's posts and accounts.
CREATE VIEW vibescaling_api.dispatch_logs WITH (security_invoker = true) AS
    SELECT id, post_id, tiktok_account_id, trigger, endpoint, http_status, outcome, error_code, error_message,
           log_id, publish_id, duration_ms, uploaded_bytes, outcome_unknown, created_at
      FROM vibescaling.dispatch_logs;
COMMENT ON VIEW vibescaling_api.dispatch_logs IS 'The tenant''s calls to TikTok.';

-- ---------------------------------------------------------------------------
-- RPCs. Each checks the tenant, calls the core function and turns its
-- error into the HTTP status (_raise_http_error).

-- POST /rpc/publish_post {"post_id", "tiktok_account_id", "privacy_level", ...}
-- (or POST /api/v1/posts/:id/publish through nginx): publishes a draft now.
-- 200 {"data": {"publish_id"}}; 400 bad input; 403 another tenant's account;
-- 404 no such post; 409 not a draft (already posted) or being published by
-- another request; 502/503 TikTok failed or is rate limiting.
CREATE FUNCTION vibescaling_api.publish_post(
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
    t         jsonb;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    -- Another request publishing this post holds its row: 409 at once, not a wait.
    PERFORM 1 FROM vibescaling.posts p WHERE p.id = v_post_id FOR UPDATE NOWAIT;
    -- Several accounts: each target's account must be the tenant's.
    IF publish_post.targets IS NOT NULL THEN
        IF publish_post.tiktok_account_id IS NOT NULL THEN
            RAISE EXCEPTION 'give tiktok_account_id or targets, not both' USING ERRCODE = '22023';
        END IF;
        IF jsonb_typeof(publish_post.targets) = 'array' THEN
            FOR t IN SELECT x FROM jsonb_array_elements(publish_post.targets) x LOOP
                PERFORM vibescaling._api_check_account(CASE WHEN jsonb_typeof(t) = 'object'
                                                            AND t->>'tiktok_account_id' ~* '^[0-9a-f-]{36}$'
                                                            THEN (t->>'tiktok_account_id')::uuid END);
            END LOOP;
        END IF;
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

-- POST /rpc/schedule_post {"post_id", "scheduled_at", "tiktok_account_id", "privacy_level", ...}:
-- schedules a post (as PATCH /posts with status 'scheduled' does).
CREATE FUNCTION vibescaling_api.schedule_post(
    post_id               uuid        DEFAULT NULL,
    scheduled_at          timestamptz DEFAULT NULL,
    tiktok_account_id     uuid        DEFAULT NULL,
    privacy_level         text        DEFAULT NULL,
    mode                  text        DEFAULT 'direct',
    disable_comment       boolean     DEFAULT false,
    disable_duet          boolean     DEFAULT false,
    disable_stitch        boolean     DEFAULT false,
    brand_content_toggle  boolean     DEFAULT false,
    brand_organic_toggle  boolean     DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(schedule_post.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    PERFORM vibescaling._api_check_account(schedule_post.tiktok_account_id);
    RETURN vibescaling.schedule_post(v_post_id, schedule_post.scheduled_at, schedule_post.tiktok_account_id,
                                     schedule_post.privacy_level, schedule_post.mode,
                                     schedule_post.disable_comment, schedule_post.disable_duet,
                                     schedule_post.disable_stitch, schedule_post.brand_content_toggle,
                                     schedule_post.brand_organic_toggle);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/cancel_post {"post_id"}: a scheduled post back to draft (409 if it is not scheduled).
CREATE FUNCTION vibescaling_api.cancel_post(post_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(cancel_post.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    RETURN vibescaling.cancel_post(v_post_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- GET /rpc/publish_status?post_id=<id> (or GET /api/v1/posts/:id/publish-status):
-- TikTok's processing status of the post's latest publish,
-- {"data": {"publish_id", "status", "tiktok_status", ...}}; 404 when the post
-- is not the tenant's or has no publish record. STABLE so that PostgREST
-- serves it on GET, in a read-only transaction: TikTok is asked, the answer
-- returned, and the status poller records it.
CREATE FUNCTION vibescaling_api.publish_status(post_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_post_id uuid := coalesce(publish_status.post_id, vibescaling._api_path_post_id());
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_check_post(v_post_id);
    RETURN vibescaling.publish_status(v_post_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/creator_info {"tiktok_account_id"}: what the creator may post
-- now (privacy levels, disabled interactions), cached for creator_info_ttl.
CREATE FUNCTION vibescaling_api.creator_info(tiktok_account_id uuid DEFAULT NULL)
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
    PERFORM vibescaling._api_check_account(creator_info.tiktok_account_id);
    RETURN vibescaling.creator_info(creator_info.tiktok_account_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- GET /rpc/authorize_url?redirect_uri=&state=: the TikTok consent URL to
-- send the tenant's user to (the callback then calls connect_account).
CREATE FUNCTION vibescaling_api.authorize_url(redirect_uri text DEFAULT NULL, state text DEFAULT NULL)
RETURNS text
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
    PERFORM vibescaling._api_tenant();
    RETURN vibescaling.authorize_url(authorize_url.redirect_uri, authorize_url.state);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/connect_account {"auth_code", "redirect_uri", "code_verifier"?}:
-- exchanges the OAuth code; the account belongs to the request's tenant.
-- Returns {"data": {"id", "open_id", "display_name", "status", "scopes"}}
-- (never a token); 403 when another tenant has connected that TikTok account.
CREATE FUNCTION vibescaling_api.connect_account(auth_code text DEFAULT NULL, redirect_uri text DEFAULT NULL,
                                                code_verifier text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id      uuid;
    v_message text;
    v_state   text;
    v_hint    text;
    v_detail  text;
BEGIN
    PERFORM vibescaling._api_tenant();
    v_id := vibescaling.connect_account(connect_account.auth_code, connect_account.redirect_uri,
                                        connect_account.code_verifier);
    RETURN jsonb_build_object('data', (SELECT jsonb_build_object('id', a.id, 'open_id', a.open_id,
                                                                 'display_name', a.display_name, 'status', a.status,
                                                                 'scopes', to_jsonb(a.scopes))
                                         FROM vibescaling.tiktok_accounts a WHERE a.id = v_id));
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/disconnect_account {"tiktok_account_id"}: revokes the tenant's
-- account at TikTok, wipes its tokens, fails its scheduled posts.
CREATE FUNCTION vibescaling_api.disconnect_account(tiktok_account_id uuid DEFAULT NULL)
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
    PERFORM vibescaling._api_check_account(disconnect_account.tiktok_account_id);
    RETURN vibescaling.disconnect_account(disconnect_account.tiktok_account_id);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/handle_webhook with TikTok's JSON body (one unnamed json
-- argument: PostgREST passes the body whole, byte for byte) and its
-- TikTok-Signature header (read from request.headers). Only the role
-- vibescaling_webhook may call it: nginx adds that role's JWT on the
-- webhook path (api/nginx.conf); the HMAC signature is the real check. A
-- refused delivery answers 403 through PostgREST's response.status without
-- raising, so that the request's transaction commits its count in
-- vibescaling.webhook_refusals (one row per day and reason, not one per
-- delivery).
CREATE FUNCTION vibescaling_api.handle_webhook(json)
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
    v_code    text;
BEGIN
    BEGIN
        RETURN vibescaling.handle_webhook($1::text,
                                          nullif(current_setting('request.headers', true), '')::jsonb->>'tiktok-signature');
    EXCEPTION WHEN insufficient_privilege THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                                v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    END;
    v_code := coalesce(substring(v_detail FROM '^error_code=([a-z_]+)$'), 'refused');
    INSERT INTO vibescaling.webhook_refusals AS w (error_code, refusals, last_reason)
    VALUES (v_code, 1, v_message)
    ON CONFLICT (day, error_code) DO UPDATE
       SET refusals = w.refusals + 1, last_at = now(), last_reason = EXCLUDED.last_reason;
    PERFORM set_config('response.status', '403', true);
    RETURN jsonb_build_object('code', v_state, 'message', v_message, 'details', v_detail, 'hint', v_hint);
END
$$;

-- ---------------------------------------------------------------------------
-- The roles.

-- Creates (or completes) the roles PostgREST needs, and grants them the API:
--   vibescaling_authenticator  LOGIN NOINHERIT: PostgREST's connection role
--                              (password: authenticator_password, when given);
--   vibescaling_anon           requests without a JWT: may do nothing at all;
--   vibescaling_user           a tenant's requests (JWT {"role": "vibescaling_user", "sub": ...});
--   vibescaling_webhook        TikTok's webhook deliveries (nginx adds its JWT);
--   vibescaling_operator       an operator's requests (JWT {"role": "vibescaling_operator"}):
--                              every tenant's posts, publishes, calls and
--                              analytics, and settle_post; nothing else.
-- Idempotent; run it again after ALTER EXTENSION vibescaling UPDATE (what a
-- release grants or takes back from these roles is done here, not in the
-- upgrade script, so that pg_dump keeps it). Needs a superuser (or
-- CREATEROLE and the extension's owner).
-- Returns the roles and what each may do.
CREATE FUNCTION vibescaling.setup_api_roles(authenticator_password text DEFAULT NULL)
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
    GRANT SELECT ON vibescaling_api.posting_slots, vibescaling.posting_slots TO vibescaling_user;
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
        vibescaling_api.add_to_queue(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean)
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

REVOKE ALL ON ALL ROUTINES IN SCHEMA vibescaling_api FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA vibescaling_api FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_tenant() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_check_post(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_check_account(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._api_path_post_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.setup_api_roles(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._posts_before_delete() FROM PUBLIC;
-- vibescaling: analytics over the dispatch log and the posts, for DBAs
-- (schema vibescaling) and for tenants (the same views in vibescaling_api).
-- They run with the caller's rights (security_invoker), so row level
-- security gives each tenant only its own rows; a DBA sees everything.

-- Per endpoint: calls to TikTok, how they ended, and their latency.
CREATE VIEW vibescaling.dispatch_stats WITH (security_invoker = true) AS
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
COMMENT ON VIEW vibescaling.dispatch_stats IS
    'Calls to TikTok per endpoint: attempts, successes, failures, unknown outcomes, latency percentiles (ms).';

-- Failures per endpoint and error code (TikTok's, or a transport code).
CREATE VIEW vibescaling.dispatch_failures WITH (security_invoker = true) AS
    SELECT l.endpoint,
           coalesce(l.error_code, 'unknown') AS error_code,
           count(*)                          AS failures,
           max(l.created_at)                 AS last_at,
           (array_agg(l.error_message ORDER BY l.id DESC))[1] AS last_message
      FROM vibescaling.dispatch_logs l
     WHERE l.outcome = 'failure'
     GROUP BY l.endpoint, coalesce(l.error_code, 'unknown');
COMMENT ON VIEW vibescaling.dispatch_failures IS 'Failed calls to TikTok per endpoint and error code.';

-- Posts per account and day (UTC): published and failed.
CREATE VIEW vibescaling.posts_per_account_day WITH (security_invoker = true) AS
    SELECT p.tiktok_account_id,
           (date_trunc('day', coalesce(p.posted_at, p.updated_at) AT TIME ZONE 'UTC'))::date AS day,
           count(*) FILTER (WHERE p.status = 'posted') AS posted,
           count(*) FILTER (WHERE p.status = 'failed') AS failed
      FROM vibescaling.posts p
     WHERE p.status IN ('posted', 'failed') AND p.tiktok_account_id IS NOT NULL
     GROUP BY 1, 2;
COMMENT ON VIEW vibescaling.posts_per_account_day IS 'Posts published and failed per account and UTC day.';

-- For scheduled posts that were published: the time from scheduled_at to
-- posted_at, per account (seconds).
CREATE VIEW vibescaling.schedule_delay WITH (security_invoker = true) AS
    SELECT p.tiktok_account_id,
           count(*) AS posts,
           round(avg(extract(epoch FROM p.posted_at - p.scheduled_at))::numeric, 1) AS avg_s,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM p.posted_at - p.scheduled_at)))::numeric, 1) AS p50_s,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM p.posted_at - p.scheduled_at)))::numeric, 1) AS p95_s,
           round(max(extract(epoch FROM p.posted_at - p.scheduled_at))::numeric, 1) AS max_s
      FROM vibescaling.posts p
     WHERE p.status = 'posted' AND p.scheduled_at IS NOT NULL AND p.posted_at IS NOT NULL
     GROUP BY p.tiktok_account_id;
COMMENT ON VIEW vibescaling.schedule_delay IS
    'Per account: how long after scheduled_at scheduled posts were published (seconds).';

-- The same views for tenants, through PostgREST.
CREATE VIEW vibescaling_api.dispatch_stats WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.dispatch_stats;
CREATE VIEW vibescaling_api.dispatch_failures WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.dispatch_failures;
CREATE VIEW vibescaling_api.posts_per_account_day WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.posts_per_account_day;
CREATE VIEW vibescaling_api.schedule_delay WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.schedule_delay;

REVOKE ALL ON ALL TABLES IN SCHEMA vibescaling_api FROM PUBLIC;
REVOKE ALL ON vibescaling.dispatch_stats, vibescaling.dispatch_failures, vibescaling.posts_per_account_day,
              vibescaling.schedule_delay FROM PUBLIC;
-- vibescaling: bounded logs. dispatch_logs and webhook_events are
-- partitioned by week (UTC, Monday to Monday); maintain_logs, run hourly by
-- the vibescaling-logs pg_cron job, creates the coming weeks' partitions
-- and drops the partitions older than vibescaling.log_retention, after
-- moving into the default partition the few rows the extension still needs:
--   - the inits and upload chunks of posts that are not
--     posted (_earlier_init and _publish_progress_from_log read them to
--     keep a post from being sent twice);
--   - unsettled inits of unknown outcome, whatever the post's state;
-- and never anything newer than 7 days (the GUC's floor): the rate limiter
-- looks back a minute, the upload quota a day, webhook dedupe 72 hours.
-- Every step takes its locks with a short lock_timeout and commits on its
-- own, so dispatch waits for at most that long, and a step that cannot get
-- its lock is tried again at the next run.

-- The first instant (UTC) of the week that holds t.
CREATE FUNCTION vibescaling._log_week(t timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT date_trunc('week', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- The logs maintain_logs looks after: each partitioned table, its default
-- partition and the column it is partitioned by.
CREATE FUNCTION vibescaling._log_tables(OUT parent regclass, OUT default_partition regclass, OUT time_column text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('vibescaling.dispatch_logs'::regclass, 'vibescaling.dispatch_logs_default'::regclass, 'created_at'),
           ('vibescaling.webhook_events'::regclass, 'vibescaling.webhook_events_default'::regclass, 'received_at')
$$;

-- The partitions of a log (the default one aside) with their bounds; a
-- NULL lower bound is MINVALUE (the rows an upgrade from 0.1.1 found).
CREATE FUNCTION vibescaling._log_partition_bounds(parent regclass)
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

-- Raises unless the current role may create and drop the log's partitions
-- (it owns the log or is a member of its owner).
CREATE FUNCTION vibescaling._require_log_owner(parent regclass)
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

-- Creates the log's partition for the week that starts at week_start,
-- unless a partition already covers part of it: a table of the parent's
-- shape, owned by the parent's owner, filled with the rows of that week
-- the default partition holds, then attached (which locks the parent only
-- against other schema changes; the default partition is locked while it
-- is checked). False when it already existed, NULL when a lock was not
-- granted within vibescaling.log_lock_timeout (nothing was done).
CREATE FUNCTION vibescaling._create_log_partition(parent regclass, week_start timestamptz)
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

-- The rows of a dispatch_logs partition that the extension still needs
-- past the retention period (see the top of this file).
CREATE FUNCTION vibescaling._dispatch_logs_to_keep(partition regclass)
RETURNS TABLE (id bigint, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT l.id, l.created_at
          FROM %s l
          JOIN vibescaling.posts p ON p.id = l.post_id
         WHERE l.endpoint IN ('video_init', 'inbox_video_init', 'content_init', 'upload_chunk')
           AND (p.status <> 'posted'
                OR (l.outcome_unknown
                    AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init')
                    AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s
                                     WHERE s.post_id = l.post_id AND s.settled_through >= l.id)))
        $q$, partition);
END
$$;

-- Drops a partition of a log whose every row is older than the retention
-- period. The rows still needed are found first, without blocking anyone;
-- then, in one short step under lock_timeout, the partition is detached,
-- those rows go back in (to the default partition: no other covers their
-- time any more) and it is dropped, so that no reader ever misses them.
-- Returns the rows kept, or NULL when a lock was not granted within
-- vibescaling.log_lock_timeout (nothing was done).
CREATE FUNCTION vibescaling._drop_log_partition(parent regclass, partition regclass)
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

-- Deletes from a log's default partition the rows older than the retention
-- period that are no longer needed (the post was posted or deleted, the
-- unknown outcome settled). Returns how many.
CREATE FUNCTION vibescaling._prune_log_default(parent regclass)
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

-- vibescaling.log_retention as an interval.
CREATE FUNCTION vibescaling._log_retention()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT current_setting('vibescaling.log_retention')::interval
$$;

-- The weeks maintain_logs makes sure have a partition: this one, the next
-- vibescaling.log_weeks_ahead, and every week not past the retention
-- period that has rows waiting in the default partition.
CREATE FUNCTION vibescaling._log_weeks_needed(parent regclass)
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

-- The weeks, not past the retention period, of the rows in a default partition.
CREATE FUNCTION vibescaling._log_default_weeks(default_partition regclass, time_column text)
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

-- The steps of one maintain_logs run: for each log, create the partitions
-- of _log_weeks_needed (cheap when they exist), drop the partitions past
-- the retention period, prune the default partition.
CREATE FUNCTION vibescaling._maintain_logs_plan()
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

-- Runs the next step of a maintain_logs run (state: NULL at the start) in
-- the caller's transaction and returns the state for the next call, or
-- NULL when the run is over (after a NOTICE saying what it did). Steps of
-- concurrent runs take turns on an advisory lock. A step whose lock was
-- not granted (a long transaction on the log, such as a dispatcher's round,
-- holds it) goes to the end of the run, after a pause that holds no lock
-- (1 s, then doubling up to 15 s), at most max_attempts times in all; then
-- the next run tries again.
CREATE FUNCTION vibescaling._maintain_logs_step(state jsonb)
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

-- Creates the coming weeks' partitions of dispatch_logs and webhook_events
-- and drops those older than vibescaling.log_retention, keeping what the
-- extension still needs (see the top of this file). Each step commits on
-- its own and waits at most vibescaling.log_lock_timeout for its locks, so
-- it is called on its own (CALL, outside a transaction block). Run hourly
-- by the vibescaling-logs pg_cron job; safe to run at any time, also twice
-- at once. (A procedure that COMMITs cannot pin search_path with SET: as
-- dispatch_due_posts does, it pins it for each of its transactions and
-- calls only schema-qualified, pinned functions.)
CREATE PROCEDURE vibescaling.maintain_logs()
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
-- vibescaling: the data of the Analytics page (api/analytics/), for a
-- tenant and for an operator who sees every tenant.
--
-- A page over millions of log rows must answer in a fraction of a second,
-- so its charts read hourly rollups of the dispatch log and the posts
-- (tables of a few rows per tenant, endpoint and hour), kept by
-- roll_up_analytics() (pg_cron job vibescaling-analytics, every 5 minutes,
-- for the hours that ended 10 minutes ago or more: by then every call's
-- "in flight" row has its outcome). The hours after that are read from the
-- raw rows, through the log's BRIN index on created_at: the page is exact
-- to the second. Latencies and delays are kept as histograms with four
-- buckets per doubling, so a percentile is known to within 9 %.

-- What has been rolled up: every hour before rolled_until. No row until
-- the first roll-up (nothing rolled up): a row the install script wrote
-- would clash with the dumped one when pg_restore copies it back.
CREATE TABLE vibescaling.analytics_rollup_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_until  timestamptz NOT NULL DEFAULT '-infinity'
);
COMMENT ON TABLE vibescaling.analytics_rollup_state IS
    'The analytics rollups hold every hour before rolled_until (roll_up_analytics).';

-- Calls to TikTok per hour, tenant, endpoint, outcome and error code. The
-- tenant is the account's owner ('' for calls of no tenant's account);
-- owner '*' rows hold every tenant together, for operators.
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

-- Posts sent per account and UTC day (TikTok counts its caps per creator
-- and day): Direct Posts, inbox uploads, and refusals.
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

-- How late scheduled posts went out (posted_at - scheduled_at), per hour
-- of posting and tenant ('*' = all).
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

-- The inits of unknown outcome (sent, no answer read) of the rolled-up
-- hours, for vibescaling.unknown_outcomes: the log has no index on
-- outcome_unknown (replacing a call's "in flight" row stays a HOT update).
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

-- The schedule delay's rollup finds an hour's posts by posted_at.
CREATE INDEX posts_posted_at_idx ON vibescaling.posts (posted_at) WHERE posted_at IS NOT NULL;

-- Tenants read their own rows (the page's function filters by tenant
-- itself; these keep a direct read honest too).
ALTER TABLE vibescaling.analytics_calls_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.analytics_account_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.analytics_delay_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_calls_hourly ON vibescaling.analytics_calls_hourly
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE POLICY tenant_account_days ON vibescaling.analytics_account_days
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE POLICY tenant_delay_hourly ON vibescaling.analytics_delay_hourly
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));

-- The value a histogram bucket stands for: the geometric middle of
-- [2^(b/4) - 1, 2^((b+1)/4) - 1). The bucket of a value v >= 0 is
-- floor(4 * ln(v + 1) / ln 2), spelled inline where rows are bucketed (a
-- function call per row would cost more than the rest of the query).
CREATE FUNCTION vibescaling._hist_value(bucket integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT power(2, (bucket + 0.5) / 4.0) - 1
$$;

-- The q-quantile (0 < q < 1) of a histogram given as parallel arrays of
-- bucket numbers and counts (a bucket may appear more than once).
CREATE FUNCTION vibescaling._hist_quantile(buckets smallint[], counts bigint[], q double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT vibescaling._hist_value(min(h.b))
      FROM (SELECT b, sum(sum(n)) OVER (ORDER BY b) AS cum, sum(sum(n)) OVER () AS total
              FROM unnest(buckets, counts) AS u(b, n) GROUP BY b) h
     WHERE h.cum >= q * h.total
$$;

-- The calls rows of [p_from, p_to) from the raw log, as the rollup holds
-- them: per hour, tenant (and '*'), endpoint, outcome, error code.
-- These readers of the raw rows are plpgsql planned for each call's own
-- period (force_custom_plan): a generic plan cannot tell the last hour of
-- the log (a few BRIN ranges) from all of it.
CREATE FUNCTION vibescaling._analytics_calls_from_log(p_from timestamptz, p_to timestamptz)
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
               AND l.endpoint <> 'webhook'),
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

-- The account-day rows of [p_from, p_to) from the raw log: each accepted
-- init is a post sent (the post's mode says Direct Post or inbox); a
-- refused one is counted apart (an unknown outcome is neither).
CREATE FUNCTION vibescaling._analytics_account_days_from_log(p_from timestamptz, p_to timestamptz)
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

-- The delay rows of [p_from, p_to) from the posts: scheduled posts
-- published in it, per hour of posting and tenant (and '*').
CREATE FUNCTION vibescaling._analytics_delay_from_posts(p_from timestamptz, p_to timestamptz)
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

-- The inits of unknown outcome in the raw log (a query over it names its
-- hours, and the BRIN index on created_at finds them).
CREATE VIEW vibescaling._log_unknown_inits AS
    SELECT l.post_id, l.created_at, l.tiktok_account_id, l.endpoint, l.error_code, l.log_id
      FROM vibescaling.dispatch_logs l
     WHERE l.outcome_unknown AND l.post_id IS NOT NULL
       AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init');

-- Rolls up every hour that ended 10 minutes ago or more and is not rolled
-- up yet (all of the log's history on the first run); returns the new
-- rolled_until. One transaction; a concurrent run waits for this one.
CREATE FUNCTION vibescaling.roll_up_analytics()
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

-- Whose analytics the caller may see. Through PostgREST (the JWT's role
-- claim): a tenant (vibescaling_user) its own, the owner argument absent or
-- the same; an operator (vibescaling_operator) any tenant's, or '*' for all
-- of them. A session that is not PostgREST's (a DBA, an application role
-- granted vibescaling.analytics) is no tenant: any, or all. 42501 else.
CREATE FUNCTION vibescaling._analytics_scope(p_owner text)
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

-- Everything the Analytics page draws, for [p_from, p_to) and one tenant
-- (or every tenant: '*'), with days in time zone p_tz: see
-- vibescaling_api.analytics. The period starts at a whole hour (p_from is
-- taken down to its hour, as the rollups count whole hours); the posts per
-- account count whole UTC days.
-- JIT is off: over a large log the planner prices its queries above
-- jit_above_cost while they read a few thousand rows, and compiling them
-- cost 200 ms of a 240 ms call (10 million rows, test/bench/analytics.sh).
CREATE FUNCTION vibescaling.analytics(p_from timestamptz, p_to timestamptz, p_tz text DEFAULT 'UTC',
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
    RETURN v_result || vibescaling._analytics_now(v_scope)
                    || vibescaling._analytics_metrics(v_scope, p_from, p_to, p_tz);
END
$$;
COMMENT ON FUNCTION vibescaling.analytics(timestamptz, timestamptz, text, text) IS
    'The Analytics page''s charts for a period, one tenant or all (*): calls, failures, latency, caps, delays, current state.';

-- Posts whose latest init has an unknown outcome (sent, no answer read)
-- and that nothing settled since (vibescaling.settlements): each waits for
-- settle_unknown_outcomes, or an operator's settle_post. The
-- inits come from the rolled-up hours (analytics_unknown_inits) and the raw
-- rows after them; a call still under way (in flight for less than 10
-- minutes, its backend alive) is not unknown yet.
CREATE VIEW vibescaling.unknown_outcomes AS
    SELECT u.post_id, u.tiktok_account_id, u.endpoint, u.created_at, u.error_code, u.log_id, p.caption, p.status
      FROM (SELECT * FROM vibescaling.analytics_unknown_inits
            UNION ALL
            SELECT * FROM vibescaling._log_unknown_inits l
             WHERE l.created_at >= coalesce((SELECT s.rolled_until FROM vibescaling.analytics_rollup_state s), '-infinity')) u
      JOIN vibescaling.posts p ON p.id = u.post_id
     WHERE p.status <> 'posted'
       -- A call "in flight" may still be under way, for 10 minutes at most,
       -- and only while the backend that made it lives.
       AND NOT (u.error_code = 'in_flight' AND u.created_at > now() - interval '10 minutes'
                AND EXISTS (SELECT 1 FROM vibescaling.dispatch_logs l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.backend_pid
                             WHERE l.post_id = u.post_id AND l.created_at = u.created_at AND l.error_code = 'in_flight'))
       AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s
                        WHERE s.post_id = u.post_id AND s.created_at >= u.created_at)
       AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs s
                        WHERE s.post_id = u.post_id AND s.created_at > u.created_at
                          AND s.endpoint = u.endpoint AND NOT s.outcome_unknown);
COMMENT ON VIEW vibescaling.unknown_outcomes IS
    'Posts whose latest init has an unknown outcome and no settlement yet (settle_unknown_outcomes, settle_post).';

-- The page's "now": posts scheduled in the next 24 hours, publishes TikTok
-- is still processing, publishes of the last 30 days TikTok never
-- confirmed (unconfirmed), accounts that need the creator to authorise
-- again, and (for every tenant only, i.e. operators) the posts whose init
-- has an unknown outcome and wait for a settlement.
CREATE FUNCTION vibescaling._analytics_now(p_scope text)
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
        'unknown_outcomes', CASE WHEN p_scope = '*' THEN coalesce((SELECT jsonb_agg(jsonb_build_object(
                'post_id', u.post_id, 'tiktok_account_id', u.tiktok_account_id, 'endpoint', u.endpoint,
                'sent_at', u.created_at, 'error_code', u.error_code, 'caption', left(u.caption, 80))
                ORDER BY u.created_at)
              FROM vibescaling.unknown_outcomes u), '[]') END)
$$;

-- GET /rpc/analytics?from=&to=&tz=[&owner=]: the Analytics page's charts
-- and current state for the caller's tenant (an operator: every tenant, or
-- one with owner). SECURITY DEFINER like every API function: it reads the
-- rollups and checks the tenant itself (_analytics_scope). STABLE so that
-- PostgREST serves it on GET.
CREATE FUNCTION vibescaling_api.analytics("from" timestamptz DEFAULT NULL, "to" timestamptz DEFAULT NULL,
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

-- POST /rpc/settle_post {"post_id", "on_tiktok", "publish_id"}: an
-- operator's decision on a post of unknown outcome (vibescaling.settle_post).
-- Operators only (JWT role vibescaling_operator; setup_api_roles grants it
-- to no other role).
CREATE FUNCTION vibescaling_api.settle_post(post_id uuid DEFAULT NULL, on_tiktok boolean DEFAULT NULL,
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

REVOKE ALL ON vibescaling.analytics_rollup_state, vibescaling.analytics_calls_hourly,
              vibescaling.analytics_account_days, vibescaling.analytics_delay_hourly, vibescaling.analytics_unknown_inits,
              vibescaling._log_unknown_inits, vibescaling.unknown_outcomes FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._hist_value(integer), vibescaling._hist_quantile(smallint[], bigint[], double precision),
                       vibescaling._analytics_calls_from_log(timestamptz, timestamptz),
                       vibescaling._analytics_account_days_from_log(timestamptz, timestamptz),
                       vibescaling._analytics_delay_from_posts(timestamptz, timestamptz),
                       vibescaling.roll_up_analytics(), vibescaling._analytics_scope(text),
                       vibescaling.analytics(timestamptz, timestamptz, text, text), vibescaling._analytics_now(text),
                       vibescaling_api.analytics(timestamptz, timestamptz, text, text),
                       vibescaling_api.settle_post(uuid, boolean, text) FROM PUBLIC;

-- The rollups' data is the extension's: pg_dump keeps it.
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_rollup_state', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_calls_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_account_days', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_delay_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.analytics_unknown_inits', '');
-- vibescaling: media checks. A video or photo is looked at with Debian's
-- FFmpeg libraries before TikTok sees it, so that what TikTok would refuse
-- after the upload (its fail_reason file_format_check_failed,
-- duration_check_failed, frame_rate_check_failed, picture_size_check_failed)
-- is refused before anything is sent. The limits live in the C++ core
-- (src/core/media_verdict.hpp), never in SQL.

-- The facts of a video or photo (C, src/pg/media_check.cpp). source is
-- {"url"} | {"large_object"} | {"media_id"}, as _video_source returns it;
-- kind is 'video' or 'photo'. The source is read in windows (range requests
-- for a URL, under the source address rules and
-- vibescaling.source_allowed_networks), at most 16 reads and 32 MiB:
--   {"status": "readable" | "unreadable" | "incomplete", "message": why not
--    readable or null, "container": "mp4" | "mov" | "webm" | "matroska" |
--    "jpeg" | "webp" | "png" | another format's name | null, "video_codec":
--    "h264" | "hevc" | "vp8" | "vp9" | ... | null, "duration_ms", "fps",
--    "width", "height" (null when unknown; duration and fps for videos only),
--    "size_bytes", "bytes_read"}
-- A file that is no media, or damaged, is "unreadable", not an error; a
-- source that cannot be read raises as _describe_video does.
CREATE FUNCTION vibescaling._media_facts(source jsonb, kind text)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_sql_media_facts'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling._media_facts(jsonb, text) FROM PUBLIC;

-- The first of TikTok's limits the facts (as _media_facts returns them)
-- break: code is TikTok's fail_reason (or size_check_failed, ours, for a
-- file over 4 GiB / a photo over 20 MiB) and message says it in words;
-- both NULL when the media passes. kind is 'video' or 'photo'. A NULL
-- max_duration_sec (creator_info's max_video_post_duration_sec not known)
-- skips the duration check. The rules, in order: size, format (readable;
-- video MP4, MOV or WebM with H.264, H.265, VP8 or VP9; photo JPEG or
-- WebP), picture size (video 360 to 4096 px each side; photo at most 1080p:
-- short side <= 1080 px and long side <= 1920 px), frame rate (video 23 to
-- 60 fps), duration (video, at most max_duration_sec).
CREATE FUNCTION vibescaling._media_verdict(facts jsonb, kind text, max_duration_sec integer,
                                           OUT code text, OUT message text)
RETURNS record
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_sql_media_verdict'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
REVOKE ALL ON FUNCTION vibescaling._media_verdict(jsonb, text, integer) FROM PUBLIC;

-- Refuses a post whose media TikTok would refuse after the upload, before
-- anything is sent (22023, the reason in words, DETAIL fail_reason=<code>):
-- a video the extension uploads (large object, bytea, downloaded URL)
-- always; a video or photos TikTok pulls itself only when
-- vibescaling.probe_pull_urls is on (the probe downloads parts of them:
-- range requests, under the source address rules). max_duration_sec is
-- creator_info's max_video_post_duration_sec, NULL when not known (no
-- duration check). Media whose probe ran out of its budget
-- ("incomplete") pass: TikTok decides. Nothing is checked while
-- vibescaling.media_checks is off.
CREATE FUNCTION vibescaling._check_media(p vibescaling.posts, max_duration_sec integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sources jsonb[];
    v_kind    text := p.media_type;
    v_facts   jsonb;
    v_verdict record;
    v_what    text;
BEGIN
    IF NOT current_setting('vibescaling.media_checks')::boolean THEN
        RETURN;
    END IF;
    IF p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload' THEN
        v_sources := ARRAY[vibescaling._video_source(p)];
    ELSIF current_setting('vibescaling.probe_pull_urls')::boolean THEN
        v_sources := CASE WHEN p.media_type = 'photo'
                          THEN ARRAY(SELECT jsonb_build_object('url', u) FROM unnest(p.photo_urls) u)
                          ELSE ARRAY[jsonb_build_object('url', p.video_url)] END;
    ELSE
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(v_sources), 0) LOOP
        v_facts := vibescaling._media_facts(v_sources[i], v_kind);
        CONTINUE WHEN v_facts->>'status' = 'incomplete';
        v_verdict := vibescaling._media_verdict(v_facts, v_kind, max_duration_sec);
        IF v_verdict.code IS NOT NULL THEN
            v_what := CASE WHEN v_kind = 'photo' THEN format('photo %s of post %s', i, p.id)
                           ELSE format('the video of post %s', p.id) END;
            RAISE EXCEPTION 'TikTok would refuse %: %', v_what, v_verdict.message
                USING ERRCODE = '22023',
                      DETAIL = format('fail_reason=%s container=%s codec=%s size=%sx%s fps=%s duration_ms=%s bytes=%s',
                                      v_verdict.code, coalesce(v_facts->>'container', '?'),
                                      coalesce(v_facts->>'video_codec', '-'), coalesce(v_facts->>'width', '?'),
                                      coalesce(v_facts->>'height', '?'), coalesce(v_facts->>'fps', '-'),
                                      coalesce(v_facts->>'duration_ms', '-'), coalesce(v_facts->>'size_bytes', '?')),
                      HINT = CASE v_verdict.code
                                 WHEN 'file_format_check_failed' THEN 'TikTok takes MP4, MOV or WebM with H.264, H.265, VP8 or VP9 video; photos in JPEG or WebP.'
                                 WHEN 'frame_rate_check_failed' THEN 'Re-encode the video at 23 to 60 frames a second.'
                                 WHEN 'picture_size_check_failed' THEN 'Videos need 360 to 4096 pixels a side; photos at most 1080p.'
                                 WHEN 'duration_check_failed' THEN 'Cut the video to the creator''s longest allowed duration (creator_info).'
                                 ELSE 'Videos are at most 4 GB, photos at most 20 MB.' END;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._check_media(vibescaling.posts, integer) FROM PUBLIC;
-- vibescaling: posts whose init had an unknown outcome settle themselves.
--
-- An init sent without an answer read (a timeout after sending, a dropped
-- connection, a server stop) may or may not have made a post on TikTok,
-- and TikTok has no idempotency key: sending it again could post twice.
-- settle_unknown_outcomes() (pg_cron job vibescaling-settle, every 5
-- minutes, see enable_scheduler) looks for each such post
-- (vibescaling.unknown_outcomes) in TikTok's own signals, within a day of
-- its init (_evidence_window):
--   1. the creator's recent videos (Display API video/list, scope
--      video.list; public posts only): one whose caption is the post's and
--      whose create time follows the init is the post;
--   2. webhooks that name a publish_id no publish record has, for the
--      post's account (user_openid), received after the init: when the
--      account has one such init and one such publish_id, that is the post;
--      as many of each: all are on TikTok, paired in time order; a
--      publicly_available event's post_id ties a publish_id to a video
--      found in step 1;
--   3. a publish_id learned that way is asked about (status/fetch with the
--      account's token: another app's or another account's publish is
--      refused), and its record follows TikTok's status from then on.
-- A post found is settled as posted, with the evidence in
-- vibescaling.settlements. One of which TikTok showed no sign within
-- vibescaling.unknown_outcome_quiet_period is settled as not on TikTok,
-- and vibescaling.unknown_outcome_policy says what follows: hold (it fails,
-- a person publishes it again) or retry_after_quiet_period (a scheduled
-- post goes back on the queue). Evidence that cannot be told apart (two
-- posts of one account with the same caption; an account with more lost
-- inits than unexplained publishes, or fewer) settles nothing: those wait
-- for an operator's settle_post.

-- A caption as TikTok shows it back, for comparison: trimmed, runs of
-- white space as one space, and its first 150 characters (the Display
-- API's title and video_description are cut there).
CREATE FUNCTION vibescaling._caption_key(caption text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(btrim(left(regexp_replace(btrim(coalesce(caption, '')), '\s+', ' ', 'g'), 150)), '')
$$;

-- The account's videos TikTok lists (video/list, newest first) created at
-- or after since: up to three pages of 20. NULL when the account did not
-- grant video.list (its scopes say so, or TikTok does); raises (the call's error) when TikTok refused or could
-- not be reached, so that absence is never concluded from a failed look.
-- Each row: id (text: 19 digits), create_time, caption key.
CREATE FUNCTION vibescaling._listed_videos(p_account_id uuid, p_post_id uuid, p_since timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes text[] := (SELECT a.scopes FROM vibescaling.tiktok_accounts a WHERE a.id = p_account_id);
    v_call   vibescaling._call_result;
    v_cursor bigint;
    v_videos jsonb := '[]';
    v_page   jsonb;
BEGIN
    -- Unknown scopes (an account added with a token alone): ask all the same.
    IF NOT coalesce('video.list' = ANY (v_scopes), true) THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. 3 LOOP
        v_call := vibescaling._tiktok_call('video_list', p_account_id, p_post_id, 'settle',
                                           jsonb_strip_nulls(jsonb_build_object('max_count', 20, 'cursor', v_cursor)));
        IF NOT v_call.ok AND v_call.error_code = 'scope_not_authorized' AND v_scopes IS NULL THEN
            RETURN NULL;     -- the account's scopes were unknown: now we know
        ELSIF NOT v_call.ok THEN
            PERFORM vibescaling._raise_tiktok_error(v_call, 'video_list');
        END IF;
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', v->>'id',
                   'create_time', to_timestamp((v->>'create_time')::bigint),
                   'caption', vibescaling._caption_key(coalesce(nullif(v->>'title', ''), v->>'video_description')))), '[]')
          INTO v_page
          FROM jsonb_array_elements(coalesce(v_call.data->'videos', '[]')) v
         WHERE v->>'id' ~ '^[0-9]{1,19}$' AND v->>'create_time' ~ '^[0-9]{1,12}$';
        v_videos := v_videos || v_page;
        EXIT WHEN NOT coalesce((v_call.data->>'has_more')::boolean, false)
               OR NOT (v_call.data->>'cursor' ~ '^[0-9]{1,19}$')
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_page) v
                           WHERE (v->>'create_time')::timestamptz < p_since);
        v_cursor := (v_call.data->>'cursor')::bigint;
    END LOOP;
    RETURN (SELECT coalesce(jsonb_agg(v), '[]') FROM jsonb_array_elements(v_videos) v
             WHERE (v->>'create_time')::timestamptz >= p_since);
END
$$;

-- What TikTok's webhooks say of publishes no publish record has, for an
-- account, received since p_since: one row per publish_id with when it was
-- first heard of (TikTok's create_time), its events, and the public post
-- id a publicly_available event gave. publish_ids that an init logged for
-- the account since then (a publish whose transaction was lost, which
-- _earlier_init reconciles) or a settlement took are left out.
CREATE FUNCTION vibescaling._unexplained_publishes(p_account_id uuid, p_since timestamptz)
RETURNS TABLE (publish_id text, first_seen timestamptz, events text[], public_post_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_open_id text := (SELECT a.open_id FROM vibescaling.tiktok_accounts a WHERE a.id = p_account_id);
BEGIN
    RETURN QUERY
        SELECT e.publish_id, min(coalesce(e.create_time, e.received_at)),
               array_agg(DISTINCT e.event ORDER BY e.event),
               max((e.content->>'post_id')::bigint) FILTER (WHERE e.event = 'post.publish.publicly_available'
                                                             AND e.content->>'post_id' ~ '^[0-9]{1,19}$')
          FROM vibescaling.webhook_events e
         WHERE e.received_at >= p_since
           AND e.user_openid = v_open_id
           AND e.publish_id IS NOT NULL
           AND e.event LIKE 'post.publish.%'
           AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records r WHERE r.publish_id = e.publish_id)
           AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s WHERE s.publish_id = e.publish_id)
           AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs l
                            WHERE l.tiktok_account_id = p_account_id AND l.created_at >= p_since - interval '1 hour'
                              AND l.publish_id = e.publish_id
                              AND l.endpoint IN ('video_init', 'inbox_video_init', 'content_init'))
         GROUP BY e.publish_id;
END
$$;

-- Asks TikTok about a publish_id learned from a webhook, with the
-- account's token: its status/fetch data, or NULL when TikTok says it is
-- not this account's (invalid_publish_id,
-- token_not_authorized_for_specified_publish_id). Raises when TikTok could
-- not answer.
CREATE FUNCTION vibescaling._confirm_publish(p_account_id uuid, p_post_id uuid, p_publish_id text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call vibescaling._call_result := vibescaling._tiktok_call('status_fetch', p_account_id, p_post_id, 'settle',
                                                                 jsonb_build_object('publish_id', p_publish_id));
BEGIN
    IF v_call.ok THEN
        RETURN v_call.data;
    END IF;
    IF v_call.error_code IN ('invalid_publish_id', 'token_not_authorized_for_specified_publish_id') THEN
        RETURN NULL;
    END IF;
    PERFORM vibescaling._raise_tiktok_error(v_call, 'status_fetch');
    RETURN NULL;
END
$$;

-- How long after an init TikTok's signs of it may come: processing,
-- moderation ("a few hours" at most, TikTok says) and webhook retries. A
-- video or publish first seen later is not this init's.
CREATE FUNCTION vibescaling._evidence_window()
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT interval '1 day' $$;

-- Settles one post of unknown outcome (u: its vibescaling.unknown_outcomes
-- row; the post's row locked by the caller) from what TikTok shows:
-- videos (_listed_videos' answer for its account, NULL without video.list)
-- and publishes (_unexplained_publishes' rows as jsonb) of its account,
-- and siblings, how many unsettled inits of unknown outcome the account
-- has in the same window, and rank, this one's place among them (by
-- time). Returns how it was settled: 'video_list', 'webhook',
-- 'quiet_period', 'ambiguous' (evidence that cannot be told apart: an
-- operator decides) or NULL (nothing yet: it waits).
CREATE FUNCTION vibescaling._settle_from_evidence(p vibescaling.posts, u vibescaling.unknown_outcomes, videos jsonb,
                                                  publishes jsonb, siblings integer, rank integer, quiet interval,
                                                  requeue boolean)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key        text := vibescaling._caption_key(coalesce(p.caption, p.title));
    v_window_end timestamptz := u.created_at + vibescaling._evidence_window();
    v_matches    jsonb;
    v_video      jsonb;
    v_publish    jsonb;
    v_unclaimed  jsonb;
    v_status     jsonb;
    v_publish_id text;
    v_paired     boolean := false;
    v_video_id   bigint;
    v_settled    text;
    r            vibescaling.publish_records;
BEGIN
    -- TikTok's clock and ours may differ a little: a minute's slack before the init.
    IF videos IS NOT NULL AND v_key IS NOT NULL THEN
        SELECT coalesce(jsonb_agg(v), '[]') INTO v_matches
          FROM jsonb_array_elements(videos) v
         WHERE v->>'caption' = v_key
           AND (v->>'create_time')::timestamptz BETWEEN u.created_at - interval '1 minute' AND v_window_end
           AND NOT EXISTS (SELECT 1 FROM vibescaling.publish_records k
                            WHERE k.tiktok_account_id = p.tiktok_account_id
                              AND (v->>'id')::bigint = ANY (k.public_post_ids))
           AND NOT EXISTS (SELECT 1 FROM vibescaling.settlements s WHERE s.public_post_id = (v->>'id')::bigint);
        IF jsonb_array_length(v_matches) > 1 THEN
            RETURN 'ambiguous';
        ELSIF jsonb_array_length(v_matches) = 1 THEN
            v_video := v_matches->0;
            v_video_id := (v_video->>'id')::bigint;
            -- A webhook may name the publish behind the video.
            SELECT x INTO v_publish FROM jsonb_array_elements(publishes) x
             WHERE (x->>'public_post_id')::bigint = v_video_id;
            -- Else TikTok's status of each unexplained publish of the window
            -- may: one whose public post is this video is its publish, so
            -- that it explains nothing else (another lost init of the account
            -- must not be paired with it).
            IF v_publish IS NULL THEN
                SELECT x INTO v_publish FROM jsonb_array_elements(publishes) x
                 WHERE (x->>'first_seen')::timestamptz BETWEEN u.created_at - interval '1 minute' AND v_window_end
                   AND v_video->>'id' IN (SELECT jsonb_array_elements_text(
                                              vibescaling._confirm_publish(p.tiktok_account_id, p.id, x->>'publish_id')
                                              -> 'publicaly_available_post_id'))
                 LIMIT 1;
            END IF;
        END IF;
    END IF;

    IF v_video IS NULL THEN
        -- Without a video, a webhook's publish_id names the post when it is
        -- the one unexplained publish after the account's one such init.
        -- When the account has as many unexplained publishes as lost inits,
        -- every one of those posts is on TikTok: they are paired in time
        -- order (TikTok finishes them in the order they came, unless their
        -- sizes differ much), which the evidence says (paired_by_order).
        -- Fewer or more: which post is missing cannot be told.
        SELECT coalesce(jsonb_agg(x ORDER BY (x->>'first_seen')::timestamptz, x->>'publish_id'), '[]') INTO v_unclaimed
          FROM jsonb_array_elements(publishes) x
         WHERE (x->>'first_seen')::timestamptz BETWEEN u.created_at - interval '1 minute' AND v_window_end;
        IF jsonb_array_length(v_unclaimed) = 1 AND siblings = 1 THEN
            v_publish := v_unclaimed->0;
        ELSIF jsonb_array_length(v_unclaimed) = siblings AND siblings > 1 THEN
            v_publish := v_unclaimed->(rank - 1);
            v_paired := true;
        ELSIF jsonb_array_length(v_unclaimed) > 0 THEN
            RETURN 'ambiguous';
        END IF;
    END IF;

    IF v_publish IS NOT NULL THEN
        v_publish_id := v_publish->>'publish_id';
        v_status := vibescaling._confirm_publish(p.tiktok_account_id, p.id, v_publish_id);
        -- A publish whose public post another record of the account holds
        -- (a post found in the video list) is that post's: no evidence here.
        IF v_video IS NULL AND EXISTS (SELECT 1 FROM vibescaling.publish_records k,
                                              jsonb_array_elements_text(v_status->'publicaly_available_post_id') x
                                        WHERE k.tiktok_account_id = p.tiktok_account_id
                                          AND x ~ '^[0-9]{1,19}$' AND x::bigint = ANY (k.public_post_ids)) THEN
            RETURN 'ambiguous';
        END IF;
        IF v_status IS NULL AND v_paired THEN
            RETURN 'ambiguous';       -- one of the publishes is not the account's: the pairing fails
        ELSIF v_status IS NULL THEN
            v_publish_id := NULL;     -- not this account's: the webhook's publish is no evidence
        END IF;
    END IF;

    IF v_publish_id IS NOT NULL THEN
        PERFORM vibescaling._settle(p, true, v_publish_id, v_video_id,
                                    CASE WHEN v_video IS NOT NULL THEN 'video_list' ELSE 'webhook' END,
                                    jsonb_strip_nulls(jsonb_build_object(
                                        'init_at', u.created_at, 'video', v_video, 'webhook', v_publish,
                                        'status', v_status, 'paired_by_order', CASE WHEN v_paired THEN siblings END)),
                                    false);
        -- From now on the record follows TikTok's status, FAILED included.
        SELECT * INTO r FROM vibescaling.publish_records pr WHERE pr.publish_id = v_publish_id;
        PERFORM vibescaling._apply_status_reply(r, v_status);
        RETURN CASE WHEN v_video IS NOT NULL THEN 'video_list' ELSE 'webhook' END;
    ELSIF v_video IS NOT NULL THEN
        PERFORM vibescaling._settle(p, true, NULL, v_video_id, 'video_list',
                                    jsonb_build_object('init_at', u.created_at, 'video', v_video), false);
        RETURN 'video_list';
    END IF;

    -- No sign of it. After the quiet period that is the answer.
    IF now() >= u.created_at + quiet THEN
        PERFORM vibescaling._settle(p, false, NULL, NULL, 'quiet_period',
                                    jsonb_build_object('init_at', u.created_at, 'quiet_period', quiet,
                                                       'video_list', CASE WHEN videos IS NULL THEN 'not granted'
                                                                          ELSE 'no video with this caption' END,
                                                       'webhooks', 'no unexplained publish for the account'),
                                    requeue);
        RETURN 'quiet_period';
    END IF;
    RETURN NULL;
END
$$;

-- Settles the posts whose init had an unknown outcome from TikTok's
-- signals (see the top of this file): up to max_posts of them, oldest
-- init first, each post locked with SKIP LOCKED. quiet_period NULL:
-- vibescaling.unknown_outcome_quiet_period. An account whose look-ups fail
-- (TikTok unreachable, a refusal) is left for the next run. Returns
-- {"examined", "video_list", "webhook", "quiet_period", "requeued",
--  "ambiguous", "waiting", "errors"}: posts settled by each signal, those
-- put back on the queue, those left to an operator, those still within
-- their quiet period, and accounts whose look-ups failed.
CREATE FUNCTION vibescaling.settle_unknown_outcomes(max_posts integer DEFAULT 100, quiet_period interval DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_quiet    interval := coalesce(quiet_period, current_setting('vibescaling.unknown_outcome_quiet_period')::interval);
    v_requeue  boolean := current_setting('vibescaling.unknown_outcome_policy') = 'retry_after_quiet_period';
    v_counts   jsonb := jsonb_build_object('examined', 0, 'video_list', 0, 'webhook', 0, 'quiet_period', 0,
                                           'requeued', 0, 'ambiguous', 0, 'waiting', 0, 'errors', 0);
    v_account  uuid;
    v_inits    vibescaling.unknown_outcomes[];
    v_since    timestamptz;
    v_videos   jsonb;
    v_publishes jsonb;
    u          vibescaling.unknown_outcomes;
    p          vibescaling.posts;
    v_result   text;
    v_message  text;
    v_settled  uuid[] := '{}';   -- the run's posts settled from evidence
    v_siblings integer;
    v_rank     integer;
BEGIN
    PERFORM vibescaling._require_primary();
    IF max_posts IS NULL OR max_posts < 1 THEN
        RAISE EXCEPTION 'max_posts must be 1 or more' USING ERRCODE = '22023';
    END IF;
    IF v_quiet <= interval '0' THEN
        RAISE EXCEPTION 'quiet_period must be a positive interval' USING ERRCODE = '22023';
    END IF;

    -- Account by account: one look at its videos and webhooks serves all its posts.
    FOR v_account, v_inits IN
        SELECT o.tiktok_account_id, array_agg(o ORDER BY o.created_at)
          FROM (SELECT * FROM vibescaling.unknown_outcomes o
                 WHERE o.tiktok_account_id IS NOT NULL
                 ORDER BY o.created_at LIMIT max_posts) o
         GROUP BY o.tiktok_account_id
    LOOP
        v_since := (v_inits[1]).created_at - interval '1 minute';
        BEGIN
            v_videos := vibescaling._listed_videos(v_account, (v_inits[1]).post_id, v_since);
            SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]') INTO v_publishes
              FROM vibescaling._unexplained_publishes(v_account, v_since) x;
            FOREACH u IN ARRAY v_inits LOOP
                SELECT * INTO p FROM vibescaling.posts t
                 WHERE t.id = u.post_id AND t.status <> 'posted'
                   FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                v_counts := jsonb_set(v_counts, '{examined}', to_jsonb((v_counts->>'examined')::integer + 1));
                SELECT count(*)::integer, count(*) FILTER (WHERE s.created_at <= u.created_at)::integer
                  INTO v_siblings, v_rank
                  FROM unnest(v_inits) s
                 WHERE s.created_at BETWEEN u.created_at - vibescaling._evidence_window()
                                        AND u.created_at + vibescaling._evidence_window()
                   AND NOT (s.post_id = ANY (v_settled));
                v_result := vibescaling._settle_from_evidence(p, u, v_videos, v_publishes, v_siblings, v_rank,
                                                              v_quiet, v_requeue);
                v_result := coalesce(v_result, 'waiting');
                v_counts := jsonb_set(v_counts, ARRAY[v_result], to_jsonb((v_counts->>v_result)::integer + 1));
                IF v_result = 'quiet_period' AND v_requeue AND p.status = 'publishing' AND p.scheduled_at IS NOT NULL THEN
                    v_counts := jsonb_set(v_counts, '{requeued}', to_jsonb((v_counts->>'requeued')::integer + 1));
                END IF;
                -- A publish settled here explains nothing else.
                IF v_result IN ('video_list', 'webhook') THEN
                    v_settled := v_settled || p.id;
                    SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]') INTO v_publishes
                      FROM vibescaling._unexplained_publishes(v_account, v_since) x;
                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            -- TikTok refused or could not be reached: nothing of this
            -- account is concluded; its calls' dispatch_logs rows stay.
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
            RAISE LOG 'vibescaling: settling unknown outcomes of account % failed: %', v_account, v_message;
            v_counts := jsonb_set(v_counts, '{errors}', to_jsonb((v_counts->>'errors')::integer + 1));
        END;
    END LOOP;
    RETURN v_counts;
END
$$;
COMMENT ON FUNCTION vibescaling.settle_unknown_outcomes(integer, interval) IS
    'Settles posts whose init had an unknown outcome from TikTok''s signals (video list, webhooks, status) or their absence after the quiet period; {"examined","video_list","webhook","quiet_period","requeued","ambiguous","waiting","errors"}.';

REVOKE ALL ON FUNCTION vibescaling._caption_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._evidence_window() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._listed_videos(uuid, uuid, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._unexplained_publishes(uuid, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._confirm_publish(uuid, uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._settle_from_evidence(vibescaling.posts, vibescaling.unknown_outcomes, jsonb, jsonb,
                                                         integer, integer, interval, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.settle_unknown_outcomes(integer, interval) FROM PUBLIC;
-- vibescaling: what happens to a post after it is public. collect_metrics()
-- (pg_cron job vibescaling-metrics, every 15 minutes) takes snapshots of
-- each public post's views, likes, comments and shares through the Display
-- API (video/query, scope video.list, up to 20 videos a call, TikTok allows
-- 600 calls a minute per token), and of each account's follower counts
-- (user/info, scope user.info.stats), into tables that keep their history.
-- A post is followed while it is public (not taken down) and at most
-- vibescaling.metrics_follow_days after its publish, more often while it
-- is young (_metrics_interval). TikTok's cover URLs expire: none is asked
-- for or kept.

-- Snapshots of public posts' counts (one row per video per collection).
CREATE TABLE vibescaling.post_metrics (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    publish_record_id  bigint NOT NULL REFERENCES vibescaling.publish_records (id) ON DELETE CASCADE,
    post_id            uuid NOT NULL,
    tiktok_account_id  uuid NOT NULL,
    video_id           bigint NOT NULL,     -- TikTok's public post id (19 digits)
    view_count         bigint,
    like_count         bigint,
    comment_count      bigint,
    share_count        bigint,
    owner              text,                -- the post's tenant
    taken_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX post_metrics_record_idx ON vibescaling.post_metrics (publish_record_id, taken_at DESC);
CREATE INDEX post_metrics_owner_time_idx ON vibescaling.post_metrics (owner, taken_at);
COMMENT ON TABLE vibescaling.post_metrics IS
    'Snapshots of public posts'' views, likes, comments and shares (collect_metrics, Display API video/query).';

-- Snapshots of accounts' counts (one row per account per collection).
CREATE TABLE vibescaling.account_metrics (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tiktok_account_id  uuid NOT NULL REFERENCES vibescaling.tiktok_accounts (id) ON DELETE CASCADE,
    follower_count     bigint,
    following_count    bigint,
    likes_count        bigint,
    video_count        bigint,
    owner              text,                -- the account's tenant
    taken_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_metrics_account_idx ON vibescaling.account_metrics (tiktok_account_id, taken_at DESC);
CREATE INDEX account_metrics_owner_time_idx ON vibescaling.account_metrics (owner, taken_at);
COMMENT ON TABLE vibescaling.account_metrics IS
    'Snapshots of accounts'' follower, following, likes and video counts (collect_metrics, user/info with user.info.stats).';

ALTER TABLE vibescaling.post_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE vibescaling.account_metrics ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_post_metrics ON vibescaling.post_metrics
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
CREATE POLICY tenant_account_metrics ON vibescaling.account_metrics
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
SELECT pg_catalog.pg_extension_config_dump('vibescaling.post_metrics', '');
SELECT pg_catalog.pg_extension_config_dump('vibescaling.account_metrics', '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.post_metrics', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.account_metrics', 'id'), '');

-- Each public post's latest snapshot.
CREATE VIEW vibescaling.post_metrics_latest WITH (security_invoker = true) AS
    SELECT DISTINCT ON (m.publish_record_id)
           m.post_id, m.tiktok_account_id, m.video_id::text AS video_id, m.view_count, m.like_count,
           m.comment_count, m.share_count, m.taken_at, r.public_at, r.taken_down_at
      FROM vibescaling.post_metrics m
      JOIN vibescaling.publish_records r ON r.id = m.publish_record_id
     ORDER BY m.publish_record_id, m.taken_at DESC;
COMMENT ON VIEW vibescaling.post_metrics_latest IS
    'Each public post''s latest views, likes, comments and shares (video_id as text: 19 digits).';

-- Each account's latest snapshot.
CREATE VIEW vibescaling.account_metrics_latest WITH (security_invoker = true) AS
    SELECT DISTINCT ON (m.tiktok_account_id)
           m.tiktok_account_id, m.follower_count, m.following_count, m.likes_count, m.video_count, m.taken_at
      FROM vibescaling.account_metrics m
     ORDER BY m.tiktok_account_id, m.taken_at DESC;
COMMENT ON VIEW vibescaling.account_metrics_latest IS 'Each account''s latest follower, following, likes and video counts.';

-- The same for tenants, through PostgREST (row level security shows each
-- its own; setup_api_roles grants them).
CREATE VIEW vibescaling_api.post_metrics WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.post_metrics_latest;
CREATE VIEW vibescaling_api.account_metrics WITH (security_invoker = true) AS
    SELECT * FROM vibescaling.account_metrics_latest;

-- How long after its last snapshot a post is due again, by the age of its
-- publish: counts move fast at first, then settle.
CREATE FUNCTION vibescaling._metrics_interval(age interval)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN age < interval '2 days'  THEN interval '1 hour'
                WHEN age < interval '14 days' THEN interval '6 hours'
                ELSE interval '1 day' END
$$;

-- The snapshots due now, as calls for _tiktok_call_many: up to max_calls
-- of them, the least recently taken first. video_query calls take up to
-- 20 of an account's public videos (Direct Posts; active accounts that
-- granted video.list; public, not taken down, published within
-- follow_days); user_stats calls one account each (user.info.stats, last
-- snapshot an hour old or more).
CREATE FUNCTION vibescaling._metrics_calls_due(max_calls integer, follow_days integer)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        WITH due_posts AS (
            SELECT r.tiktok_account_id, r.public_post_ids[cardinality(r.public_post_ids)] AS video_id, m.last_at
              FROM vibescaling.publish_records r
              JOIN vibescaling.tiktok_accounts a ON a.id = r.tiktok_account_id
              LEFT JOIN LATERAL (SELECT max(pm.taken_at) AS last_at FROM vibescaling.post_metrics pm
                                  WHERE pm.publish_record_id = r.id) m ON true
             WHERE r.status = 'published' AND cardinality(r.public_post_ids) > 0
               AND r.endpoint = 'video_init'   -- the Display API counts videos, not photo posts
               AND (r.taken_down_at IS NULL OR r.public_at > r.taken_down_at)
               AND r.created_at > now() - make_interval(days => follow_days)
               AND a.status = 'active' AND 'video.list' = ANY (a.scopes)
               AND (m.last_at IS NULL OR m.last_at + vibescaling._metrics_interval(now() - r.created_at) <= now())),
        post_calls AS (
            SELECT d.tiktok_account_id, min(coalesce(d.last_at, '-infinity')) AS oldest,
                   jsonb_build_object('endpoint', 'video_query', 'tiktok_account_id', d.tiktok_account_id,
                                      'trigger', 'metrics',
                                      'options', jsonb_build_object('video_ids', jsonb_agg(d.video_id::text))) AS call
              FROM (SELECT dp.*, (row_number() OVER (PARTITION BY dp.tiktok_account_id
                                                     ORDER BY dp.last_at NULLS FIRST, dp.video_id) - 1) / 20 AS batch
                      FROM due_posts dp) d
             GROUP BY d.tiktok_account_id, d.batch),
        account_calls AS (
            SELECT a.id, coalesce(m.last_at, '-infinity') AS oldest,
                   jsonb_build_object('endpoint', 'user_stats', 'tiktok_account_id', a.id, 'trigger', 'metrics') AS call
              FROM vibescaling.tiktok_accounts a
              LEFT JOIN LATERAL (SELECT max(am.taken_at) AS last_at FROM vibescaling.account_metrics am
                                  WHERE am.tiktok_account_id = a.id) m ON true
             WHERE a.status = 'active' AND 'user.info.stats' = ANY (a.scopes)
               AND (m.last_at IS NULL OR m.last_at <= now() - interval '1 hour'))
        SELECT coalesce(jsonb_agg(c.call ORDER BY c.oldest), '[]')
          FROM (SELECT * FROM (SELECT oldest, call FROM post_calls
                               UNION ALL
                               SELECT oldest, call FROM account_calls) x
                 ORDER BY x.oldest LIMIT max_calls) c);
END
$$;

-- Takes the snapshots that are due (_metrics_calls_due), all calls at once
-- (_tiktok_call_many: at most vibescaling.max_concurrent_requests in
-- flight). A refused or failed call is counted and its posts are due again
-- at the next run. Returns {"calls", "post_snapshots", "account_snapshots",
-- "errors"}.
CREATE FUNCTION vibescaling.collect_metrics(max_calls integer DEFAULT 200)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_follow   integer := current_setting('vibescaling.metrics_follow_days')::integer;
    v_calls    jsonb;
    v_results  vibescaling._call_result[];
    v_call     vibescaling._call_result;
    v_request  jsonb;
    v_posts    integer := 0;
    v_accounts integer := 0;
    v_errors   integer := 0;
    v_n        integer;
BEGIN
    PERFORM vibescaling._require_primary();
    IF max_calls IS NULL OR max_calls < 1 THEN
        RAISE EXCEPTION 'max_calls must be 1 or more' USING ERRCODE = '22023';
    END IF;
    v_calls := vibescaling._metrics_calls_due(max_calls, v_follow);
    IF jsonb_array_length(v_calls) = 0 THEN
        RETURN jsonb_build_object('calls', 0, 'post_snapshots', 0, 'account_snapshots', 0, 'errors', 0);
    END IF;
    v_results := vibescaling._tiktok_call_many(v_calls);
    FOR i IN 1 .. cardinality(v_results) LOOP
        v_call := v_results[i];
        v_request := v_calls->(i - 1);
        IF NOT coalesce(v_call.ok, false) THEN
            v_errors := v_errors + 1;
            CONTINUE;
        END IF;
        IF v_request->>'endpoint' = 'video_query' THEN
            -- Only the videos asked for, each matched to its publish record.
            INSERT INTO vibescaling.post_metrics (publish_record_id, post_id, tiktok_account_id, video_id, view_count,
                                                  like_count, comment_count, share_count, owner)
            SELECT r.id, r.post_id, r.tiktok_account_id, (v->>'id')::bigint,
                   (v->>'view_count')::bigint, (v->>'like_count')::bigint,
                   (v->>'comment_count')::bigint, (v->>'share_count')::bigint, p.owner
              FROM jsonb_array_elements(coalesce(v_call.data->'videos', '[]')) v
              JOIN vibescaling.publish_records r
                ON r.tiktok_account_id = (v_request->>'tiktok_account_id')::uuid
               AND (v->>'id') ~ '^[0-9]{1,19}$'
               AND (v->>'id')::bigint = r.public_post_ids[cardinality(r.public_post_ids)]
              JOIN vibescaling.posts p ON p.id = r.post_id
             WHERE v->>'id' IN (SELECT jsonb_array_elements_text(v_request #> '{options,video_ids}'));
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_posts := v_posts + v_n;
        ELSE
            INSERT INTO vibescaling.account_metrics (tiktok_account_id, follower_count, following_count, likes_count,
                                                     video_count, owner)
            SELECT a.id, (u->>'follower_count')::bigint, (u->>'following_count')::bigint,
                   (u->>'likes_count')::bigint, (u->>'video_count')::bigint, a.owner
              FROM vibescaling.tiktok_accounts a, LATERAL (SELECT v_call.data->'user' AS u) x
             WHERE a.id = (v_request->>'tiktok_account_id')::uuid AND jsonb_typeof(u) = 'object';
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_accounts := v_accounts + v_n;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('calls', cardinality(v_results), 'post_snapshots', v_posts,
                              'account_snapshots', v_accounts, 'errors', v_errors);
END
$$;
COMMENT ON FUNCTION vibescaling.collect_metrics(integer) IS
    'Takes due snapshots of public posts'' counts (video/query) and accounts'' follower counts (user/info); {"calls","post_snapshots","account_snapshots","errors"}.';

-- The Analytics page's metrics for a scope (a tenant, or * for all) and
-- period: the 20 most viewed posts with their latest counts and what they
-- gained in the period, and per account (the 20 with the most followers)
-- the follower count at the end of each day of the period in the viewer's
-- zone.
CREATE FUNCTION vibescaling._analytics_metrics(p_scope text, p_from timestamptz, p_to timestamptz, p_tz text)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'post_metrics', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'post_id', t.post_id, 'caption', left(p.caption, 80), 'video_id', t.video_id::text,
                'views', t.view_count, 'likes', t.like_count, 'comments', t.comment_count, 'shares', t.share_count,
                'views_gained', t.view_count - coalesce(b.view_count, 0), 'taken_at', t.taken_at,
                'taken_down_at', CASE WHEN r.taken_down_at > coalesce(r.public_at, '-infinity') THEN r.taken_down_at END)
                ORDER BY t.view_count DESC NULLS LAST, t.post_id)
              FROM (SELECT DISTINCT ON (m.publish_record_id) m.*
                      FROM vibescaling.post_metrics m
                     WHERE (p_scope = '*' OR m.owner = p_scope) AND m.taken_at < p_to
                     ORDER BY m.publish_record_id, m.taken_at DESC) t
              JOIN vibescaling.publish_records r ON r.id = t.publish_record_id
              JOIN vibescaling.posts p ON p.id = t.post_id
              LEFT JOIN LATERAL (SELECT m.view_count FROM vibescaling.post_metrics m
                                  WHERE m.publish_record_id = t.publish_record_id AND m.taken_at < p_from
                                  ORDER BY m.taken_at DESC LIMIT 1) b ON true
             WHERE t.id IN (SELECT x.id FROM (SELECT DISTINCT ON (m.publish_record_id) m.id, m.view_count
                                                FROM vibescaling.post_metrics m
                                               WHERE (p_scope = '*' OR m.owner = p_scope) AND m.taken_at < p_to
                                               ORDER BY m.publish_record_id, m.taken_at DESC) x
                             ORDER BY x.view_count DESC NULLS LAST LIMIT 20)), '[]'),
        'followers', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'tiktok_account_id', f.tiktok_account_id, 'account', f.account, 'day', f.day, 'followers', f.followers)
                ORDER BY f.account, f.day)
              FROM (SELECT DISTINCT ON (m.tiktok_account_id, (m.taken_at AT TIME ZONE p_tz)::date)
                           m.tiktok_account_id, coalesce(a.display_name, a.open_id) AS account,
                           (m.taken_at AT TIME ZONE p_tz)::date AS day, m.follower_count AS followers
                      FROM vibescaling.account_metrics m
                      JOIN vibescaling.tiktok_accounts a ON a.id = m.tiktok_account_id
                     WHERE (p_scope = '*' OR m.owner = p_scope) AND m.taken_at >= p_from AND m.taken_at < p_to
                       AND m.tiktok_account_id IN (SELECT l.tiktok_account_id
                                                     FROM (SELECT DISTINCT ON (am.tiktok_account_id) am.tiktok_account_id,
                                                                  am.follower_count
                                                             FROM vibescaling.account_metrics am
                                                            WHERE (p_scope = '*' OR am.owner = p_scope) AND am.taken_at < p_to
                                                            ORDER BY am.tiktok_account_id, am.taken_at DESC) l
                                                    ORDER BY l.follower_count DESC NULLS LAST LIMIT 20)
                     ORDER BY m.tiktok_account_id, (m.taken_at AT TIME ZONE p_tz)::date, m.taken_at DESC) f), '[]'))
$$;

REVOKE ALL ON TABLE vibescaling.post_metrics, vibescaling.account_metrics FROM PUBLIC;
REVOKE ALL ON TABLE vibescaling.post_metrics_latest, vibescaling.account_metrics_latest FROM PUBLIC;
REVOKE ALL ON TABLE vibescaling_api.post_metrics, vibescaling_api.account_metrics FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._metrics_interval(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._metrics_calls_due(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.collect_metrics(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._analytics_metrics(text, timestamptz, timestamptz, text) FROM PUBLIC;
-- vibescaling: one post to many accounts. A post's targets are posts of
-- their own (posts.parent_id = the post): each one account, with the
-- post's content and the target's own options (privacy level, mode,
-- toggles, caption, time), and its own state, publish record, retries and
-- dispatch logs. So everything that holds for one post holds per target:
-- exactly once (a failure or an unknown outcome on one target never
-- resends another), the dispatcher, the status poller, settlement. The
-- post itself stays a draft that holds the content; publish_status reports
-- it as a whole and per target.

-- The most targets one post may have.
CREATE FUNCTION vibescaling._max_targets()
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 100 $$;

-- The target post of parent p for one target's account (target: a JSON
-- object, checked by _check_targets): the one p has, or a new draft with
-- p's content. Created outside the target's attempt, so that a refusal
-- stays visible on it.
CREATE FUNCTION vibescaling._target_post(p vibescaling.posts, target jsonb)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_account uuid := (target->>'tiktok_account_id')::uuid;
    v_id      uuid;
BEGIN
    SELECT t.id INTO v_id FROM vibescaling.posts t WHERE t.parent_id = p.id AND t.tiktok_account_id = v_account;
    IF v_id IS NULL THEN
        INSERT INTO vibescaling.posts (parent_id, owner, media_type, caption, title, video_url, video_lo, media_id,
                                       upload_method, video_cover_timestamp_ms, is_aigc, photo_urls,
                                       photo_cover_index, tiktok_account_id)
        VALUES (p.id, p.owner, p.media_type, p.caption, p.title, p.video_url, p.video_lo, p.media_id,
                p.upload_method, p.video_cover_timestamp_ms, p.is_aigc, p.photo_urls, p.photo_cover_index, v_account)
        RETURNING id INTO v_id;
    END IF;
    RETURN v_id;
END
$$;

-- Readies a target post (p_target, of parent p) for its attempt: it must
-- still be a draft (55000 else: it was published or scheduled, and nothing
-- is sent twice), and takes the target's own caption and title, or p's.
CREATE FUNCTION vibescaling._ready_target(p vibescaling.posts, p_target uuid, target jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t vibescaling.posts := vibescaling._lock_post(p_target);
BEGIN
    IF t.status <> 'draft' THEN
        RAISE EXCEPTION 'post % already has a target for account % (%)', p.id, t.tiktok_account_id, t.status
            USING ERRCODE = '55000',
                  HINT = 'A target is sent once; its own post (' || t.id || ') can be cancelled or rescheduled.';
    END IF;
    UPDATE vibescaling.posts x
       SET caption = CASE WHEN target ? 'caption' THEN target->>'caption' ELSE p.caption END,
           title = CASE WHEN target ? 'title' THEN target->>'title' ELSE p.title END
     WHERE x.id = p_target;
END
$$;

-- The targets array of publish_targets / schedule_targets, checked before
-- anything is sent: 1 to _max_targets objects, each with its account (a
-- uuid) and only known options, one per account. 22023 (22004 for a
-- missing account).
CREATE FUNCTION vibescaling._check_targets(targets jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_allowed text[] := ARRAY['tiktok_account_id', 'privacy_level', 'mode', 'caption', 'title', 'disable_comment',
                              'disable_duet', 'disable_stitch', 'brand_content_toggle', 'brand_organic_toggle',
                              'scheduled_at'];
    v_unknown text;
    v_t       jsonb;
BEGIN
    IF jsonb_typeof(targets) IS DISTINCT FROM 'array' OR jsonb_array_length(targets) = 0 THEN
        RAISE EXCEPTION 'targets must be a non-empty JSON array of {"tiktok_account_id", "privacy_level", ...}'
            USING ERRCODE = '22023';
    END IF;
    IF jsonb_array_length(targets) > vibescaling._max_targets() THEN
        RAISE EXCEPTION 'at most % targets a post', vibescaling._max_targets() USING ERRCODE = '22023';
    END IF;
    FOR v_t IN SELECT x FROM jsonb_array_elements(targets) x LOOP
        IF jsonb_typeof(v_t) IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION 'each target is a JSON object' USING ERRCODE = '22023';
        END IF;
        SELECT k INTO v_unknown FROM jsonb_object_keys(v_t) k WHERE NOT (k = ANY (v_allowed)) LIMIT 1;
        IF v_unknown IS NOT NULL THEN
            RAISE EXCEPTION 'unknown target option "%"', v_unknown USING ERRCODE = '22023',
                  HINT = 'A target takes: ' || array_to_string(v_allowed, ', ') || '.';
        END IF;
        IF v_t->>'tiktok_account_id' IS NULL THEN
            RAISE EXCEPTION 'each target needs its tiktok_account_id' USING ERRCODE = '22004';
        END IF;
        IF v_t->>'tiktok_account_id' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
            RAISE EXCEPTION 'a target''s tiktok_account_id is not a uuid' USING ERRCODE = '22023';
        END IF;
        IF v_t ? 'scheduled_at' AND jsonb_typeof(v_t->'scheduled_at') <> 'string' THEN
            RAISE EXCEPTION 'a target''s scheduled_at is a timestamp string' USING ERRCODE = '22023';
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT (t->>'tiktok_account_id')::uuid) <> count(*) FROM jsonb_array_elements(targets) t) THEN
        RAISE EXCEPTION 'each account may be a target once' USING ERRCODE = '22023';
    END IF;
END
$$;

-- The parent of publish_targets / schedule_targets, locked: a draft that
-- is no target itself.
CREATE FUNCTION vibescaling._lock_parent(p_post_id uuid)
RETURNS vibescaling.posts
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p vibescaling.posts := vibescaling._lock_post(p_post_id);
BEGIN
    IF p.parent_id IS NOT NULL THEN
        RAISE EXCEPTION 'post % is a target of post %; targets have no targets', p.id, p.parent_id
            USING ERRCODE = '55000';
    END IF;
    IF p.status <> 'draft' THEN
        RAISE EXCEPTION 'post % is %; only a draft can be sent to targets', p.id, p.status USING ERRCODE = '55000';
    END IF;
    RETURN p;
END
$$;

-- Records a target's refusal on its post, when it is a draft (a refusal
-- of a target sent before leaves that target as it is).
CREATE FUNCTION vibescaling._record_target_error(p_target uuid, p_message text, p_state text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE vibescaling.posts x SET last_error = format('%s [SQLSTATE %s]', p_message, p_state)
     WHERE x.id = p_target AND x.status = 'draft';
END
$$;

-- One target's answer: {"tiktok_account_id", "post_id", "publish_id"} or
-- {..., "error": {"sqlstate", "message"}}, or the scheduled time.
CREATE FUNCTION vibescaling._target_answer(account_id uuid, post_id uuid, answer jsonb, sqlstate text, message text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('tiktok_account_id', account_id, 'post_id', post_id)
                             || coalesce(answer, '{}')
                             || CASE WHEN sqlstate IS NOT NULL
                                     THEN jsonb_build_object('error', jsonb_build_object('sqlstate', sqlstate, 'message', message))
                                     ELSE '{}' END)
$$;

-- Publishes a draft to several accounts now: each target
-- {"tiktok_account_id", "privacy_level", "mode", "caption", "title",
-- toggles} becomes a post of its own (_target_post) published as
-- publish_post publishes one. Each target succeeds or fails alone: a
-- refusal or a failed call is that target's answer, and the others go on.
-- Returns {"data": {"post_id", "targets": [{"tiktok_account_id",
-- "post_id", "publish_id"} | {..., "error": {"sqlstate", "message"}}]}}.
CREATE FUNCTION vibescaling.publish_targets(post_id uuid, targets jsonb)
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
COMMENT ON FUNCTION vibescaling.publish_targets(uuid, jsonb) IS
    'Publishes a draft to several accounts now, each target a post of its own; {"data":{"post_id","targets":[...]}}.';

-- Schedules a draft for several accounts: each target becomes a post of
-- its own (_target_post), scheduled at the target's "scheduled_at" or
-- scheduled_at, with schedule_post's checks. A refusal is that target's
-- answer; the others are scheduled. Returns {"data": {"post_id",
-- "targets": [{"tiktok_account_id", "post_id", "scheduled_at"} | {...,
-- "error"}]}}.
CREATE FUNCTION vibescaling.schedule_targets(post_id uuid, scheduled_at timestamptz, targets jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p         vibescaling.posts;
    t         jsonb;
    v_target  uuid;
    v_at      timestamptz;
    v_answers jsonb := '[]';
    v_state   text;
    v_message text;
BEGIN
    p := vibescaling._lock_parent(schedule_targets.post_id);
    PERFORM vibescaling._check_targets(targets);
    FOR t IN SELECT x FROM jsonb_array_elements(targets) x LOOP
        v_target := vibescaling._target_post(p, t);
        BEGIN
            PERFORM vibescaling._ready_target(p, v_target, t);
            v_at := coalesce((t->>'scheduled_at')::timestamptz, schedule_targets.scheduled_at);
            PERFORM vibescaling._schedule_with(v_target, v_at, (t->>'tiktok_account_id')::uuid, t);
            v_answers := v_answers || vibescaling._target_answer((t->>'tiktok_account_id')::uuid, v_target,
                                                                 jsonb_build_object('scheduled_at', v_at), NULL, NULL);
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
COMMENT ON FUNCTION vibescaling.schedule_targets(uuid, timestamptz, jsonb) IS
    'Schedules a draft for several accounts, each target a post of its own; {"data":{"post_id","targets":[...]}}.';

-- publish_status of a post with targets: {"data": {"post_id", "status"
-- (posted: every target posted; partial: some; scheduled, publishing,
-- failed, draft: all the same), "targets": [{"tiktok_account_id",
-- "post_id", "post_status", and its publish_status data when it has a
-- publish ("publish_id", "status", "tiktok_status", ...)}]}}. Each target's
-- publish is asked about as publish_status asks (a read-only transaction
-- records nothing).
CREATE FUNCTION vibescaling._targets_status(p_post_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c         record;
    v_targets jsonb := '[]';
    v_status  text;
BEGIN
    FOR c IN SELECT t.id, t.tiktok_account_id, t.status, t.last_error FROM vibescaling.posts t
              WHERE t.parent_id = p_post_id ORDER BY t.created_at, t.id LOOP
        v_targets := v_targets || jsonb_strip_nulls(jsonb_build_object(
            'tiktok_account_id', c.tiktok_account_id, 'post_id', c.id, 'post_status', c.status,
            'last_error', CASE WHEN c.status IN ('draft', 'failed', 'publishing') THEN c.last_error END)
            || CASE WHEN EXISTS (SELECT 1 FROM vibescaling.publish_records r WHERE r.post_id = c.id)
                    THEN vibescaling.publish_status(c.id)->'data' ELSE '{}' END);
    END LOOP;
    SELECT CASE WHEN count(DISTINCT x->>'post_status') = 1 THEN min(x->>'post_status')
                WHEN bool_or(x->>'post_status' = 'posted') THEN 'partial'
                ELSE 'mixed' END
      INTO v_status FROM jsonb_array_elements(v_targets) x;
    RETURN jsonb_build_object('data', jsonb_build_object('post_id', p_post_id, 'status', v_status, 'targets', v_targets));
END
$$;

REVOKE ALL ON FUNCTION vibescaling._max_targets() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._target_post(vibescaling.posts, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._check_targets(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._lock_parent(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._target_answer(uuid, uuid, jsonb, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._record_target_error(uuid, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._ready_target(vibescaling.posts, uuid, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.publish_targets(uuid, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.schedule_targets(uuid, timestamptz, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._targets_status(uuid) FROM PUBLIC;
-- vibescaling: local time and posting slots. A team works in its own time
-- zone, and an account has weekly posting slots (a weekday and a local time
-- in an IANA zone); "add to queue" schedules a post into the account's next
-- free slot. scheduled_at stays a timestamptz: local times become instants
-- with PostgreSQL's own time zone rules (at_local), so daylight saving is
-- PostgreSQL's: a local time that does not exist (02:30 on a spring-forward
-- night) is taken an hour later by the clock (03:30, the instant 02:30
-- standard time would have been), and one that happens twice (01:30 on a
-- fall-back night in New York) is taken once, in standard time (the
-- second). A slot is an instant per day, so it fires once either way.

-- An account's weekly posting slots.
CREATE TABLE vibescaling.posting_slots (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tiktok_account_id  uuid NOT NULL REFERENCES vibescaling.tiktok_accounts (id) ON DELETE CASCADE,
    weekday            smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),   -- ISO: 1 Monday .. 7 Sunday
    local_time         time NOT NULL,
    time_zone          text NOT NULL,     -- an IANA name (at_local checks it)
    owner              text,              -- the account's tenant
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tiktok_account_id, weekday, local_time)
);
COMMENT ON TABLE vibescaling.posting_slots IS
    'Weekly posting slots per account: a weekday and a local time in an IANA zone (add_to_queue fills them).';
ALTER TABLE vibescaling.posting_slots ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_posting_slots ON vibescaling.posting_slots
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
SELECT pg_catalog.pg_extension_config_dump('vibescaling.posting_slots', '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.posting_slots', 'id'), '');

-- The instant of a local date and time in an IANA time zone (22023 for an
-- unknown zone), by PostgreSQL's rules: see the top of this file for the
-- nights daylight saving changes.
CREATE FUNCTION vibescaling.at_local(local_time timestamp, time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF local_time IS NULL OR time_zone IS NULL THEN
        RAISE EXCEPTION 'a local time and a time zone are required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names z WHERE z.name = time_zone) THEN
        RAISE EXCEPTION 'unknown time zone %', time_zone USING ERRCODE = '22023', HINT = 'An IANA name, such as Europe/Paris.';
    END IF;
    RETURN local_time AT TIME ZONE time_zone;
END
$$;
COMMENT ON FUNCTION vibescaling.at_local(timestamp, text) IS
    'The instant of a local time in an IANA zone (PostgreSQL''s rules: a time a spring-forward night skips is taken an hour later, a repeated one once, in standard time).';

-- Sets an account's weekly slots, replacing the ones it had: slots is an
-- array of {"weekday": 1..7 (ISO, Monday 1) or "mon".."sun", "time":
-- "HH:MM"}, all in time_zone. At most 168 slots. Returns {"data":
-- {"tiktok_account_id", "time_zone", "slots": [{"weekday", "time"}]}}.
CREATE FUNCTION vibescaling.set_posting_slots(tiktok_account_id uuid, time_zone text, slots jsonb)
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
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.queue'), hashtext(set_posting_slots.tiktok_account_id::text));
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
COMMENT ON FUNCTION vibescaling.set_posting_slots(uuid, text, jsonb) IS
    'Sets an account''s weekly posting slots (weekday and local time in an IANA zone), replacing its old ones.';

-- The account's next free slot at or after not_before (at least 5 minutes
-- from now): the earliest occurrence, within the coming 8 weeks, of one of
-- its slots that no scheduled or posted post of the account takes, on a
-- UTC day where the account has fewer posts scheduled or posted than its
-- daily cap (daily_cap, 24_caps.sql). NULL when there is none; P0002 for an unknown
-- account.
CREATE FUNCTION vibescaling.next_free_slot(tiktok_account_id uuid, not_before timestamptz DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_from timestamptz := greatest(coalesce(not_before, now()), now() + interval '5 minutes');
BEGIN
    IF next_free_slot.tiktok_account_id IS NULL THEN
        RAISE EXCEPTION 'tiktok_account_id is required' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vibescaling.tiktok_accounts a WHERE a.id = next_free_slot.tiktok_account_id) THEN
        RAISE EXCEPTION 'TikTok account % not found', next_free_slot.tiktok_account_id USING ERRCODE = 'P0002';
    END IF;
    RETURN (
        SELECT min(o.at)
          FROM (SELECT (d::date + s.local_time) AT TIME ZONE s.time_zone AS at
                  FROM vibescaling.posting_slots s,
                       generate_series((v_from AT TIME ZONE s.time_zone)::date,
                                       (v_from AT TIME ZONE s.time_zone)::date + 56, interval '1 day') d
                 WHERE s.tiktok_account_id = next_free_slot.tiktok_account_id
                   AND extract(isodow FROM d) = s.weekday) o
         WHERE o.at >= v_from
           AND NOT EXISTS (SELECT 1 FROM vibescaling.posts p
                            WHERE p.tiktok_account_id = next_free_slot.tiktok_account_id
                              AND p.status IN ('scheduled', 'publishing', 'posted') AND p.scheduled_at = o.at)
           AND (SELECT count(*) FROM vibescaling.posts p
                 WHERE p.tiktok_account_id = next_free_slot.tiktok_account_id
                   AND p.status IN ('scheduled', 'publishing', 'posted')
                   AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END
                       >= date_trunc('day', o.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                   AND CASE WHEN p.status = 'posted' THEN p.posted_at ELSE p.scheduled_at END
                       < (date_trunc('day', o.at AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC')
               < vibescaling.daily_cap(next_free_slot.tiktok_account_id));
END
$$;
COMMENT ON FUNCTION vibescaling.next_free_slot(uuid, timestamptz) IS
    'The account''s next posting slot that no post takes, at least 5 minutes ahead, on a day under TikTok''s daily cap; NULL if none in 8 weeks; P0002 for an unknown account.';

-- Adds a draft to an account's queue: schedules it (schedule_post, with its
-- checks) into the account's next free slot (next_free_slot). Two calls for
-- one account at once take turns (an advisory lock), so they never take
-- the same slot. Removing or rescheduling a post frees its slot. 55000
-- when the account has no free slot. Returns schedule_post's answer.
CREATE FUNCTION vibescaling.add_to_queue(
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
    PERFORM pg_advisory_xact_lock(hashtext('vibescaling.queue'), hashtext(add_to_queue.tiktok_account_id::text));
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
COMMENT ON FUNCTION vibescaling.add_to_queue(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean) IS
    'Schedules a draft into the account''s next free posting slot; schedule_post''s answer.';

REVOKE ALL ON TABLE vibescaling.posting_slots FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.at_local(timestamp, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.set_posting_slots(uuid, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.next_free_slot(uuid, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.add_to_queue(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean) FROM PUBLIC;

-- The tenant's accounts' slots, through PostgREST (row level security).
CREATE VIEW vibescaling_api.posting_slots WITH (security_invoker = true) AS
    SELECT tiktok_account_id, weekday, local_time, time_zone FROM vibescaling.posting_slots;
COMMENT ON VIEW vibescaling_api.posting_slots IS 'The tenant''s accounts'' weekly posting slots.';

-- POST /rpc/set_posting_slots {"tiktok_account_id", "time_zone", "slots"}:
-- the tenant's account's weekly slots (set_posting_slots).
CREATE FUNCTION vibescaling_api.set_posting_slots(tiktok_account_id uuid DEFAULT NULL, time_zone text DEFAULT NULL,
                                                  slots jsonb DEFAULT NULL)
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
    PERFORM vibescaling._api_check_account(set_posting_slots.tiktok_account_id);
    RETURN vibescaling.set_posting_slots(set_posting_slots.tiktok_account_id, set_posting_slots.time_zone,
                                         set_posting_slots.slots);
EXCEPTION WHEN OTHERS THEN
    -- Every error, the checks' included, leaves with its HTTP status.
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

-- POST /rpc/add_to_queue {"post_id", "tiktok_account_id", "privacy_level", ...}:
-- the tenant's draft into its account's next free slot (add_to_queue).
CREATE FUNCTION vibescaling_api.add_to_queue(
    post_id               uuid    DEFAULT NULL,
    tiktok_account_id     uuid    DEFAULT NULL,
    privacy_level         text    DEFAULT NULL,
    mode                  text    DEFAULT 'direct',
    disable_comment       boolean DEFAULT false,
    disable_duet          boolean DEFAULT false,
    disable_stitch        boolean DEFAULT false,
    brand_content_toggle  boolean DEFAULT false,
    brand_organic_toggle  boolean DEFAULT false)
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
    PERFORM vibescaling._api_check_post(add_to_queue.post_id);
    PERFORM vibescaling._api_check_account(add_to_queue.tiktok_account_id);
    RETURN vibescaling.add_to_queue(add_to_queue.post_id, add_to_queue.tiktok_account_id, add_to_queue.privacy_level,
                                    add_to_queue.mode, add_to_queue.disable_comment, add_to_queue.disable_duet,
                                    add_to_queue.disable_stitch, add_to_queue.brand_content_toggle,
                                    add_to_queue.brand_organic_toggle);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                            v_hint = PG_EXCEPTION_HINT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM vibescaling._raise_http_error(v_state, v_message, v_detail, v_hint);
END
$$;

REVOKE ALL ON TABLE vibescaling_api.posting_slots FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.set_posting_slots(uuid, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling_api.add_to_queue(uuid, uuid, text, text, boolean, boolean, boolean, boolean, boolean) FROM PUBLIC;
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

-- Refuses a post being scheduled (p: as it will be) that would break one
-- of TikTok's caps on its day (see the top of this file).
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
    IF NOT current_setting('vibescaling.app_audited')::boolean THEN
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
-- vibescaling: recurring posts. An evergreen post repeats on a rule: every
-- N days at a local time, or on a weekly set of days and times, in an IANA
-- zone, until an end date or a count. Each occurrence is a post of its own
-- (posts.recurrence_id), scheduled as schedule_post schedules one (the
-- 5-minute rule, the media, TikTok's caps), so it has its own record and
-- logs. expand_recurrences() (pg_cron job vibescaling-recur, every 15
-- minutes) schedules the occurrences of the coming week; changing or
-- stopping a rule removes only the occurrences not sent yet, and the rule
-- goes on from now.

-- A post's repeating rule. rule is {"every_days": N, "time": "HH:MM"} or
-- {"weekly": [{"weekday": 1..7 | "mon".."sun", "time": "HH:MM"}, ...]}.
CREATE TABLE vibescaling.recurrences (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    post_id            uuid NOT NULL REFERENCES vibescaling.posts (id) ON DELETE CASCADE,  -- the content
    tiktok_account_id  uuid NOT NULL REFERENCES vibescaling.tiktok_accounts (id) ON DELETE CASCADE,
    options            jsonb NOT NULL,     -- schedule_post's: privacy_level, mode, toggles
    rule               jsonb NOT NULL,
    time_zone          text NOT NULL,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz,        -- no occurrence after it
    max_count          integer CHECK (max_count > 0),
    occurrences        integer NOT NULL DEFAULT 0,   -- scheduled so far
    last_at            timestamptz,        -- the last occurrence scheduled (or skipped)
    last_error         text,               -- the last occurrence scheduling refused
    stopped_at         timestamptz,
    owner              text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE vibescaling.recurrences IS
    'Repeating rules of evergreen posts; each occurrence is a post of its own (posts.recurrence_id).';
ALTER TABLE vibescaling.recurrences ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_recurrences ON vibescaling.recurrences
    USING (NOT (SELECT vibescaling._is_api_role()) OR owner = (SELECT vibescaling._jwt_sub()));
SELECT pg_catalog.pg_extension_config_dump('vibescaling.recurrences', '');
SELECT pg_catalog.pg_extension_config_dump(pg_get_serial_sequence('vibescaling.recurrences', 'id'), '');
ALTER TABLE vibescaling.posts ADD CONSTRAINT posts_recurrence_id_fkey
    FOREIGN KEY (recurrence_id) REFERENCES vibescaling.recurrences (id) ON DELETE SET NULL;
CREATE INDEX posts_recurrence_idx ON vibescaling.posts (recurrence_id) WHERE recurrence_id IS NOT NULL;

-- The rule's local (date, time) pairs, checked: every_days (1 to 365) with
-- a time, or weekly with 1 to 50 {weekday, time}. 22023 otherwise.
CREATE FUNCTION vibescaling._check_rule(rule jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s jsonb;
BEGIN
    IF jsonb_typeof(rule) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'a rule is {"every_days", "time"} or {"weekly": [...]}' USING ERRCODE = '22023';
    END IF;
    IF rule ? 'every_days' THEN
        IF (rule->>'every_days') !~ '^\d{1,3}$' OR (rule->>'every_days')::integer NOT BETWEEN 1 AND 365
           OR (rule->>'time') !~ '^\d{1,2}:\d{2}$' OR (rule->>'time')::time IS NULL THEN
            RAISE EXCEPTION 'every_days is 1 to 365, with a "time" HH:MM' USING ERRCODE = '22023';
        END IF;
    ELSIF jsonb_typeof(rule->'weekly') = 'array' AND jsonb_array_length(rule->'weekly') BETWEEN 1 AND 50 THEN
        FOR s IN SELECT x FROM jsonb_array_elements(rule->'weekly') x LOOP
            IF vibescaling._weekday(s->'weekday') IS NULL OR (s->>'time') !~ '^\d{1,2}:\d{2}$' THEN
                RAISE EXCEPTION 'a weekly entry is {"weekday": 1..7 or mon..sun, "time": "HH:MM"}' USING ERRCODE = '22023';
            END IF;
        END LOOP;
    ELSE
        RAISE EXCEPTION 'a rule is {"every_days", "time"} or {"weekly": [1 to 50 entries]}' USING ERRCODE = '22023';
    END IF;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
    RAISE EXCEPTION 'a rule''s time is HH:MM' USING ERRCODE = '22023';
END
$$;

-- An ISO weekday from 1..7 or "mon".."sun" (NULL for anything else).
CREATE FUNCTION vibescaling._weekday(value jsonb)
RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(value) = 'number' AND value::text ~ '^[1-7]$' THEN value::text::smallint
                WHEN jsonb_typeof(value) = 'string'
                THEN array_position(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], lower(value #>> '{}'))::smallint
           END
$$;

-- The rule's first occurrence after the instant after (PostgreSQL's zone
-- rules, as at_local), within a year; NULL when none.
CREATE FUNCTION vibescaling._next_occurrence(r vibescaling.recurrences, after timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_start date := (r.starts_at AT TIME ZONE r.time_zone)::date;
    v_from  date := greatest(v_start, (after AT TIME ZONE r.time_zone)::date);
BEGIN
    IF r.rule ? 'every_days' THEN
        RETURN (SELECT min(x.at) FROM (
                    SELECT (d::date + (r.rule->>'time')::time) AT TIME ZONE r.time_zone AS at
                      FROM generate_series(v_from, v_from + 366, interval '1 day') d
                     WHERE (d::date - v_start) % (r.rule->>'every_days')::integer = 0) x
                 WHERE x.at > after AND x.at >= r.starts_at);
    END IF;
    RETURN (SELECT min(x.at) FROM (
                SELECT (d::date + (w->>'time')::time) AT TIME ZONE r.time_zone AS at
                  FROM generate_series(v_from, v_from + 366, interval '1 day') d,
                       jsonb_array_elements(r.rule->'weekly') w
                 WHERE extract(isodow FROM d) = vibescaling._weekday(w->'weekday')) x
             WHERE x.at > after AND x.at >= r.starts_at);
END
$$;

-- Makes a post repeat: a rule (see the table), in time_zone, from
-- starts_at, until ends_at or max_count occurrences, each scheduled with
-- options (schedule_post's: {"privacy_level", "mode", toggles}) for the
-- account. The post stays the draft that holds the content. Schedules the
-- coming week's occurrences at once (expand_recurrences). Returns {"data":
-- {"recurrence_id", "occurrences": [scheduled_at, ...]}}.
CREATE FUNCTION vibescaling.repeat_post(post_id uuid, tiktok_account_id uuid, rule jsonb, time_zone text,
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
                   WHERE o.recurrence_id = v_id), '[]')));
END
$$;
COMMENT ON FUNCTION vibescaling.repeat_post(uuid, uuid, jsonb, text, jsonb, timestamptz, timestamptz, integer) IS
    'Makes a draft repeat on a rule (every N days, or weekly days and times) in a zone; each occurrence a post of its own.';

-- Schedules one rule's occurrences due within horizon (each a copy of the
-- rule's post, scheduled by schedule_post with the rule's options; one at
-- least 5 minutes ahead). An occurrence scheduling refuses (a cap, the
-- media) is skipped, with its reason in last_error. Returns how many it
-- scheduled.
CREATE FUNCTION vibescaling._expand_recurrence(p_id bigint, horizon interval)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r       vibescaling.recurrences;
    p       vibescaling.posts;
    v_at    timestamptz;
    v_post  uuid;
    v_n     integer := 0;
    v_state text;
    v_msg   text;
BEGIN
    SELECT * INTO r FROM vibescaling.recurrences x WHERE x.id = p_id FOR UPDATE;
    SELECT * INTO p FROM vibescaling.posts x WHERE x.id = r.post_id;
    LOOP
        EXIT WHEN r.stopped_at IS NOT NULL OR (r.max_count IS NOT NULL AND r.occurrences >= r.max_count);
        v_at := vibescaling._next_occurrence(r, greatest(coalesce(r.last_at, '-infinity'), now() + interval '5 minutes'));
        EXIT WHEN v_at IS NULL OR v_at > now() + horizon OR (r.ends_at IS NOT NULL AND v_at > r.ends_at);
        INSERT INTO vibescaling.posts (recurrence_id, owner, media_type, caption, title, video_url, video_lo, media_id,
                                       upload_method, video_cover_timestamp_ms, is_aigc, photo_urls, photo_cover_index)
        VALUES (r.id, p.owner, p.media_type, p.caption, p.title, p.video_url, p.video_lo, p.media_id,
                p.upload_method, p.video_cover_timestamp_ms, p.is_aigc, p.photo_urls, p.photo_cover_index)
        RETURNING id INTO v_post;
        BEGIN
            PERFORM vibescaling._schedule_with(v_post, v_at, r.tiktok_account_id, r.options);
            r.occurrences := r.occurrences + 1;
            v_n := v_n + 1;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            DELETE FROM vibescaling.posts x WHERE x.id = v_post;
            r.last_error := format('occurrence at %s skipped: %s [SQLSTATE %s]', v_at, v_msg, v_state);
        END;
        r.last_at := v_at;
    END LOOP;
    UPDATE vibescaling.recurrences x
       SET occurrences = r.occurrences, last_at = r.last_at, last_error = r.last_error WHERE x.id = r.id;
    RETURN v_n;
END
$$;

-- Schedules the coming week's occurrences of every rule (pg_cron job
-- vibescaling-recur, every 15 minutes). Returns {"rules", "scheduled"}.
CREATE FUNCTION vibescaling.expand_recurrences()
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
    FOR v_id IN SELECT x.id FROM vibescaling.recurrences x
                 WHERE x.stopped_at IS NULL AND (x.max_count IS NULL OR x.occurrences < x.max_count)
                   AND (x.ends_at IS NULL OR x.ends_at > now()) LOOP
        v_rules := v_rules + 1;
        v_n := v_n + vibescaling._expand_recurrence(v_id, interval '7 days');
    END LOOP;
    RETURN jsonb_build_object('rules', v_rules, 'scheduled', v_n);
END
$$;

-- Changes a rule (any of rule, time_zone, options, ends_at, max_count;
-- NULL keeps it) or stops it (stop): the occurrences not sent yet are
-- removed, those sent stay, and the rule goes on from now. Returns the
-- rule as it now is, with the occurrences it scheduled again.
CREATE FUNCTION vibescaling.change_recurrence(recurrence_id bigint, rule jsonb DEFAULT NULL, time_zone text DEFAULT NULL,
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
                   WHERE o.recurrence_id = r.id AND o.status = 'scheduled'), '[]')));
END
$$;
COMMENT ON FUNCTION vibescaling.change_recurrence(bigint, jsonb, text, jsonb, timestamptz, integer, boolean) IS
    'Changes or stops a repeating rule: only occurrences not sent yet are removed; it goes on from now.';

REVOKE ALL ON TABLE vibescaling.recurrences FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._check_rule(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._weekday(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._next_occurrence(vibescaling.recurrences, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.repeat_post(uuid, uuid, jsonb, text, jsonb, timestamptz, timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._expand_recurrence(bigint, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.expand_recurrences() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.change_recurrence(bigint, jsonb, text, jsonb, timestamptz, integer, boolean) FROM PUBLIC;
-- vibescaling: the schedule in and out as CSV. import_schedule takes a CSV
-- text (RFC 4180: a header row, fields quoted with " when they hold a
-- comma, a quote or a line break), checks every row as schedule_post
-- would, and schedules all of them or none: a file with a refused row
-- writes nothing and answers which rows and why. export_schedule writes
-- the scheduled posts in the same columns, so an export imports again.

-- The columns, in export order: the post's content, its account, its time
-- and its options.
CREATE FUNCTION vibescaling._csv_columns()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['caption', 'video_url', 'tiktok_account_id', 'privacy_level', 'scheduled_at', 'mode',
                 'disable_comment', 'disable_duet', 'disable_stitch', 'brand_content_toggle', 'brand_organic_toggle']
$$;

-- The rows of an RFC 4180 CSV text, each an array of its fields (quotes
-- removed, "" as one "). At most 1 MB (22023 over it, or for a quote left
-- open).
CREATE FUNCTION vibescaling._csv_rows(csv text)
RETURNS SETOF text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n        integer := length(csv);
    i        integer := 1;
    c        text;
    v_field  text := '';
    v_row    text[] := '{}';
    v_quoted boolean := false;
BEGIN
    IF octet_length(csv) > 1048576 THEN
        RAISE EXCEPTION 'a CSV of at most 1 MB' USING ERRCODE = '22023';
    END IF;
    WHILE i <= n LOOP
        c := substr(csv, i, 1);
        IF v_quoted THEN
            IF c = '"' AND substr(csv, i + 1, 1) = '"' THEN
                v_field := v_field || '"';
                i := i + 1;
            ELSIF c = '"' THEN
                v_quoted := false;
            ELSE
                v_field := v_field || c;
            END IF;
        ELSIF c = '"' THEN
            v_quoted := true;
        ELSIF c = ',' THEN
            v_row := v_row || v_field;
            v_field := '';
        ELSIF c = E'\n' OR c = E'\r' THEN
            IF c = E'\r' AND substr(csv, i + 1, 1) = E'\n' THEN
                i := i + 1;
            END IF;
            v_row := v_row || v_field;
            IF v_row <> ARRAY[''] THEN
                RETURN NEXT v_row;
            END IF;
            v_row := '{}';
            v_field := '';
        ELSE
            v_field := v_field || c;
        END IF;
        i := i + 1;
    END LOOP;
    IF v_quoted THEN
        RAISE EXCEPTION 'the CSV ends inside a quoted field' USING ERRCODE = '22023';
    END IF;
    v_row := v_row || v_field;
    IF v_row <> ARRAY[''] THEN
        RETURN NEXT v_row;
    END IF;
END
$$;

-- One CSV field, quoted when it must be.
CREATE FUNCTION vibescaling._csv_field(value text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN value IS NULL THEN ''
                WHEN value ~ '[",\r\n]' OR value <> btrim(value) THEN '"' || replace(value, '"', '""') || '"'
                ELSE value END
$$;

-- Schedules the posts of a CSV (columns: _csv_columns, in any order, by
-- the header; caption, video_url, tiktok_account_id, privacy_level and
-- scheduled_at required, the rest optional), each as a new draft then
-- schedule_post with its checks (the 5-minute rule, the account, TikTok's
-- caps, the media). All or nothing: when any row is refused, nothing is
-- written. Returns {"data": {"imported", "post_ids": [...]}} or {"data":
-- {"imported": 0, "rejected": [{"line", "error", "sqlstate"}]}}. At most
-- 1,000 rows.
CREATE FUNCTION vibescaling.import_schedule(csv text)
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
BEGIN
    IF csv IS NULL THEN
        RAISE EXCEPTION 'a CSV text is required' USING ERRCODE = '22004';
    END IF;
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
            PERFORM vibescaling._schedule_with(v_post, (v_rec->>'scheduled_at')::timestamptz,
                                               (v_rec->>'tiktok_account_id')::uuid, v_rec);
            v_posts := v_posts || to_jsonb(v_post);
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
    RETURN jsonb_build_object('data', jsonb_build_object('imported', jsonb_array_length(v_posts), 'post_ids', v_posts));
END
$$;
COMMENT ON FUNCTION vibescaling.import_schedule(text) IS
    'Schedules the posts of a CSV text (header row, _csv_columns), all or none; {"data":{"imported","post_ids"|"rejected"}}.';

-- The scheduled posts as a CSV text (a header row, then one row per post,
-- the earliest first), in the columns import_schedule takes: what the
-- caller may read (a tenant its own). Video posts from a URL only: a large
-- object or bytea source has no CSV form.
CREATE FUNCTION vibescaling.export_schedule()
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
$$;
COMMENT ON FUNCTION vibescaling.export_schedule() IS
    'The scheduled video posts (from a URL) as a CSV text in import_schedule''s columns.';

REVOKE ALL ON FUNCTION vibescaling._csv_columns() FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._csv_rows(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling._csv_field(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.import_schedule(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vibescaling.export_schedule() FROM PUBLIC;
