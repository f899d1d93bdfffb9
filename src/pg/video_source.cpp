/*
 * video_source.cpp: reading a post's video bytes one chunk at a time from a
 * large object, vibescaling.media or a URL (see video_source.h).
 */
#include "pg_headers.h"
#include "video_source.h"
#include "../core/vs_media.h"

extern "C" {
#include "catalog/pg_largeobject.h"
#include "libpq/libpq-fs.h"
#include "storage/large_object.h"
}

#include <string.h>

/* Bytes read from the start of a video to recognise its container. */
static const int sniff_bytes = 64;

/* Copies an SPI text value (or NULL) into the caller's memory context. */
static char *
spi_text(int column)
{
	char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column);
	char	   *copy;

	if (value == NULL)
		return NULL;
	copy = (char *) SPI_palloc(strlen(value) + 1);
	strcpy(copy, value);
	return copy;
}

/* Opens the source described by the JSON (see video_source.h). */
void
vs_source_open(const char *source_json, const vs_http_options *http, VsVideoSource *source)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(source_json)};
	char	   *lo;
	int			given;

	memset(source, 0, sizeof(*source));
	source->http = http;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT s->>'url', s->>'large_object', s->>'media_id' FROM (SELECT $1::jsonb AS s) x",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the video source");
	source->url = spi_text(1);
	lo = spi_text(2);
	source->media_id = spi_text(3);
	SPI_finish();

	given = (source->url != NULL) + (lo != NULL) + (source->media_id != NULL);
	if (given != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a video source is exactly one of a URL, a large object or a media row")));
	if (source->url != NULL)
		source->kind = VS_SOURCE_URL;
	else if (lo != NULL)
	{
		source->kind = VS_SOURCE_LARGE_OBJECT;
		source->large_object = (Oid) strtoul(lo, NULL, 10);
	}
	else
		source->kind = VS_SOURCE_MEDIA;
}

/*
 * Raises the error of a failed download from the video's URL. The URL is
 * masked (no userinfo, no query string: a pre-signed URL's signature would
 * otherwise reach the post's last_error and the logs), and the core's
 * message never quotes the source's reply.
 */
static void
raise_download_error(const VsVideoSource *source, vs_call_result *reply)
{
	char		sqlstate[6];
	char		code[64];
	char		message[512];
	char	   *masked = vs_mask_url(source->url);
	char		url[400];

	strlcpy(sqlstate, reply->sqlstate, sizeof(sqlstate));
	strlcpy(code, reply->error_code, sizeof(code));
	strlcpy(message, reply->error_message, sizeof(message));
	strlcpy(url, masked != NULL ? masked : "(the video URL)", sizeof(url));
	vs_free(masked);
	vs_call_result_free(reply);

	/* The same refusal as for any other source whose bytes are no video. */
	if (strcmp(code, "source_not_video") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the video is not MP4, MOV or WebM"),
				 errdetail("The first bytes at %s match none of those containers, whatever its Content-Type says.",
						   url)));
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])),
			 errmsg("could not download the video from %s", url),
			 errdetail("%s: %s", code, message)));
}

/* Reads from a large object; the caller checked the range. */
static void
read_large_object(Oid lo, long long offset, long long length, char *buffer)
{
	LargeObjectDesc *desc = inv_open(lo, INV_READ, CurrentMemoryContext);
	long long	done = 0;

	inv_seek(desc, offset, SEEK_SET);
	while (done < length)
	{
		/* inv_read takes an int count: read at most 1 GB at a time (chunks are far smaller). */
		int			n = inv_read(desc, buffer + done, (int) Min(length - done, (long long) (1 << 30)));

		if (n <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("large object %u ended at byte %lld, expected %lld", lo, offset + done, offset + length)));
		done += n;
	}
	inv_close(desc);
	close_lo_relation(true);	/* inv_open opened pg_largeobject for us */
}

/* Size of a large object; P0002 when it does not exist. */
static long long
large_object_size(Oid lo)
{
	LargeObjectDesc *desc;
	long long	size;

	if (!LargeObjectExists(lo))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("large object %u not found", lo)));
	desc = inv_open(lo, INV_READ, CurrentMemoryContext);
	size = inv_seek(desc, 0, SEEK_END);
	inv_close(desc);
	close_lo_relation(true);
	return size;
}

