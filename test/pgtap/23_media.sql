-- Media checked before TikTok sees it. A batch of videos made by ffmpeg now
-- goes to the simulator twice: once with the extension's checks off, so
-- that TikTok's own checks (the simulator's, config check_media) give each
-- its verdict after the upload; once with them on, when the extension must
-- refuse exactly what TikTok refused, with the same reason, before any
-- call, and let through what TikTok accepted. Then scheduling (the creator's
-- cached limits) and photos (JPEG or WebP, at most 1080p, 20 MB).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(36);

SELECT md5(random()::text) AS run \gset
SELECT '/tmp/vs_media_' || :'run' AS dir \gset
SELECT vs_test.sim_get('/_sim/config')->'processing_seconds' AS processing \gset
SELECT vs_test.sim_post('/_sim/config', '{"processing_seconds": 0, "check_media": true}') IS NOT NULL AS configured \gset

-- The batch: name, ffmpeg's arguments, TikTok's verdict by the documented
-- limits (NULL: accepted). The creator below allows 3 seconds.
CREATE TEMP TABLE batch (name text PRIMARY KEY, args text, expected text, media uuid);
INSERT INTO batch (name, args, expected) VALUES
    ('h264_720x1280_30fps.mp4', '-f lavfi -i testsrc=size=720x1280:rate=30 -t 1 -c:v libx264 -pix_fmt yuv420p', NULL),
    ('h264_24fps.mp4',          '-f lavfi -i testsrc=size=720x1280:rate=24 -t 1 -c:v libx264 -pix_fmt yuv420p', NULL),
    ('h264_60fps.mp4',          '-f lavfi -i testsrc=size=720x1280:rate=60 -t 1 -c:v libx264 -pix_fmt yuv420p', NULL),
    ('h264_90fps.mp4',          '-f lavfi -i testsrc=size=720x1280:rate=90 -t 1 -c:v libx264 -pix_fmt yuv420p', 'frame_rate_check_failed'),
    ('h264_200px.mp4',          '-f lavfi -i testsrc=size=200x200:rate=30 -t 1 -c:v libx264 -pix_fmt yuv420p', 'picture_size_check_failed'),
    ('h264_1080x1920.mp4',      '-f lavfi -i testsrc=size=1080x1920:rate=30 -t 1 -c:v libx264 -pix_fmt yuv420p', NULL),
    ('h264_5s.mp4',             '-f lavfi -i testsrc=size=360x640:rate=30 -t 5 -c:v libx264 -pix_fmt yuv420p', 'duration_check_failed'),
    ('h264_moov_last.mov',      '-f lavfi -i testsrc=size=720x1280:rate=30 -t 1 -c:v libx264 -pix_fmt yuv420p', NULL),
    ('vp9.webm',                '-f lavfi -i testsrc=size=640x640:rate=25 -t 1 -c:v libvpx-vp9 -b:v 200k', NULL),
    ('mpeg4.mkv',               '-f lavfi -i testsrc=size=720x1280:rate=30 -t 1 -c:v mpeg4', 'file_format_check_failed'),
    ('mjpeg.avi',               '-f lavfi -i testsrc=size=720x1280:rate=30 -t 1 -c:v mjpeg', 'file_format_check_failed');

-- Each made by ffmpeg (the server runs it) and read in as bytes of vibescaling.media.
CREATE TEMP TABLE made (line text);
SELECT format($c$COPY made FROM PROGRAM %L$c$,
              format('mkdir -p %s && cd %s && ', :'dir', :'dir')
              || string_agg(format('ffmpeg -v error -y %s %s', args, name), ' && ')
              || ' && echo made') AS make_all
  FROM batch \gset
:make_all;
SELECT is((SELECT line FROM made), 'made', 'ffmpeg made the batch');
WITH ins AS (
    INSERT INTO vibescaling.media (data)
    SELECT pg_read_binary_file(:'dir' || '/' || name) FROM batch ORDER BY name
    RETURNING id, data)
UPDATE batch b SET media = ins.id FROM ins WHERE ins.data = pg_read_binary_file(:'dir' || '/' || b.name);

-- Creators whose videos may last 3 seconds: one per video and pass
-- (TikTok allows 6 inits a minute per account), and one for scheduling.
SELECT vs_test.new_account('media_' || :'run', '{"max_video_post_duration_sec": 3}') AS acct \gset
ALTER TABLE batch ADD COLUMN acct_tiktok uuid, ADD COLUMN acct_ours uuid;
UPDATE batch SET acct_tiktok = vs_test.new_account('mediat_' || md5(name) || '_' || :'run', '{"max_video_post_duration_sec": 3}'),
                 acct_ours = vs_test.new_account('mediao_' || md5(name) || '_' || :'run', '{"max_video_post_duration_sec": 3}');

