-- One file of test/bench/media_probe.sh: loads it into a large object and
-- probes it :runs times with _media_facts. psql variables: file, name, runs.
\set ON_ERROR_STOP 1
SELECT lo_from_bytea(0, pg_read_binary_file(:'file')) AS lo \gset
SELECT set_config('vs.lo', :'lo', false) || set_config('vs.runs', :'runs', false) AS set \gset
CREATE TEMP TABLE probes (ms double precision, facts jsonb);
DO $$
DECLARE
    t0 timestamptz;
    f  jsonb;
BEGIN
    FOR i IN 1 .. current_setting('vs.runs')::integer LOOP
        t0 := clock_timestamp();
        f := vibescaling._media_facts(jsonb_build_object('large_object', current_setting('vs.lo')::oid), 'video');
        INSERT INTO probes VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000, f);
    END LOOP;
END
$$;
SELECT format('%s: %s MB, probe read %s KB, median %s ms, max %s ms (%s runs); facts %s',
              :'name', round(max((facts->>'size_bytes')::numeric) / 1048576, 1),
              round(max((facts->>'bytes_read')::numeric) / 1024),
              round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1), round(max(ms)::numeric, 1),
              count(*), (SELECT facts - 'bytes_read' - 'size_bytes' - 'message' FROM probes LIMIT 1))
  FROM probes;
