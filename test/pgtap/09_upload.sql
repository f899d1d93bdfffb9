-- FILE_UPLOAD: videos the extension uploads itself, from a large object,
-- vibescaling.media (bytea) or a URL it downloads; chunk rules, exact
-- bytes (the simulator's CRC-32 of what it received), retries from the
-- failed chunk, dropped connections, expired upload URLs.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(52);

SELECT substr(md5(random()::text), 1, 8) AS run \gset
SELECT current_setting('vibescaling.api_base_url') AS sim \gset
SET vibescaling.upload_chunk_size_mb = 5;

-- 1. A 1 MB large object: one chunk.
SELECT vs_test.new_account('up1_' || :'run') AS a1 \gset
SELECT vs_test.new_lo(1048576) AS lo1 \gset
INSERT INTO vibescaling.posts (caption, video_lo, is_aigc, video_cover_timestamp_ms)
VALUES ('from a large object', :lo1, true, 1500) RETURNING id AS p1 \gset
SELECT vibescaling.publish_post(:'p1', :'a1', 'SELF_ONLY') #>> '{data,publish_id}' AS pid1 \gset
SELECT matches(:'pid1'::text, '^v_pub_file~v2\.', 'a large object is published with FILE_UPLOAD');
SELECT is((SELECT r->'body'->'source_info' FROM vs_test.sim_requests('up1_' || :'run', 'video_init') r),
          '{"source": "FILE_UPLOAD", "video_size": 1048576, "chunk_size": 1048576, "total_chunk_count": 1}'::jsonb,
          'under 5 MB: one chunk of the whole size');
SELECT is((SELECT r->'body'->'post_info'->'is_aigc' FROM vs_test.sim_requests('up1_' || :'run', 'video_init') r), 'true'::jsonb,
          'is_aigc is sent');
SELECT is((SELECT r->'body'->'post_info'->'video_cover_timestamp_ms' FROM vs_test.sim_requests('up1_' || :'run', 'video_init') r),
          '1500'::jsonb, 'video_cover_timestamp_ms is sent');
SELECT is((vs_test.sim_publish(:'pid1')->>'uploaded_bytes')::bigint, 1048576::bigint, 'TikTok received every byte');
SELECT is((vs_test.sim_publish(:'pid1')->>'uploaded_crc32')::bigint, vs_test.crc32_lo(:lo1), '... exactly (CRC-32)');
SELECT is(vs_test.sim_publish(:'pid1')->>'content_type', 'video/mp4', '... as video/mp4 (sniffed)');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p1'), 'posted', 'the post is posted');

-- 2. A 23 MB large object with 5 MB chunks: 4 chunks, the last takes the remainder.
SELECT vs_test.new_account('up2_' || :'run') AS a2 \gset
SELECT vs_test.new_lo(23 * 1048576) AS lo2 \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('23 MB', :lo2) RETURNING id AS p2 \gset
SELECT vibescaling.http_pool_stats() AS pool2a \gset
SELECT vibescaling.publish_post(:'p2', :'a2', 'SELF_ONLY') #>> '{data,publish_id}' AS pid2 \gset
SELECT vibescaling.http_pool_stats() AS pool2b \gset
SELECT is((SELECT r->'body'->'source_info' FROM vs_test.sim_requests('up2_' || :'run', 'video_init') r),
          '{"source": "FILE_UPLOAD", "video_size": 24117248, "chunk_size": 5242880, "total_chunk_count": 4}'::jsonb,
          '23 MB in 5 MB chunks: total_chunk_count = floor(23/5) = 4');
SELECT is(vs_test.sim_publish(:'pid2')->'chunks',
          '[[0, 5242879], [5242880, 10485759], [10485760, 15728639], [15728640, 24117247]]'::jsonb,
          'chunks arrive in order, the last one 8 MB');
SELECT is((vs_test.sim_publish(:'pid2')->>'uploaded_crc32')::bigint, vs_test.crc32_lo(:lo2), 'every byte exact');
SELECT is(ARRAY(SELECT http_status || ':' || uploaded_bytes FROM vibescaling.dispatch_logs
                 WHERE post_id = :'p2' AND endpoint = 'upload_chunk' ORDER BY id),
          ARRAY['206:5242880', '206:10485760', '206:15728640', '201:24117248'],
          'each PUT is a dispatch_logs row with the progress TikTok reported (206 then 201)');
SELECT is((SELECT count(DISTINCT publish_id) FROM vibescaling.dispatch_logs WHERE post_id = :'p2' AND endpoint = 'upload_chunk'),
          1::bigint, '... all for the publish_id');
SELECT is((vibescaling.publish_status(:'p2') #>> '{data,uploaded_bytes}')::bigint, 24117248::bigint,
          'publish_status shows TikTok''s uploaded_bytes');
SELECT is((:'pool2b'::jsonb->>'transfers')::bigint - (:'pool2a'::jsonb->>'transfers')::bigint, 6::bigint,
          'creator_info, the init and the 4 chunk PUTs went over kept-alive connections');
SELECT cmp_ok((:'pool2b'::jsonb->>'connections_reused')::bigint - (:'pool2a'::jsonb->>'connections_reused')::bigint,
              '>=', 3::bigint, '... the 2nd to 4th chunk on the connection of the 1st');

-- 3. bytea in vibescaling.media (a MOV): one chunk of 6 MB.
SELECT vs_test.new_account('up3_' || :'run') AS a3 \gset
SELECT vs_test.new_lo(6 * 1048576, 'mov') AS lo3 \gset
INSERT INTO vibescaling.media (data) VALUES (lo_get(:lo3)) RETURNING id AS m3 \gset
INSERT INTO vibescaling.posts (caption, media_id) VALUES ('from bytea', :'m3') RETURNING id AS p3 \gset
SELECT vibescaling.publish_post(:'p3', :'a3', 'SELF_ONLY') #>> '{data,publish_id}' AS pid3 \gset
SELECT is((SELECT r->'body'->'source_info'->>'total_chunk_count' FROM vs_test.sim_requests('up3_' || :'run', 'video_init') r),
          '1', 'a 6 MB video: one chunk (5 to 64 MB, not more than the size)');
SELECT is((vs_test.sim_publish(:'pid3')->>'uploaded_crc32')::bigint, vs_test.crc32_lo(:lo3), 'bytea media arrives exact');
SELECT is(vs_test.sim_publish(:'pid3')->>'content_type', 'video/quicktime', '... as video/quicktime');

-- 4. A URL we download (not under a verified prefix): WebM, 12 MB, 2 chunks.
SELECT vs_test.new_account('up4_' || :'run') AS a4 \gset
SELECT :'sim' || '/_sim/media/clip.webm?size=12582912&type=webm' AS url4 \gset
INSERT INTO vibescaling.posts (caption, video_url) VALUES ('from a URL', :'url4') RETURNING id AS p4 \gset
SELECT vibescaling.publish_post(:'p4', :'a4', 'SELF_ONLY') #>> '{data,publish_id}' AS pid4 \gset
SELECT is((SELECT r->'body'->'source_info'->>'source' FROM vs_test.sim_requests('up4_' || :'run', 'video_init') r),
          'FILE_UPLOAD', 'a URL outside vibescaling.pull_url_prefixes is downloaded and uploaded');
SELECT is(vs_test.sim_publish(:'pid4')->'chunks', '[[0, 5242879], [5242880, 12582911]]'::jsonb, '... in 2 chunks');
SELECT is((vs_test.sim_publish(:'pid4')->>'uploaded_crc32')::bigint, vs_test.crc32_url(:'url4'), '... every byte exact');
SELECT is(vs_test.sim_publish(:'pid4')->>'content_type', 'video/webm', '... as video/webm');

-- 5. A chunk fails in the middle (HTTP 500 on the 3rd): retried from its first byte.
SELECT vs_test.new_account('up5_' || :'run') AS a5 \gset
SELECT vs_test.new_lo(23 * 1048576) AS lo5 \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('flaky', :lo5) RETURNING id AS p5 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "upload", "skip": 2, "http_status": 500, "error_code": "internal_error"}');
SELECT vibescaling.publish_post(:'p5', :'a5', 'SELF_ONLY') #>> '{data,publish_id}' AS pid5 \gset
SELECT is(ARRAY(SELECT http_status::text FROM vibescaling.dispatch_logs WHERE post_id = :'p5' AND endpoint = 'upload_chunk' ORDER BY id),
          ARRAY['206', '206', '500', '206', '201'], 'the failed 3rd chunk is retried, then the upload goes on');
SELECT is(vs_test.sim_publish(:'pid5')->'chunks',
          '[[0, 5242879], [5242880, 10485759], [10485760, 15728639], [15728640, 24117247]]'::jsonb,
          '... resuming at the failed chunk, not at byte 0');
SELECT is((vs_test.sim_publish(:'pid5')->>'uploaded_crc32')::bigint, vs_test.crc32_lo(:lo5), '... every byte exact');

-- 6. The connection drops during the 2nd chunk.
SELECT vs_test.new_account('up6_' || :'run') AS a6 \gset
SELECT vs_test.new_lo(12 * 1048576) AS lo6 \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('dropped', :lo6) RETURNING id AS p6 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "upload", "skip": 1, "action": "drop"}');
SELECT vibescaling.publish_post(:'p6', :'a6', 'SELF_ONLY') #>> '{data,publish_id}' AS pid6 \gset
SELECT is(ARRAY(SELECT coalesce(http_status::text, error_code) FROM vibescaling.dispatch_logs
                 WHERE post_id = :'p6' AND endpoint = 'upload_chunk' ORDER BY id),
          ARRAY['206', 'transport_error', '201'], 'a dropped connection: the chunk is sent again');
