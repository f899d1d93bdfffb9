/*
 * video_source.h: reading a post's video bytes, one chunk at a time, from
 * wherever they live: a large object, bytea in vibescaling.media, or an
 * http(s) URL the extension downloads with byte ranges. Nothing ever holds
 * more than the chunk asked for.
 */
#ifndef VS_VIDEO_SOURCE_H
#define VS_VIDEO_SOURCE_H

#include "../core/vs_core.h"

/* Where the bytes are. */
typedef enum VsSourceKind
{
	VS_SOURCE_URL,
	VS_SOURCE_LARGE_OBJECT,
	VS_SOURCE_MEDIA
} VsSourceKind;

/* An open video source (palloc'd members). */
typedef struct VsVideoSource
{
	VsSourceKind kind;
	char	   *url;			/* VS_SOURCE_URL */
	Oid			large_object;	/* VS_SOURCE_LARGE_OBJECT */
	char	   *media_id;		/* VS_SOURCE_MEDIA */
	const vs_http_options *http;	/* for downloads */
} VsVideoSource;

/*
 * Opens the source described by {"url"} | {"large_object"} | {"media_id"}
 * (exactly one). Raises 22023 for anything else.
 */
void		vs_source_open(const char *source_json, const vs_http_options *http, VsVideoSource *source);

/*
 * Size in bytes and content type (MP4, MOV or WebM, sniffed from the first
 * bytes; a declared type or Content-Type header is never trusted). Raises
 * P0002 for a missing object, 22023 for bytes that are no such container
 * (or a URL source over 4 GiB), 08000 when a URL cannot be read. Messages
 * name a URL without its userinfo or query string.
 */
void		vs_source_describe(VsVideoSource *source, long long *size, const char **content_type);

/*
 * Size in bytes, whatever the bytes are (a photo, or a container the media
 * checks will name and refuse): no sniffing. Raises as vs_source_describe
 * does for a missing object or a URL that cannot be read (or is over
 * 4 GiB); 0 for an empty source.
 */
long long	vs_source_size(VsVideoSource *source);

/* Reads exactly length bytes at offset into buffer; raises on any failure. */
void		vs_source_read(VsVideoSource *source, long long offset, long long length, char *buffer);

#endif
