-- Campaign benchmark, setup (run by test/bench/campaign_in_cluster.sh in a
-- fresh database, not measured): :accounts simulator accounts connected with
-- the test fixtures' helper (vs_test.new_account), weekly posting slots in
-- four IANA zones, the drafts, and the plan every check compares with.
--
-- The plan. Each account gets :posts posts, laid out on a grid of UTC
-- instants: day 1 is the first whole UTC day starting at least 21 hours
-- from now (so that nothing is near the 5-minute rule, nor on today, which
-- the dispatch runs leave alone), and a day has 16 places, 90 minutes
-- apart: place 0 at 00:45 UTC ... place 14 at 21:45 for Direct Posts (15,
-- vibescaling.max_posts_per_account_day and the simulator's
-- daily_post_cap), place 15 at 23:15 for one inbox upload (TikTok's
-- pending-share limit is 5 in 24 hours). The three paths share the grid:
--   - recurrences: :rules drafts ("evergreen"), each repeated on every
--     account (repeat_post, every day at the local time of its place, from
--     day 1, 5 occurrences), places 2, 5, 8, 11, 14 of days 1 to 5;
--   - the queue: :queued drafts per account (add_to_queue), into "holes"
--     left at slot places 4, 7, 10 of the first days; the account's slots
--     are places 1, 4, 7, 10, 13 of every day, as weekly local times;
--   - targets: the rest, one draft to every account per call
--     (schedule_targets), in place order; place 15 is an inbox target.
-- A day with holes has no post at place 0: add_to_queue's next_free_slot
-- counts the inbox upload against the Direct Post cap (see
-- docs/benchmarks.md), so such a day holds at most 14 Direct Posts and one
-- inbox upload, which next_free_slot sees as 15.
-- Every account's layout is the same (the instants are UTC); slots and
-- rules are written as local times in the account's zone, so their UTC
-- instants are the grid's as long as no daylight-saving change falls in
-- the coming weeks (one would move some by an hour; the checks count it).
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vibescaling CASCADE;
\ir ../fixtures/setup.sql
SET client_min_messages = warning;

CREATE SCHEMA bench;

-- The run's shape: per account :posts posts = 5 x rules occurrences +
-- queued + targets.
CREATE TABLE bench.shape AS
SELECT :posts AS posts, :accounts AS accounts, least(5, greatest(1, :posts / 200)) AS rules,
       greatest(1, :posts / 20) AS queued,
       (((now() AT TIME ZONE 'UTC') + interval '3 hours')::date + 1) AS d1,
       now() AS set_up_at;
ALTER TABLE bench.shape ADD COLUMN targets integer;
UPDATE bench.shape SET targets = posts - 5 * rules - queued;
DO $$
BEGIN
    IF (SELECT targets < 20 OR accounts NOT BETWEEN 1 AND 100 FROM bench.shape) THEN
        RAISE EXCEPTION 'campaign benchmark: POSTS must be at least 50 and ACCOUNTS 1 to 100 (a post has at most 100 targets)';
    END IF;
END
$$;

-- The grid's instant of place pos (0..15) on day (1 = d1).
CREATE FUNCTION bench.at(day integer, pos integer)
RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
    SELECT ((SELECT d1 FROM bench.shape) + (day - 1) + time '00:45' + pos * interval '90 minutes') AT TIME ZONE 'UTC'
$$;

