/*
 * media_check.cpp: the SQL functions of the media checks, which look at a
 * video or photo with Debian's FFmpeg libraries before TikTok sees it.
 *
 *   vibescaling._media_facts(source jsonb, kind text) -> jsonb facts
 *   vibescaling._media_verdict(facts jsonb, kind text, max_duration_sec integer,
 *                              OUT code text, OUT message text)
 *
 * _media_facts reads the source window by window (video_source.h: a large
 * object, vibescaling.media, or a URL with range requests under the source
 * address rules) and hands every window read so far to the core's probe
 * (src/core/vs_media.h), which answers the facts or the window it needs
 * next. The reads may raise; the core never calls them, so no longjmp
 * crosses its C++ frames. The windows are palloc'd; the core's malloc'd
 * answer is copied and freed before anything here can raise.
 */
#include "pg_headers.h"
#include "call_support.h"
#include "video_source.h"
#include "../core/vs_media.h"

extern "C" {
#include "access/htup_details.h"
#include "funcapi.h"
}

#include <string.h>

/* Text of a jsonb argument. */
static char *
jsonb_arg_text(FunctionCallInfo fcinfo, int argno)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(argno);

	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* The media kind named by a text argument; 22023 unless "video" or "photo". */
static vs_media_kind
kind_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	vs_media_kind kind;

	if (!vs_media_kind_from_name(name, &kind))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("media kind must be \"video\" or \"photo\", not \"%s\"", name)));
	return kind;
}

/* Raises 22004 when argument argno is NULL. */
static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
}

/*
 * Runs the probe loop over an open source of size bytes and returns the
 * facts' JSON text (palloc'd). Raises for a failed read (as
 * vs_source_read does), a cancel, or a failure inside the core.
 */
static char *
probe_source_facts(VsVideoSource *source, long long size, vs_media_kind kind)
{
	vs_media_window windows[VS_MEDIA_MAX_WINDOWS];
	int			n = 0;

	/* The core stops asking after VS_MEDIA_MAX_WINDOWS windows; one more round reads its answer. */
	for (int round = 0; round <= VS_MEDIA_MAX_WINDOWS; round++)
	{
		vs_media_probe_result r;
		long long	offset;
		long long	length;
		char	   *buffer;

		CHECK_FOR_INTERRUPTS();
		vs_media_probe(size, kind, windows, n, vs_interrupt_requested, &r);
		if (r.step == VS_MEDIA_DONE)
		{
			/* Copied to the stack and freed before palloc, which may raise. */
			char		json[4096];
			bool		fits = strlcpy(json, r.facts_json, sizeof(json)) < sizeof(json);

			vs_media_probe_result_free(&r);
			if (!fits)
				elog(ERROR, "the media facts are longer than %zu bytes", sizeof(json));
			for (int i = 0; i < n; i++)
				pfree((void *) windows[i].data);
			return pstrdup(json);
		}
		if (r.step != VS_MEDIA_NEED_BYTES)
		{
			char		error[512];
			bool		aborted = r.step == VS_MEDIA_ABORTED;

			strlcpy(error, r.error != NULL ? r.error : "", sizeof(error));
			vs_media_probe_result_free(&r);
			if (aborted)
			{
				/* A query cancel or timeout: let PostgreSQL raise it. */
				CHECK_FOR_INTERRUPTS();
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("the media probe was cancelled")));
			}
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("the media probe failed: %s", error)));
		}

		offset = r.need_offset;
		length = r.need_length;
		vs_media_probe_result_free(&r);
		if (n >= VS_MEDIA_MAX_WINDOWS || length <= 0 || offset < 0 || length > size - offset)
			elog(ERROR, "the media probe asked for bytes [%lld, +%lld) outside its limits", offset, length);
		buffer = (char *) palloc(length);
		vs_source_read(source, offset, length, buffer);
		windows[n].offset = offset;
		windows[n].length = length;
		windows[n].data = buffer;
		n++;
	}
	elog(ERROR, "the media probe did not finish within %d reads", VS_MEDIA_MAX_WINDOWS);
	return NULL;				/* not reached */
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_sql_media_facts);
PG_FUNCTION_INFO_V1(vs_sql_media_verdict);

/*
 * vibescaling._media_facts(source jsonb, kind text) RETURNS jsonb: the facts
 * (see media_facts_json.hpp) of the source {"url"} | {"large_object"} |
 * {"media_id"}; kind is "video" or "photo".
 */
Datum
vs_sql_media_facts(PG_FUNCTION_ARGS)
{
	vs_http_options http;
	VsVideoSource source;
	vs_media_kind kind;
	long long	size;

	require_arg(fcinfo, 0, "source");
	require_arg(fcinfo, 1, "kind");
	kind = kind_arg(fcinfo, 1);
	vs_http_options_from_settings(&http);
	vs_source_open(jsonb_arg_text(fcinfo, 0), &http, &source);
	size = vs_source_size(&source);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(probe_source_facts(&source, size, kind))));
}

/*
 * vibescaling._media_verdict(facts jsonb, kind text, max_duration_sec integer,
 * OUT code text, OUT message text): the first of TikTok's limits the facts
 * break, or NULL, NULL. A NULL max_duration_sec skips the duration check.
 */
Datum
vs_sql_media_verdict(PG_FUNCTION_ARGS)
{
	vs_media_verdict verdict;
	vs_media_kind kind;
	long long	max_duration_sec;
	TupleDesc	desc;
	Datum		values[2] = {0, 0};
	bool		nulls[2] = {true, true};

	require_arg(fcinfo, 0, "facts");
	require_arg(fcinfo, 1, "kind");
	kind = kind_arg(fcinfo, 1);
	max_duration_sec = PG_ARGISNULL(2) ? -1 : (long long) PG_GETARG_INT32(2);
	if (max_duration_sec < -1)
		max_duration_sec = -1;	/* no creator has a negative maximum: unknown */
	vs_media_judge(jsonb_arg_text(fcinfo, 0), kind, max_duration_sec, &verdict);
	if (!verdict.valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("facts is not an object vibescaling._media_facts returns"),
				 errdetail("%s", verdict.error)));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "_media_verdict must return a record (OUT code, OUT message)");
	desc = BlessTupleDesc(desc);
	if (verdict.code[0] != '\0')
	{
		values[0] = CStringGetTextDatum(verdict.code);
		values[1] = CStringGetTextDatum(verdict.message);
		nulls[0] = nulls[1] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
}
