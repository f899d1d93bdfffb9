-- Bad input: each case gets a precise SQLSTATE and a clear message, nothing
-- is sent to TikTok (no dispatch_logs row) and nothing is written to the post.
SELECT vibescaling.add_account('bad_input_user', 'act.bad_input', 'rft.bad_input', now() + interval '1 day', 'Bad Input')
    AS acct \gset
SELECT vibescaling.add_account('bad_input_gone', 'act.gone', NULL, NULL, 'Gone') AS gone \gset
UPDATE vibescaling.tiktok_accounts SET status = 'disconnected' WHERE id = :'gone';

INSERT INTO vibescaling.posts (id, caption, video_url, upload_method) VALUES
    ('00000000-0000-0000-0000-0000000000a1', 'a video', 'https://verified.example/a.mp4', NULL),
    ('00000000-0000-0000-0000-0000000000a2', 'no video', NULL, NULL),
    ('00000000-0000-0000-0000-0000000000a3', 'plain http', 'http://verified.example/a.mp4', 'pull'),
    ('00000000-0000-0000-0000-0000000000a6', repeat(U&'\+01F600', 1100), NULL, NULL),
    ('00000000-0000-0000-0000-0000000000a7', 'ftp', 'ftp://files.example/a.mp4', 'upload');
INSERT INTO vibescaling.posts (id, caption, video_url, video_lo) VALUES
    ('00000000-0000-0000-0000-0000000000a8', 'two sources', 'https://verified.example/a.mp4', 4242),
    ('00000000-0000-0000-0000-0000000000a9', 'no such large object', NULL, 4242);
INSERT INTO vibescaling.posts (id, media_type, title, photo_urls, photo_cover_index) VALUES
    ('00000000-0000-0000-0000-0000000000b1', 'photo', 'none', '{}', 0),
    ('00000000-0000-0000-0000-0000000000b4', 'photo', 'cover', '{https://verified.example/1.jpg}', 1);
-- What TikTok would never take is refused when it is written, draft or not (22023).
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (caption, video_url) VALUES (repeat('x', 2201), 'https://verified.example/a.mp4')$$);
-- 1101 emoji: 1101 characters but 2202 UTF-16 units, over TikTok's 2200.
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (caption, video_url) VALUES (repeat(U&'\+01F600', 1101), 'https://verified.example/a.mp4')$$);
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (caption, video_url) VALUES (repeat('x', 50000000), 'https://verified.example/a.mp4')$$);
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (caption, video_url) VALUES ('long url', 'https://verified.example/' || repeat('a', 2048))$$);
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (media_type, title, photo_urls) VALUES ('photo', 'too many',
                     ARRAY(SELECT 'https://verified.example/' || i || '.jpg' FROM generate_series(1, 36) i))$$);
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (media_type, title, photo_urls) VALUES ('photo', 'many',
                     ARRAY(SELECT 'https://verified.example/' || i || '.jpg' FROM generate_series(1, 200000) i))$$);
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (media_type, title, photo_urls) VALUES ('photo', repeat('t', 91), '{https://verified.example/1.jpg}')$$);
SELECT sqlstate_of($$INSERT INTO vibescaling.posts (media_type, caption, photo_urls) VALUES ('photo', repeat('d', 4001), '{https://verified.example/1.jpg}')$$);
SELECT sqlstate_of($$UPDATE vibescaling.posts SET caption = repeat('x', 2201) WHERE id = '00000000-0000-0000-0000-0000000000a1'$$);
INSERT INTO vibescaling.posts (id, caption, video_url, status, posted_at) VALUES
    ('00000000-0000-0000-0000-0000000000c1', 'done', 'https://verified.example/a.mp4', 'posted', now());
SELECT updated_at AS before_updated FROM vibescaling.posts WHERE id = '00000000-0000-0000-0000-0000000000a1' \gset

