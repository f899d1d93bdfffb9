-- Campaign benchmark, one measured scheduling path (:phase), as an
-- application would call it: one statement per call, each its own
-- transaction (psql's \gexec runs the generated calls one by one).
--   recur   repeat_post for each evergreen draft and account (each schedules
--           its occurrences of the coming week at once)
--   targets schedule_targets for each campaign draft: one call, every account
--   queue   add_to_queue for queued drafts :first to :last (its account's next
--           free slot), with JIT as the server has it or (:jit off) off
--   expand  expand_recurrences(), as its pg_cron job runs it
-- A refusal does not stop the run (no ON_ERROR_STOP): refusals are counted
-- from the posts afterwards. Writes the backend's pid to :pidfile for the
-- sampler first; prints {"phase", "calls", "wall_s"} last.
\set QUIET 1
SET client_min_messages = warning;
\pset tuples_only on
\pset format unaligned
\o :pidfile
SELECT pg_backend_pid();
\o /dev/null
SELECT :'phase' = 'recur' AS is_recur, :'phase' = 'targets' AS is_targets, :'phase' = 'queue' AS is_queue,
       :'phase' = 'expand' AS is_expand \gset
SELECT clock_timestamp() AS t0 \gset

\if :is_recur
SELECT format('SELECT vibescaling.repeat_post(%L, %L, %L, %L, %L, starts_at => %L, max_count => 5)',
              d.id, a.id,
              jsonb_build_object('every_days', 1, 'time', to_char(bench.at(1, 3 * d.n - 1) AT TIME ZONE a.zone, 'HH24:MI')),
              a.zone, '{"privacy_level": "PUBLIC_TO_EVERYONE"}', bench.at(1, 0) - interval '45 minutes')
  FROM bench.rec_drafts d, bench.accounts a
 ORDER BY d.n, a.i
\gexec
SELECT count(*) AS calls FROM bench.rec_drafts, bench.accounts \gset
\endif

\if :is_targets
SELECT format('SELECT vibescaling.schedule_targets(%L, %L, %L)', d.id, d.at,
              (SELECT jsonb_agg(jsonb_build_object('tiktok_account_id', a.id,
                                                   'caption', format('campaign post %s for %s #vibescaling', d.n, a.open_id))
                                || CASE WHEN d.mode = 'inbox' THEN jsonb_build_object('mode', 'inbox', 'privacy_level', 'SELF_ONLY')
                                        ELSE jsonb_build_object('privacy_level', 'PUBLIC_TO_EVERYONE') END
                                ORDER BY a.i)
                 FROM bench.accounts a))
  FROM bench.target_drafts d
 ORDER BY d.n
\gexec
SELECT count(*) AS calls FROM bench.target_drafts \gset
\endif

\if :is_queue
-- The queued drafts :first to :last in queue order (q, then account); with
-- :jit off, with JIT off in the session (see docs/benchmarks.md).
SELECT :'jit' = 'off' AS jit_off \gset
\if :jit_off
SET jit = off;
\endif
SELECT format('SELECT vibescaling.add_to_queue(%L, %L, %L)', q.id, q.account_id, 'PUBLIC_TO_EVERYONE')
  FROM (SELECT x.*, row_number() OVER (ORDER BY x.n, x.i) AS k FROM bench.queue_drafts x) q
 WHERE q.k BETWEEN :first AND :last
 ORDER BY q.k
\gexec
SELECT count(*) AS calls FROM (SELECT row_number() OVER () AS k FROM bench.queue_drafts) q
 WHERE q.k BETWEEN :first AND :last \gset
\endif

\if :is_expand
SELECT vibescaling.expand_recurrences() AS expanded \gset
\set calls 1
\endif

\o
SELECT json_build_object('phase', :'phase', 'calls', :calls,
                         'wall_s', round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3));
