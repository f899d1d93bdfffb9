/*
 * tiktok_call.cpp: vibescaling._tiktok_call(endpoint, account, post,
 * trigger, options), one call to TikTok.
 *
 * The path of a call: plpgsql (publish_post, the dispatcher's one-by-one
 * pass, publish_status, connect_account, ...) -> vs_tiktok_call here -> the
 * call path every call with an account's token takes, as a batch of one
 * (call_batch.h: tokens read in C, refresh, rate limits waited for, the
 * durable "in flight" and outcome rows) -> vs_call_many in the core
 * (src/core/call_many.cpp), which builds the request, runs libcurl and
 * parses the reply -> back here, as a vibescaling._call_result row
 * (call_result.h).
 *
 * The OAuth endpoints are the exception: they authenticate with the app's
 * client credentials from the superuser-only settings, not a user token,
 * and go straight to vs_call (oauth_call below).
 *
 * Only plain C data lives on this file's stack: the core's results are
 * copied into palloc'd memory and freed before anything can raise.
 */
#include "pg_headers.h"
#include "account_tokens.h"
#include "call_batch.h"
#include "call_result.h"
#include "call_support.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "token_seal.h"
#include "../core/vs_core.h"

#include <string.h>

/* Text of a uuid argument, or NULL when the argument is NULL. */
static char *
uuid_arg_text(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(argno)));
}

/* True for the endpoints that authenticate with the app's credentials, not a user token. */
static bool
uses_client_credentials(vs_endpoint ep)
{
	return ep == VS_EP_OAUTH_TOKEN || ep == VS_EP_OAUTH_REVOKE;
}

/*
 * The options with the app's client credentials added (and, for revoke,
 * the token to revoke), as JSON text built in C (see vs_json_object_with).
 */
static char *
options_with_credentials(const char *options, const char *token_to_revoke)
{
	const char *const keys[3] = {"client_key", "client_secret", "token"};
	const char *const values[3] = {vs_guc_client_key, vs_guc_client_secret, token_to_revoke};

	return vs_json_object_with(options, 3, keys, values);
}

/*
 * One OAuth exchange with TikTok (the options carry the app's credentials),
 * logged durably: "in flight" first when it is made for an account (a
 * revoke), then its outcome. Fills *result (palloc'd strings).
 */
static void
oauth_call(const vs_http_options *http, vs_endpoint endpoint, const char *endpoint_name, const char *options,
		   const char *account_id, const char *trigger, vs_call_result *result)
{
	vs_call_result reply;
	char	   *log_json;
	int64		in_flight_row = 0;

	if (account_id != NULL)
		in_flight_row = vs_write_dispatch_log(vs_in_flight_log_json(NULL, account_id, trigger, endpoint_name));

	/* The core never throws and never calls PostgreSQL. */
	vs_call(http, endpoint, NULL, options, &reply);
	log_json = vs_dispatch_log_json(&reply, NULL, account_id, trigger, endpoint_name);
	*result = reply;			/* its malloc'd strings move with it */
	vs_take_call_result(result);
	log_json = vs_take_core_string(log_json);
	if (log_json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("vibescaling: out of memory serializing a TikTok reply")));

	/* Durable before anything else can fail: every attempt is logged. */
	if (in_flight_row > 0)
		vs_update_dispatch_log(in_flight_row, log_json);
	else
		vs_write_dispatch_log(log_json);

	/* An aborted call was a query cancel or timeout: let PostgreSQL raise it now. */
	CHECK_FOR_INTERRUPTS();
}

/* Raises as a call for an account that cannot call TikTok: P0002 unknown, else 55000. */
static void
raise_account_unusable(const char *account_id)
{
	VsAccount	account;

	/* Read again only on this error path, for its status. */
	vs_load_account(account_id, &account);	/* raises P0002 for an unknown account */
	vs_forget_token(&account);
	vs_require_active(account_id, &account);	/* raises 55000 */
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("TikTok account %s cannot call TikTok", account_id)));
}