-- The accounts: simulator users connected as the fixtures connect them.
CREATE TABLE bench.accounts AS
SELECT i, 'cb-' || i AS open_id,
       (ARRAY['Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'Asia/Kolkata'])[1 + i % 4] AS zone,
       vs_test.new_account('cb-' || i) AS id
  FROM generate_series(1, :accounts) i;
ALTER TABLE bench.accounts ADD PRIMARY KEY (i);

-- The weekly slots: places 1, 4, 7, 10, 13 of the seven days from d1, but
-- those whose previous week's instant is still ahead (between now and d1):
-- add_to_queue takes the earliest free slot, and none may come before d1.
CREATE TABLE bench.slot_places AS
SELECT k, pos, bench.at(k + 1, pos) AS at
  FROM generate_series(0, 6) k, unnest(ARRAY[1, 4, 7, 10, 13]) pos
 WHERE bench.at(k + 1, pos) - interval '7 days' <= (SELECT set_up_at FROM bench.shape);
SELECT vibescaling.set_posting_slots(a.id, a.zone,
         (SELECT jsonb_agg(jsonb_build_object('weekday', extract(isodow FROM s.at AT TIME ZONE a.zone)::integer,
                                              'time', to_char(s.at AT TIME ZONE a.zone, 'HH24:MI')) ORDER BY s.at)
            FROM bench.slot_places s))
  FROM bench.accounts a \g /dev/null

-- The grid's places, with what each holds (the same for every account).
CREATE TABLE bench.places AS
SELECT day, pos, bench.at(day, pos) AS at, NULL::text AS kind, NULL::integer AS n
  FROM generate_series(1, (SELECT posts / 10 + 30 FROM bench.shape)) day, generate_series(0, 15) pos;
ALTER TABLE bench.places ADD PRIMARY KEY (day, pos);
-- Recurrence r (1-based) at place (3r - 1) of days 1 to 5.
UPDATE bench.places SET kind = 'rec', n = (pos + 1) / 3
 WHERE day <= 5 AND pos IN (2, 5, 8, 11, 14) AND (pos + 1) / 3 <= (SELECT rules FROM bench.shape);
-- The queue's holes: the first `queued` slot places 4, 7, 10 whose weekly slot exists.
UPDATE bench.places p SET kind = 'queue', n = h.n
  FROM (SELECT day, pos, row_number() OVER (ORDER BY day, pos) AS n
          FROM bench.places q
         WHERE q.pos IN (4, 7, 10) AND q.kind IS NULL
           AND EXISTS (SELECT 1 FROM bench.slot_places s
                        WHERE s.pos = q.pos AND (q.day - 1) % 7 = s.k)) h
 WHERE (p.day, p.pos) = (h.day, h.pos) AND h.n <= (SELECT queued FROM bench.shape);
UPDATE bench.places SET kind = 'none'
 WHERE pos = 0 AND day IN (SELECT day FROM bench.places WHERE kind = 'queue');
-- Targets: the other places in order.
UPDATE bench.places p SET kind = 'target', n = t.n
  FROM (SELECT day, pos, row_number() OVER (ORDER BY day, pos) AS n FROM bench.places WHERE kind IS NULL) t
 WHERE (p.day, p.pos) = (t.day, t.pos) AND t.n <= (SELECT targets FROM bench.shape);
DELETE FROM bench.places WHERE kind IS NULL OR kind = 'none';
DO $$
BEGIN
    IF (SELECT count(*) FROM bench.places) <> (SELECT posts FROM bench.shape)
       OR (SELECT count(*) FROM bench.places WHERE kind = 'queue') <> (SELECT queued FROM bench.shape) THEN
        RAISE EXCEPTION 'campaign benchmark: the plan has % places for % posts', (SELECT count(*) FROM bench.places),
                        (SELECT posts FROM bench.shape);
    END IF;
END
$$;

-- The drafts: one per target (sent to every account), one per recurrence,
-- and one per queued post and account (add_to_queue schedules the draft
-- itself).
CREATE TABLE bench.target_drafts AS
SELECT p.n, p.day, p.pos, p.at, CASE WHEN p.pos = 15 THEN 'inbox' ELSE 'direct' END AS mode,
       vs_test.new_video(format('campaign post %s #vibescaling', p.n), 'https://verified.example/campaign.mp4') AS id
  FROM bench.places p WHERE p.kind = 'target' ORDER BY p.n;
CREATE TABLE bench.rec_drafts AS
SELECT r AS n, vs_test.new_video(format('evergreen %s #vibescaling', r), 'https://verified.example/evergreen.mp4') AS id
  FROM generate_series(1, (SELECT rules FROM bench.shape)) r;
CREATE TABLE bench.queue_drafts AS
SELECT q AS n, a.i, a.id AS account_id,
       vs_test.new_video(format('queued %s for %s #vibescaling', q, a.open_id), 'https://verified.example/queued.mp4') AS id
  FROM generate_series(1, (SELECT queued FROM bench.shape)) q, bench.accounts a ORDER BY q, a.i;

-- What each account should end up with: every place of the plan, the
-- caption TikTok will see as the title, and the mode. An occurrence's
-- instant is its rule's local time on its local day (the grid's instant
-- unless daylight saving changes meanwhile); a queued post's is its hole's
-- (add_to_queue decides: the checks only require a slot of the account).
CREATE TABLE bench.expected AS
SELECT a.id AS account_id, a.open_id, p.day, p.pos,
       CASE WHEN p.kind = 'rec'
            THEN ((bench.at(1, p.pos) AT TIME ZONE a.zone)::date + (p.day - 1)
                  + (bench.at(1, p.pos) AT TIME ZONE a.zone)::time) AT TIME ZONE a.zone
            ELSE p.at END AS at,
       p.kind, p.n,
       CASE WHEN p.pos = 15 THEN 'inbox' ELSE 'direct' END AS mode,
       CASE p.kind WHEN 'target' THEN format('campaign post %s for %s #vibescaling', p.n, a.open_id)
                   WHEN 'queue' THEN format('queued %s for %s #vibescaling', p.n, a.open_id)
                   ELSE format('evergreen %s #vibescaling', p.n) END AS caption
  FROM bench.accounts a, bench.places p;
CREATE INDEX ON bench.expected (account_id, at);
ANALYZE;

-- The dispatch runs' helpers.
-- The posts of day d of the plan, every account's.
CREATE FUNCTION bench.day_posts(day integer)
RETURNS SETOF vibescaling.posts
LANGUAGE sql STABLE
AS $$
    SELECT p.* FROM vibescaling.posts p
     WHERE p.scheduled_at >= bench.at(day, 0) - interval '45 minutes'
       AND p.scheduled_at < bench.at(day, 0) - interval '45 minutes' + interval '1 day'
       AND p.tiktok_account_id IN (SELECT id FROM bench.accounts)
$$;

-- After a day's main runs (campaign_dispatch.sql): dispatcher runs on the
-- run's own clock (as_of = the day's end plus the real time since started,
-- so that a retry comes due as it would) until none of the day's posts is
-- scheduled, for at most 10 minutes; the number of runs goes to the
-- setting bench.followup_runs.
CREATE PROCEDURE bench.finish_day(day integer, started timestamptz)
LANGUAGE plpgsql
AS $$
DECLARE
    n       integer := 0;
    v_start timestamptz := bench.at(day, 0) - interval '45 minutes';
    v_end   timestamptz := v_start + interval '1 day';
