-- burst_vs_worker.sh's measured part for vibescaling: one dispatcher run
-- (CALL vibescaling.dispatch_due_posts()) with :concurrency calls in flight
-- at most, and nothing else, so that the CPU sampled around it is the
-- dispatch's (the run's statistics are read after the sampler stops).
-- Writes this backend's pid to :pidfile for the sampler first; prints
-- {"wall_s": ...}.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
SET vibescaling.max_concurrent_requests = :concurrency;
\pset tuples_only on
\pset format unaligned
\o :pidfile
SELECT pg_backend_pid();
\o
SELECT clock_timestamp() AS t0 \gset
CALL vibescaling.dispatch_due_posts();
SELECT jsonb_build_object('wall_s', round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3));
