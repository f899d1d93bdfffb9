-- Retention benchmark (test/bench/retention.sh): while the retention job
-- runs beside a dispatch (sessions named bench-active), samples every 5 ms
-- which processes wait for a lock, until none of them is left. Prints, per
-- process kind, the samples seen waiting and the longest wait (first to
-- last sample of one pid's wait for one statement).
\set ON_ERROR_STOP 1
\set QUIET 1
CREATE TEMP TABLE waits (at timestamptz, pid integer, backend_type text, relation text, query text);
DO $$
BEGIN
    PERFORM pg_sleep(1);
    LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'bench-active');
        INSERT INTO waits
        SELECT clock_timestamp(), a.pid, a.backend_type, l.relation::regclass::text, left(a.query, 60)
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE NOT l.granted AND a.pid <> pg_backend_pid();
        PERFORM pg_sleep(0.005);
    END LOOP;
END
$$;
\pset tuples_only on
\pset format unaligned
-- A wait: one pid's samples with no gap over 50 ms between them.
SELECT coalesce(jsonb_agg(x), '[]') FROM (
    SELECT waiter, sum(n) AS samples, count(*) AS waits, round(max(span) * 1000) AS longest_wait_ms
      FROM (SELECT waiter, pid, episode, count(*) AS n, extract(epoch FROM max(at) - min(at)) AS span
              FROM (SELECT *, sum(new_wait) OVER (PARTITION BY pid ORDER BY at) AS episode
                      FROM (SELECT at, pid,
                                   CASE WHEN query LIKE '%maintain_logs%' THEN 'retention job' ELSE backend_type END AS waiter,
                                   CASE WHEN at - lag(at) OVER (PARTITION BY pid ORDER BY at) < interval '50 ms' THEN 0 ELSE 1 END AS new_wait
                              FROM waits) s) e
             GROUP BY waiter, pid, episode) w
     GROUP BY waiter) x;
