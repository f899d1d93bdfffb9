/*
 * token_refresher.cpp: refreshing an account's access token in a background
 * worker, durably and once (see token_refresher.h for why).
 */
#include "pg_headers.h"
#include "call_support.h"
#include "token_refresher.h"
#include "account_tokens.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "session_worker.h"
#include "token_seal.h"

#include <signal.h>
#include <string.h>

/* What the caller and the worker share in the DSM segment. */
typedef struct TokenRefreshSlot
{
	/* in */
	Oid			database_id;
	int			caller_pid;
	bool		force;
	int			margin_s;
	long long	seen_version;
	long		connect_timeout_ms;
	long		request_timeout_ms;
	char		account_id[40];
	char		post_id[40];	/* "" when none */
	char		trigger[32];
	char		api_base_url[1024];
	char		ca_file[MAXPGPATH];	/* vibescaling.ca_file of the caller, "" for none */
	char		client_key[256];
	char		client_secret[256];
	/* out */
	volatile int done;
	VsRefreshResult result;
} TokenRefreshSlot;

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

/* Copies a string into a fixed buffer, refusing one that does not fit. */
static void
copy_setting(char *dst, size_t size, const char *value, const char *name)
{
	if (value == NULL)
		value = "";
	if (strlen(value) >= size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", name)));
	strlcpy(dst, value, size);
}

/* Refreshes an account's token through the worker (see token_refresher.h). */
void
vs_refresh_account_token(const char *account_id, long long seen_version, bool force,
						 const char *trigger, const char *post_id,
						 const vs_http_options *http, VsRefreshResult *result)
{
	dsm_segment *seg;
	TokenRefreshSlot *slot;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;

	if (vs_guc_client_key == NULL || *vs_guc_client_key == '\0' ||
		vs_guc_client_secret == NULL || *vs_guc_client_secret == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("vibescaling.client_key and vibescaling.client_secret must be set to refresh tokens"),
				 errhint("Set them in postgresql.conf (superuser-only settings).")));

	seg = dsm_create(sizeof(TokenRefreshSlot), 0);
	slot = (TokenRefreshSlot *) dsm_segment_address(seg);
	memset(slot, 0, sizeof(*slot));
	slot->database_id = MyDatabaseId;
	slot->caller_pid = MyProcPid;
	slot->force = force;
	slot->margin_s = vs_guc_token_refresh_margin_s;
	slot->seen_version = seen_version;
	slot->connect_timeout_ms = http->connect_timeout_ms;
	slot->request_timeout_ms = http->request_timeout_ms;
	copy_setting(slot->account_id, sizeof(slot->account_id), account_id, "account id");
	copy_setting(slot->post_id, sizeof(slot->post_id), post_id, "post id");
	copy_setting(slot->trigger, sizeof(slot->trigger), trigger, "trigger");
	copy_setting(slot->api_base_url, sizeof(slot->api_base_url), http->base_url, "vibescaling.api_base_url");
	copy_setting(slot->ca_file, sizeof(slot->ca_file), http->ca_file ? http->ca_file : "", "vibescaling.ca_file");
	copy_setting(slot->client_key, sizeof(slot->client_key), vs_guc_client_key, "vibescaling.client_key");
	copy_setting(slot->client_secret, sizeof(slot->client_secret), vs_guc_client_secret, "vibescaling.client_secret");
	set_result(&slot->result, VS_REFRESH_FAILED, "XX000", "refresh_worker_failed",
			   "the token refresh worker did not finish");

	if (!vs_start_session_worker("vs_token_refresh_worker_main", "vibescaling token refresh", seg, &handle))
	{
		memset(slot->client_secret, 0, sizeof(slot->client_secret));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("vibescaling: no free background worker slot to refresh a token"),
				 errhint("Raise max_worker_processes.")));
	}

	/* Interruptible: on cancel the worker still finishes and stores its result. */
	status = WaitForBackgroundWorkerShutdown(handle);
	if (status != BGWH_STOPPED)
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("vibescaling: the postmaster died during a token refresh")));
	memcpy(result, &slot->result, sizeof(*result));
	memset(slot->client_secret, 0, sizeof(slot->client_secret));
	dsm_detach(seg);
}

