/*
 * tiktok_call.cpp: vibescaling._tiktok_call(endpoint, account, post,
 * trigger, options), the one SQL function that talks to TikTok.
 *
 * The path of a call: plpgsql (publish_post, the dispatcher, publish_status,
 * connect_account, ...) -> vs_tiktok_call here -> vs_call in the core
 * (src/core/c_api.cpp), which builds the request, runs libcurl and parses
 * the reply -> back here, where the dispatch log row is committed on its own
 * and the reply is returned as jsonb.
 *
 * Around the call: the account's access token is read here (never passed
 * through SQL); a token that expires within vibescaling.token_refresh_margin
 * is refreshed first, and a call answered access_token_invalid refreshes
 * once and is retried once (token_refresher.cpp). The OAuth endpoints get
 * the app's client credentials from the superuser-only settings.
 *
 * Only plain C data lives on this file's stack: the core's results are
 * copied into palloc'd memory and freed before anything can raise.
 */
#include "pg_headers.h"
#include "account_tokens.h"
#include "call_support.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "token_refresher.h"
#include "token_seal.h"
#include "../core/vs_core.h"

#include <math.h>
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

/* Raises 55000 unless the app's client key and secret are configured. */
static void
require_client_credentials(void)
{
	if (vs_guc_client_key == NULL || *vs_guc_client_key == '\0' ||
		vs_guc_client_secret == NULL || *vs_guc_client_secret == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("vibescaling.client_key and vibescaling.client_secret are not set"),
				 errhint("Set your TikTok app's credentials in postgresql.conf (superuser-only settings).")));
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

/* Seconds until the account may make this call within TikTok's rate limit (SQL: _rate_limit_wait). */
static double
rate_limit_wait(const char *account_id, const char *endpoint_name)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(account_id), CStringGetTextDatum(endpoint_name)};
	double		wait;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT vibescaling._rate_limit_wait($1::uuid, $2)", 2, argtypes, args,
							  NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check the rate limit");
	wait = strtod(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), NULL);
	SPI_finish();
	return wait;
}

/*
 * Waits (interruptibly) until the account may make this call without TikTok
 * answering 429 (its rate limit, or the Retry-After of an earlier answer),
 * so that a burst for one account is spread out. False when that would take
 * longer than vibescaling.rate_limit_max_wait; *wait_left_s is then how
 * long the wait still is.
 */
static bool
wait_for_rate_slot(const char *account_id, const char *endpoint_name, double *wait_left_s)
{
	long		waited_ms = 0;

	for (;;)
	{
		double		wait_s = rate_limit_wait(account_id, endpoint_name);
		long		wait_ms = (long) (wait_s * 1000.0) + 1;

		*wait_left_s = wait_s;
		if (wait_s <= 0)
			return true;
		if (waited_ms + wait_ms > vs_guc_rate_limit_max_wait_ms)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited_ms += wait_ms;
	}
}

/*
 * The result of a call not made because the account's rate limit is used
 * up for wait_s more seconds (logged as such): its retry_after says when
 * to try again, as TikTok's Retry-After would.
 */
static char *
rate_limited_locally(const char *post_id, const char *account_id, const char *trigger, const char *endpoint_name,
					 double wait_s)
{
	vs_call_result refused;

	vs_rate_limited_failure(&refused);
	refused.retry_after_s = (long) ceil(wait_s);
	vs_write_dispatch_log(vs_take_core_string(vs_dispatch_log_json(&refused, post_id, account_id, trigger,
																	endpoint_name)));
	return vs_take_core_string(vs_result_json(&refused));
}

/*
 * One HTTP exchange with TikTok, logged durably. Returns the result JSON
 * (palloc'd); *token_rejected tells whether TikTok refused the token.
 */