SELECT is((vs_test.sim_publish(:'pid6')->>'uploaded_crc32')::bigint, vs_test.crc32_lo(:lo6), '... every byte exact');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('up6_' || :'run', 'video_init')), 1::bigint, '... with one init');

-- 7. The upload URL expired (403): a fresh init, the upload starts again.
SELECT vs_test.new_account('up7_' || :'run') AS a7 \gset
SELECT vs_test.new_lo(12 * 1048576) AS lo7 \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('expired', :lo7) RETURNING id AS p7 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "upload", "skip": 1, "http_status": 403, "error_code": "url_expired"}');
SELECT vibescaling.publish_post(:'p7', :'a7', 'SELF_ONLY') #>> '{data,publish_id}' AS pid7 \gset
SELECT is((SELECT count(*) FROM vs_test.sim_requests('up7_' || :'run', 'video_init')), 2::bigint,
          'an expired upload URL gets a fresh init');
SELECT is(:'pid7'::text, (SELECT publish_id FROM vibescaling.dispatch_logs WHERE post_id = :'p7' AND endpoint = 'video_init'
                     ORDER BY id DESC LIMIT 1), '... whose publish_id is the answer');
SELECT is((vs_test.sim_publish(:'pid7')->>'uploaded_crc32')::bigint, vs_test.crc32_lo(:lo7), '... and gets every byte');

