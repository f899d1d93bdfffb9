/*
 * call_batch.cpp: the one path of the TikTok calls made with an account's
 * token (see call_batch.h).
 *
 * Only plain C data lives on this file's stack: the core's results are
 * copied into palloc'd memory and freed before anything can raise.
 */
#include "pg_headers.h"
#include "kept_plans.h"
#include "account_tokens.h"
#include "call_batch.h"
#include "call_result.h"
#include "call_support.h"
#include "dispatch_log_writer.h"
#include "gucs.h"
#include "token_refresher.h"

#include <math.h>
#include <string.h>

/* One distinct account of the batch. */
typedef struct BatchAccount
{
	const char *id;
	VsAccount	account;
	bool		no_retry_refresh;	/* no refresh after a 401: "connect", or refreshed before the calls */
	bool		forced;			/* refreshed after a 401 in this batch: never twice */
	bool		refresh_failed;
	VsRefreshResult refresh;	/* when refresh_failed */
} BatchAccount;

/* The dispatch_logs rows a step has to write, flushed in one write. */
typedef struct LogRows
{
	int			n;
	const char **jsons;
	int64	   *row_ids;
} LogRows;

/* Groups the calls by account: the distinct accounts (first-seen order) and each call's index. */
static BatchAccount *
group_by_account(VsBatchCall *calls, int n, int *naccounts)
{
	BatchAccount *accounts = (BatchAccount *) palloc0(sizeof(BatchAccount) * (n > 0 ? n : 1));
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
		/* connect_account uses the token it has just obtained: no refresh there. */
		if (strcmp(calls[i].trigger, "connect") == 0)
			accounts[a].no_retry_refresh = true;
	}
	*naccounts = m;
	return accounts;
}

/* Loads every account of the batch, tokens decrypted, in one query. */
static void
load_accounts(BatchAccount *accounts, int m)
{
	const char **ids = (const char **) palloc(sizeof(char *) * (m > 0 ? m : 1));
	VsAccount  *loaded = (VsAccount *) palloc0(sizeof(VsAccount) * (m > 0 ? m : 1));

	for (int a = 0; a < m; a++)
		ids[a] = accounts[a].id;
	vs_load_accounts(m, ids, loaded);
	for (int a = 0; a < m; a++)
		accounts[a].account = loaded[a];
}

/* True when the account can call TikTok (active, with a token). */
static bool
account_usable(const BatchAccount *a)
{
	return strcmp(a->account.status, "active") == 0 && a->account.access_token != NULL;
}

/* Refreshes one account's token (force: TikTok refused it) and reloads it; records a failure. */
static void
refresh_account(BatchAccount *a, bool force, const char *trigger, const char *post_id, const vs_http_options *http)
{
	vs_refresh_account_token(a->id, a->account.token_version, force, trigger, post_id, http, &a->refresh);
	vs_forget_token(&a->account);
	if (a->refresh.outcome == VS_REFRESH_FAILED)
	{
		a->refresh_failed = true;
		return;
	}
	vs_load_account(a->id, &a->account);
}

/* Settles a call that was not sent: its result, and (when logged) its row among rows. */
static void
settle_unsent(VsBatchCall *c, vs_call_result *r, LogRows *rows)
{
	vs_copy_call_result(&c->result, r);
	if (rows != NULL)
	{
		rows->jsons[rows->n] = vs_take_core_string(vs_dispatch_log_json(r, c->post_id, c->account_id,
																		 c->trigger, c->endpoint_name));
		rows->row_ids[rows->n++] = 0;
	}
}

/* Writes the collected rows in one write to the log writer, then forgets them. */
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
rate_limit_allowance(VsBatchCall *calls, const int *idx, int k, bool *allowed)
{
	Datum	   *accounts = (Datum *) palloc(sizeof(Datum) * k);
	Datum	   *endpoints = (Datum *) palloc(sizeof(Datum) * k);
	Oid			argtypes[2] = {TEXTARRAYOID, TEXTARRAYOID};
	static SPIPlanPtr kept = NULL;
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
	if (vs_execute_kept(&kept, "SELECT a FROM unnest(vibescaling._rate_limit_allowance($1::uuid[], $2))"
						" WITH ORDINALITY t(a, i) ORDER BY i",
						2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) k)
		elog(ERROR, "could not check the rate limits");
	for (int j = 0; j < k; j++)
		allowed[j] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
}

