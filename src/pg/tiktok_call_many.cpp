/*
 * tiktok_call_many.cpp: vibescaling._tiktok_call_many(calls jsonb), many
 * TikTok calls at once: what the dispatcher's rounds and the status poller
 * use (one call at a time goes through _tiktok_call, tiktok_call.cpp).
 *
 * The same rules as a single call, applied to the whole batch:
 *   - the accounts' tokens are read here, all in one query (never through
 *     SQL); a token that expires within vibescaling.token_refresh_margin is
 *     refreshed first, and an account whose call TikTok answers
 *     access_token_invalid is refreshed once and its calls are sent once more;
 *   - TikTok's per-token rate limits: one query takes every account's
 *     advisory lock and says which calls fit in the window
 *     (_rate_limit_allowance); the others are not sent (rate_limited);
 *   - every call is logged "in flight" before it is sent, and every attempt
 *     gets its dispatch_logs row: but written by ONE log-writer worker per
 *     step of the batch instead of one per row.
 * The calls themselves go to vs_call_many in the core: at most
 * vibescaling.max_concurrent_requests in flight, over kept-alive connections.
 *
 * Only plain C data lives on this file's stack (see tiktok_call.cpp).
 */
#include "pg_headers.h"
#include "account_tokens.h"
#include "call_support.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "token_refresher.h"
#include "../core/vs_core.h"

#include <string.h>

/* One call of the batch, and what became of it. */
typedef struct ManyCall
{
	char	   *endpoint_name;
	vs_endpoint endpoint;
	char	   *account_id;
	char	   *post_id;
	char	   *trigger;
	char	   *options;
	int			account;		/* index into the batch's distinct accounts */
	int64		log_row;		/* its "in flight" row while the call is out, else 0 */
	char	   *result_json;	/* what SQL gets back, once settled */
	bool		token_rejected; /* TikTok answered access_token_invalid */
} ManyCall;

/* One distinct account of the batch. */
typedef struct ManyAccount
{
	const char *id;
	VsAccount	account;
	bool		refreshed;		/* refreshed in this batch: never twice */
	bool		refreshed_early;	/* before the calls (about to expire): no retry after a 401 */
	bool		refresh_failed;
	VsRefreshResult refresh;	/* when refresh_failed */
} ManyAccount;

/* The dispatch_logs rows a step has to write, flushed by one worker. */
typedef struct LogRows
{
	int			n;
	const char **jsons;
	int64	   *row_ids;
} LogRows;

/* Reads the calls array (objects with endpoint, tiktok_account_id, post_id, trigger, options). */
static ManyCall *
parse_calls(Jsonb *calls, int *ncalls)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		args[1] = {JsonbPGetDatum(calls)};
	MemoryContext caller = CurrentMemoryContext;
	ManyCall   *out;
	int			n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT c->>'endpoint', (c->>'tiktok_account_id')::uuid::text, (c->>'post_id')::uuid::text,"
							  " c->>'trigger', coalesce(c->'options', '{}')::text"
							  " FROM jsonb_array_elements($1) WITH ORDINALITY t(c, i) ORDER BY i",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the calls");
	n = (int) SPI_processed;
	out = (ManyCall *) MemoryContextAllocZero(caller, sizeof(ManyCall) * (n > 0 ? n : 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *values[5];

		for (int col = 0; col < 5; col++)
		{
			char	   *v = SPI_getvalue(row, desc, col + 1);

			values[col] = v ? MemoryContextStrdup(caller, v) : NULL;
		}
		out[i].endpoint_name = values[0];
		out[i].account_id = values[1];
		out[i].post_id = values[2];
		out[i].trigger = values[3];
		out[i].options = values[4];
	}
	SPI_finish();
	*ncalls = n;
	return out;
}

