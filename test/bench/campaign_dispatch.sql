-- Campaign benchmark, the measured dispatch of day :day of the plan (its
-- posts were scheduled for that UTC day; nothing of it is due yet), in one
-- of two ways (:mode):
--   cadence  the day as pg_cron's */5 job would run it, compressed: 288
--            runs of CALL vibescaling.dispatch_due_posts(as_of => the day's
--            start + 5 minutes x k), k = 1 .. 288, one every :pace seconds
--            of real time; each run sends the posts due by its as_of
--   burst    one run with as_of at the day's end: the whole day at once (as
--            after an outage), TikTok's 6 inits a minute per account
--            limiting it
-- then, in either, runs on the run's own clock (as_of = the day's end plus
-- the real time since) until none of the day's posts is scheduled any more
-- (a retry is due on that clock), for at most 10 minutes. No post is
-- changed by hand: as_of is the dispatcher's own "as if it were" argument.
-- Writes this backend's pid to :pidfile for the sampler first; prints
-- {"wall_s", "main_wall_s", "followup_runs", "runs"} last.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
\pset tuples_only on
\pset format unaligned
\o :pidfile
SELECT pg_backend_pid();
\o /dev/null
SELECT :'mode' = 'cadence' AS is_cadence \gset
SELECT bench.at(:day, 0) - interval '45 minutes' AS day_start, clock_timestamp() AS t0 \gset

\if :is_cadence
SELECT format('CALL vibescaling.dispatch_due_posts(as_of => %L)', :'day_start'::timestamptz + k * interval '5 minutes'),
       format('SELECT pg_sleep(greatest(0, extract(epoch FROM %L::timestamptz - clock_timestamp())))',
              :'t0'::timestamptz + k * :pace * interval '1 second')
  FROM generate_series(1, 288) k
\gexec
\set runs 288
\else
CALL vibescaling.dispatch_due_posts(as_of => :'day_start'::timestamptz + interval '1 day');
\set runs 1
\endif
SELECT clock_timestamp() AS t1 \gset
CALL bench.finish_day(:day, :'t1'::timestamptz);

\o
SELECT json_build_object('wall_s', round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3),
                         'main_wall_s', round(extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz)::numeric, 3),
                         'followup_runs', current_setting('bench.followup_runs')::integer,
                         'runs', :runs);