/* Seconds until the account may make this call within TikTok's rate limit (SQL: _rate_limit_wait). */
static double
rate_limit_wait(const char *account_id, const char *endpoint_name)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(account_id), CStringGetTextDatum(endpoint_name)};
	static SPIPlanPtr kept = NULL;
	double		wait;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (vs_execute_kept(&kept, "SELECT vibescaling._rate_limit_wait($1::uuid, $2)", 2, argtypes, args,
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
 * Which of the calls idx[0..k) may be sent now: allowed[j] for calls[idx[j]];
 * wait_left_s[j], for one refused after waiting, the wait that was left.
 */
static void
decide_rate_limits(VsBatchCall *calls, const int *idx, int k, bool wait_for_rate_limit, bool *allowed,
				   double *wait_left_s)
{
	for (int j = 0; j < k; j++)
		wait_left_s[j] = -1;
	if (!wait_for_rate_limit)
	{
		rate_limit_allowance(calls, idx, k, allowed);
		return;
	}
	for (int j = 0; j < k; j++)
		allowed[j] = wait_for_rate_slot(calls[idx[j]].account_id, calls[idx[j]].endpoint_name, &wait_left_s[j]);
}

/*
 * Sends the calls idx[0..k) at once and settles each: rate-limited ones are
 * not sent, every call is logged in flight first, every outcome is logged.
 */
static void
send_calls(VsBatchCall *calls, const int *idx, int k, BatchAccount *accounts, const vs_http_options *http,
		   bool wait_for_rate_limit)
{
	bool	   *allowed = (bool *) palloc(sizeof(bool) * (k > 0 ? k : 1));
	double	   *wait_left_s = (double *) palloc(sizeof(double) * (k > 0 ? k : 1));
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

	/* TikTok's per-token limits: what does not fit is not sent. */
	decide_rate_limits(calls, idx, k, wait_for_rate_limit, allowed, wait_left_s);
	for (int j = 0; j < k; j++)
	{
		if (allowed[j])
			go[ngo++] = idx[j];
		else
		{
			vs_call_result refused;

			vs_rate_limited_failure(&refused);
			/* The wait that was left says when to try again, as TikTok's Retry-After would. */
			if (wait_left_s[j] > 0)
				refused.retry_after_s = (long) ceil(wait_left_s[j]);
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
		VsBatchCall *c = &calls[go[j]];

		rows.jsons[rows.n] = vs_in_flight_log_json(c->post_id, c->account_id, c->trigger, c->endpoint_name);
		rows.row_ids[rows.n++] = 0;
	}
	nrefused = k - ngo;
	flush_rows(&rows);
	/* row_ids come back in order: the rate-limited rows first, then the in-flight ones. */
	for (int j = 0, r = nrefused; j < ngo; j++)
		calls[go[j]].log_row = rows.row_ids[r++];
	if (ngo == 0)
		return;

	specs = (vs_call_spec *) palloc(sizeof(vs_call_spec) * ngo);
	results = (vs_call_result *) palloc0(sizeof(vs_call_result) * ngo);
	for (int j = 0; j < ngo; j++)
	{
		VsBatchCall *c = &calls[go[j]];

		specs[j].endpoint = c->endpoint;
		specs[j].access_token = accounts[c->account].account.access_token;
		specs[j].options_json = c->options;
	}

	/* The core never throws and never calls PostgreSQL; it polls for query cancel. */
	vs_call_many(http, vs_guc_max_concurrent_requests, ngo, specs, results);

	/* Copy everything out of the core's malloc'd results before anything can raise. */
	for (int j = 0; j < ngo; j++)
	{
		VsBatchCall *c = &calls[go[j]];

		/* Only a refusal TikTok proved: an init of unknown outcome is never sent again. */
		c->token_rejected = results[j].error_code != NULL && !results[j].outcome_unknown &&
			strcmp(results[j].error_code, "access_token_invalid") == 0;
		rows.jsons[rows.n] = vs_dispatch_log_json(&results[j], c->post_id, c->account_id, c->trigger,
												  c->endpoint_name);
		c->result = results[j];	/* its malloc'd strings move with it */
		rows.row_ids[rows.n++] = c->log_row;
	}
	for (int j = 0, r = rows.n - ngo; j < ngo; j++, r++)
	{
		VsBatchCall *c = &calls[go[j]];

		rows.jsons[r] = vs_take_core_string((char *) rows.jsons[r]);
		vs_take_call_result(&c->result);
		if (rows.jsons[r] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("vibescaling: out of memory serializing a TikTok reply")));
	}

	/* Durable before anything else can fail: every attempt is logged. */
	flush_rows(&rows);

	/* An aborted batch was a query cancel or timeout: let PostgreSQL raise it now. */
	CHECK_FOR_INTERRUPTS();
}

/* Overwrites and frees every token the batch loaded. */
static void
forget_tokens(BatchAccount *accounts, int m)
{
	for (int a = 0; a < m; a++)
		vs_forget_token(&accounts[a].account);
}

/* Makes the calls (see call_batch.h). */
void
vs_run_calls(VsBatchCall *calls, int n, const vs_http_options *http, bool wait_for_rate_limit)
{
	int			m;
	BatchAccount *accounts = group_by_account(calls, n, &m);
	int		   *idx = (int *) palloc(sizeof(int) * (n > 0 ? n : 1));
	int			k = 0;

	load_accounts(accounts, m);

	/* Tokens about to expire are refreshed before the calls (rare). */
	for (int i = 0; i < n; i++)
	{
		BatchAccount *a = &accounts[calls[i].account];

		if (!a->no_retry_refresh && !a->refresh_failed && account_usable(a) &&
			a->account.expires_in_s <= vs_guc_token_refresh_margin_s)
		{
			refresh_account(a, false, calls[i].trigger, calls[i].post_id, http);
			/* Refreshed now: a 401 would not be cured by refreshing again. */
			if (a->refresh.outcome == VS_REFRESH_DONE)
				a->no_retry_refresh = true;
		}
	}

	/* Calls whose account cannot call get their answer here; the rest go out together. */
	for (int i = 0; i < n; i++)
	{
		BatchAccount *a = &accounts[calls[i].account];
		vs_call_result refused;

		if (a->refresh_failed)
		{
			vs_refresh_failure(&refused, &a->refresh);
			settle_unsent(&calls[i], &refused, NULL);
		}
		else if (!account_usable(a))
		{
			vs_local_failure(&refused, "account_not_active",
							 psprintf("TikTok account %s is %s, it cannot call TikTok", a->id, a->account.status),
							 strcmp(a->account.status, "not_found") == 0 ? "P0002" : "55000", false);
			settle_unsent(&calls[i], &refused, NULL);
			calls[i].account_unusable = true;
		}
		else
			idx[k++] = i;
	}
	send_calls(calls, idx, k, accounts, http, wait_for_rate_limit);

	/* TikTok refused a token: refresh that account once, send its refused calls once more. */
	k = 0;
	for (int i = 0; i < n; i++)
	{
		BatchAccount *a = &accounts[calls[i].account];

		if (!calls[i].token_rejected || a->no_retry_refresh)
			continue;
		calls[i].token_rejected = false;
		if (!a->forced)
		{
			a->forced = true;
			refresh_account(a, true, calls[i].trigger, calls[i].post_id, http);
		}
		if (a->refresh_failed)
		{
			vs_call_result refused;

			vs_refresh_failure(&refused, &a->refresh);
			settle_unsent(&calls[i], &refused, NULL);
		}
		else if (account_usable(a))
			idx[k++] = i;
	}
	send_calls(calls, idx, k, accounts, http, wait_for_rate_limit);

	forget_tokens(accounts, m);
}