/* ---- the worker ---- */

/* The account row, locked, as the worker sees it. */
typedef struct LockedAccount
{
	bool		found;
	char		status[32];
	long long	version;
	char	   *refresh_token;	/* NULL when none or expired */
	double		expires_in_s;
} LockedAccount;

/*
 * Locks the account row and reads what the refresh decision needs. FOR NO
 * KEY UPDATE, not FOR UPDATE: a caller whose transaction wrote a post that
 * references the account holds a FOR KEY SHARE lock on it (the foreign key
 * check) while it waits for this worker; FOR UPDATE would wait for it.
 */
static void
lock_account(const char *account_id, LockedAccount *acc)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(account_id)};
	char	   *token;

	memset(acc, 0, sizeof(*acc));
	if (SPI_execute_with_args("SELECT a.status, a.token_version,"
							  " CASE WHEN coalesce(a.refresh_token_expires_at > now(), true)"
							  "      THEN vibescaling._unseal(a.refresh_token_enc) END,"
							  " coalesce(extract(epoch FROM a.access_token_expires_at - now()), 1e9)"
							  " FROM vibescaling.tiktok_accounts a WHERE a.id = $1::uuid FOR NO KEY UPDATE",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the account");
	if (SPI_processed == 0)
		return;
	acc->found = true;
	strlcpy(acc->status, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), sizeof(acc->status));
	acc->version = strtoll(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), NULL, 10);
	token = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	acc->refresh_token = token;
	acc->expires_in_s = strtod(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4), NULL);
}

