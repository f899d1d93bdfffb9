-- Publish benchmark (run by test/bench/run.sh): the in-database cost of a
-- publish against a simulator that answers at once. Prints medians.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vibescaling CASCADE;
SET vibescaling.api_base_url = :'sim_url';

-- One account per post (the simulator accepts any token): TikTok's per-token
-- limits, which the extension keeps itself, allow 6 inits a minute per account.
INSERT INTO vibescaling.posts (caption, video_url)
SELECT 'bench ' || i, 'https://verified.example/bench.mp4' FROM generate_series(1, :n) i;
CREATE TEMP TABLE work AS
SELECT vibescaling.add_account('bench_' || md5(p.id::text), 'act.bench.' || md5(random()::text)) AS acct,
       p.id AS post_id
  FROM vibescaling.posts p WHERE p.status = 'draft' ORDER BY p.created_at;

-- CPU time (user + system, in clock ticks of 10 ms) this backend has used.
CREATE FUNCTION pg_temp.cpu_ticks() RETURNS bigint LANGUAGE sql AS $$
    SELECT (f[14])::bigint + (f[15])::bigint
      FROM regexp_split_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ') AS s(g),
           LATERAL (SELECT ARRAY['', ''] || g) AS t(f)
$$;

-- Publishes every draft one by one, timing each call.
CREATE TEMP TABLE timings (post_id uuid, ms double precision);
CREATE FUNCTION pg_temp.publish_all() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r record;
    t0 timestamptz;
    c0 bigint := pg_temp.cpu_ticks();
BEGIN
    FOR r IN SELECT post_id, acct FROM work LOOP
        t0 := clock_timestamp();
        PERFORM vibescaling.publish_post(r.post_id, r.acct, 'SELF_ONLY');
        INSERT INTO timings VALUES (r.post_id, extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
    RETURN pg_temp.cpu_ticks() - c0;
END
$$;
SELECT pg_temp.publish_all() AS ticks \gset

\echo
\echo 'publish_post, sequential, simulator latency 0 ms'
SELECT count(*) AS publishes,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms)::numeric, 2) AS median_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.ms)::numeric, 2) AS p95_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY h.http_ms)::numeric, 2) AS median_http_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms - h.http_ms)::numeric, 2) AS median_in_db_ms,
       round(:ticks * 10.0 / count(*), 2) AS backend_cpu_ms_per_publish
  FROM timings t
  JOIN (SELECT post_id, sum(duration_ms) AS http_ms FROM vibescaling.dispatch_logs GROUP BY post_id) h USING (post_id);
