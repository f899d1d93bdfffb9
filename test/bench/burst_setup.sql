-- Dispatch burst benchmark, setup (run by test/bench/dispatch_burst.sh in a
-- fresh database): :accounts connected accounts with :per_account posts each,
-- all due now. The simulator creates a user for any unknown token (its
-- auto_users switch) and keeps TikTok's per-token rate limits for it.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vibescaling CASCADE;

-- Accounts as add_account() stores them (tokens encrypted), one query.
CREATE TEMP TABLE bench_accounts AS
SELECT i, vibescaling.add_account(format('%s-%s', :'tag', i), format('act.%s-%s', :'tag', i),
                                  format('rft.%s-%s', :'tag', i), now() + interval '1 day') AS id
  FROM generate_series(1, :accounts) i;

-- Posts scheduled for a moment that is already past. The posts trigger
-- refuses a scheduled_at less than 5 minutes ahead, so they are written with
-- triggers off (session_replication_role = replica), as if scheduled earlier;
-- the dispatcher runs every check itself.
SET session_replication_role = replica;
INSERT INTO vibescaling.posts (media_type, caption, video_url, status, scheduled_at, tiktok_account_id,
                               privacy_level, mode)
SELECT 'video', format('burst %s/%s #vibescaling', a.i, j), 'https://verified.example/burst.mp4', 'scheduled',
       now() - interval '1 minute', a.id, 'SELF_ONLY', 'direct'
  FROM bench_accounts a, generate_series(1, :per_account) j
 ORDER BY j, a.i;
SET session_replication_role = origin;
ANALYZE vibescaling.posts;
ANALYZE vibescaling.tiktok_accounts;