-- A draft of the batch's video name, uploaded by the extension.
CREATE FUNCTION pg_temp.draft(p_name text, p_tag text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_post uuid := vs_test.new_video(p_tag || ' ' || p_name);
BEGIN
    UPDATE vibescaling.posts SET video_url = NULL, media_id = (SELECT media FROM batch WHERE name = p_name)
     WHERE id = v_post;
    RETURN v_post;
END
$$;

------------------------------------------------------------------------------
-- 1. TikTok's verdict: the extension's checks off, each video published and
--    followed to its final status.
------------------------------------------------------------------------------
SET vibescaling.media_checks = off;
CREATE TEMP TABLE tiktok_verdict AS
SELECT b.name, pg_temp.draft(b.name, 'tiktok ' || :'run') AS post, b.acct_tiktok AS acct FROM batch b;
ALTER TABLE tiktok_verdict ADD COLUMN status text, ADD COLUMN fail_reason text;
-- (An upload the extension's container sniff refuses never reaches TikTok: not sent.)
UPDATE tiktok_verdict SET status = 'not sent'
 WHERE vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, post, acct)) <> 'ok';
-- TikTok's checks take a moment: asked until every publish is final (20 s at most).
DO $$
BEGIN
    FOR i IN 1 .. 40 LOOP
        UPDATE tiktok_verdict t SET status = s #>> '{data,status}', fail_reason = s #>> '{data,fail_reason}'
          FROM (SELECT post, vibescaling.publish_status(post) AS s FROM tiktok_verdict
                 WHERE coalesce(status, '') NOT IN ('published', 'failed', 'not sent')) x
         WHERE x.post = t.post;
        EXIT WHEN NOT EXISTS (SELECT 1 FROM tiktok_verdict WHERE coalesce(status, '') NOT IN ('published', 'failed', 'not sent'));
        PERFORM pg_sleep(0.5);
    END LOOP;
END
$$;
SELECT is((SELECT string_agg(name, ', ') FROM tiktok_verdict WHERE status = 'not sent'), 'mjpeg.avi',
          'every video but the AVI reached TikTok (the upload''s sniff takes MP4, MOV and WebM only)');
SELECT is((SELECT count(*) FROM tiktok_verdict WHERE status IN ('published', 'failed')), 10::bigint,
          'TikTok (the simulator) gave every upload a final status');
SELECT results_eq($$SELECT t.name, t.fail_reason FROM tiktok_verdict t WHERE t.status <> 'not sent' ORDER BY t.name$$,
                  $$SELECT b.name, b.expected FROM batch b WHERE b.name <> 'mjpeg.avi' ORDER BY b.name$$,
                  'TikTok''s verdicts are TikTok''s documented limits');

------------------------------------------------------------------------------
-- 2. The extension's verdict, before any call: the same, and nothing sent
--    for what TikTok would refuse.
------------------------------------------------------------------------------
SET vibescaling.media_checks = on;
SELECT set_config('vs.run', :'run', false) AS set \gset
CREATE TEMP TABLE our_verdict (name text, post uuid, sqlstate text, message text, detail text);
DO $$
DECLARE
    b record;
    v_post uuid;
    v_state text; v_message text; v_detail text;
BEGIN
    FOR b IN SELECT * FROM batch ORDER BY name LOOP
        v_post := pg_temp.draft(b.name, 'ours ' || current_setting('vs.run'));
        BEGIN
            PERFORM vibescaling.publish_post(v_post, b.acct_ours, 'SELF_ONLY');
            v_state := '00000'; v_message := NULL; v_detail := NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
        END;
        INSERT INTO our_verdict VALUES (b.name, v_post, v_state, v_message, v_detail);
    END LOOP;
END
$$;
SELECT results_eq($$SELECT o.name, substring(o.detail FROM 'fail_reason=(\S+)') FROM our_verdict o
                     WHERE o.name <> 'mjpeg.avi' ORDER BY o.name$$,
                  $$SELECT t.name, t.fail_reason FROM tiktok_verdict t WHERE t.status <> 'not sent' ORDER BY t.name$$,
                  'the extension refuses exactly what TikTok refused, for the same reason');
SELECT is((SELECT substring(o.detail FROM 'fail_reason=(\S+)') FROM our_verdict o WHERE o.name = 'mjpeg.avi'),
          'file_format_check_failed', '... and the AVI as TikTok''s limits say (Motion JPEG in AVI)');
