/*
 * tiktok_call_many.cpp: vibescaling._tiktok_call_many(calls jsonb), many
 * TikTok calls at once: what the dispatcher's rounds and the status poller
 * use. It reads the calls and hands them to the call path all calls share
 * (call_batch.h), which does not wait for rate limits: a call that does not
 * fit now is answered rate_limited without being sent.
 */
#include "pg_headers.h"
#include "kept_plans.h"
#include "call_batch.h"
#include "call_result.h"
#include "call_support.h"

#include <string.h>

/* Reads the calls array (objects with endpoint, tiktok_account_id, post_id, trigger, options). */
static VsBatchCall *
parse_calls(Jsonb *calls, int *ncalls)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		args[1] = {JsonbPGetDatum(calls)};
	static SPIPlanPtr kept = NULL;
	MemoryContext caller = CurrentMemoryContext;
	VsBatchCall   *out;
	int			n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (vs_execute_kept(&kept, "SELECT c->>'endpoint', (c->>'tiktok_account_id')::uuid::text, (c->>'post_id')::uuid::text,"
						" c->>'trigger', coalesce(c->'options', '{}')::text"
						" FROM jsonb_array_elements($1) WITH ORDINALITY t(c, i) ORDER BY i",
						1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the calls");
	n = (int) SPI_processed;
	out = (VsBatchCall *) MemoryContextAllocZero(caller, sizeof(VsBatchCall) * (n > 0 ? n : 1));
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
check_call(VsBatchCall *c, int index)
{
	if (c->endpoint_name == NULL || c->trigger == NULL || c->account_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("call %d: endpoint, tiktok_account_id and trigger are required", index + 1)));
	/* dispatch_logs.trigger takes these (its CHECK would refuse the log row after the call). */
	if (strcmp(c->trigger, "manual") != 0 && strcmp(c->trigger, "scheduler") != 0 &&
		strcmp(c->trigger, "status") != 0 && strcmp(c->trigger, "connect") != 0 &&
		strcmp(c->trigger, "refresh") != 0 && strcmp(c->trigger, "disconnect") != 0 &&
		strcmp(c->trigger, "webhook") != 0 && strcmp(c->trigger, "settle") != 0 &&
		strcmp(c->trigger, "metrics") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("call %d: unknown trigger \"%s\"", index + 1, c->trigger),
				 errhint("Use manual, scheduler, status, connect, refresh, disconnect, webhook, settle or metrics.")));
	c->endpoint = vs_endpoint_from_name(c->endpoint_name);
	if (c->endpoint == VS_EP_UNKNOWN || c->endpoint == VS_EP_OAUTH_TOKEN || c->endpoint == VS_EP_OAUTH_REVOKE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("call %d: \"%s\" cannot be batched", index + 1, c->endpoint_name),
				 errhint("Batches take the endpoints that use an account's token; OAuth goes through _tiktok_call.")));
}

/* The batch's answers as a vibescaling._call_result[], in the calls' order. */
static Datum
results_array(VsBatchCall *calls, int n)
{
	TupleDesc	desc = vs_call_result_desc();
	Datum	   *rows = (Datum *) palloc(sizeof(Datum) * (n > 0 ? n : 1));
	int16		typlen;
	bool		typbyval;
	char		typalign;

	for (int i = 0; i < n; i++)
		rows[i] = vs_call_result_row(&calls[i].result, desc, (Datum) 0);
	get_typlenbyvalalign(desc->tdtypeid, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(rows, n, desc->tdtypeid, typlen, typbyval, typalign));
}

/* The batch's answers as one JSON array, in the calls' order (the contract before 0.1.5). */
static Datum
results_json_array(VsBatchCall *calls, int n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < n; i++)
	{
		char	   *json = vs_call_result_json_text(&calls[i].result);

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, json);
	}
	appendStringInfoChar(&buf, ']');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Reads, checks and makes the calls of _tiktok_call_many(calls jsonb); *n: how many. */
static VsBatchCall *
make_calls(FunctionCallInfo fcinfo, int *n)
{
	VsBatchCall *calls;
	vs_http_options http;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("calls is required")));
	if (!JB_ROOT_IS_ARRAY(PG_GETARG_JSONB_P(0)))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("calls must be a JSON array")));
	calls = parse_calls(PG_GETARG_JSONB_P(0), n);
	for (int i = 0; i < *n; i++)
		check_call(&calls[i], i);
	vs_http_options_from_settings(&http);
	vs_run_calls(calls, *n, &http, false);
	return calls;
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_tiktok_call_many_1_5);
PG_FUNCTION_INFO_V1(vs_tiktok_call_many);

/*
 * vibescaling._tiktok_call_many(calls jsonb) RETURNS vibescaling._call_result[]:
 * the calls [{"endpoint", "tiktok_account_id", "post_id", "trigger",
 * "options"}, ...] made at once; returns their results, in order, each as
 * _tiktok_call returns it. See the file comment.
 */
Datum
vs_tiktok_call_many_1_5(PG_FUNCTION_ARGS)
{
	int			n;
	VsBatchCall *calls = make_calls(fcinfo, &n);

	PG_RETURN_DATUM(results_array(calls, n));
}

/*
 * The same for a catalog from before 0.1.5 (until ALTER EXTENSION ...
 * UPDATE): the results as a jsonb array of that contract's objects.
 */
Datum
vs_tiktok_call_many(PG_FUNCTION_ARGS)
{
	int			n;
	VsBatchCall *calls = make_calls(fcinfo, &n);

	PG_RETURN_DATUM(results_json_array(calls, n));
}
}
