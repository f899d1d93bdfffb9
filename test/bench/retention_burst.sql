-- Retention benchmark (test/bench/retention.sh), the measured dispatch: one
-- dispatcher run over the due posts, nothing else (the sampler around it
-- counts every CPU second of the cluster). Writes the backend's pid to
-- :pidfile first and prints the wall time in seconds.
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
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3);