SELECT is((SELECT count(*) FROM our_verdict WHERE sqlstate = '00000'), 6::bigint, '... and lets the 6 others through');
SELECT is((SELECT count(*) FROM our_verdict WHERE sqlstate NOT IN ('00000', '22023')), 0::bigint,
          '... each refusal with SQLSTATE 22023');
SELECT is((SELECT count(*) FROM vibescaling.dispatch_logs l JOIN batch b ON b.acct_ours = l.tiktok_account_id
            WHERE l.endpoint = 'video_init'), 6::bigint,
          '... and TikTok received an init only for the 6 it accepts');
SELECT is((SELECT status FROM vibescaling.posts p JOIN our_verdict o ON o.post = p.id WHERE o.name = 'h264_90fps.mp4'),
          'draft', 'a refused post stays a draft');
SELECT is((SELECT message FROM our_verdict WHERE name = 'h264_90fps.mp4'),
          format('TikTok would refuse the video of post %s: the video runs at 90 fps; TikTok accepts 23 to 60 fps',
                 (SELECT post FROM our_verdict WHERE name = 'h264_90fps.mp4')),
          'the reason in words');
SELECT is((SELECT message FROM our_verdict WHERE name = 'h264_5s.mp4') LIKE '%3 s%', true,
          'the duration is checked against the creator''s maximum (creator_info, 3 s)');
SELECT is((SELECT count(*) FROM vibescaling.publish_records r JOIN our_verdict o ON o.post = r.post_id), 6::bigint,
          'the accepted ones are published');

------------------------------------------------------------------------------
-- 3. Scheduling checks too (with the creator's cached limits).
------------------------------------------------------------------------------
SELECT pg_temp.draft('h264_90fps.mp4', 'sched ' || :'run') AS s1 \gset
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.schedule_post(%L, now() + interval '1 hour', %L, 'SELF_ONLY')$$,
                                     :'s1', :'acct')), '22023', 'schedule_post refuses a 90 fps video');
SELECT is((SELECT status FROM vibescaling.posts WHERE id = :'s1'), 'draft', '... the post stays a draft');
SELECT pg_temp.draft('h264_5s.mp4', 'sched ' || :'run') AS s2 \gset
SELECT is(vs_test.sqlstate_of(format($$UPDATE vibescaling.posts SET status = 'scheduled', scheduled_at = now() + interval '1 hour',
                                              tiktok_account_id = %L, privacy_level = 'SELF_ONLY' WHERE id = %L$$, :'acct', :'s2')),
          '22023', 'an UPDATE to scheduled (a PATCH) refuses a video over the creator''s maximum');
SELECT pg_temp.draft('h264_24fps.mp4', 'sched ' || :'run') AS s3 \gset
SELECT is(vibescaling.schedule_post(:'s3', now() + interval '1 hour', :'acct', 'SELF_ONLY') #>> '{data,status}',
          'scheduled', 'a good video is scheduled');
SELECT is(vs_test.sqlstate_of(format($$UPDATE vibescaling.posts SET media_id = %L WHERE id = %L$$,
                                     (SELECT media FROM batch WHERE name = 'mpeg4.mkv'), :'s3')),
          '22023', 'swapping its media for an MKV is refused');
SELECT lives_ok(format($$UPDATE vibescaling.posts SET caption = 'edited' WHERE id = %L$$, :'s3'),
                'an edit that does not touch the media does not probe it again');

------------------------------------------------------------------------------
-- 4. The facts themselves, and photos (JPEG or WebP, at most 1080p, 20 MB),
--    read from large objects.
------------------------------------------------------------------------------
SELECT vibescaling._media_facts(jsonb_build_object('media_id', media), 'video') AS f
  FROM batch WHERE name = 'h264_moov_last.mov' \gset
SELECT is((:'f'::jsonb)->>'container', 'mov', 'a MOV is told from an MP4');
SELECT is((:'f'::jsonb)->>'video_codec', 'h264', '... its codec');
SELECT is(((:'f'::jsonb)->>'width') || 'x' || ((:'f'::jsonb)->>'height'), '720x1280', '... its size');
SELECT is(round(((:'f'::jsonb)->>'fps')::numeric), 30::numeric, '... its frame rate');
SELECT is(((:'f'::jsonb)->>'duration_ms')::integer BETWEEN 950 AND 1100, true, '... its duration');
SELECT is(((:'f'::jsonb)->>'bytes_read')::bigint <= ((:'f'::jsonb)->>'size_bytes')::bigint, true, '... read within its size');

