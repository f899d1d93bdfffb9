-- Scheduling that succeeds, and the pg_cron job.
SELECT vibescaling.add_account('sched_user', 'act.sched', NULL, NULL, 'Sched') AS acct \gset
INSERT INTO vibescaling.posts (id, caption, video_url) VALUES
    ('00000000-0000-0000-0000-0000000000d1', 'scheduled by function', 'https://verified.example/d1.mp4'),
    ('00000000-0000-0000-0000-0000000000d2', 'scheduled by PATCH', 'https://verified.example/d2.mp4');

-- schedule_post answers {"data": <the post>}.
SELECT jsonb_object_keys(r->'data') AS key
  FROM vibescaling.schedule_post('00000000-0000-0000-0000-0000000000d1', now() + interval '1 hour', :'acct',
                                 'MUTUAL_FOLLOW_FRIENDS', disable_duet => true) r
 ORDER BY 1;
SELECT status, privacy_level, mode, disable_duet, scheduled_at > now() + interval '59 minutes' AS in_an_hour
  FROM vibescaling.posts WHERE id = '00000000-0000-0000-0000-0000000000d1';

-- What PostgREST's PATCH /posts?id=eq.<id> runs.
UPDATE vibescaling.posts
   SET status = 'scheduled', scheduled_at = now() + interval '10 minutes', tiktok_account_id = :'acct',
       privacy_level = 'SELF_ONLY', mode = 'inbox'
 WHERE id = '00000000-0000-0000-0000-0000000000d2';
SELECT status, mode FROM vibescaling.posts WHERE id = '00000000-0000-0000-0000-0000000000d2';

-- Editing the caption of a scheduled post keeps it scheduled (the 5-minute
-- rule applies when the time is set); setting it back to draft unschedules.
UPDATE vibescaling.posts SET caption = 'edited' WHERE id = '00000000-0000-0000-0000-0000000000d2';
UPDATE vibescaling.posts SET status = 'draft' WHERE id = '00000000-0000-0000-0000-0000000000d2';
SELECT status, caption FROM vibescaling.posts WHERE id = '00000000-0000-0000-0000-0000000000d2';

-- The pg_cron job.
CREATE EXTENSION pg_cron;
SELECT vibescaling.enable_scheduler() > 0 AS job_created;
SELECT jobname, schedule, command FROM cron.job ORDER BY jobname;
SELECT vibescaling.enable_scheduler('*/10 * * * *') > 0 AS job_updated;
SELECT jobname, schedule FROM cron.job ORDER BY jobname;
SELECT sqlstate_of($$SELECT vibescaling.enable_scheduler('every now and then')$$);
SELECT vibescaling.disable_scheduler() AS dropped, vibescaling.disable_scheduler() AS dropped_again;
SELECT count(*) AS jobs FROM cron.job;

-- Clean up so later suites start from an empty posts table.
DELETE FROM vibescaling.posts;
