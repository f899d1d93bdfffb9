/*
 * video_upload.cpp: the SQL functions behind FILE_UPLOAD.
 *
 *   vibescaling._describe_video(source jsonb) -> {"size", "content_type"}
 *   vibescaling._plan_chunks(size bigint)     -> {"chunk_size", "total_chunk_count", "last_chunk_size"}
 *   vibescaling._upload_chunks(post, account, trigger, publish_id, upload_url, source, content_type, plan)
 *
 * _upload_chunks streams the video to TikTok's upload URL chunk by chunk:
 * one buffer of the largest chunk is allocated once and refilled from the
 * source for every chunk, so memory stays at about one chunk (two for
 * vibescaling.media, whose slice SPI copies) whatever the video's size. A
 * failed chunk is retried from its first byte (bounded, with backoff);
 * every PUT is a dispatch_logs row with the bytes TikTok then holds.
 */
#include "pg_headers.h"
#include "call_support.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "video_source.h"
#include "../core/vs_core.h"

#include <string.h>

/* Returns JSON text as jsonb. */
static Datum
jsonb_from_text(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/* Text of a jsonb argument. */
static char *
jsonb_arg_text(FunctionCallInfo fcinfo, int argno)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(argno);

	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* Reads an integer member of a JSON object given as text (via SPI). */
static long long
json_int(const char *json, const char *key)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(json), CStringGetTextDatum(key)};
	char	   *value;
	long long	result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT ($1::jsonb ->> $2)::bigint", 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read %s", key);
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is missing", key)));
	result = strtoll(value, NULL, 10);
	SPI_finish();
	return result;
}