/* Marks the account as needing a new consent. */
static void
mark_needs_reauth(const char *account_id, const char *reason)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(account_id), CStringGetTextDatum(reason)};

	if (SPI_execute_with_args("UPDATE vibescaling.tiktok_accounts SET status = 'needs_reauth',"
							  " status_reason = $2, updated_at = now() WHERE id = $1::uuid",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not mark the account needs_reauth");
}

/*
 * Stores the tokens of a successful refresh (the reply's data JSON): sealed
 * here in C first, so that only their sealed form reaches SQL.
 */
static void
store_tokens(const char *account_id, const char *data_json)
{
	Oid			argtypes[2] = {TEXTOID, JSONBOID};
	Datum		args[2] = {CStringGetTextDatum(account_id),
						   vs_seal_token_reply_data(DirectFunctionCall1(jsonb_in, CStringGetDatum(data_json)))};

	if (SPI_execute_with_args("SELECT vibescaling._store_tokens($1::pg_catalog.uuid, $2)",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not store the refreshed tokens");
}

/* The refresh request's options: client credentials and the refresh token (built in C). */
static char *
refresh_options(const TokenRefreshSlot *slot, const char *refresh_token)
{
	const char *const keys[4] = {"grant_type", "client_key", "client_secret", "refresh_token"};
	const char *const values[4] = {"refresh_token", slot->client_key, slot->client_secret, refresh_token};

	return vs_json_object_with("{}", 4, keys, values);
}

/* The worker's abort check: the postmaster asked it to stop. */
static int
worker_should_abort(void)
{
	return ProcDiePending ? 1 : 0;
}

/* Calls TikTok and applies the answer; the row is locked, the transaction open. */
static void
refresh_locked_account(TokenRefreshSlot *slot, const LockedAccount *acc)
{
	VsRefreshResult *res = &slot->result;
	vs_http_options http;
	vs_call_result reply;
	char	   *options = refresh_options(slot, acc->refresh_token);
	char	   *log_json;

	memset(&http, 0, sizeof(http));	/* the fields a refresh does not use are zero, not garbage */
	http.base_url = slot->api_base_url;
	http.ca_file = slot->ca_file;
	http.connect_timeout_ms = slot->connect_timeout_ms;
	http.request_timeout_ms = slot->request_timeout_ms;
	http.should_abort = worker_should_abort;
	vs_call(&http, VS_EP_OAUTH_TOKEN, NULL, options, &reply);
	vs_wipe_string(options);

	/* Copy out everything, free the core's strings, then touch the database. */
	res->http_status = reply.http_status;
	strlcpy(res->error_code, reply.error_code, sizeof(res->error_code));
	strlcpy(res->sqlstate, reply.sqlstate, sizeof(res->sqlstate));
	strlcpy(res->log_id, reply.log_id, sizeof(res->log_id));
	snprintf(res->message, sizeof(res->message), "token refresh failed: %s (%s)",
			 reply.error_code, reply.error_message);
	log_json = vs_dispatch_log_json(&reply, slot->post_id[0] ? slot->post_id : NULL,
									slot->account_id, slot->trigger, "oauth_token");
	if (reply.ok)
	{
		char	   *data = pstrdup(reply.data_json);

		vs_call_result_free(&reply);
		store_tokens(slot->account_id, data);
		memset(data, 0, strlen(data));
		res->outcome = VS_REFRESH_DONE;
		res->message[0] = '\0';
	}
	else
	{
		bool		grant_dead = strcmp(reply.error_code, "invalid_grant") == 0;

		vs_call_result_free(&reply);
		/* A dead refresh token needs the user; our own misconfiguration does not. */
		if (grant_dead)
			mark_needs_reauth(slot->account_id, res->message);
		res->outcome = VS_REFRESH_FAILED;
	}
	if (log_json != NULL)
	{
		char	   *copy = pstrdup(log_json);

		vs_free(log_json);
		vs_insert_dispatch_log(copy, slot->caller_pid);
	}
}

/* Decides whether to refresh and does it, inside the worker's transaction. */
static void
refresh_in_transaction(TokenRefreshSlot *slot)
{
	LockedAccount acc;

	lock_account(slot->account_id, &acc);
	if (!acc.found)
		set_result(&slot->result, VS_REFRESH_FAILED, "P0002", "account_not_found",
				   "TikTok account not found");
	else if (strcmp(acc.status, "active") != 0)
		set_result(&slot->result, VS_REFRESH_FAILED, "55000", "account_not_active",
				   psprintf("TikTok account is %s", acc.status));
	else if (acc.version != slot->seen_version)
		set_result(&slot->result, VS_REFRESH_NOT_NEEDED, "00000", "ok",
				   "another session refreshed the token");
	else if (!slot->force && acc.expires_in_s > slot->margin_s)
		set_result(&slot->result, VS_REFRESH_NOT_NEEDED, "00000", "ok", "the token is not expiring");
	else if (acc.refresh_token == NULL)
	{
		set_result(&slot->result, VS_REFRESH_FAILED, "28000", "no_refresh_token",
				   "token refresh failed: the account has no usable refresh token (missing or expired)");
		mark_needs_reauth(slot->account_id, slot->result.message);
	}
	else
	{
		refresh_locked_account(slot, &acc);
		memset(acc.refresh_token, 0, strlen(acc.refresh_token));
	}
}

extern "C" {
PGDLLEXPORT void vs_token_refresh_worker_main(Datum main_arg);

/* Background worker: refreshes one account's token in a transaction of its own. */
void
vs_token_refresh_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	TokenRefreshSlot *slot;
	char		timeout[32];

	/* SIGTERM sets ProcDiePending (polled during the HTTP call) instead of exiting at once. */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(1);			/* the caller gave up before we started: nothing done */
	slot = (TokenRefreshSlot *) dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(slot->database_id, BOOTSTRAP_SUPERUSERID, 0);
	pgstat_report_activity(STATE_RUNNING, "vibescaling: refreshing a TikTok access token");

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SetConfigOption("lock_timeout", "30s", PGC_SUSET, PGC_S_SESSION);
		/* A superuser session: never resolve a name through public. */
		SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
		snprintf(timeout, sizeof(timeout), "%ld", slot->request_timeout_ms + 30000);
		SetConfigOption("statement_timeout", timeout, PGC_SUSET, PGC_S_SESSION);
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		refresh_in_transaction(slot);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		memset(slot->client_secret, 0, sizeof(slot->client_secret));
		slot->done = 1;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		memset(slot->client_secret, 0, sizeof(slot->client_secret));
		set_result(&slot->result, VS_REFRESH_FAILED, "XX000", "refresh_worker_failed",
				   edata->message ? edata->message : "the token refresh worker failed");
		PG_RE_THROW();
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}
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