/* Raises 22023/22004 for a call the batch cannot make (only account-token endpoints are batched). */
static void
check_call(ManyCall *c, int index)
{
	if (c->endpoint_name == NULL || c->trigger == NULL || c->account_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("call %d: endpoint, tiktok_account_id and trigger are required", index + 1)));
	/* dispatch_logs.trigger takes these (its CHECK would refuse the log row after the call). */
	if (strcmp(c->trigger, "manual") != 0 && strcmp(c->trigger, "scheduler") != 0 &&
		strcmp(c->trigger, "status") != 0 && strcmp(c->trigger, "connect") != 0 &&
		strcmp(c->trigger, "refresh") != 0 && strcmp(c->trigger, "disconnect") != 0 &&
		strcmp(c->trigger, "webhook") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("call %d: unknown trigger \"%s\"", index + 1, c->trigger),
				 errhint("Use manual, scheduler, status, connect, refresh, disconnect or webhook.")));
	c->endpoint = vs_endpoint_from_name(c->endpoint_name);
	if (c->endpoint == VS_EP_UNKNOWN || c->endpoint == VS_EP_OAUTH_TOKEN || c->endpoint == VS_EP_OAUTH_REVOKE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("call %d: \"%s\" cannot be batched", index + 1, c->endpoint_name),
				 errhint("Batches take the endpoints that use an account's token; OAuth goes through _tiktok_call.")));
}

/* Groups the calls by account: fills accounts (distinct ids, first-seen order) and each call's index. */
static ManyAccount *
group_by_account(ManyCall *calls, int n, int *naccounts)
{
	ManyAccount *accounts = (ManyAccount *) palloc0(sizeof(ManyAccount) * (n > 0 ? n : 1));
	int			m = 0;

	/* Quadratic, but over at most max_concurrent_requests posts' accounts. */
	for (int i = 0; i < n; i++)
	{
		int			a;

		for (a = 0; a < m; a++)
			if (strcmp(accounts[a].id, calls[i].account_id) == 0)
				break;
		if (a == m)
			accounts[m++].id = calls[i].account_id;
		calls[i].account = a;
	}
	*naccounts = m;
	return accounts;
}

/* Refreshes one account's token (force: TikTok refused it) and reloads it; records a failure. */
static void
refresh_account(ManyAccount *a, bool force, const char *trigger, const char *post_id, const vs_http_options *http)
{
	a->refreshed = true;
	vs_refresh_account_token(a->id, a->account.token_version, force, trigger, post_id, http, &a->refresh);
	if (a->refresh.outcome == VS_REFRESH_FAILED)
	{
		a->refresh_failed = true;
		vs_forget_token(&a->account);
		return;
	}
	vs_forget_token(&a->account);
	vs_load_account(a->id, &a->account);
}

/* Settles a call that was not sent: its result, and (when logged) its row among rows. */
static void
settle_unsent(ManyCall *c, vs_call_result *r, LogRows *rows)
{
	c->result_json = vs_take_core_string(vs_result_json(r));
	if (rows != NULL)
	{
		rows->jsons[rows->n] = vs_take_core_string(vs_dispatch_log_json(r, c->post_id, c->account_id,
																		 c->trigger, c->endpoint_name));
		rows->row_ids[rows->n++] = 0;
	}
}

/* Writes the collected rows with one worker, then forgets them. */
static void
flush_rows(LogRows *rows)
{
	vs_write_dispatch_logs(rows->n, rows->jsons, rows->row_ids);
	rows->n = 0;
}

/*
 * Which of the given calls TikTok's per-token limits let through now
 * (SQL: _rate_limit_allowance, which also takes the accounts' advisory
 * locks until the transaction ends). allowed[k] for calls[idx[k]].
 */