/* Sleeps ms milliseconds, waking up for query cancel. */
static void
interruptible_sleep(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* One PUT of one chunk, logged. Returns the result JSON of a failure, or NULL on success. */
static char *
put_chunk_logged(const vs_http_options *http, const vs_chunk_put *put, const char *post_id,
				 const char *account_id, const char *trigger, const char *publish_id,
				 long long *uploaded_bytes, bool *retryable, bool *range_mismatch)
{
	vs_call_result reply;
	char	   *log_json;
	char	   *failure = NULL;

	vs_put_chunk(http, put, &reply);
	*retryable = reply.retryable != 0;
	*range_mismatch = strcmp(reply.error_code, "range_mismatch") == 0;
	*uploaded_bytes = -1;
	if (reply.data_json != NULL && strcmp(reply.data_json, "{}") != 0)
	{
		char	   *data = pstrdup(reply.data_json);

		/* data_json: {"complete", "uploaded_bytes"} */
		*uploaded_bytes = json_int(data, "uploaded_bytes");
	}
	log_json = vs_dispatch_log_json(&reply, post_id, account_id, trigger, "upload_chunk");
	if (!reply.ok)
	{
		char	   *result = vs_result_json(&reply);

		failure = result ? pstrdup(result) : NULL;
		vs_free(result);
		if (failure == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	vs_call_result_free(&reply);
	if (log_json == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));

	{
		char	   *copy = pstrdup(log_json);

		vs_free(log_json);
		vs_write_dispatch_log_with(copy, publish_id, *uploaded_bytes);
	}
	CHECK_FOR_INTERRUPTS();
	return failure;
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_describe_video);
PG_FUNCTION_INFO_V1(vs_plan_video_chunks);
PG_FUNCTION_INFO_V1(vs_upload_chunks);

/* vibescaling._describe_video(source jsonb) RETURNS jsonb: {"size", "content_type"} */
Datum
vs_describe_video(PG_FUNCTION_ARGS)
{
	vs_http_options http;
	VsVideoSource source;
	long long	size;
	const char *content_type;

	vs_http_options_from_settings(&http);
	vs_source_open(jsonb_arg_text(fcinfo, 0), &http, &source);
	vs_source_describe(&source, &size, &content_type);
	PG_RETURN_DATUM(jsonb_from_text(psprintf("{\"size\": %lld, \"content_type\": \"%s\"}", size, content_type)));
}

/* vibescaling._plan_chunks(size bigint) RETURNS jsonb, with vibescaling.upload_chunk_size_mb */
Datum
vs_plan_video_chunks(PG_FUNCTION_ARGS)
{
	vs_chunk_plan plan;

	vs_plan_chunks(PG_GETARG_INT64(0), (long long) vs_guc_upload_chunk_size_mb * 1024 * 1024, &plan);
	if (!plan.ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TikTok cannot take this video: %s", plan.error)));
	PG_RETURN_DATUM(jsonb_from_text(psprintf("{\"video_size\": %lld, \"chunk_size\": %lld, \"total_chunk_count\": %d, \"last_chunk_size\": %lld}",
											 plan.video_size, plan.chunk_size, plan.total_chunk_count,
											 plan.last_chunk_size)));
}

/*
 * vibescaling._upload_chunks(post_id uuid, tiktok_account_id uuid, trigger text, publish_id text,
 *                            upload_url text, source jsonb, content_type text, video_size bigint)
 * RETURNS jsonb: {"ok": true, "uploaded_bytes": N}, or the failing PUT's result
 * ({"ok": false, "error_code", "sqlstate", ...}; "upload_url_expired" asks for a fresh init).
 */
Datum
vs_upload_chunks(PG_FUNCTION_ARGS)
{
	char	   *post_id = PG_ARGISNULL(0) ? NULL : DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
	char	   *account_id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(1)));
	char	   *trigger = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *publish_id = text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *upload_url = text_to_cstring(PG_GETARG_TEXT_PP(4));
	char	   *content_type = text_to_cstring(PG_GETARG_TEXT_PP(6));
	long long	video_size = PG_GETARG_INT64(7);
	vs_http_options http;
	VsVideoSource source;
	vs_chunk_plan plan;
	char	   *buffer;
	int			chunk = 0;

	vs_http_options_from_settings(&http);
	vs_source_open(jsonb_arg_text(fcinfo, 5), &http, &source);
	vs_plan_chunks(video_size, (long long) vs_guc_upload_chunk_size_mb * 1024 * 1024, &plan);
	if (!plan.ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TikTok cannot take this video: %s", plan.error)));

	/* One buffer, as large as the largest chunk (the last), reused for every chunk. */
	buffer = (char *) palloc(Max(plan.chunk_size, plan.last_chunk_size));

	while (chunk < plan.total_chunk_count)
	{
		vs_chunk_put put;
		long long	first;
		long long	length;
		int			attempt;
		char	   *failure = NULL;

		vs_chunk_range(&plan, chunk, &first, &length);
		vs_source_read(&source, first, length, buffer);
		put.upload_url = upload_url;
		put.content_type = content_type;
		put.first = first;
		put.length = length;
		put.total = video_size;
		put.data = buffer;

		for (attempt = 1;; attempt++)
		{
			long long	uploaded = -1;
			bool		retryable = false;
			bool		mismatch = false;

			failure = put_chunk_logged(&http, &put, post_id, account_id, trigger, publish_id,
									   &uploaded, &retryable, &mismatch);
			if (failure == NULL)
				break;

			/* TikTok already holds a different amount: continue from there if it is a chunk boundary. */
			if (mismatch && uploaded == video_size)
			{
				chunk = plan.total_chunk_count - 1;	/* it has everything: done */
				failure = NULL;
				break;
			}
			if (mismatch && uploaded >= 0)
			{
				int			resume = -1;

				for (int i = 0; i < plan.total_chunk_count; i++)
				{
					long long	f;
					long long	l;

					vs_chunk_range(&plan, i, &f, &l);
					if (f == uploaded)
						resume = i;
				}
				if (resume >= 0)
				{
					chunk = resume - 1;	/* the outer loop adds one */
					failure = NULL;
					break;
				}
			}
			if (!retryable || attempt >= vs_guc_upload_chunk_attempts)
				break;
			/* Backoff: 0.5 s, 1 s, 2 s, ... capped at 8 s. */
			interruptible_sleep(Min(500L << (attempt - 1), 8000L));
		}
		if (failure != NULL)
		{
			pfree(buffer);
			PG_RETURN_DATUM(jsonb_from_text(failure));
		}
		chunk++;
	}

	pfree(buffer);
	PG_RETURN_DATUM(jsonb_from_text(psprintf("{\"ok\": true, \"uploaded_bytes\": %lld}", video_size)));
}
}
