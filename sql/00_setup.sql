-- Regression setup: point every later session of this database at the
-- TikTok simulator that scripts/test.sh started on $VS_SIM_PORT, and add a
-- helper that reports a statement's SQLSTATE and message.
\getenv sim_port VS_SIM_PORT
SELECT 'http://127.0.0.1:' || :'sim_port' AS sim_url \gset
ALTER DATABASE contrib_regression SET vibescaling.api_base_url TO :'sim_url';
ALTER DATABASE contrib_regression SET vibescaling.request_timeout_ms TO 10000;
-- The simulator serves the videos the extension downloads from loopback,
-- which source downloads may reach only when listed (superuser-only).
ALTER DATABASE contrib_regression SET vibescaling.source_allowed_networks TO '127.0.0.1/32';
CREATE FUNCTION public.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
