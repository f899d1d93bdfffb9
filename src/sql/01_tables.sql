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