-- 8. Retries run out: the publish fails cleanly and may be tried again.
SELECT vs_test.new_account('up8_' || :'run') AS a8 \gset
SELECT vs_test.new_lo(1048576) AS lo8 \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('down', :lo8) RETURNING id AS p8 \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "upload", "count": 3, "http_status": 503, "error_code": "internal_error"}');
SELECT throws_like(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'p8', :'a8'),
                   'TikTok upload_chunk failed: internal_error%', 'three failed attempts fail the publish');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs WHERE post_id = :'p8' AND endpoint = 'upload_chunk'), 3::bigint,
          '... after vibescaling.upload_chunk_attempts (3) logged attempts');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'p8'), 'draft', '... the post stays a draft');
SELECT lives_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'p8', :'a8'),
                '... and can be published again: an unfinished upload is not a post on TikTok');

-- 9. Inbox mode uploads the same way.
SELECT vs_test.new_account('up9_' || :'run') AS a9 \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('to the inbox', vs_test.new_lo(2 * 1048576)) RETURNING id AS p9 \gset
SELECT vibescaling.publish_post(:'p9', :'a9', 'SELF_ONLY', mode => 'inbox') #>> '{data,publish_id}' AS pid9 \gset
SELECT is((SELECT r->'body' FROM vs_test.sim_requests('up9_' || :'run', 'inbox_video_init') r),
          '{"source_info": {"source": "FILE_UPLOAD", "video_size": 2097152, "chunk_size": 2097152, "total_chunk_count": 1}}'::jsonb,
          'inbox/video/init with FILE_UPLOAD');