-- publish_post
SELECT sqlstate_of($$SELECT vibescaling.publish_post(NULL, NULL, 'SELF_ONLY')$$);
SELECT sqlstate_of($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-00000000ffff', NULL, 'SELF_ONLY')$$);
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', %L, NULL)$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', %L, 'EVERYONE')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', %L, 'SELF_ONLY', mode => 'story')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', %L, 'SELF_ONLY', mode => NULL)$$, :'acct'));
SELECT sqlstate_of($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', NULL, 'SELF_ONLY')$$);
SELECT sqlstate_of($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000ffff', 'SELF_ONLY')$$);
SELECT regexp_replace(sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', %L, 'SELF_ONLY')$$, :'gone')),
                      '[0-9a-f-]{36}', '<account id>');
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a1', %L, 'SELF_ONLY', brand_content_toggle => true)$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a2', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a3', %L, 'SELF_ONLY')$$, :'acct'));
-- 1100 emoji are exactly 2200 UTF-16 units: the caption passes, the missing URL does not.
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a6', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a7', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a8', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000a9', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000b1', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000b4', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.publish_post('00000000-0000-0000-0000-0000000000c1', %L, 'SELF_ONLY')$$, :'acct'));

-- schedule_post and the PATCH path (a plain UPDATE to status 'scheduled')
SELECT sqlstate_of(format($$SELECT vibescaling.schedule_post('00000000-0000-0000-0000-0000000000a1', now() - interval '1 hour', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.schedule_post('00000000-0000-0000-0000-0000000000a1', now() + interval '4 minutes', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.schedule_post('00000000-0000-0000-0000-0000000000a1', NULL, %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.schedule_post('00000000-0000-0000-0000-0000000000a1', now() + interval '1 hour', %L, NULL)$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.schedule_post('00000000-0000-0000-0000-00000000ffff', now() + interval '1 hour', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.schedule_post('00000000-0000-0000-0000-0000000000a2', now() + interval '1 hour', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$SELECT vibescaling.schedule_post('00000000-0000-0000-0000-0000000000c1', now() + interval '1 hour', %L, 'SELF_ONLY')$$, :'acct'));
SELECT sqlstate_of(format($$UPDATE vibescaling.posts SET status = 'scheduled', scheduled_at = now() + interval '3 minutes', tiktok_account_id = %L, privacy_level = 'SELF_ONLY' WHERE id = '00000000-0000-0000-0000-0000000000a1'$$, :'acct'));
SELECT sqlstate_of(format($$UPDATE vibescaling.posts SET status = 'scheduled', scheduled_at = now() + interval '1 hour', tiktok_account_id = %L WHERE id = '00000000-0000-0000-0000-0000000000a1'$$, :'acct'));
SELECT sqlstate_of(format($$UPDATE vibescaling.posts SET status = 'scheduled', scheduled_at = now() + interval '1 hour', tiktok_account_id = %L, privacy_level = 'SELF_ONLY', brand_content_toggle = true WHERE id = '00000000-0000-0000-0000-0000000000a1'$$, :'acct'));

-- publish_status without a publish record
SELECT sqlstate_of($$SELECT vibescaling.publish_status('00000000-0000-0000-0000-0000000000a1')$$);
SELECT sqlstate_of($$SELECT vibescaling.publish_status('00000000-0000-0000-0000-00000000ffff')$$);

-- add_account
SELECT sqlstate_of($$SELECT vibescaling.add_account(NULL, 'x')$$);
SELECT sqlstate_of($$SELECT vibescaling.add_account('someone', '')$$);

-- enable_scheduler before pg_cron is installed in this database
SELECT sqlstate_of($$SELECT vibescaling.enable_scheduler()$$);

-- Nothing reached TikTok, nothing changed on the posts.
SELECT count(*) AS dispatch_log_rows FROM vibescaling.dispatch_logs;
SELECT id, status, tiktok_account_id IS NULL AS no_account, privacy_level, scheduled_at, updated_at = :'before_updated' AS untouched
  FROM vibescaling.posts WHERE id = '00000000-0000-0000-0000-0000000000a1';
SELECT status, count(*) FROM vibescaling.posts GROUP BY status ORDER BY status;
