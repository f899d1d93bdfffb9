-- Defect 2: SSRF through a tenant's video_url. The extension downloads a
-- video it must upload itself; a URL pointing at a service on the
-- database host, or a private network, must not be fetched, must not tell
-- open ports from closed ones, and must never have its reply quoted back.
-- What is downloaded must be a video (by its bytes) and at most 4 GiB.
-- (The core's unit tests cover every address class, DNS answers, and
-- redirects between two loopback servers; this runs it end to end.)
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(14);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vs_test.new_account('ssrf_' || :'run') AS acct \gset
SELECT current_setting('vibescaling.api_base_url') AS sim \gset
SELECT regexp_replace(:'sim', '^http://127\.0\.0\.1:', '') AS port \gset

-- publish_post of a video at url: {"state", "message" (the whole error text)}.
CREATE FUNCTION pg_temp.try(url text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_post uuid := vs_test.new_video('ssrf', url);
    m text; d text; h text; s text;
BEGIN
    PERFORM vibescaling.publish_post(v_post, current_setting('vs.acct')::uuid, 'SELF_ONLY');
    RETURN jsonb_build_object('state', 'ok');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, s = RETURNED_SQLSTATE;
    RETURN jsonb_build_object('state', s, 'message', concat_ws(' | ', m, d, h));
END
$$;
SELECT set_config('vs.acct', :'acct', false) IS NOT NULL AS set \gset
CREATE FUNCTION pg_temp.media_calls() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM jsonb_array_elements(vs_test.sim_get('/_sim/requests?endpoint=media')->'requests')
$$;

-- Without an allowed network, loopback is refused before any connection.
SET vibescaling.source_allowed_networks = '';
SELECT pg_temp.media_calls() AS media0 \gset
SELECT pg_temp.try(:'sim' || '/_sim/media/a.mp4?size=1048576') AS open_port \gset
SELECT is(:'open_port'::jsonb->>'state', '08000', 'a video_url on the database host (127.0.0.1) is refused (08000)');
SELECT is(pg_temp.media_calls(), :'media0'::bigint, '... before anything reached the service');
SELECT pg_temp.try('http://127.0.0.1:1/a.mp4') AS closed_port \gset
SELECT is(regexp_replace(:'closed_port'::jsonb->>'message', 'http://[^ ]*', 'URL', 'g'),
          regexp_replace(:'open_port'::jsonb->>'message', 'http://[^ ]*', 'URL', 'g'),
          'an open port and a closed port give the same error (no port scanning)');
SELECT is((pg_temp.try('http://localhost:' || :'port' || '/_sim/media/a.mp4?size=1048576'))->>'state', '08000',
          'a name that resolves to loopback is refused too');
SELECT is((pg_temp.try('http://[::1]:' || :'port' || '/_sim/media/a.mp4?size=1048576'))->>'state', '08000',
          'IPv6 loopback is refused');
SELECT is((pg_temp.try('http://[::ffff:127.0.0.1]:' || :'port' || '/_sim/media/a.mp4?size=1048576'))->>'state', '08000',
          'IPv4-mapped IPv6 loopback is refused');
SELECT is((pg_temp.try('http://0.0.0.0:' || :'port' || '/_sim/media/a.mp4?size=1048576'))->>'state', '08000',
          'the unspecified address is refused');
SELECT is(pg_temp.media_calls(), :'media0'::bigint, '... none of them reached the service');
RESET vibescaling.source_allowed_networks;

-- An allowed network (the simulator's, as the superuser configured it):
-- what a source says is never quoted, and only videos pass.
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "media", "action": "error", "http_status": 500,
                        "error_code": "internal_error", "message": "INTERNAL-SECRET: db password hunter2"}')
       IS NOT NULL AS armed \gset
SELECT pg_temp.try(:'sim' || '/_sim/media/b.mp4?size=1048576') AS leaky \gset
SELECT isnt(:'leaky'::jsonb->>'state', 'ok', 'a source answering 500 fails the publish');
SELECT unalike(:'leaky'::jsonb->>'message', '%INTERNAL-SECRET%', '... without quoting the source''s reply');
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "media", "action": "html", "http_status": 200}')
       IS NOT NULL AS armed \gset
SELECT is((pg_temp.try(:'sim' || '/_sim/media/c.mp4?size=1048576'))->>'state', '22023',
          'a source whose bytes are not a video (HTML) is refused (22023)');
SELECT is((pg_temp.try(:'sim' || '/_sim/media/d.mp4?size=5368709120'))->>'state', '22023',
          'a source of 5 GiB is refused (TikTok takes at most 4 GiB)');
SELECT cmp_ok((SELECT coalesce(max((r->'body'->>'bytes_sent')::bigint), 0)
                 FROM jsonb_array_elements(vs_test.sim_get('/_sim/requests?endpoint=media')->'requests') r
                WHERE r->'body'->>'name' = 'd.mp4'), '<', 1048576::bigint,
       '... without downloading it');
SELECT is((pg_temp.try(:'sim' || '/_sim/media/e.mp4?size=1048576'))->>'state', 'ok',
          'a real video from the allowed network is uploaded');

SELECT * FROM finish();
