/*
 * tiktok_call.cpp: vibescaling._tiktok_call(endpoint, account, post,
 * trigger, options), the one SQL function that talks to TikTok.
 *
 * The path of a call: plpgsql (publish_post, the dispatcher, publish_status)
 * -> vs_tiktok_call here -> vs_call in the core (src/core/c_api.cpp), which
 * builds the request, runs libcurl and parses the reply -> back here, where
 * the dispatch log row is committed on its own and the reply is returned as
 * jsonb. Only plain C data lives on this file's stack: the core's results
 * are copied into palloc'd memory and freed before anything can raise.
 */
#include "pg_headers.h"
#include "account_tokens.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "../core/vs_core.h"

#include <string.h>

/* Polled by curl's progress callback: abort on query cancel, statement_timeout or terminate. */
static int
interrupt_requested(void)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

/* Copies a malloc'd core string into palloc'd memory and frees it. */
static char *
take_core_string(char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = pstrdup(s);
	vs_free(s);
	return copy;
}

/* Text of a uuid argument, or NULL when the argument is NULL. */
static char *
uuid_arg_text(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(argno)));
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_tiktok_call);

/* vibescaling._tiktok_call(endpoint text, tiktok_account_id uuid, post_id uuid, trigger text, options jsonb) RETURNS jsonb */
Datum
vs_tiktok_call(PG_FUNCTION_ARGS)
{
	char	   *endpoint_name;
	vs_endpoint endpoint;
	char	   *account_id;
	char	   *post_id;
	char	   *trigger;
	char	   *options;
	char	   *token;
	vs_http_options http;
	vs_call_result reply;
	char	   *log_json;
	char	   *result_json;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("endpoint, tiktok_account_id and trigger are required")));

	endpoint_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	endpoint = vs_endpoint_from_name(endpoint_name);
	if (endpoint == VS_EP_UNKNOWN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown TikTok endpoint \"%s\"", endpoint_name)));
	account_id = uuid_arg_text(fcinfo, 1);
	post_id = uuid_arg_text(fcinfo, 2);
	trigger = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (PG_ARGISNULL(4))
		options = pstrdup("{}");
	else
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(4);

		options = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}

	token = vs_load_access_token(account_id);

	http.base_url = vs_guc_api_base_url;
	http.connect_timeout_ms = vs_guc_connect_timeout_ms;
	http.request_timeout_ms = vs_guc_request_timeout_ms;
	http.should_abort = interrupt_requested;

	/* The core never throws and never calls PostgreSQL. */
	vs_call(&http, endpoint, token, options, &reply);
	memset(token, 0, strlen(token));
	pfree(token);

	log_json = take_core_string(vs_dispatch_log_json(&reply, post_id, account_id, trigger, endpoint_name));
	result_json = take_core_string(vs_result_json(&reply));
	vs_call_result_free(&reply);
	if (log_json == NULL || result_json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("vibescaling: out of memory serializing a TikTok reply")));

	/* Durable before anything else can fail: every attempt is logged. */
	vs_write_dispatch_log(log_json);

	/* An aborted call was a query cancel or timeout: let PostgreSQL raise it now. */
	CHECK_FOR_INTERRUPTS();

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(result_json)));
}
}