SELECT is((vs_test.sim_publish(:'pid9')->>'uploaded_bytes')::bigint, 2097152::bigint, '... and the upload completes');

-- 10. Refused before TikTok: not a video, empty, no such large object, http pull.
SELECT vs_test.new_account('up10_' || :'run') AS a10 \gset
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('junk', vs_test.new_lo(4096, 'junk')) RETURNING id AS p10 \gset
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'p10', :'a10'), '22023',
                 'the video is not MP4, MOV or WebM', 'bytes that are no video container are refused (22023)');
INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('empty', lo_from_bytea(0, '\x'::bytea)) RETURNING id AS p11 \gset
SELECT throws_ok(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'p11', :'a10'), '22023',
                 'the video is empty', 'an empty video is refused');
SELECT is((SELECT count(*) FROM vs_test.sim_requests('up10_' || :'run', 'video_init')), 0::bigint, '... before any init');

-- 11. dispatch_due_uploads sends its videos in rounds: their creator_info
-- calls at once, then their inits, then each video's chunks. One session:
-- one round of three. The second video's chunk fails three times.
SET vibescaling.dispatch_sessions = 1;
CREATE TEMP TABLE ur (i integer, acct uuid, lo oid, id uuid);
INSERT INTO ur (i, acct, lo)
SELECT i, vs_test.new_account('ur' || i || '_' || :'run'), vs_test.new_lo(1048576) FROM generate_series(1, 3) i;
UPDATE ur SET id = vs_test.new_video('round upload ' || i);
UPDATE vibescaling.posts p SET video_url = NULL, video_lo = ur.lo FROM ur WHERE p.id = ur.id;
SELECT count(vibescaling.schedule_post(ur.id, now() + interval '10 minutes', ur.acct, 'SELF_ONLY')) AS scheduled FROM ur \gset
SELECT vs_test.sim_post('/_sim/faults', '{"endpoint": "upload", "skip": 1, "count": 3, "http_status": 503, "error_code": "internal_error"}');
CALL vibescaling.dispatch_due_uploads(now() + interval '11 minutes');
SELECT ok((SELECT max(l.id) FROM vibescaling.dispatch_logs l JOIN ur ON ur.id = l.post_id WHERE l.endpoint = 'creator_info')
          < (SELECT min(l.id) FROM vibescaling.dispatch_logs l JOIN ur ON ur.id = l.post_id WHERE l.endpoint = 'video_init')
          AND (SELECT max(l.id) FROM vibescaling.dispatch_logs l JOIN ur ON ur.id = l.post_id WHERE l.endpoint = 'video_init')
          < (SELECT min(l.id) FROM vibescaling.dispatch_logs l JOIN ur ON ur.id = l.post_id WHERE l.endpoint = 'upload_chunk'),
          'an upload round: the three creator_info calls, then the three inits, then the chunks');
