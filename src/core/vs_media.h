/*
 * vs_media.h: the C boundary of the core's media checks, for the Postgres
 * layer: probe a video or photo with Debian's FFmpeg libraries from byte
 * windows the caller reads, and judge the facts against TikTok's limits.
 *
 * The probe never reads anything itself (the caller's reads may raise, so
 * the core never calls back into them): each call gets every window read
 * so far and answers the facts, or the window it needs next. The caller
 * loops:
 *
 *     windows = none
 *     loop:
 *         vs_media_probe(size, kind, windows, n, should_abort, &r)
 *         VS_MEDIA_NEED_BYTES: read [r.need_offset, +r.need_length), add it
 *                              to windows, free r, go round again
 *         VS_MEDIA_DONE:       r.facts / r.facts_json are the answer
 *         VS_MEDIA_ABORTED:    should_abort said stop
 *         VS_MEDIA_FAILED:     r.error (bad arguments, out of memory)
 *
 * The loop ends: a need is never empty nor held already, and once
 * VS_MEDIA_MAX_WINDOWS windows or VS_MEDIA_BYTE_BUDGET bytes are held the
 * probe answers VS_MEDIA_DONE with status "incomplete" instead of asking
 * for more. Every function here never throws; strings handed out are
 * malloc'd (free them with the matching _free function) or fixed arrays.
 */
#ifndef VS_MEDIA_H
#define VS_MEDIA_H

#include "vs_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the media is to be posted as. */
typedef enum vs_media_kind
{
	VS_MEDIA_VIDEO = 0,
	VS_MEDIA_PHOTO = 1
} vs_media_kind;

/* Sets *kind from "video" or "photo" and returns 1; 0 for any other name (or NULL). */
int			vs_media_kind_from_name(const char *name, vs_media_kind *kind);

/* Windows a probe may ask for in all, and bytes it may have its caller hold. */
#define VS_MEDIA_MAX_WINDOWS 16
#define VS_MEDIA_BYTE_BUDGET (32LL * 1024 * 1024)

/* Bytes [offset, offset + length) of the file, at data (not copied). */
typedef struct vs_media_window
{
	long long	offset;
	long long	length;
	const char *data;
} vs_media_window;

/* What a probe round ended with. */
typedef enum vs_media_step
{
	VS_MEDIA_DONE = 0,
	VS_MEDIA_NEED_BYTES,
	VS_MEDIA_ABORTED,
	VS_MEDIA_FAILED
} vs_media_step;

/*
 * The facts (see "status"). Unknown numbers are -1 (duration_ms, fps) or
 * 0 (width, height); unknown names are "". container: mp4 | mov | webm |
 * matroska | jpeg | webp | png | another libavformat demuxer's name (avi,
 * gif, mpegts, ...). mp4 and mov are told apart by the ftyp major brand
 * ("qt  ", or no ftyp, is mov); a Matroska file is webm when every stream
 * is one of WebM's codecs (VP8, VP9, AV1, Vorbis, Opus, WebVTT).
 */
typedef struct vs_media_facts
{
	char		status[16];		/* "readable" | "unreadable" (no format recognised, libavformat
								 * failed, truncated) | "incomplete" (budget spent) */
	char		message[512];	/* why not readable; "" when readable */
	char		container[32];
	char		video_codec[32];	/* libavcodec's name (h264, hevc, vp8, vp9, mjpeg, webp,
									 * ...); "" without a video stream */
	long long	duration_ms;	/* videos only */
	double		fps;			/* videos only: average frame rate */
	int			width;
	int			height;
	long long	size_bytes;		/* the whole file */
	long long	bytes_read;		/* what the windows held */
} vs_media_facts;

/* A probe round's result. */
typedef struct vs_media_probe_result
{
	vs_media_step step;
	long long	need_offset;	/* VS_MEDIA_NEED_BYTES: the window to read next */
	long long	need_length;
	vs_media_facts facts;		/* VS_MEDIA_DONE */
	char	   *facts_json;		/* VS_MEDIA_DONE: the facts as the JSON object SQL holds
								 * (see vibescaling._media_facts), malloc'd; else NULL */
	char	   *error;			/* VS_MEDIA_FAILED: malloc'd message; else NULL */
} vs_media_probe_result;

/*
 * One probe round of a file of total_size bytes given the windows read so
 * far (n_windows of them; windows may be NULL when n_windows is 0; each
 * must lie inside the file). Runs libavformat over the windows only: the
 * container is named by libavformat's probe from the first 1 MiB (or the
 * whole of a smaller file); MP4/MOV, Matroska/WebM, JPEG and WebP are
 * opened (forced demuxer, format whitelist, nested opens refused, at most
 * 16 streams, bounded probesize and analyzeduration), any other format is
 * named only. should_abort (may be NULL) is polled while libavformat
 * works; libav's logging is silenced. Never throws; always fills *out
 * (free it with vs_media_probe_result_free).
 */
void		vs_media_probe(long long total_size, vs_media_kind kind, const vs_media_window *windows,
						   int n_windows, int (*should_abort) (void), vs_media_probe_result *out);

/* Frees the strings inside *r (not r itself). */
void		vs_media_probe_result_free(vs_media_probe_result *r);

/* A verdict on facts. */
typedef struct vs_media_verdict
{
	int			valid;			/* 0: facts_json was no facts object (error says why) */
	char		code[40];		/* "" when TikTok's limits are met; else file_format_check_failed,
								 * duration_check_failed, frame_rate_check_failed,
								 * picture_size_check_failed, or size_check_failed (ours) */
	char		message[512];	/* the rule broken, in words */
	char		error[256];
} vs_media_verdict;

/*
 * The first of TikTok's limits the facts (the JSON object of
 * vs_media_probe_result.facts_json) break, in this order: size (video at
 * most 4 GiB, photo at most 20 MiB: size_check_failed), readable,
 * container (video MP4, MOV or WebM; photo JPEG or WebP), a video stream
 * of H.264, H.265, VP8 or VP9, a known picture size
 * (file_format_check_failed); picture size (video 360 to 4096 px each
 * side; photo at most 1080p: short side <= 1080 and long side <= 1920
 * px: picture_size_check_failed); frame rate (video, rounded to
 * hundredths, 23 to 60: frame_rate_check_failed); duration (video, at
 * most max_duration_sec seconds: duration_check_failed; skipped when
 * max_duration_sec < 0, the creator's maximum being unknown). Never
 * throws; always fills *out.
 */
void		vs_media_judge(const char *facts_json, vs_media_kind kind, long long max_duration_sec,
						   vs_media_verdict *out);

/*
 * As vs_probe_source (same fences: address rules, redirects, timeouts,
 * 4 GiB, messages without the URL), but any first bytes are accepted: the
 * media probe names the format, a photo's included. data_json's
 * "content_type" is the sniffed video type or "".
 */
void		vs_probe_media_source(const vs_http_options *opt, const char *url, vs_call_result *out);

#ifdef __cplusplus
}
#endif

#endif							/* VS_MEDIA_H */
