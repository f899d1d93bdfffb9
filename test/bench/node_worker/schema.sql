-- The Node worker's own tables (schema worker), as an application team would
-- keep them beside its posts, and the benchmark's data: :accounts accounts
-- with plaintext bench tokens and :per_account posts each, all due now.
-- Run by test/bench/burst_vs_worker.sh in a fresh database; it never touches
-- schema vibescaling.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE SCHEMA worker;

CREATE TABLE worker.accounts (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    open_id                 text NOT NULL UNIQUE,
    access_token            text NOT NULL,
    refresh_token           text,
    access_token_expires_at timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- status: scheduled -> sending (claimed) -> posted | failed | unknown (an init
-- that may have reached TikTok without an answer: never resent, a human
-- checks the account), or back to scheduled for a transient failure.
CREATE TABLE worker.posts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES worker.accounts,
    caption         text NOT NULL,
    video_url       text NOT NULL,
    privacy_level   text NOT NULL,
    disable_comment boolean NOT NULL DEFAULT false,
    disable_duet    boolean NOT NULL DEFAULT false,
    disable_stitch  boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'scheduled'
                    CHECK (status IN ('scheduled', 'sending', 'posted', 'failed', 'unknown')),
    due_at          timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    claimed_at      timestamptz,
    posted_at       timestamptz,
    publish_id      text,
    last_error      text
);
-- The claim's scan: due posts in order, and nothing else.
CREATE INDEX posts_due ON worker.posts (due_at, id) WHERE status = 'scheduled';
CREATE INDEX posts_account ON worker.posts (account_id);
-- Stale claims, for the recovery at start.
CREATE INDEX posts_sending ON worker.posts (claimed_at) WHERE status = 'sending';

-- Every call to TikTok: an init's row is committed as 'in_flight' before the
-- request is sent, then updated to its outcome.
CREATE TABLE worker.call_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id     bigint REFERENCES worker.posts,
    account_id  bigint NOT NULL REFERENCES worker.accounts,
    endpoint    text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('in_flight', 'ok', 'error', 'unknown')),
    http_status integer,
    error_code  text,
    log_id      text,
    publish_id  text,
    duration_ms double precision,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX call_log_post ON worker.call_log (post_id);
-- The per-account rate limit's count (TikTok: 6 inits a minute per token).
CREATE INDEX call_log_account_time ON worker.call_log (account_id, endpoint, created_at);

CREATE TABLE worker.publish_records (
    post_id    bigint PRIMARY KEY REFERENCES worker.posts,
    account_id bigint NOT NULL REFERENCES worker.accounts,
    publish_id text NOT NULL UNIQUE,
    endpoint   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO worker.accounts (open_id, access_token, refresh_token, access_token_expires_at)
SELECT format('%s-%s', :'tag', i), format('act.%s-%s', :'tag', i), format('rft.%s-%s', :'tag', i),
       now() + interval '1 day'
  FROM generate_series(1, :accounts) i;

INSERT INTO worker.posts (account_id, caption, video_url, privacy_level, due_at)
SELECT a.id, format('burst %s/%s #vibescaling', a.id, j), 'https://verified.example/burst.mp4', 'SELF_ONLY',
       now() - interval '1 minute'
  FROM worker.accounts a, generate_series(1, :per_account) j
 ORDER BY j, a.id;
ANALYZE worker.accounts;
ANALYZE worker.posts;
ANALYZE worker.call_log;