BEGIN
    PERFORM set_config('bench.followup_runs', '0', false);
    LOOP
        -- Through the dispatcher's own index of scheduled posts (by due
        -- time; a retry is due within a day of the day's end), so that
        -- this test adds next to nothing to the dispatch's measured CPU.
        EXIT WHEN NOT EXISTS (SELECT 1 FROM vibescaling.posts p
                               WHERE p.status = 'scheduled'
                                 AND coalesce(p.next_attempt_at, p.scheduled_at) >= v_start
                                 AND coalesce(p.next_attempt_at, p.scheduled_at) < v_end + interval '1 day'
                                 AND p.scheduled_at >= v_start AND p.scheduled_at < v_end)
               OR clock_timestamp() > started + interval '10 minutes';
        CALL vibescaling.dispatch_due_posts(as_of => v_end + (clock_timestamp() - started));
        n := n + 1;
        PERFORM set_config('bench.followup_runs', n::text, false);
        COMMIT;
        PERFORM pg_sleep(2);
    END LOOP;
END
$$;

-- A fresh simulator state for a day's dispatch (TikTok's caps count a
-- rolling 24 hours, and the runs compress days into minutes): the
-- simulator's state is reset, its caps set (Direct Posts 15 a day per
-- creator, 5 pending inbox drafts, an audited app, TikTok's rate limits),
-- and each account's user registered again with the token the account holds
-- (read as the superuser can).
CREATE FUNCTION bench.fresh_simulator()
RETURNS jsonb
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM vs_test.sim_post('/_sim/reset');
    PERFORM vs_test.sim_post('/_sim/users', jsonb_build_object(
                'access_token', vibescaling._unseal(t.access_token_enc), 'open_id', t.open_id,
                'refresh_token', 'rft.' || t.open_id, 'daily_post_cap', 15))
       FROM vibescaling.tiktok_accounts t JOIN bench.accounts a ON a.id = t.id;
    RETURN vs_test.sim_post('/_sim/config', '{"audited": true, "pending_share_limit": 5, "active_user_cap": null,
                                             "rate_limits": true, "latency_ms": 0}');
END
$$;

-- The log's weekly partitions, as the vibescaling-logs job keeps them.
CALL vibescaling.maintain_logs();