/* Reads a slice of vibescaling.media.data (substring reads only the needed TOAST chunks; bytea is under 1 GB, so integer offsets do). */
static void
read_media(const char *media_id, long long offset, long long length, char *buffer)
{
	Oid			argtypes[3] = {TEXTOID, INT8OID, INT8OID};
	Datum		args[3] = {CStringGetTextDatum(media_id), Int64GetDatum(offset + 1), Int64GetDatum(length)};
	bool		isnull;
	bytea	   *slice;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT substring(data FROM $2::integer FOR $3::integer) FROM vibescaling.media WHERE id = $1::uuid",
							  3, argtypes, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("media %s not found", media_id)));
	slice = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || (long long) VARSIZE_ANY_EXHDR(slice) != length)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("media %s is shorter than expected", media_id)));
	memcpy(buffer, VARDATA_ANY(slice), length);
	SPI_finish();				/* frees the slice */
}

/* Reads exactly length bytes at offset into buffer (see video_source.h). */
void
vs_source_read(VsVideoSource *source, long long offset, long long length, char *buffer)
{
	switch (source->kind)
	{
		case VS_SOURCE_LARGE_OBJECT:
			read_large_object(source->large_object, offset, length, buffer);
			break;
		case VS_SOURCE_MEDIA:
			read_media(source->media_id, offset, length, buffer);
			break;
		case VS_SOURCE_URL:
			{
				vs_call_result reply;
				long long	received = 0;

				vs_fetch_range(source->http, source->url, offset, length, buffer, &received, &reply);
				if (!reply.ok || received != length)
					raise_download_error(source, &reply);
				vs_call_result_free(&reply);
				break;
			}
	}
}

/* Size of a vibescaling.media row's bytes; P0002 when the row does not exist. */
static long long
media_row_size(const char *media_id)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(media_id)};
	long long	size;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT octet_length(data) FROM vibescaling.media WHERE id = $1::uuid",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("media %s not found", media_id)));
	size = strtoll(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), NULL, 10);
	SPI_finish();
	return size;
}

/*
 * Size of the source at a URL, from a probe of its first bytes. With
 * require_video the probe itself refuses a source whose first bytes are
 * no video container (source_not_video); without, any bytes do (the media
 * checks name the format themselves).
 */
static long long
url_source_size(VsVideoSource *source, bool require_video)
{
	vs_call_result reply;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	long long	size;

	if (require_video)
		vs_probe_source(source->http, source->url, &reply);
	else
		vs_probe_media_source(source->http, source->url, &reply);
	if (!reply.ok)
		raise_download_error(source, &reply);
	args[0] = CStringGetTextDatum(reply.data_json);
	vs_call_result_free(&reply);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT (d->>'size')::bigint FROM (SELECT $1::jsonb AS d) x",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the probe of the video URL");
	size = strtoll(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), NULL, 10);
	SPI_finish();
	return size;
}

/* Size in bytes of any source, whatever its bytes are (see video_source.h). */
long long
vs_source_size(VsVideoSource *source)
{
	switch (source->kind)
	{
		case VS_SOURCE_LARGE_OBJECT:
			return large_object_size(source->large_object);
		case VS_SOURCE_MEDIA:
			return media_row_size(source->media_id);
		case VS_SOURCE_URL:
			break;
	}
	return url_source_size(source, false);
}

/*
 * Size and content type of the video (see video_source.h). The type is
 * what the first bytes are, never what a Content-Type header or the media
 * row declares: bytes that are no video container are refused before
 * anything is sent to TikTok.
 */
void
vs_source_describe(VsVideoSource *source, long long *size, const char **content_type)
{
	char		head[sniff_bytes];
	const char *sniffed;

	switch (source->kind)
	{
		case VS_SOURCE_LARGE_OBJECT:
			*size = large_object_size(source->large_object);
			break;
		case VS_SOURCE_MEDIA:
			*size = media_row_size(source->media_id);
			break;
		case VS_SOURCE_URL:
			/* The probe itself refuses a source whose first bytes are no video (source_not_video). */
			*size = url_source_size(source, true);
			break;
	}

	if (*size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the video is empty")));
	/* Sniffed here for every kind, the URL's too: the bytes uploaded are the ones read now. */
	vs_source_read(source, 0, Min(*size, (long long) sniff_bytes), head);
	sniffed = vs_sniff_video_type((const unsigned char *) head, (size_t) Min(*size, (long long) sniff_bytes));
	*content_type = sniffed;
	if (*content_type == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the video is not MP4, MOV or WebM"),
				 errdetail("Its first bytes match none of those containers, whatever its declared type.")));
}