static void
rate_limit_allowance(ManyCall *calls, const int *idx, int k, bool *allowed)
{
	Datum	   *accounts = (Datum *) palloc(sizeof(Datum) * k);
	Datum	   *endpoints = (Datum *) palloc(sizeof(Datum) * k);
	Oid			argtypes[2] = {TEXTARRAYOID, TEXTARRAYOID};
	Datum		args[2];
	bool		isnull;

	for (int j = 0; j < k; j++)
	{
		accounts[j] = CStringGetTextDatum(calls[idx[j]].account_id);
		endpoints[j] = CStringGetTextDatum(calls[idx[j]].endpoint_name);
	}
	args[0] = PointerGetDatum(construct_array(accounts, k, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(endpoints, k, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT a FROM unnest(vibescaling._rate_limit_allowance($1::uuid[], $2))"
							  " WITH ORDINALITY t(a, i) ORDER BY i",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) k)
		elog(ERROR, "could not check the rate limits");
	for (int j = 0; j < k; j++)
		allowed[j] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
}

/*
 * Sends the calls idx[0..k) at once and settles each: rate-limited ones are
 * not sent, every call is logged in flight first, every outcome is logged.
 */
static void
send_calls(ManyCall *calls, const int *idx, int k, ManyAccount *accounts, const vs_http_options *http)
{
	bool	   *allowed = (bool *) palloc(sizeof(bool) * (k > 0 ? k : 1));
	int		   *go = (int *) palloc(sizeof(int) * (k > 0 ? k : 1));
	int			ngo = 0;
	int			nrefused;
	LogRows		rows;
	vs_call_spec *specs;
	vs_call_result *results;

	if (k == 0)
		return;
	rows.n = 0;
	rows.jsons = (const char **) palloc(sizeof(char *) * k);
	rows.row_ids = (int64 *) palloc(sizeof(int64) * k);

	/* TikTok's per-token limits: what does not fit now is not sent. */
	rate_limit_allowance(calls, idx, k, allowed);
	for (int j = 0; j < k; j++)
	{
		if (allowed[j])
			go[ngo++] = idx[j];
		else
		{
			vs_call_result refused;

			vs_rate_limited_failure(&refused);
			settle_unsent(&calls[idx[j]], &refused, &rows);
		}
	}

	/*
	 * Every call is durably "in flight" before any of them leaves: an init is
	 * never sent twice after a crash, and every call counts against its
	 * account's rate limit. If the rows cannot be committed, this raises and
	 * nothing is sent.
	 */
	for (int j = 0; j < ngo; j++)
	{
		ManyCall   *c = &calls[go[j]];

		c->log_row = 0;
		{
			rows.jsons[rows.n] = vs_in_flight_log_json(c->post_id, c->account_id, c->trigger, c->endpoint_name);
			rows.row_ids[rows.n++] = 0;
		}
	}
	nrefused = k - ngo;
	flush_rows(&rows);
	/* row_ids come back in order: the rate-limited rows first, then the in-flight ones. */
	for (int j = 0, r = nrefused; j < ngo; j++)
		calls[go[j]].log_row = rows.row_ids[r++];

	specs = (vs_call_spec *) palloc(sizeof(vs_call_spec) * (ngo > 0 ? ngo : 1));
	results = (vs_call_result *) palloc0(sizeof(vs_call_result) * (ngo > 0 ? ngo : 1));
	for (int j = 0; j < ngo; j++)
	{
		ManyCall   *c = &calls[go[j]];

		specs[j].endpoint = c->endpoint;
		specs[j].access_token = accounts[c->account].account.access_token;
		specs[j].options_json = c->options;
	}

	/* The core never throws and never calls PostgreSQL; it polls for query cancel. */
	vs_call_many(http, vs_guc_max_concurrent_requests, ngo, specs, results);

	/* Copy everything out of the core's malloc'd results before anything can raise. */
	for (int j = 0; j < ngo; j++)
	{
		ManyCall   *c = &calls[go[j]];

		/* Only a refusal TikTok proved: an init of unknown outcome is never sent again. */
		c->token_rejected = results[j].error_code != NULL && !results[j].outcome_unknown &&
			strcmp(results[j].error_code, "access_token_invalid") == 0;
		rows.jsons[rows.n] = vs_dispatch_log_json(&results[j], c->post_id, c->account_id, c->trigger,
												  c->endpoint_name);
		c->result_json = vs_result_json(&results[j]);
		rows.row_ids[rows.n++] = c->log_row;
		vs_call_result_free(&results[j]);
	}
	for (int j = 0, r = rows.n - ngo; j < ngo; j++, r++)
	{
		ManyCall   *c = &calls[go[j]];

		rows.jsons[r] = vs_take_core_string((char *) rows.jsons[r]);
		c->result_json = vs_take_core_string(c->result_json);
		if (rows.jsons[r] == NULL || c->result_json == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("vibescaling: out of memory serializing a TikTok reply")));
	}

	/* Durable before anything else can fail: every attempt is logged. */
	flush_rows(&rows);

	/* An aborted batch was a query cancel or timeout: let PostgreSQL raise it now. */
	CHECK_FOR_INTERRUPTS();
}

