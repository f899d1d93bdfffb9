-- Local time and posting slots: at_local across both daylight-saving
-- changes, an account's weekly slots in its zone, "add to queue" into the
-- next free slot (a removed post frees its slot), and TikTok's daily cap.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(20);

SELECT md5(random()::text) AS run \gset

-- Local times, by PostgreSQL's rules.
SELECT is(vibescaling.at_local('2026-07-01 09:00', 'Europe/Paris'), '2026-07-01 07:00+00'::timestamptz,
          'at_local: 09:00 in Paris in summer is 07:00 UTC');
SELECT is(vibescaling.at_local('2027-03-28 02:30', 'Europe/Paris'), '2027-03-28 01:30+00'::timestamptz,
          'spring forward: 02:30 does not exist in Paris that night; it is taken as 03:30 (01:30 UTC)');
SELECT is(vibescaling.at_local('2027-11-07 01:30', 'America/New_York'), '2027-11-07 06:30+00'::timestamptz,
          'fall back: 01:30 happens twice in New York that night; it is taken once, in standard time (06:30 UTC)');
SELECT is(vs_test.sqlstate_of($$SELECT vibescaling.at_local('2027-01-01 09:00', 'Mars/Olympus')$$), '22023',
          'an unknown zone: 22023');

-- Slots.
SELECT vs_test.new_account('slot_' || :'run') AS acct \gset
SELECT is(jsonb_array_length(vibescaling.set_posting_slots(:'acct', 'Europe/Paris',
            '[{"weekday": "mon", "time": "09:00"}, {"weekday": 3, "time": "18:30"}, {"weekday": "sun", "time": "02:30"}]')
            #> '{data,slots}'), 3, 'set_posting_slots: three weekly slots in Paris');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.set_posting_slots(%L, 'Europe/Paris', '[{"weekday": 8, "time": "09:00"}]')$$, :'acct')),
          '22023', 'a weekday out of 1..7: 22023');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.set_posting_slots(%L, 'Europe/Paris', '[{"weekday": 1, "time": "25:00"}]')$$, :'acct')),
          '22023', 'a time that is no time: 22023');
SELECT is((SELECT count(*) FROM vibescaling.posting_slots WHERE tiktok_account_id = :'acct'), 3::bigint,
          '... a refused set leaves the slots as they were');
SELECT is(vibescaling.next_free_slot(:'acct', '2027-03-27 00:00+00'), '2027-03-28 01:30+00'::timestamptz,
          'the Sunday 02:30 slot on the spring-forward night: 03:30 Paris time, once');
SELECT is(vibescaling.next_free_slot(:'acct', '2027-03-28 01:31+00'), '2027-03-29 07:00+00'::timestamptz,
          '... then Monday 09:00 (summer time: 07:00 UTC)');

SELECT vs_test.new_account('slotny_' || :'run') AS ny \gset
SELECT vibescaling.set_posting_slots(:'ny', 'America/New_York', '[{"weekday": "sun", "time": "01:30"}]') IS NOT NULL AS set \gset
SELECT is(vibescaling.next_free_slot(:'ny', '2027-11-07 00:00+00'), '2027-11-07 06:30+00'::timestamptz,
          'the Sunday 01:30 slot on the fall-back night in New York: once, at 01:30 standard time');
SELECT is(vibescaling.next_free_slot(:'ny', '2027-11-07 06:31+00'), '2027-11-14 06:30+00'::timestamptz,
          '... and not again that night: next the following Sunday');

-- Add to queue: each draft into the next free slot, in order.
SELECT vibescaling.set_posting_slots(:'acct', 'Europe/Paris',
         '[{"weekday": 1, "time": "09:00"}, {"weekday": 3, "time": "09:00"}]') IS NOT NULL AS set \gset
CREATE TEMP TABLE queued AS
SELECT n, vs_test.new_video('queued ' || n || ' ' || :'run') AS id FROM generate_series(1, 3) n;
SELECT vibescaling.add_to_queue(id, :'acct', 'SELF_ONLY') IS NOT NULL FROM queued ORDER BY n;
SELECT is((SELECT count(DISTINCT p.scheduled_at) FROM vibescaling.posts p JOIN queued q ON q.id = p.id WHERE p.status = 'scheduled'),
          3::bigint, 'add_to_queue: three drafts scheduled into three different slots');
SELECT ok((SELECT bool_and(extract(isodow FROM p.scheduled_at AT TIME ZONE 'Europe/Paris') IN (1, 3)
                           AND to_char(p.scheduled_at AT TIME ZONE 'Europe/Paris', 'HH24:MI') = '09:00')
             FROM vibescaling.posts p JOIN queued q ON q.id = p.id),
          '... each on a Monday or Wednesday at 09:00 Paris time');
SELECT ok((SELECT array_agg(p.scheduled_at ORDER BY q.n) = array_agg(p.scheduled_at ORDER BY p.scheduled_at)
             FROM vibescaling.posts p JOIN queued q ON q.id = p.id), '... in the order they were queued');
SELECT scheduled_at AS first_slot FROM vibescaling.posts WHERE id = (SELECT id FROM queued WHERE n = 1) \gset
SELECT vibescaling.cancel_post((SELECT id FROM queued WHERE n = 1)) IS NOT NULL AS cancelled \gset
SELECT vs_test.new_video('queued 4 ' || :'run') AS fourth \gset
SELECT is((vibescaling.add_to_queue(:'fourth', :'acct', 'SELF_ONLY') #>> '{data,scheduled_at}')::timestamptz, :'first_slot'::timestamptz,
          'a cancelled post frees its slot: the next one queued takes it');
SELECT ok((SELECT scheduled_at FROM vibescaling.posts WHERE id = :'fourth') >= now() + interval '5 minutes',
          '... at least 5 minutes ahead');

-- TikTok's daily cap: a day with 15 posts of the account already is skipped.
SELECT vibescaling.next_free_slot(:'acct') AS next_slot \gset
SET session_replication_role = replica;   -- 15 posts that day, as if scheduled earlier
INSERT INTO vibescaling.posts (caption, video_url, status, scheduled_at, tiktok_account_id, privacy_level)
SELECT 'cap filler ' || i, 'https://verified.example/a.mp4', 'scheduled', :'next_slot'::timestamptz + i * interval '1 minute',
       :'acct', 'SELF_ONLY'
  FROM generate_series(1, 15) i;
SET session_replication_role = origin;
SELECT ok(vibescaling.next_free_slot(:'acct') > :'next_slot'::timestamptz
          AND date_trunc('day', vibescaling.next_free_slot(:'acct') AT TIME ZONE 'UTC') > date_trunc('day', :'next_slot'::timestamptz AT TIME ZONE 'UTC'),
          'a UTC day where the account has 15 posts already (TikTok''s daily cap) gets no more from the queue');

-- No slots: 55000.
SELECT vs_test.new_account('noslot_' || :'run') AS bare \gset
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.add_to_queue(%L, %L, 'SELF_ONLY')$$,
                                     vs_test.new_video('nowhere'), :'bare')), '55000', 'an account without slots: 55000');
SELECT is(vibescaling.next_free_slot(:'bare'), NULL, '... and no free slot');

SELECT * FROM finish();