TRUNCATE made;
SELECT format($c$COPY made FROM PROGRAM %L$c$,
              format('cd %s && ', :'dir')
              || 'ffmpeg -v error -y -f lavfi -i testsrc=size=1080x1350 -frames:v 1 ok.jpg'
              || ' && ffmpeg -v error -y -f lavfi -i testsrc=size=1080x1920 -frames:v 1 ok.webp'
              || ' && ffmpeg -v error -y -f lavfi -i testsrc=size=1440x2560 -frames:v 1 big.jpg'
              || ' && ffmpeg -v error -y -f lavfi -i testsrc=size=800x800 -frames:v 1 still.png'
              || ' && echo made') AS make_photos \gset
:make_photos;
CREATE TEMP TABLE photos AS
SELECT n AS name, lo_from_bytea(0, pg_read_binary_file(:'dir' || '/' || n)) AS lo, NULL::text AS code
  FROM unnest(ARRAY['ok.jpg', 'ok.webp', 'big.jpg', 'still.png']) n;
UPDATE photos SET code = (vibescaling._media_verdict(vibescaling._media_facts(jsonb_build_object('large_object', lo), 'photo'),
                                                      'photo', NULL)).code;
SELECT is((SELECT code FROM photos WHERE name = 'ok.jpg'), NULL, 'a 1080x1350 JPEG photo passes');
SELECT is((SELECT code FROM photos WHERE name = 'ok.webp'), NULL, 'a 1080x1920 WebP photo passes');
SELECT is((SELECT code FROM photos WHERE name = 'big.jpg'), 'picture_size_check_failed', 'a 1440x2560 photo is over 1080p');
SELECT is((SELECT code FROM photos WHERE name = 'still.png'), 'file_format_check_failed', 'a PNG photo is refused');
SELECT is((vibescaling._media_verdict('{"status": "readable", "container": "jpeg", "width": 1000, "height": 1000,
                                        "size_bytes": 20971521}', 'photo', NULL)).code,
          'size_check_failed', 'a photo over 20 MB is refused');
SELECT is((vibescaling._media_verdict('{"status": "readable", "container": "mp4", "video_codec": "h264", "width": 720,
                                        "height": 1280, "fps": 30, "duration_ms": 1000,
                                        "size_bytes": 4294967297}', 'video', NULL)).code,
          'size_check_failed', 'a video over 4 GB is refused');

-- Garbage bytes and a text file are no media.
SELECT vs_test.new_lo(100000) AS junk_lo \gset
SELECT is((vibescaling._media_verdict(vibescaling._media_facts(
             jsonb_build_object('large_object', :'junk_lo'::oid), 'video'), 'video', NULL)).code,
          'file_format_check_failed', 'bytes with an MP4 header and nothing else are refused');

------------------------------------------------------------------------------
-- 5. Photos TikTok pulls and videos it pulls: probed only when
--    vibescaling.probe_pull_urls is on (off by default).
------------------------------------------------------------------------------
SELECT vs_test.new_video('pulled ' || :'run') AS pulled \gset
SELECT ok(vibescaling.publish_post(:'pulled', :'acct', 'SELF_ONLY') ? 'data',
          'a pulled video is not probed by default: TikTok checks it');
SELECT vs_test.new_video('pulled probe ' || :'run') AS pulled2 \gset
SET vibescaling.probe_pull_urls = on;
SELECT is(vs_test.sqlstate_of(format($$SELECT vibescaling.publish_post(%L, %L, 'SELF_ONLY')$$, :'pulled2', :'acct')),
          '08000', 'with probe_pull_urls on, a URL the extension may not reach (here: no such host) is refused before TikTok');
RESET vibescaling.probe_pull_urls;

-- Off: nothing is probed.
SET vibescaling.media_checks = off;
SELECT pg_temp.draft('h264_90fps.mp4', 'off ' || :'run') AS off1 \gset
SELECT ok(vibescaling.publish_post(:'off1', :'acct', 'SELF_ONLY') ? 'data', 'with media_checks off, nothing is probed');
RESET vibescaling.media_checks;
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'vibescaling.media_checks'), 'on',
          'media_checks is on by default (the test clusters turn it off for the synthetic uploads)');

SELECT vs_test.sim_post('/_sim/config', jsonb_build_object('processing_seconds', :'processing'::jsonb, 'check_media', false))
       IS NOT NULL AS restored \gset
COPY made FROM PROGRAM 'rm -rf /tmp/vs_media_* && echo cleaned';
SELECT * FROM finish();
