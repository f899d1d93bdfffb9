/*
 * token_refresher.cpp: refreshing an account's access token, durably and
 * once (see token_refresher.h for why).
 */
#include "pg_headers.h"
#include "call_support.h"
#include "token_refresher.h"
#include "account_tokens.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "token_seal.h"

#include <string.h>

/* Fills a result. */
static void
set_result(VsRefreshResult *r, VsRefreshOutcome outcome, const char *sqlstate,
		   const char *error_code, const char *message)
{
	r->outcome = outcome;
	strlcpy(r->sqlstate, sqlstate, sizeof(r->sqlstate));
	strlcpy(r->error_code, error_code, sizeof(r->error_code));
	strlcpy(r->message, message, sizeof(r->message));
}

/* The account row as the latest committed state shows it. */
typedef struct LatestAccount
{
	bool		found;
	char		status[32];
	long long	version;
	char	   *refresh_token;	/* NULL when none or expired */
	double		expires_in_s;
} LatestAccount;

/*
 * Reads what the refresh decision needs from the latest committed state
 * of the account (not the caller's snapshot, which may be older than a
 * refresh another session has just committed), as the table's owner.
 */
static void
read_latest_account(const char *account_id, LatestAccount *acc)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(account_id)};
	Oid			saved_user;
	int			saved_context;
	SPIPlanPtr	plan;

	memset(acc, 0, sizeof(*acc));
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(vs_token_table_owner(), saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		plan = SPI_prepare("SELECT a.status, a.token_version,"
						   " CASE WHEN coalesce(a.refresh_token_expires_at > pg_catalog.now(), true)"
						   "      THEN vibescaling._unseal(a.refresh_token_enc) END,"
						   " coalesce(pg_catalog.date_part('epoch', a.access_token_expires_at - pg_catalog.clock_timestamp()), 1e9)"
						   " FROM vibescaling.tiktok_accounts a WHERE a.id = $1::pg_catalog.uuid",
						   1, argtypes);
		if (plan == NULL ||
			SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the account");
		if (SPI_processed > 0)
		{
			HeapTuple	row = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *token = SPI_getvalue(row, desc, 3);

			acc->found = true;
			strlcpy(acc->status, SPI_getvalue(row, desc, 1), sizeof(acc->status));
			acc->version = strtoll(SPI_getvalue(row, desc, 2), NULL, 10);
			acc->expires_in_s = strtod(SPI_getvalue(row, desc, 4), NULL);
			if (token != NULL)
			{
				acc->refresh_token = (char *) SPI_palloc(strlen(token) + 1);
				strcpy(acc->refresh_token, token);
				memset(token, 0, strlen(token));
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
}

/* The refresh request's options: client credentials and the refresh token (built in C). */
static char *
refresh_options(const char *refresh_token)
{
	const char *const keys[4] = {"grant_type", "client_key", "client_secret", "refresh_token"};
	const char *const values[4] = {"refresh_token", vs_guc_client_key, vs_guc_client_secret, refresh_token};

	return vs_json_object_with("{}", 4, keys, values);
}

/*
 * The refresh call's abort check: only a server stop or the postmaster's
 * death, never a query cancel: once TikTok has answered, the old refresh
 * token is dead, and the answer must be stored.
 */
static int
refresh_should_abort(void)
{
	return (ProcDiePending || !PostmasterIsAlive()) ? 1 : 0;
}

/*
 * Calls TikTok with the refresh token and stores the answer durably: the
 * new tokens (sealed here in C first, so that only their sealed form
 * reaches SQL), or, for a dead refresh token, the account's needs_reauth
 * state, with the call's dispatch_logs row ("in flight" before it is sent)
 * in the same committed transaction of the log writer.
 */
static void
call_and_store(const char *account_id, const char *refresh_token, const char *trigger, const char *post_id,
			   const vs_http_options *http, VsRefreshResult *res)
{
	vs_http_options refresh_http = *http;
	vs_call_result reply;
	char	   *options = refresh_options(refresh_token);
	char	   *log_json;
	char	   *sealed = NULL;
	int64		row;
	VsAccountUpdate update = VS_ACCOUNT_NO_UPDATE;

	row = vs_write_dispatch_log(vs_in_flight_log_json(post_id, account_id, trigger, "oauth_token"));
	refresh_http.should_abort = refresh_should_abort;
	vs_call(&refresh_http, VS_EP_OAUTH_TOKEN, NULL, options, &reply);
	vs_wipe_string(options);

	/* Copy out everything, free the core's strings, then touch the database. */
	res->http_status = reply.http_status;
	strlcpy(res->error_code, reply.error_code, sizeof(res->error_code));
	strlcpy(res->sqlstate, reply.sqlstate, sizeof(res->sqlstate));
	strlcpy(res->log_id, reply.log_id, sizeof(res->log_id));
	snprintf(res->message, sizeof(res->message), "token refresh failed: %s (%s)",
			 reply.error_code, reply.error_message);
	log_json = vs_take_core_string(vs_dispatch_log_json(&reply, post_id, account_id, trigger, "oauth_token"));
	if (reply.ok)
	{
		Datum		data = DirectFunctionCall1(jsonb_in, CStringGetDatum(reply.data_json));

		vs_call_result_free(&reply);
		sealed = JsonbToCString(NULL, &DatumGetJsonbP(vs_seal_token_reply_data(data))->root, -1);
		update = VS_ACCOUNT_STORE_TOKENS;
		res->outcome = VS_REFRESH_DONE;
		res->message[0] = '\0';
	}
	else
	{
		/* A dead refresh token needs the user; our own misconfiguration does not. */
		if (strcmp(reply.error_code, "invalid_grant") == 0)
			update = VS_ACCOUNT_NEEDS_REAUTH;
		vs_call_result_free(&reply);
		res->outcome = VS_REFRESH_FAILED;
	}
	if (log_json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("vibescaling: out of memory serializing a TikTok reply")));
	vs_write_account_update(row, log_json, update, account_id,
							update == VS_ACCOUNT_STORE_TOKENS ? sealed : res->message);
	if (sealed != NULL)
		vs_wipe_string(sealed);
}

/* Decides whether to refresh and does it; the caller holds the account's refresh lock. */
static void
refresh_locked(const char *account_id, long long seen_version, bool force, const char *trigger,
			   const char *post_id, const vs_http_options *http, VsRefreshResult *result)
{
	LatestAccount acc;

	read_latest_account(account_id, &acc);
	if (!acc.found)
		set_result(result, VS_REFRESH_FAILED, "P0002", "account_not_found", "TikTok account not found");
	else if (strcmp(acc.status, "active") != 0)
		set_result(result, VS_REFRESH_FAILED, "55000", "account_not_active",
				   psprintf("TikTok account is %s", acc.status));
	else if (acc.version != seen_version)
		set_result(result, VS_REFRESH_NOT_NEEDED, "00000", "ok", "another session refreshed the token");
	else if (!force && acc.expires_in_s > vs_guc_token_refresh_margin_s)
		set_result(result, VS_REFRESH_NOT_NEEDED, "00000", "ok", "the token is not expiring");
	else if (acc.refresh_token == NULL)
	{
		set_result(result, VS_REFRESH_FAILED, "28000", "no_refresh_token",
				   "token refresh failed: the account has no usable refresh token (missing or expired)");
		vs_write_account_update(0, NULL, VS_ACCOUNT_NEEDS_REAUTH, account_id, result->message);
	}
	else
		call_and_store(account_id, acc.refresh_token, trigger, post_id, http, result);
	if (acc.refresh_token != NULL)
		vs_wipe_string(acc.refresh_token);
}

/* Refreshes an account's token, durably and once (see token_refresher.h). */
void
vs_refresh_account_token(const char *account_id, long long seen_version, bool force,
						 const char *trigger, const char *post_id,
						 const vs_http_options *http, VsRefreshResult *result)
{
	LOCKTAG		tag;

	vs_require_client_credentials();
	memset(result, 0, sizeof(*result));
	set_result(result, VS_REFRESH_FAILED, "XX000", "refresh_failed", "the token refresh did not finish");

	/*
	 * One refresh of an account at a time, across sessions: a session-level
	 * advisory lock (the caller's transaction may be long), waited for
	 * interruptibly. The next holder then reads the token the previous one
	 * stored and does nothing.
	 */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0x76737266 /* "vsrf" */,
						 hash_bytes((const unsigned char *) account_id, (int) strlen(account_id)), 2);
	(void) LockAcquire(&tag, ExclusiveLock, true, false);
	PG_TRY();
	{
		/* Query cancel waits: an answered refresh must be stored (its old refresh token is dead). */
		HOLD_INTERRUPTS();
		refresh_locked(account_id, seen_version, force, trigger, post_id, http, result);
		RESUME_INTERRUPTS();
	}
	PG_FINALLY();
	{
		LockRelease(&tag, ExclusiveLock, true);
	}
	PG_END_TRY();
	CHECK_FOR_INTERRUPTS();
}

/* ---- the SQL entry point ---- */

/* The name of a refresh outcome in the SQL answer. */
static const char *
outcome_name(VsRefreshOutcome outcome)
{
	switch (outcome)
	{
		case VS_REFRESH_DONE:
			return "refreshed";
		case VS_REFRESH_NOT_NEEDED:
			return "not_needed";
		default:
			return "failed";
	}
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_refresh_token);

/*
 * vibescaling._refresh_token(account_id uuid, force boolean, trigger text) RETURNS jsonb:
 * {"outcome": "refreshed" | "not_needed" | "failed", "error_code", "sqlstate", "message", "log_id"}.
 * Without force, only a token expiring within vibescaling.token_refresh_margin is refreshed.
 */
Datum
vs_refresh_token(PG_FUNCTION_ARGS)
{
	char	   *account_id;
	VsAccount	account;
	vs_http_options http;
	VsRefreshResult result;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	char	   *value;
	char	   *json;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("account_id, force and trigger are required")));
	account_id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
	vs_load_account(account_id, &account);
	vs_forget_token(&account);

	vs_http_options_from_settings(&http);
	http.should_abort = NULL;
	vs_refresh_account_token(account_id, account.token_version, PG_GETARG_BOOL(1),
							 text_to_cstring(PG_GETARG_TEXT_PP(2)), NULL, &http, &result);

	args[0] = CStringGetTextDatum(outcome_name(result.outcome));
	args[1] = CStringGetTextDatum(result.error_code);
	args[2] = CStringGetTextDatum(result.sqlstate);
	args[3] = CStringGetTextDatum(result.message);
	args[4] = CStringGetTextDatum(result.log_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT jsonb_build_object('outcome', $1, 'error_code', $2, 'sqlstate', $3,"
							  " 'message', nullif($4, ''), 'log_id', nullif($5, ''))::text",
							  5, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not build the refresh result");
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	json = (char *) SPI_palloc(strlen(value) + 1);
	strcpy(json, value);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}
}