/*
 * Makes the call _tiktok_call(endpoint text, tiktok_account_id uuid,
 * post_id uuid, trigger text, options jsonb) asks for and fills *result
 * (palloc'd strings). *is_token_exchange: an oauth_token call, whose data
 * holds the new tokens (they leave C only sealed).
 */
static void
make_call(FunctionCallInfo fcinfo, vs_call_result *result, bool *is_token_exchange)
{
	char	   *endpoint_name;
	vs_endpoint endpoint;
	char	   *account_id;
	char	   *options;
	vs_http_options http;
	VsBatchCall call;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("endpoint and trigger are required")));
	endpoint_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	endpoint = vs_endpoint_from_name(endpoint_name);
	if (endpoint == VS_EP_UNKNOWN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown TikTok endpoint \"%s\"", endpoint_name)));
	account_id = uuid_arg_text(fcinfo, 1);
	if (account_id == NULL && endpoint != VS_EP_OAUTH_TOKEN)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tiktok_account_id is required for %s", endpoint_name)));
	if (PG_ARGISNULL(4))
		options = pstrdup("{}");
	else
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(4);

		options = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}

	vs_http_options_from_settings(&http);
	*is_token_exchange = (endpoint == VS_EP_OAUTH_TOKEN);

	/* OAuth: the app's credentials, no bearer token, no refresh, no rate limit. */
	if (uses_client_credentials(endpoint))
	{
		VsAccount	account;
		char	   *oauth_options;

		vs_require_client_credentials();
		memset(&account, 0, sizeof(account));
		if (endpoint == VS_EP_OAUTH_REVOKE)
			vs_load_account(account_id, &account);
		oauth_options = options_with_credentials(options, endpoint == VS_EP_OAUTH_REVOKE ? account.access_token : NULL);
		vs_forget_token(&account);
		oauth_call(&http, endpoint, endpoint_name, oauth_options, account_id,
				   text_to_cstring(PG_GETARG_TEXT_PP(3)), result);
		vs_wipe_string(oauth_options);
		return;
	}

	/* Every other call: a batch of one through the path all calls share, waiting for rate limits. */
	memset(&call, 0, sizeof(call));
	call.endpoint_name = endpoint_name;
	call.endpoint = endpoint;
	call.account_id = account_id;
	call.post_id = uuid_arg_text(fcinfo, 2);
	call.trigger = text_to_cstring(PG_GETARG_TEXT_PP(3));
	call.options = options;
	vs_run_calls(&call, 1, &http, true);
	if (call.account_unusable)
		raise_account_unusable(account_id);
	*result = call.result;
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_tiktok_call_1_5);
PG_FUNCTION_INFO_V1(vs_tiktok_call);

/*
 * vibescaling._tiktok_call(endpoint text, tiktok_account_id uuid, post_id
 * uuid, trigger text, options jsonb) RETURNS vibescaling._call_result.
 */
Datum
vs_tiktok_call_1_5(PG_FUNCTION_ARGS)
{
	vs_call_result result;
	bool		is_token_exchange;
	Datum		data = (Datum) 0;
	Datum		row;

	make_call(fcinfo, &result, &is_token_exchange);
	/* A code exchange's tokens leave C only sealed (token_seal.h). */
	if (is_token_exchange && result.data_json != NULL && result.data_json[0] == '{')
		data = vs_seal_token_reply_data(DirectFunctionCall1(jsonb_in, CStringGetDatum(result.data_json)));
	row = vs_call_result_row(&result, vs_call_result_desc(), data);
	if (is_token_exchange)
		vs_wipe_string(result.data_json);
	PG_RETURN_DATUM(row);
}

/*
 * The same call for a catalog from before 0.1.5 (until ALTER EXTENSION
 * ... UPDATE), returning the result as the jsonb object of that contract.
 */
Datum
vs_tiktok_call(PG_FUNCTION_ARGS)
{
	vs_call_result result;
	bool		is_token_exchange;
	Datum		json;

	make_call(fcinfo, &result, &is_token_exchange);
	json = vs_call_result_jsonb(&result);
	if (is_token_exchange)
	{
		vs_wipe_string(result.data_json);
		json = vs_seal_token_call_result(json);
	}
	PG_RETURN_DATUM(json);
}
}
