-- Campaign benchmark, the alternative without the extension's checks: the
-- same posts (account, caption, video, privacy level, time) written by an
-- application into its own table (test/bench/node_worker/schema.sql's
-- worker.posts) with plain INSERTs, one statement of one post's rows (up to
-- one per account) at a time, each its own transaction: no cap, slot,
-- 5-minute or creator check, no targets' parent, no recurrence rule.
-- :body is the INSERT statements (campaign_in_cluster.sh writes them from
-- the plan). Writes the backend's pid to :pidfile for the sampler first;
-- prints {"phase", "calls", "wall_s"} last.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
\pset tuples_only on
\pset format unaligned
\o :pidfile
SELECT pg_backend_pid();
\o /dev/null
SELECT clock_timestamp() AS t0 \gset
\i :body
\o
SELECT json_build_object('phase', 'plain', 'calls', :calls,
                         'wall_s', round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3));