SELECT is((SELECT count(*) FROM vibescaling.posts p JOIN ur USING (id) WHERE p.status = 'posted'), 2::bigint,
          '... two videos got through and are posted');
SELECT is((SELECT count(*) FROM ur JOIN vibescaling.publish_records r ON r.post_id = ur.id
            WHERE (vs_test.sim_publish(r.publish_id)->>'uploaded_crc32')::bigint = vs_test.crc32_lo(ur.lo)), 2::bigint,
          '... each with its publish record and every byte exact');
SELECT is((SELECT p.status || ' ' || p.attempts FROM vibescaling.posts p JOIN ur USING (id) WHERE p.status <> 'posted'),
          'scheduled 1', 'the video whose chunk failed three times is rescheduled (attempt 1)');
SELECT matches((SELECT p.last_error FROM vibescaling.posts p JOIN ur USING (id) WHERE p.status <> 'posted'),
               '^TikTok upload_chunk failed: internal_error', '... with the chunk''s failure as its last error');
SELECT is((SELECT array_agg(l.http_status ORDER BY l.id) FROM vibescaling.dispatch_logs l JOIN vibescaling.posts p ON p.id = l.post_id
            JOIN ur ON ur.id = p.id WHERE p.status <> 'posted' AND l.endpoint = 'upload_chunk'),
          ARRAY[503, 503, 503], '... after its three logged attempts');
SELECT is((SELECT count(*) FROM vibescaling.publish_records r JOIN vibescaling.posts p ON p.id = r.post_id
             JOIN ur ON ur.id = p.id WHERE p.status <> 'posted'), 0::bigint,
          '... and no publish record: the upload did not finish');
CALL vibescaling.dispatch_due_uploads(now() + interval '3 hours');
SELECT is((SELECT count(*) FROM vibescaling.posts p JOIN ur USING (id) WHERE p.status = 'posted'), 3::bigint,
          'the next run after the backoff posts it');
SELECT is((SELECT string_agg(n::text, ',' ORDER BY ur.i) FROM ur,
                  LATERAL (SELECT count(*) AS n FROM vibescaling.dispatch_logs l
                            WHERE l.post_id = ur.id AND l.endpoint = 'video_init') c),
          (SELECT string_agg(CASE WHEN p.attempts > 0 THEN '2' ELSE '1' END, ',' ORDER BY ur.i)
             FROM ur JOIN vibescaling.posts p USING (id)),
          '... with a fresh init (an unfinished upload is not a post on TikTok); the others had one each');
RESET vibescaling.dispatch_sessions;

RESET vibescaling.upload_chunk_size_mb;

-- The pull prefixes are literal: LIKE's wildcards in one match only themselves.
SET vibescaling.pull_url_prefixes = ' https://a_b.example/v%/ ,';
SELECT vs_test.new_video('literal prefix', u) AS lp1 FROM (VALUES ('https://a_b.example/v%/clip.mp4')) v(u) \gset
SELECT vs_test.new_video('literal prefix', u) AS lp2 FROM (VALUES ('https://aXb.example/v%/clip.mp4')) v(u) \gset
SELECT vs_test.new_video('literal prefix', u) AS lp3 FROM (VALUES ('https://a_b.example/vX/clip.mp4')) v(u) \gset
SELECT is(vibescaling._upload_method(p), 'pull', 'a video_url under a pull prefix is pulled (spaces and empty entries ignored)')
  FROM vibescaling.posts p WHERE p.id = :'lp1';
SELECT is(array_agg(vibescaling._upload_method(p)), ARRAY['upload', 'upload'],
          '... and _ and % in a prefix are no wildcards')
  FROM vibescaling.posts p WHERE p.id IN (:'lp2', :'lp3');
RESET vibescaling.pull_url_prefixes;

SELECT * FROM finish();
