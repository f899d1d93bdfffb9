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
\echo '== 9. After the publish: TikTok''s counts, kept with their history (collect_metrics,'
\echo '   pg_cron job vibescaling-metrics: the Display API''s video/query and user/info)'
SELECT vibescaling.collect_metrics() AS snapshots;
SELECT p.caption, m.video_id, m.view_count, m.like_count, m.comment_count, m.share_count, m.taken_at
  FROM vibescaling.post_metrics_latest m JOIN vibescaling.posts p ON p.id = m.post_id;
SELECT a.open_id, m.follower_count, m.following_count, m.likes_count, m.video_count
  FROM vibescaling.account_metrics_latest m JOIN vibescaling.accounts a ON a.id = m.tiktok_account_id;

\echo
\echo '== 10. A lost reply: TikTok makes the post, the answer never arrives (the simulator drops it)'
INSERT INTO vibescaling.posts (caption, video_url)
VALUES ('Lost in transit #vibescaling', 'https://verified.example/lost.mp4') RETURNING id AS lost_post \gset
SELECT jsonb_build_object('status', r #>> '{data,status}') AS answer
  FROM vibescaling.schedule_post(:'lost_post', now() + interval '10 minutes', :'account_id', 'PUBLIC_TO_EVERYONE') r;
\! curl -s -X POST "$VS_DEMO_SIM/_sim/faults" -d "$VS_DEMO_FAULT" >/dev/null
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
\echo 'The dispatcher cannot tell whether TikTok has it: the post is publishing, never sent again blindly.'
SELECT id, status, last_error FROM vibescaling.posts WHERE id = :'lost_post';
SELECT pg_sleep(5);
\echo 'settle_unknown_outcomes (pg_cron job vibescaling-settle) finds it in the creator''s video list:'
SELECT vibescaling.settle_unknown_outcomes() AS settled;
SELECT s.decided_by, s.on_tiktok, s.public_post_id, p.status
  FROM vibescaling.settlements s JOIN vibescaling.posts p ON p.id = s.post_id WHERE s.post_id = :'lost_post';

\echo
\echo '== 11. Media checked before TikTok sees it (FFmpeg''s libavformat): a 90 fps video is refused'
\! ffmpeg -v error -y -f lavfi -i testsrc=size=720x1280:rate=90 -t 1 -c:v libx264 -pix_fmt yuv420p "$VS_DEMO_DIR/90fps.mp4"
SET vibescaling.media_checks = on;   -- the demo cluster has it off, as the test clusters do
INSERT INTO vibescaling.media (data) SELECT pg_read_binary_file(:'demo_dir' || '/90fps.mp4') RETURNING id AS media_id \gset
INSERT INTO vibescaling.posts (caption, media_id) VALUES ('Too fast', :'media_id') RETURNING id AS fast_post \gset
\set ON_ERROR_STOP 0
SELECT vibescaling.publish_post(:'fast_post', :'account_id', 'SELF_ONLY');
\set ON_ERROR_STOP 1
SELECT count(*) AS inits_sent_for_it FROM vibescaling.dispatch_logs WHERE post_id = :'fast_post' AND endpoint = 'video_init';

\echo
\echo '== 12. The dispatch log: every call to TikTok (no tokens in it)'
SELECT id, trigger, endpoint, http_status, outcome, error_code, log_id, publish_id, round(duration_ms::numeric, 1) AS ms
  FROM vibescaling.dispatch_logs ORDER BY id;

\echo
\echo '== 13. A burst: 300 accounts with a post each, all due at once, dispatched in rounds'
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

\echo
\echo '== 14. A campaign (docs/campaigns.md): one draft to three accounts, a queue, a repeating post, the caps'
\echo 'Two more of the brand''s accounts (the simulator accepts the code "code-<open_id>"):'
SELECT vibescaling.connect_account('code-brand_fr', 'https://app.example/tiktok/callback') AS fr_account \gset
SELECT vibescaling.connect_account('code-brand_staging', 'https://app.example/tiktok/callback') AS staging_account \gset
SELECT open_id, status FROM vibescaling.accounts WHERE id IN (:'fr_account', :'staging_account') ORDER BY open_id;
INSERT INTO vibescaling.posts (caption, video_url)
VALUES ('Summer drop #brand', 'https://verified.example/drop.mp4') RETURNING id AS campaign \gset
\echo 'schedule_targets: each account gets a post of its own, with its own options (brand_fr: its own'
\echo 'caption, no duets, 2 minutes later; brand_staging: to the inbox). Times in Paris:'
SELECT a.open_id, coalesce(t #>> '{error,sqlstate}', 'scheduled') AS answer,
       to_char((t->>'scheduled_at')::timestamptz AT TIME ZONE 'Europe/Paris', 'HH24:MI') AS paris_time
  FROM jsonb_array_elements(vibescaling.schedule_targets(:'campaign', now() + interval '8 minutes', jsonb_build_array(
         jsonb_build_object('tiktok_account_id', :'account_id', 'privacy_level', 'PUBLIC_TO_EVERYONE'),
         jsonb_build_object('tiktok_account_id', :'fr_account', 'privacy_level', 'PUBLIC_TO_EVERYONE',
                            'caption', 'Nouvelle collection #brand', 'disable_duet', true,
                            'scheduled_at', now() + interval '10 minutes'),
         jsonb_build_object('tiktok_account_id', :'staging_account', 'privacy_level', 'SELF_ONLY', 'mode', 'inbox')))
       #> '{data,targets}') t
  JOIN vibescaling.accounts a ON a.id = (t->>'tiktok_account_id')::uuid
 ORDER BY a.open_id;
\echo 'The dispatcher sends each target when it is due (run now "as of" 11 minutes later):'
SELECT now() + interval '11 minutes' AS later \gset
CALL vibescaling.dispatch_due_posts(:'later');
SELECT count(*) FILTER (WHERE status = 'posted') AS targets_sent, count(*) AS targets
  FROM vibescaling.posts WHERE parent_id = :'campaign';

\echo
\echo 'Weekly posting slots for brand_fr, in Paris time, then three drafts added to its queue:'
SELECT (ARRAY['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'])[(x->>'weekday')::integer] AS weekday, x->>'time' AS paris_time
  FROM jsonb_array_elements(vibescaling.set_posting_slots(:'fr_account', 'Europe/Paris',
         '[{"weekday": "mon", "time": "09:00"}, {"weekday": "wed", "time": "18:30"}, {"weekday": "sat", "time": "11:00"}]')
       #> '{data,slots}') x;
INSERT INTO vibescaling.posts (caption, video_url)
SELECT 'Lookbook ' || i || ' #brand', 'https://verified.example/lookbook.mp4' FROM generate_series(1, 3) i;
SELECT q.caption,
       to_char((vibescaling.add_to_queue(q.id, :'fr_account', 'PUBLIC_TO_EVERYONE') #>> '{data,scheduled_at}')::timestamptz
               AT TIME ZONE 'Europe/Paris', 'Dy DD Mon HH24:MI') AS paris_time
  FROM (SELECT id, caption FROM vibescaling.posts WHERE caption LIKE 'Lookbook %' ORDER BY caption) q;

\echo
\echo 'A repeating post: every 2 days at 10:00 Paris time, 4 times. The coming week''s occurrences are'
\echo 'scheduled at once, each a post of its own (pg_cron''s expand_recurrences adds the next ones):'
INSERT INTO vibescaling.posts (caption, video_url)
VALUES ('Tip of the day #brand', 'https://verified.example/tip.mp4') RETURNING id AS evergreen \gset
SELECT to_char(o::timestamptz AT TIME ZONE 'Europe/Paris', 'Dy DD Mon HH24:MI') AS occurrence_paris_time
  FROM jsonb_array_elements_text(vibescaling.repeat_post(:'evergreen', :'account_id', '{"every_days": 2, "time": "10:00"}',
                                                         'Europe/Paris', '{"privacy_level": "PUBLIC_TO_EVERYONE"}',
                                                         max_count => 4) #> '{data,occurrences}') o;

\echo
\echo 'account_caps: the three accounts'' Direct Posts per UTC day against their cap (today, and days with posts):'
SELECT a.open_id, c.day, c.direct_posts, c.daily_cap
  FROM vibescaling.account_caps c JOIN vibescaling.accounts a ON a.id = c.tiktok_account_id
 WHERE c.tiktok_account_id IN (:'account_id', :'fr_account', :'staging_account')
   AND (c.direct_posts > 0 OR c.day = (now() AT TIME ZONE 'UTC')::date)
 ORDER BY a.open_id, c.day;

\echo
\echo 'publish_status of the campaign once TikTok has processed it: as a whole, and per target:'
-- The campaign's targets still processing at TikTok after polling its
-- publish_status every 3 s for up to timeout_s (one status/fetch per
-- target a poll, well inside TikTok's 30 a minute per account).
CREATE FUNCTION pg_temp.poll_campaign(campaign uuid, timeout_s integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_processing integer;
BEGIN
    FOR i IN 1..greatest(timeout_s / 3, 1) LOOP
        SELECT count(*) INTO v_processing
          FROM jsonb_array_elements(vibescaling.publish_status(campaign) #> '{data,targets}') t
         WHERE t->>'status' = 'processing';
        EXIT WHEN v_processing = 0;
        PERFORM pg_sleep(3);
    END LOOP;
    RETURN v_processing;
END
$$;
SELECT pg_temp.poll_campaign(:'campaign', 30) AS still_processing;
SELECT s #>> '{data,status}' AS campaign_status FROM vibescaling.publish_status(:'campaign') s;
SELECT a.open_id, p.caption, p.privacy_level, p.mode, p.disable_duet, t->>'post_status' AS post_status,
       t->>'status' AS publish_status, t->>'tiktok_status' AS tiktok_status
  FROM vibescaling.publish_status(:'campaign') s,
       jsonb_array_elements(s #> '{data,targets}') t
  JOIN vibescaling.accounts a ON a.id = (t->>'tiktok_account_id')::uuid
  JOIN vibescaling.posts p ON p.id = (t->>'post_id')::uuid
 ORDER BY a.open_id;
