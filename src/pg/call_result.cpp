/*
 * call_result.cpp: a call's result as a vibescaling._call_result row or as
 * the JSON object of earlier releases (see call_result.h).
 */
#include "pg_headers.h"
#include "call_result.h"
#include "call_support.h"

#include <math.h>

extern "C" {
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/typcache.h"
}

/* The columns of vibescaling._call_result, in order. */
enum
{
	COL_OK,
	COL_HTTP_STATUS,
	COL_ERROR_CODE,
	COL_ERROR_MESSAGE,
	COL_LOG_ID,
	COL_PUBLISH_ID,
	COL_DATA,
	COL_SQLSTATE,
	COL_DURATION_MS,
	COL_RETRYABLE,
	COL_OUTCOME_UNKNOWN,
	COL_RETRY_AFTER,
	NUM_COLS
};

/* A palloc'd copy of s (NULL stays NULL). */
static char *
copy_or_null(char *s)
{
	return s != NULL ? pstrdup(s) : NULL;
}

/* Replaces each string of r by what f makes of it. */
static void
map_strings(vs_call_result *r, char *(*f) (char *))
{
	char	  **fields[] = {&r->error_code, &r->error_message, &r->log_id, &r->publish_id, &r->data_json,
							&r->sqlstate};

	for (size_t i = 0; i < lengthof(fields); i++)
		*fields[i] = f(*fields[i]);
}

/* Copies a result with palloc'd strings; see the header. */
void
vs_copy_call_result(vs_call_result *dst, const vs_call_result *src)
{
	*dst = *src;
	map_strings(dst, copy_or_null);
}

/* Moves a core result's strings into palloc'd memory; see the header. */
void
vs_take_call_result(vs_call_result *r)
{
	map_strings(r, vs_take_core_string);
}

/* vibescaling._call_result's descriptor; see the header. */
TupleDesc
vs_call_result_desc(void)
{
	Oid			schema = get_namespace_oid("vibescaling", false);
	Oid			type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("_call_result"),
									   ObjectIdGetDatum(schema));
	TupleDesc	desc;

	if (!OidIsValid(type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type vibescaling._call_result does not exist"),
				 errhint("Run ALTER EXTENSION vibescaling UPDATE.")));
	desc = lookup_rowtype_tupdesc_copy(type, -1);
	if (desc->natts != NUM_COLS)
		elog(ERROR, "vibescaling._call_result has %d columns, expected %d", desc->natts, NUM_COLS);
	return BlessTupleDesc(desc);
}

/* A text Datum of s, or null. */
static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s != NULL ? CStringGetTextDatum(s) : (Datum) 0;
}

/* Milliseconds as the JSON form gives them: finite, not negative, to the microsecond. */
static double
duration_ms(double ms)
{
	if (!isfinite(ms) || ms < 0)
		return 0;
	return round(ms * 1000.0) / 1000.0;
}

/* The reply's data object as jsonb: {} when there is none or it is not an object. */
static Datum
data_jsonb(const char *data_json)
{
	/* The core writes data_json with jansson: an object's text, or "{}". */
	if (data_json == NULL || data_json[0] != '{')
		data_json = "{}";
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(data_json));
}

/* The row of a result; see the header. */
Datum
vs_call_result_row(const vs_call_result *r, TupleDesc desc, Datum data)
{
	Datum		values[NUM_COLS];
	bool		nulls[NUM_COLS];

	memset(nulls, 0, sizeof(nulls));
	values[COL_OK] = BoolGetDatum(r->ok != 0);
	values[COL_HTTP_STATUS] = Int32GetDatum((int32) r->http_status);
	values[COL_ERROR_CODE] = text_or_null(r->error_code, &nulls[COL_ERROR_CODE]);
	values[COL_ERROR_MESSAGE] = text_or_null(r->error_message, &nulls[COL_ERROR_MESSAGE]);
	values[COL_LOG_ID] = text_or_null(r->log_id, &nulls[COL_LOG_ID]);
	values[COL_PUBLISH_ID] = text_or_null(r->publish_id, &nulls[COL_PUBLISH_ID]);
	values[COL_DATA] = data != (Datum) 0 ? data : data_jsonb(r->data_json);
	values[COL_SQLSTATE] = text_or_null(r->sqlstate, &nulls[COL_SQLSTATE]);
	values[COL_DURATION_MS] = Float8GetDatum(duration_ms(r->duration_ms));
	values[COL_RETRYABLE] = BoolGetDatum(r->retryable != 0);
	values[COL_OUTCOME_UNKNOWN] = BoolGetDatum(r->outcome_unknown != 0);
	values[COL_RETRY_AFTER] = Int32GetDatum((int32) r->retry_after_s);
	nulls[COL_RETRY_AFTER] = r->retry_after_s < 0;
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/* The pre-0.1.5 JSON object's text; see the header. */
char *
vs_call_result_json_text(const vs_call_result *r)
{
	char	   *json = vs_take_core_string(vs_result_json(r));

	if (json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("vibescaling: out of memory serializing a TikTok reply")));
	return json;
}

/* The pre-0.1.5 JSON object; see the header. */
Datum
vs_call_result_jsonb(const vs_call_result *r)
{
	char	   *json = vs_call_result_json_text(r);
	Datum		result;

	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	vs_wipe_string(json);
	return result;
}
