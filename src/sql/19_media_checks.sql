-- vibescaling: media checks. A video or photo is looked at with Debian's
-- FFmpeg libraries before TikTok sees it, so that what TikTok would refuse
-- after the upload (its fail_reason file_format_check_failed,
-- duration_check_failed, frame_rate_check_failed, picture_size_check_failed)
-- is refused before anything is sent. The limits live in the C++ core
-- (src/core/media_verdict.hpp), never in SQL.

-- The facts of a video or photo (C, src/pg/media_check.cpp). source is
-- {"url"} | {"large_object"} | {"media_id"}, as _video_source returns it;
-- kind is 'video' or 'photo'. The source is read in windows (range requests
-- for a URL, under the source address rules and
-- vibescaling.source_allowed_networks), at most 16 reads and 32 MiB:
--   {"status": "readable" | "unreadable" | "incomplete", "message": why not
--    readable or null, "container": "mp4" | "mov" | "webm" | "matroska" |
--    "jpeg" | "webp" | "png" | another format's name | null, "video_codec":
--    "h264" | "hevc" | "vp8" | "vp9" | ... | null, "duration_ms", "fps",
--    "width", "height" (null when unknown; duration and fps for videos only),
--    "size_bytes", "bytes_read"}
-- A file that is no media, or damaged, is "unreadable", not an error; a
-- source that cannot be read raises as _describe_video does.
CREATE FUNCTION vibescaling._media_facts(source jsonb, kind text)
RETURNS jsonb
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_sql_media_facts'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION vibescaling._media_facts(jsonb, text) FROM PUBLIC;

-- The first of TikTok's limits the facts (as _media_facts returns them)
-- break: code is TikTok's fail_reason (or size_check_failed, ours, for a
-- file over 4 GiB / a photo over 20 MiB) and message says it in words;
-- both NULL when the media passes. kind is 'video' or 'photo'. A NULL
-- max_duration_sec (creator_info's max_video_post_duration_sec not known)
-- skips the duration check. The rules, in order: size, format (readable;
-- video MP4, MOV or WebM with H.264, H.265, VP8 or VP9; photo JPEG or
-- WebP), picture size (video 360 to 4096 px each side; photo at most 1080p:
-- short side <= 1080 px and long side <= 1920 px), frame rate (video 23 to
-- 60 fps), duration (video, at most max_duration_sec).
CREATE FUNCTION vibescaling._media_verdict(facts jsonb, kind text, max_duration_sec integer,
                                           OUT code text, OUT message text)
RETURNS record
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'vs_sql_media_verdict'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
REVOKE ALL ON FUNCTION vibescaling._media_verdict(jsonb, text, integer) FROM PUBLIC;

-- Refuses a post whose media TikTok would refuse after the upload, before
-- anything is sent (22023, the reason in words, DETAIL fail_reason=<code>):
-- a video the extension uploads (large object, bytea, downloaded URL)
-- always; a video or photos TikTok pulls itself only when
-- vibescaling.probe_pull_urls is on (the probe downloads parts of them:
-- range requests, under the source address rules). max_duration_sec is
-- creator_info's max_video_post_duration_sec, NULL when not known (no
-- duration check). Media whose probe ran out of its budget
-- ("incomplete") pass: TikTok decides. Nothing is checked while
-- vibescaling.media_checks is off.
CREATE FUNCTION vibescaling._check_media(p vibescaling.posts, max_duration_sec integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sources jsonb[];
    v_kind    text := p.media_type;
    v_facts   jsonb;
    v_verdict record;
    v_what    text;
BEGIN
    IF NOT current_setting('vibescaling.media_checks')::boolean THEN
        RETURN;
    END IF;
    IF p.media_type = 'video' AND vibescaling._upload_method(p) = 'upload' THEN
        v_sources := ARRAY[vibescaling._video_source(p)];
    ELSIF current_setting('vibescaling.probe_pull_urls')::boolean THEN
        v_sources := CASE WHEN p.media_type = 'photo'
                          THEN ARRAY(SELECT jsonb_build_object('url', u) FROM unnest(p.photo_urls) u)
                          ELSE ARRAY[jsonb_build_object('url', p.video_url)] END;
    ELSE
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(cardinality(v_sources), 0) LOOP
        v_facts := vibescaling._media_facts(v_sources[i], v_kind);
        CONTINUE WHEN v_facts->>'status' = 'incomplete';
        v_verdict := vibescaling._media_verdict(v_facts, v_kind, max_duration_sec);
        IF v_verdict.code IS NOT NULL THEN
            v_what := CASE WHEN v_kind = 'photo' THEN format('photo %s of post %s', i, p.id)
                           ELSE format('the video of post %s', p.id) END;
            RAISE EXCEPTION 'TikTok would refuse %: %', v_what, v_verdict.message
                USING ERRCODE = '22023',
                      DETAIL = format('fail_reason=%s container=%s codec=%s size=%sx%s fps=%s duration_ms=%s bytes=%s',
                                      v_verdict.code, coalesce(v_facts->>'container', '?'),
                                      coalesce(v_facts->>'video_codec', '-'), coalesce(v_facts->>'width', '?'),
                                      coalesce(v_facts->>'height', '?'), coalesce(v_facts->>'fps', '-'),
                                      coalesce(v_facts->>'duration_ms', '-'), coalesce(v_facts->>'size_bytes', '?')),
                      HINT = CASE v_verdict.code
                                 WHEN 'file_format_check_failed' THEN 'TikTok takes MP4, MOV or WebM with H.264, H.265, VP8 or VP9 video; photos in JPEG or WebP.'
                                 WHEN 'frame_rate_check_failed' THEN 'Re-encode the video at 23 to 60 frames a second.'
                                 WHEN 'picture_size_check_failed' THEN 'Videos need 360 to 4096 pixels a side; photos at most 1080p.'
                                 WHEN 'duration_check_failed' THEN 'Cut the video to the creator''s longest allowed duration (creator_info).'
                                 ELSE 'Videos are at most 4 GB, photos at most 20 MB.' END;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION vibescaling._check_media(vibescaling.posts, integer) FROM PUBLIC;
