-- Defect 7: one tenant denying service to the others. Sizes TikTok would
-- never take are refused when written, a tenant's open posts are capped,
-- forged webhook deliveries add to a counter instead of a row each, and
-- the dispatcher never waits on a video source (uploads have their own job).
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(19);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT vibescaling.setup_api_roles() IS NOT NULL AS roles \gset

-- Sizes, through the HTTP API as a tenant (400) and in SQL (22023).
SELECT is(vs_test.pgrst('vibescaling_user', 'lim-' || :'run', 'POST', '/posts',
                        $$INSERT INTO vibescaling_api.posts (caption, video_url)
                          VALUES (repeat('x', 50 * 1024 * 1024), 'https://verified.example/a.mp4') RETURNING id$$)->>'http',
          '400', 'a 50 MB caption is refused through the API (400)');
SELECT is(vs_test.pgrst('vibescaling_user', 'lim-' || :'run', 'POST', '/posts',
                        $$INSERT INTO vibescaling_api.posts (media_type, title, photo_urls)
                          VALUES ('photo', 't', ARRAY(SELECT 'https://verified.example/' || i || '.jpg'
                                                        FROM generate_series(1, 200000) i)) RETURNING id$$)->>'http',
          '400', '200,000 photo_urls are refused (400)');
SELECT is(vs_test.pgrst('vibescaling_user', 'lim-' || :'run', 'POST', '/posts',
                        $$INSERT INTO vibescaling_api.posts (caption, video_url)
                          VALUES ('u', 'https://verified.example/' || repeat('a', 10 * 1024 * 1024)) RETURNING id$$)->>'http',
          '400', 'a 10 MB video_url is refused (400)');
SELECT is(vs_test.pgrst('vibescaling_user', 'lim-' || :'run', 'POST', '/posts',
                        $$INSERT INTO vibescaling_api.posts (media_type, title, photo_urls)
                          VALUES ('photo', 'ok', '{https://verified.example/1.jpg}') RETURNING id$$)->>'http',
          '200', 'a tenant can create a photo post through the API (media_type is writable)');
SELECT is(vs_test.sqlstate_of($$INSERT INTO vibescaling.posts (caption) VALUES (repeat('x', 50 * 1024 * 1024))$$),
          '22023', 'in SQL too, any role (22023)');

-- A tenant's open posts are capped (vibescaling.max_open_posts_per_owner).
SET vibescaling.max_open_posts_per_owner = 3;
CREATE FUNCTION pg_temp.tenant_draft(sub text) RETURNS text LANGUAGE sql AS $$
    SELECT vs_test.pgrst('vibescaling_user', sub, 'POST', '/posts',
                         $q$INSERT INTO vibescaling_api.posts (caption, video_url)
                            VALUES ('quota', 'https://verified.example/a.mp4') RETURNING id$q$)->>'http'
$$;
SELECT is(ARRAY[pg_temp.tenant_draft('quota-' || :'run'), pg_temp.tenant_draft('quota-' || :'run'),
                pg_temp.tenant_draft('quota-' || :'run')], ARRAY['200', '200', '200'], 'a tenant may open 3 posts');
SELECT is(pg_temp.tenant_draft('quota-' || :'run'), '429', '... the 4th is refused with 429');
SELECT is(pg_temp.tenant_draft('other-' || :'run'), '200', '... while another tenant is not affected');
SELECT is((SELECT count(*) FROM vibescaling.posts WHERE owner = 'quota-' || :'run'), 3::bigint, '... 3 posts stored');
DELETE FROM vibescaling.posts WHERE owner = 'quota-' || :'run' AND id = (SELECT id FROM vibescaling.posts
                                                                        WHERE owner = 'quota-' || :'run' LIMIT 1);
SELECT is(pg_temp.tenant_draft('quota-' || :'run'), '200', '... and one more once one is deleted');
RESET vibescaling.max_open_posts_per_owner;

-- A tenant's bytes uploaded in 24 hours are capped (vibescaling.max_upload_mb_per_owner_day).
SET vibescaling.max_upload_mb_per_owner_day = 1;
SELECT vs_test.new_account('bytes_' || :'run') AS bytes_acct \gset
UPDATE vibescaling.tiktok_accounts SET owner = 'bytes-' || :'run' WHERE id = :'bytes_acct';
SELECT current_setting('vibescaling.api_base_url') || '/_sim/media/quota.mp4?size=1048576' AS mb_url \gset
INSERT INTO vibescaling.posts (caption, video_url, owner) VALUES ('1 MB', :'mb_url', 'bytes-' || :'run') RETURNING id AS first_mb \gset
INSERT INTO vibescaling.posts (caption, video_url, owner) VALUES ('1 MB more', :'mb_url', 'bytes-' || :'run') RETURNING id AS second_mb \gset
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'first_mb', :'bytes_acct')),
          'ok', 'a tenant may upload 1 MB when its quota is 1 MB a day');
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'second_mb', :'bytes_acct')),
          '53400', '... the next megabyte that day is refused (53400) before any init');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('bytes_' || :'run', 'video_init')), 1::bigint, '... one init in all');
RESET vibescaling.max_upload_mb_per_owner_day;

-- Forged webhook deliveries: a counter per day and reason, no row each, no worker.
SELECT count(*) AS logs_before FROM vibescaling.dispatch_logs \gset
SELECT coalesce(sum(refusals), 0) AS refused_before FROM vibescaling.webhook_refusals WHERE error_code = 'bad_signature' \gset
CREATE FUNCTION pg_temp.forged(n integer) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_http text;
BEGIN
    FOR i IN 1 .. n LOOP
        v_http := vs_test.pgrst('vibescaling_webhook', NULL, 'POST', '/rpc/handle_webhook',
                                format('SELECT vibescaling_api.handle_webhook(%L::json)', '{"event": "x", "n": ' || i || '}'),
                                jsonb_build_object('tiktok-signature', 't=1,s=' || repeat('0', 64)))->>'http';
    END LOOP;
    RETURN v_http;
END
$$;
SELECT is(pg_temp.forged(200), '403', '200 forged webhook deliveries are refused (403)');
SELECT is((SELECT sum(refusals) FROM vibescaling.webhook_refusals WHERE error_code = 'bad_signature'),
          :'refused_before'::numeric + 200, '... and counted');
SELECT is((SELECT count(*) FROM vibescaling.webhook_refusals WHERE error_code = 'bad_signature'), 1::bigint,
          '... in one row');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs), :'logs_before'::bigint, '... adding no dispatch_logs row');

-- The dispatcher leaves the uploads to their own job: it never downloads a source.
SELECT vs_test.new_account('iso_' || :'run') AS acct \gset
SELECT (vibescaling.schedule_post(vs_test.new_video('pulled'), now() + interval '10 minutes', :'acct', 'SELF_ONLY')
        #>> '{data,id}') AS pulled \gset
SELECT (vibescaling.schedule_post(vs_test.new_video('uploaded', 'http://127.0.0.1:1/never.mp4'),
                                  now() + interval '20 minutes', :'acct', 'SELF_ONLY') #>> '{data,id}') AS uploaded \gset
SELECT now() + interval '21 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'pulled'), 'posted', 'dispatch_due_posts publishes the pulled video');
SELECT is((SELECT status || '/' || attempts FROM vibescaling.posts WHERE id = :'uploaded'), 'scheduled/0',
          '... and leaves the upload, whose source never answers, untouched for dispatch_due_uploads');

SELECT * FROM finish();
