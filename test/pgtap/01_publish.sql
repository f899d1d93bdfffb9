-- publish_post against the simulator: Direct Post and inbox, video and photo.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(29);

-- A fresh simulator user per run keeps the per-token rate limits apart.
SELECT 'pub_' || substr(md5(random()::text), 1, 10) AS oid \gset
SELECT vs_test.new_account(:'oid') AS acct \gset

-- Direct Post of a video.
SELECT vs_test.new_video('hello #vibescaling @friend') AS v1 \gset
SELECT vibescaling.publish_post(:'v1', :'acct', 'PUBLIC_TO_EVERYONE',
                                disable_duet => true, brand_organic_toggle => true) AS res \gset
SELECT matches(:'res'::jsonb #>> '{data,publish_id}', '^v_pub_url~v2\.',
               'publish_post answers {"data":{"publish_id"}} with TikTok''s publish_id');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(:'res'::jsonb) k), ARRAY['data'],
          'the answer has only "data"');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'v1'), 'posted', 'the post is posted');
SELECT ok((SELECT posted_at BETWEEN now() - interval '1 minute' AND clock_timestamp() FROM vibescaling.posts WHERE id = :'v1'),
          'posted_at is set');
SELECT is((SELECT publish_id FROM vibescaling.publish_records WHERE post_id = :'v1'),
          :'res'::jsonb #>> '{data,publish_id}', 'the publish record keeps the publish_id');
SELECT is(ARRAY(SELECT r->>'endpoint' FROM vs_test.sim_requests(:'oid') r ORDER BY (r->>'seq')::int),
          ARRAY['creator_info', 'video_init'], 'Direct Post queries creator_info, then video/init');
SELECT is((SELECT r->'body' FROM vs_test.sim_requests(:'oid', 'video_init') r),
          '{"post_info": {"title": "hello #vibescaling @friend", "privacy_level": "PUBLIC_TO_EVERYONE",
                          "disable_duet": true, "disable_comment": false, "disable_stitch": false,
                          "brand_content_toggle": false, "brand_organic_toggle": true, "is_aigc": false},
            "source_info": {"source": "PULL_FROM_URL", "video_url": "https://verified.example/clip.mp4"}}'::jsonb,
          'video/init gets the caption, privacy level, toggles and PULL_FROM_URL source');
SELECT results_eq(
    format($$SELECT endpoint, trigger, outcome, http_status, error_code FROM vibescaling.dispatch_logs
              WHERE post_id = %L ORDER BY id$$, :'v1'),
    $$VALUES ('creator_info', 'manual', 'success', 200, 'ok'), ('video_init', 'manual', 'success', 200, 'ok')$$,
    'each TikTok call has a dispatch_logs row');
SELECT ok((SELECT bool_and(log_id <> '' AND duration_ms > 0 AND tiktok_account_id = :'acct'
                           AND backend_pid = pg_backend_pid())
             FROM vibescaling.dispatch_logs WHERE post_id = :'v1'),
          'dispatch_logs rows keep TikTok''s log_id, the duration, the account and the backend');
SELECT is((SELECT publish_id FROM vibescaling.dispatch_logs WHERE post_id = :'v1' AND endpoint = 'video_init'),
          :'res'::jsonb #>> '{data,publish_id}', 'the init row of dispatch_logs keeps the publish_id');

-- Publishing it again is refused without calling TikTok.
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'PUBLIC_TO_EVERYONE')$$, :'v1', :'acct'),
                 '55000', NULL, 'republishing a posted post is refused (55000)');
SELECT is((SELECT count(*) FROM vs_test.sim_requests(:'oid')), 2::bigint, '... and TikTok was not called');