/* The batch's answers as one JSON array, in the calls' order. */
static Datum
results_array(ManyCall *calls, int n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, calls[i].result_json);
	}
	appendStringInfoChar(&buf, ']');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Overwrites and frees every token the batch loaded. */
static void
forget_tokens(ManyAccount *accounts, int m)
{
	for (int a = 0; a < m; a++)
		vs_forget_token(&accounts[a].account);
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_tiktok_call_many);

/*
 * vibescaling._tiktok_call_many(calls jsonb) RETURNS jsonb: the calls
 * [{"endpoint", "tiktok_account_id", "post_id", "trigger", "options"}, ...]
 * made at once; returns the array of their results, in order, each as
 * _tiktok_call returns it. See the file comment.
 */
Datum
vs_tiktok_call_many(PG_FUNCTION_ARGS)
{
	ManyCall   *calls;
	ManyAccount *accounts;
	int			n;
	int			m;
	int		   *idx;
	int			k = 0;
	vs_http_options http;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("calls is required")));
	if (!JB_ROOT_IS_ARRAY(PG_GETARG_JSONB_P(0)))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("calls must be a JSON array")));
	calls = parse_calls(PG_GETARG_JSONB_P(0), &n);
	for (int i = 0; i < n; i++)
		check_call(&calls[i], i);
	vs_http_options_from_settings(&http);

	accounts = group_by_account(calls, n, &m);
	{
		const char **ids = (const char **) palloc(sizeof(char *) * (m > 0 ? m : 1));
		VsAccount  *loaded = (VsAccount *) palloc0(sizeof(VsAccount) * (m > 0 ? m : 1));

		for (int a = 0; a < m; a++)
			ids[a] = accounts[a].id;
		vs_load_accounts(m, ids, loaded);
		for (int a = 0; a < m; a++)
			accounts[a].account = loaded[a];
	}

	/* Tokens about to expire are refreshed before the batch (one worker per account, rare). */
	for (int i = 0; i < n; i++)
	{
		ManyAccount *a = &accounts[calls[i].account];

		if (!a->refreshed && strcmp(a->account.status, "active") == 0 && a->account.access_token != NULL &&
			a->account.expires_in_s <= vs_guc_token_refresh_margin_s)
		{
			refresh_account(a, false, calls[i].trigger, calls[i].post_id, &http);
			a->refreshed_early = true;
		}
	}

	/* Calls whose account cannot call get their answer here; the rest go out together. */
	idx = (int *) palloc(sizeof(int) * (n > 0 ? n : 1));
	for (int i = 0; i < n; i++)
	{
		ManyAccount *a = &accounts[calls[i].account];
		vs_call_result refused;

		if (a->refresh_failed)
		{
			vs_refresh_failure(&refused, &a->refresh);
			settle_unsent(&calls[i], &refused, NULL);
		}
		else if (strcmp(a->account.status, "active") != 0 || a->account.access_token == NULL)
		{
			vs_local_failure(&refused, "account_not_active",
							 psprintf("TikTok account %s is %s, it cannot call TikTok", a->id, a->account.status),
							 strcmp(a->account.status, "not_found") == 0 ? "P0002" : "55000", false);
			settle_unsent(&calls[i], &refused, NULL);
		}
		else
			idx[k++] = i;
	}
	send_calls(calls, idx, k, accounts, &http);

	/* TikTok refused a token: refresh that account once, send its refused calls once more. */
	k = 0;
	for (int i = 0; i < n; i++)
	{
		ManyAccount *a = &accounts[calls[i].account];

		/* As _tiktok_call: a token refreshed just before the call is not refreshed again. */
		if (!calls[i].token_rejected || a->refresh_failed || a->refreshed_early)
			continue;
		if (!a->refreshed)
			refresh_account(a, true, calls[i].trigger, calls[i].post_id, &http);
		if (a->refresh_failed)
		{
			vs_call_result refused;

			vs_refresh_failure(&refused, &a->refresh);
			settle_unsent(&calls[i], &refused, NULL);
		}
		else if (strcmp(a->account.status, "active") == 0 && a->account.access_token != NULL)
			idx[k++] = i;
		calls[i].token_rejected = false;
	}
	send_calls(calls, idx, k, accounts, &http);

	forget_tokens(accounts, m);
	PG_RETURN_DATUM(results_array(calls, n));
}
}
