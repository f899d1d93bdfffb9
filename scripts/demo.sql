-- The vibescaling demo (run by scripts/demo.sh against the TikTok simulator).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset footer off
SET client_min_messages = warning;

\echo
\echo '== 1. Install the extension; point it at the TikTok simulator'
CREATE EXTENSION vibescaling CASCADE;   -- CASCADE: also pgcrypto
CREATE EXTENSION pg_cron;
SELECT format('ALTER DATABASE %I SET vibescaling.api_base_url = %L', current_database(), :'sim_url') \gexec
SET vibescaling.api_base_url = :'sim_url';
SHOW vibescaling.api_base_url;

\echo
\echo '== 2. Connect a TikTok account (OAuth: consent URL, then the code TikTok sends to your redirect URI)'
SELECT vibescaling.authorize_url('https://app.example/tiktok/callback', 'csrf-state-123') AS consent_url;
\echo 'The simulator accepts the code "code-<open_id>":'
SELECT vibescaling.connect_account('code-demo_creator', 'https://app.example/tiktok/callback') AS account_id \gset
SELECT id, open_id, display_name, scopes, access_token_expires_at > now() AS token_valid, status
  FROM vibescaling.accounts;
\echo 'Tokens are stored encrypted (pgcrypto); the table is not readable by application roles:'
SELECT open_id, left(encode(access_token_enc, 'hex'), 32) || '...' AS access_token_at_rest
  FROM vibescaling.tiktok_accounts;
SELECT vibescaling.creator_info(:'account_id') #> '{data}' AS creator_info;

\echo
\echo '== 3. Publish a video now (Direct Post: creator_info, then video/init)'
INSERT INTO vibescaling.posts (caption, video_url)
VALUES ('Launch day #vibescaling', 'https://verified.example/launch.mp4') RETURNING id AS video_post \gset
SELECT vibescaling.publish_post(:'video_post', :'account_id', 'PUBLIC_TO_EVERYONE', disable_duet => true) AS answer;

\echo
\echo '== 4. Upload a video to the creator''s inbox (they finish it in the TikTok app)'
INSERT INTO vibescaling.posts (caption, video_url)
VALUES ('Draft for the app', 'https://verified.example/draft.mp4') RETURNING id AS inbox_post \gset
SELECT vibescaling.publish_post(:'inbox_post', :'account_id', 'SELF_ONLY', mode => 'inbox') AS answer;

\echo
\echo '== 5. Publish a photo post (content/init, DIRECT_POST)'
INSERT INTO vibescaling.posts (media_type, title, caption, photo_urls)
VALUES ('photo', 'Behind the scenes', 'Three shots from the set',
        ARRAY['https://verified.example/1.jpg', 'https://verified.example/2.jpg', 'https://verified.example/3.jpg'])
RETURNING id AS photo_post \gset
SELECT vibescaling.publish_post(:'photo_post', :'account_id', 'MUTUAL_FOLLOW_FRIENDS', disable_comment => true) AS answer;

\echo
\echo '== 6. Schedule a post (at least 5 minutes ahead) and let the dispatcher publish it'
INSERT INTO vibescaling.posts (caption, video_url)
VALUES ('Scheduled for later', 'https://verified.example/later.mp4') RETURNING id AS scheduled_post \gset
SELECT jsonb_build_object('status', r #>> '{data,status}', 'scheduled_at', r #>> '{data,scheduled_at}') AS answer
  FROM vibescaling.schedule_post(:'scheduled_post', now() + interval '10 minutes', :'account_id', 'SELF_ONLY') r;
SELECT vibescaling.enable_scheduler() AS cron_job_id \gset
SELECT jobname, schedule, command FROM cron.job;
\echo 'The pg_cron job would run it within 5 minutes of its time; run the dispatcher now "as of" 11 minutes later:'
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT id, status, posted_at IS NOT NULL AS has_posted_at FROM vibescaling.posts WHERE id = :'scheduled_post';

\echo
\echo '== 7. A refusal: publishing a posted post again (55000, TikTok is not called)'
\set ON_ERROR_STOP 0
\set VERBOSITY default
SELECT vibescaling.publish_post(:'video_post', :'account_id', 'PUBLIC_TO_EVERYONE');
\set ON_ERROR_STOP 1

\echo
\echo '== 8. Poll publish_status until TikTok has finished processing every post'
CREATE FUNCTION pg_temp.poll_until_final(timeout_s integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_pending integer;
BEGIN
    FOR i IN 1..timeout_s LOOP
        SELECT count(*) INTO v_pending
          FROM vibescaling.posts p, vibescaling.publish_status(p.id) s
         WHERE p.status IN ('posted', 'failed')
           AND (s #>> '{data,status}' = 'processing'
                OR (s #>> '{data,status}' = 'published' AND jsonb_array_length(s #> '{data,public_post_ids}') = 0));
        EXIT WHEN v_pending = 0;
        PERFORM pg_sleep(1);
    END LOOP;
    RETURN v_pending;
END
$$;
SELECT pg_temp.poll_until_final(30) AS still_processing;
SELECT p.media_type, p.mode, p.status AS post_status, r.status, r.tiktok_status, r.public_post_ids
  FROM vibescaling.posts p JOIN vibescaling.publish_records r ON r.post_id = p.id
 ORDER BY r.id;

\echo
\echo '== 9. The dispatch log: every call to TikTok (no tokens in it)'
SELECT id, trigger, endpoint, http_status, outcome, error_code, log_id, publish_id, round(duration_ms::numeric, 1) AS ms
  FROM vibescaling.dispatch_logs ORDER BY id;

\echo
\echo '== 10. A burst: 300 accounts with a post each, all due at once, dispatched in rounds'
\echo '   (up to max_concurrent_requests posts per round, their calls in flight together)'
SELECT count(*) AS accounts_connected
  FROM generate_series(1, 300) i,
       LATERAL vibescaling.add_account(format('burst_creator_%s', i), format('act.burst-%s', i),
                                       format('rft.burst-%s', i), now() + interval '1 day',
                                       owner => 'acme') a;   -- tenant acme's (its Analytics page shows them)
SET session_replication_role = replica;   -- written as if scheduled earlier (the trigger wants 5 minutes ahead)
INSERT INTO vibescaling.posts (caption, video_url, status, scheduled_at, tiktok_account_id, privacy_level, owner)
SELECT 'Burst ' || a.open_id, 'https://verified.example/burst.mp4', 'scheduled', now() - interval '1 minute', a.id, 'SELF_ONLY',
       'acme'
  FROM vibescaling.accounts a WHERE a.open_id LIKE 'burst_creator_%';
SET session_replication_role = origin;
SET vibescaling.max_concurrent_requests = 100;
SELECT clock_timestamp() AS t0 \gset
CALL vibescaling.dispatch_due_posts();
SELECT count(*) FILTER (WHERE status = 'posted') AS posted, count(*) AS burst_posts,
       round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2) AS seconds,
       count(DISTINCT posted_at) AS rounds
  FROM vibescaling.posts WHERE caption LIKE 'Burst %';
SELECT vibescaling.http_pool_stats() AS connection_pool;
\echo 'Analytics over the dispatch log:'
SELECT * FROM vibescaling.dispatch_stats ORDER BY endpoint;