-- Upload to inbox: no creator_info (TikTok requires it for Direct Post only), source_info only.
SELECT vs_test.new_video('inbox caption') AS v2 \gset
SELECT vibescaling.publish_post(:'v2', :'acct', 'SELF_ONLY', mode => 'inbox') AS res2 \gset
SELECT ok(:'res2'::jsonb #>> '{data,publish_id}' <> '', 'inbox publish answers a publish_id');
SELECT is((SELECT r->'body' FROM vs_test.sim_requests(:'oid', 'inbox_video_init') r),
          '{"source_info": {"source": "PULL_FROM_URL", "video_url": "https://verified.example/clip.mp4"}}'::jsonb,
          'inbox/video/init gets source_info only');
SELECT is((SELECT count(*) FROM vs_test.sim_requests(:'oid', 'creator_info')), 1::bigint,
          'inbox mode does not query creator_info');
SELECT is((SELECT mode || '/' || status FROM vibescaling.posts WHERE id = :'v2'), 'inbox/posted',
          'the inbox post is posted in inbox mode');

-- Photo, Direct Post.
SELECT vs_test.new_photo(3, 'a long description', 'Short title') AS p1 \gset
UPDATE vibescaling.posts SET photo_cover_index = 2 WHERE id = :'p1';
SELECT vibescaling.publish_post(:'p1', :'acct', 'MUTUAL_FOLLOW_FRIENDS', disable_comment => true) AS res3 \gset
SELECT matches(:'res3'::jsonb #>> '{data,publish_id}', '^p_pub_url~v2\.', 'photo publish answers a photo publish_id');
SELECT is((SELECT r->'body' FROM vs_test.sim_requests(:'oid', 'content_init') r ORDER BY (r->>'seq')::int LIMIT 1),
          '{"post_info": {"title": "Short title", "description": "a long description",
                          "privacy_level": "MUTUAL_FOLLOW_FRIENDS", "disable_comment": true, "auto_add_music": true,
                          "brand_content_toggle": false, "brand_organic_toggle": false},
            "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 2,
                            "photo_images": ["https://verified.example/p1.jpg", "https://verified.example/p2.jpg",
                                             "https://verified.example/p3.jpg"]},
            "post_mode": "DIRECT_POST", "media_type": "PHOTO"}'::jsonb,
          'content/init gets title, description, images, cover index, DIRECT_POST and PHOTO');
SELECT is((SELECT count(*) FROM vs_test.sim_requests(:'oid', 'creator_info')), 2::bigint,
          'a photo Direct Post queries creator_info too');

-- Photo to the inbox (MEDIA_UPLOAD).
SELECT vs_test.new_photo(1) AS p2 \gset
SELECT vibescaling.publish_post(:'p2', :'acct', 'SELF_ONLY', mode => 'inbox') AS res4 \gset
SELECT is((SELECT r->'body'->>'post_mode' FROM vs_test.sim_requests(:'oid', 'content_init') r
            ORDER BY (r->>'seq')::int DESC LIMIT 1), 'MEDIA_UPLOAD', 'a photo to the inbox uses MEDIA_UPLOAD');
SELECT is((SELECT (r->'body'->'post_info') FROM vs_test.sim_requests(:'oid', 'content_init') r
            ORDER BY (r->>'seq')::int DESC LIMIT 1), '{"title": "Title", "description": "photos"}'::jsonb,
          '... with only title and description in post_info');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p2'), 'posted', 'the inbox photo post is posted');

-- Two sessions publishing the same draft: covered by test/system/concurrency.sh.
-- The secret never reaches the logs.
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l
            WHERE l::text LIKE '%act.' || :'oid' || '%'), 0::bigint, 'no access token in dispatch_logs');
SELECT is((SELECT count(*) FROM vs_test.sim_requests(:'oid') r WHERE r::text LIKE '%act.' || :'oid' || '%'),
          0::bigint, 'the simulator''s request log shows no token either (it logs open_id)');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id IN (:'v1', :'v2', :'p1', :'p2')),
          6::bigint, 'six calls, six dispatch_logs rows');

-- The posts trigger skips its checks for the publisher's verdict on a post
-- (posted or failed) only when nothing else changes.
SELECT clock_timestamp() AS before_verdict \gset
SELECT lives_ok(format($$UPDATE vibescaling.posts SET status = 'failed', last_error = 'TikTok: rejected' WHERE id = %L$$, :'p1'),
                'a verdict alone on a posted post passes the trigger');
SELECT ok((SELECT updated_at >= :'before_verdict'::timestamptz FROM vibescaling.posts WHERE id = :'p1'),
          '... which stamps updated_at');
SELECT throws_ok(format($$UPDATE vibescaling.posts SET status = 'posted', caption = repeat('x', 5000) WHERE id = %L$$, :'p1'),
                 '22023', NULL, '... a verdict that also changes the content is checked: caption too long');
SELECT is((SELECT status || ':' || length(caption) FROM vibescaling.posts WHERE id = :'p1'), 'failed:18',
          '... and nothing of it was written');

SELECT * FROM finish();