static char *
call_and_log(const vs_http_options *http, vs_endpoint endpoint, const char *endpoint_name,
			 const char *token, const char *options, const char *post_id,
			 const char *account_id, const char *trigger, bool *token_rejected)
{
	vs_call_result reply;
	char	   *log_json;
	char	   *result_json;
	int64		in_flight_row = 0;
	double		wait_left_s = 0;

	/* TikTok's per-token limits, kept across backends (SQL: _rate_limit_wait). */
	if (account_id != NULL && !wait_for_rate_slot(account_id, endpoint_name, &wait_left_s))
	{
		*token_rejected = false;
		return rate_limited_locally(post_id, account_id, trigger, endpoint_name, wait_left_s);
	}

	/*
	 * A call for an account is logged as "in flight" (outcome unknown)
	 * before it is sent, and the row is replaced by its outcome afterwards:
	 * if the server dies meanwhile, the durable log still says TikTok may
	 * have the post (the dispatcher will not send an init again, see
	 * _earlier_init), and the call counts against the account's rate limit.
	 * When that row cannot be committed, this raises and nothing is sent.
	 */
	if (account_id != NULL || vs_endpoint_creates_post(endpoint))
		in_flight_row = vs_write_dispatch_log(vs_in_flight_log_json(post_id, account_id, trigger, endpoint_name));

	/* The core never throws and never calls PostgreSQL. */
	vs_call(http, endpoint, token, options, &reply);
	/* Only a refusal TikTok proved: an init of unknown outcome (say a 500 naming that code) is never resent. */
	*token_rejected = strcmp(reply.error_code, "access_token_invalid") == 0 && !reply.outcome_unknown;
	log_json = vs_take_core_string(vs_dispatch_log_json(&reply, post_id, account_id, trigger, endpoint_name));
	result_json = vs_take_core_string(vs_result_json(&reply));
	vs_call_result_free(&reply);
	if (log_json == NULL || result_json == NULL)
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
	return result_json;
}

/* The result JSON of a call that could not be made because the token refresh failed. */
static char *
refresh_failure_json(const VsRefreshResult *r)
{
	vs_call_result failed;

	vs_refresh_failure(&failed, r);
	return vs_take_core_string(vs_result_json(&failed));
}

/* Refreshes the account's token and reloads it; false (with *failure set) when the refresh failed. */
static bool
refresh_and_reload(const char *account_id, VsAccount *account, bool force, const char *trigger,
				   const char *post_id, const vs_http_options *http, char **failure, bool *refreshed)
{
	VsRefreshResult refresh;

	vs_refresh_account_token(account_id, account->token_version, force, trigger, post_id, http, &refresh);
	if (refresh.outcome == VS_REFRESH_FAILED)
	{
		*failure = refresh_failure_json(&refresh);
		return false;
	}
	*refreshed = refresh.outcome == VS_REFRESH_DONE;
	vs_forget_token(account);
	vs_load_account(account_id, account);
	vs_require_active(account_id, account);
	return true;
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
	VsAccount	account;
	vs_http_options http;
	char	   *result_json;
	bool		token_rejected = false;
	bool		refreshed = false;

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
	post_id = uuid_arg_text(fcinfo, 2);
	trigger = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (PG_ARGISNULL(4))
		options = pstrdup("{}");
	else
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(4);

		options = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}

	vs_http_options_from_settings(&http);

	memset(&account, 0, sizeof(account));
	if (account_id != NULL)
		vs_load_account(account_id, &account);

	/* OAuth: the app's credentials, no bearer token, no refresh. */
	if (uses_client_credentials(endpoint))
	{
		char	   *oauth_options;

		require_client_credentials();
		oauth_options = options_with_credentials(options, endpoint == VS_EP_OAUTH_REVOKE ? account.access_token : NULL);
		result_json = call_and_log(&http, endpoint, endpoint_name, NULL, oauth_options, post_id,
								   account_id, trigger, &token_rejected);
		vs_wipe_string(oauth_options);
		vs_forget_token(&account);
		{
			Datum		result = DirectFunctionCall1(jsonb_in, CStringGetDatum(result_json));

			vs_wipe_string(result_json);
			/* A code exchange's tokens leave C only sealed (token_seal.h). */
			if (endpoint == VS_EP_OAUTH_TOKEN)
				result = vs_seal_token_call_result(result);
			PG_RETURN_DATUM(result);
		}
	}

	vs_require_active(account_id, &account);

	/*
	 * connect_account uses the token it has just obtained, with the account
	 * row written by its own transaction: no refresh there (the refresh
	 * worker would wait for that transaction's row lock).
	 */
	if (strcmp(trigger, "connect") == 0)
		refreshed = true;

	/* A token about to expire is refreshed before the call. */
	if (!refreshed && account.expires_in_s <= vs_guc_token_refresh_margin_s &&
		!refresh_and_reload(account_id, &account, false, trigger, post_id, &http, &result_json, &refreshed))
	{
		vs_forget_token(&account);
		PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(result_json)));
	}

	result_json = call_and_log(&http, endpoint, endpoint_name, account.access_token, options, post_id,
							   account_id, trigger, &token_rejected);

	/* TikTok refused the token: refresh once, retry once, never loop. */
	if (token_rejected && !refreshed &&
		refresh_and_reload(account_id, &account, true, trigger, post_id, &http, &result_json, &refreshed))
		result_json = call_and_log(&http, endpoint, endpoint_name, account.access_token, options, post_id,
								   account_id, trigger, &token_rejected);

	vs_forget_token(&account);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(result_json)));
}
}
