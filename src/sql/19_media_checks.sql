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
