/*
 * dispatch_log_writer.cpp: durable dispatch_logs rows through a dynamic
 * background worker (see dispatch_log_writer.h for why).
 */
#include "pg_headers.h"
#include "dispatch_log_writer.h"
#include "kept_plans.h"
#include "log_writer.h"
#include "session_worker.h"

#include <string.h>

/*
 * What the caller and the worker share in the DSM segment: nrows rows, each
 * a row id (in: 0 to insert, else the row to replace; out: the row's id)
 * and a NUL-terminated log JSON text, the texts packed after the ids; then,
 * with an account update, its text (see VsAccountUpdate).
 */
typedef struct DispatchLogBatch
{
	Oid			database_id;	/* the caller's database */
	int			caller_pid;		/* recorded as dispatch_logs.backend_pid */
	int			nrows;
	VsAccountUpdate account_update; /* VS_ACCOUNT_NO_UPDATE, or what to do to account_id */
	char		account_id[40];
	volatile int done;			/* set by the worker after its commit */
	char		error[256];		/* the worker's error, when it failed */
	int64		row_ids[FLEXIBLE_ARRAY_MEMBER];
} DispatchLogBatch;

/* The first log JSON text of a batch (they follow the row ids, one after another). */
static char *
batch_texts(DispatchLogBatch *batch)
{
	return (char *) &batch->row_ids[batch->nrows];
}

/*
 * The row's columns from the log JSON ($1) and the caller's pid ($2).
 * retry_after comes last: it is new in 0.1.3, and between a package upgrade
 * and ALTER EXTENSION ... UPDATE this library writes to the old catalog's
 * log, which lacks it.
 */
#define LOG_COLUMNS \
	"post_id, tiktok_account_id, trigger, endpoint, http_status, outcome, error_code," \
	" error_message, log_id, publish_id, duration_ms, outcome_unknown, uploaded_bytes, backend_pid"
#define LOG_VALUES \
	" r.post_id, r.tiktok_account_id, r.trigger, r.endpoint, nullif(r.http_status, 0), r.outcome," \
	"  r.error_code, nullif(r.error_message, ''), nullif(r.log_id, ''), nullif(r.publish_id, ''), r.duration_ms," \
	"  coalesce(r.outcome_unknown, false), r.uploaded_bytes, $2"
#define LOG_SOURCE \
	" FROM pg_catalog.jsonb_populate_record(NULL::vibescaling.dispatch_logs, $1::pg_catalog.jsonb) r"

/* True when the installed dispatch_logs has the column (see LOG_COLUMNS). */
static bool
log_has_column(const char *column)
{
	Oid			log = get_relname_relid("dispatch_logs", get_namespace_oid("vibescaling", false));

	return OidIsValid(log) && get_attnum(log, column) != InvalidAttrNumber;
}

/*
 * The statement that inserts rows (see LOG_COLUMNS), palloc'd: the log JSON
 * texts $1 (text[]), one row each. Their ids are drawn first, in input
 * order, and come back in that order, so that each caller learns its rows'
 * ids by position.
 */
static char *
insert_sql(bool with_retry_after)
{
	const char *extra_column = with_retry_after ? ", retry_after" : "";
	const char *extra_value = with_retry_after ? ", r.retry_after" : "";

	return psprintf("WITH input AS ("
					"  SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('vibescaling.dispatch_logs', 'id')) AS id,"
					"         t.j, t.i FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY t(j, i)),"
					" inserted AS ("
					"  INSERT INTO vibescaling.dispatch_logs (id, " LOG_COLUMNS "%s)"
					"  SELECT input.id," LOG_VALUES "%s FROM input,"
					"   LATERAL pg_catalog.jsonb_populate_record(NULL::vibescaling.dispatch_logs, input.j::pg_catalog.jsonb) r"
					"  RETURNING 1)"
					" SELECT input.id FROM input ORDER BY input.i", extra_column, extra_value);
}

/*
 * The statement that replaces rows (see LOG_COLUMNS), palloc'd: row $3[k]
 * (int8[]) by the log JSON text $1[k]. A row replaced is a call's "in
 * flight" row, written when the call began: the bound on created_at ($4: a
 * day ago; no call lasts a day) leaves the log's older weekly partitions
 * out, and the rows are found by their keys (id = ANY), whatever the log's
 * statistics say.
 */
static char *
replace_sql(bool with_retry_after)
{
	const char *extra_column = with_retry_after ? ", retry_after" : "";
	const char *extra_value = with_retry_after ? ", r.retry_after" : "";

	return psprintf("UPDATE vibescaling.dispatch_logs d SET (" LOG_COLUMNS "%s) = (" LOG_VALUES "%s)"
					" FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.int8[]), pg_catalog.unnest($1::pg_catalog.text[])) u(id, j),"
					"  LATERAL pg_catalog.jsonb_populate_record(NULL::vibescaling.dispatch_logs, u.j::pg_catalog.jsonb) r"
					" WHERE d.id = u.id AND d.id = ANY ($3::pg_catalog.int8[]) AND d.created_at > $4"
					" RETURNING d.id", extra_column, extra_value);
}

/*
 * How long the writer keeps its prepared statements. Parsing and planning
 * them took most of a batch's time (a median 0.22 ms of a batch's 0.24 ms
 * in a run of single publishes), so the writer prepares them once and keeps
 * them (SPI_keepplan). Not for long: a generic plan keeps the choices made
 * for the log's size when it was made, and the log grows by thousands of
 * rows a second in a burst (the dispatcher discards its own plans each
 * round for the same reason). Within a second a partition cannot grow far.
 */
static const int kept_plan_max_age_ms = 1000;

/* The statements prepared, [replace][with_retry_after], and since when. */
static SPIPlanPtr kept_plans[2][2];
static TimestampTz kept_plans_since = 0;

/*
 * Runs the statement that inserts rows (replace false: insert_sql) or
 * replaces them (replace_sql) with args, from its kept plan (vs_execute_kept),
 * which is dropped once it is older than kept_plan_max_age_ms. Changes to
 * the log's tables (a new column, a partition dropped) make PostgreSQL plan
 * it again by itself.
 */
static int
execute_log_statement(bool replace, bool with_retry_after, Datum *args)
{
	static Oid	insert_types[2] = {TEXTARRAYOID, INT4OID};
	static Oid	replace_types[4] = {TEXTARRAYOID, INT4OID, INT8ARRAYOID, TIMESTAMPTZOID};
	TimestampTz now = GetCurrentTimestamp();

	if (kept_plans_since != 0 && TimestampDifferenceExceeds(kept_plans_since, now, kept_plan_max_age_ms))
	{
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++)
				if (kept_plans[i][j] != NULL)
				{
					SPI_freeplan(kept_plans[i][j]);
					kept_plans[i][j] = NULL;
				}
		kept_plans_since = 0;
	}
	if (kept_plans_since == 0)
		kept_plans_since = now;
	if (replace)
		return vs_execute_kept(&kept_plans[1][with_retry_after ? 1 : 0], replace_sql(with_retry_after), 4,
							   replace_types, args, NULL, false, 0);
	return vs_execute_kept(&kept_plans[0][with_retry_after ? 1 : 0], insert_sql(with_retry_after), 2,
						   insert_types, args, NULL, false, 0);
}

/*
 * Inserts (row id 0) or replaces (row id > 0) each of n rows, with SPI in
 * the current transaction, and sets each row id to the row's id: one
 * statement for all the inserts and one for all the replacements, planned
 * for this batch.
 */
static void
store_log_rows(int n, const char *texts, int64 *row_ids, int caller_pid)
{
	Datum	   *insert_texts = (Datum *) palloc(sizeof(Datum) * (n > 0 ? n : 1));
	int		   *inserted_at = (int *) palloc(sizeof(int) * (n > 0 ? n : 1));
	Datum	   *replace_texts = (Datum *) palloc(sizeof(Datum) * (n > 0 ? n : 1));
	Datum	   *replace_ids = (Datum *) palloc(sizeof(Datum) * (n > 0 ? n : 1));
	int			ninsert = 0;
	int			nreplace = 0;
	const char *text = texts;
	TimestampTz day_ago = GetCurrentTransactionStartTimestamp() - USECS_PER_DAY;
	bool		with_retry_after;

	for (int i = 0; i < n; i++)
	{
		if (row_ids[i] > 0)
		{
			replace_texts[nreplace] = CStringGetTextDatum(text);
			replace_ids[nreplace++] = Int64GetDatum(row_ids[i]);
		}
		else
		{
			insert_texts[ninsert] = CStringGetTextDatum(text);
			inserted_at[ninsert++] = i;
		}
		text += strlen(text) + 1;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	with_retry_after = log_has_column("retry_after");
	if (ninsert > 0)
	{
		Datum		args[2] = {PointerGetDatum(construct_array(insert_texts, ninsert, TEXTOID, -1, false, TYPALIGN_INT)),
							   Int32GetDatum(caller_pid)};
		bool		isnull;

		if (execute_log_statement(false, with_retry_after, args) != SPI_OK_SELECT ||
			SPI_processed != (uint64) ninsert)
			elog(ERROR, "could not write vibescaling.dispatch_logs");
		for (int k = 0; k < ninsert; k++)
			row_ids[inserted_at[k]] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (nreplace > 0)
	{
		Datum		args[4] = {PointerGetDatum(construct_array(replace_texts, nreplace, TEXTOID, -1, false, TYPALIGN_INT)),
							   Int32GetDatum(caller_pid),
							   PointerGetDatum(construct_array(replace_ids, nreplace, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
							   TimestampTzGetDatum(day_ago)};

		/* Every row replaced, or none: a row that is not there is an error. */
		if (execute_log_statement(true, with_retry_after, args) != SPI_OK_UPDATE_RETURNING ||
			SPI_processed != (uint64) nreplace)
			elog(ERROR, "could not replace %d vibescaling.dispatch_logs row(s)", nreplace);
	}
	SPI_finish();
}

/* Inserts one row with SPI in the current transaction. */
void
vs_insert_dispatch_log(const char *log_json, int caller_pid)
{
	int64		row_id = 0;

	store_log_rows(1, log_json, &row_id, caller_pid);
}

/*
 * Applies a batch's account update (text: the sealed token reply, or the
 * reason) with SPI in the current transaction.
 */
static void
store_account_update(VsAccountUpdate update, const char *account_id, const char *text)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(account_id), CStringGetTextDatum(text)};
	const char *sql = update == VS_ACCOUNT_STORE_TOKENS
		? "SELECT vibescaling._store_tokens($1::pg_catalog.uuid, $2::pg_catalog.jsonb)"
		: "UPDATE vibescaling.tiktok_accounts SET status = 'needs_reauth', status_reason = $2, updated_at = pg_catalog.now()"
		  " WHERE id = $1::pg_catalog.uuid";

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 2, argtypes, args, NULL, false, 0) < 0)
		elog(ERROR, "could not update the TikTok account's tokens");
	SPI_finish();
}

/* Stores a batch's rows in the current transaction (see dispatch_log_writer.h). */
void
vs_store_log_batch(void *address)
{
	DispatchLogBatch *batch = (DispatchLogBatch *) address;
	char	   *text = batch_texts(batch);

	store_log_rows(batch->nrows, text, batch->row_ids, batch->caller_pid);
	if (batch->account_update != VS_ACCOUNT_NO_UPDATE)
	{
		for (int i = 0; i < batch->nrows; i++)
			text += strlen(text) + 1;
		store_account_update(batch->account_update, batch->account_id, text);
	}
}

/* Starts the writer worker for a filled batch and waits for it; false when it did not commit. */
static bool
run_writer_worker(dsm_segment *seg, DispatchLogBatch *batch)
{
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;

	if (!vs_start_session_worker("vs_dispatch_log_writer_main", "vibescaling dispatch log writer", seg, &handle))
	{
		strlcpy(batch->error, "no free background worker slot (max_worker_processes)", sizeof(batch->error));
		return false;
	}

	/*
	 * Hold off cancel while waiting: the worker commits within its own
	 * lock/statement timeouts, and leaving early would lose the rows when the
	 * segment goes away before the worker attaches.
	 */
	HOLD_INTERRUPTS();
	status = WaitForBackgroundWorkerShutdown(handle);
	RESUME_INTERRUPTS();

	/* The server is gone: stop here, as every backend does (the log stays as it is). */
	if (status == BGWH_POSTMASTER_DIED)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("vibescaling: the postmaster died while dispatch log rows were being written")));

	return status == BGWH_STOPPED && batch->done;
}

/*
 * Writes a batch of dispatch_logs rows, with an account update or none
 * (update_text: its text), durably in one transaction (see
 * dispatch_log_writer.h).
 */
static void
write_durably(int n, const char *const *log_jsons, int64 *row_ids, VsAccountUpdate update,
			  const char *account_id, const char *update_text)
{
	Size		texts_len = 0;
	Size		update_len = update != VS_ACCOUNT_NO_UPDATE ? strlen(update_text) + 1 : 0;
	dsm_segment *seg;
	DispatchLogBatch *batch;
	char	   *text;

	if (n <= 0 && update == VS_ACCOUNT_NO_UPDATE)
		return;
	vs_refuse_on_standby();		/* a standby writes nothing (and sends nothing to TikTok) */
	for (int i = 0; i < n; i++)
		texts_len += strlen(log_jsons[i]) + 1;
	seg = dsm_create(offsetof(DispatchLogBatch, row_ids) + n * sizeof(int64) + texts_len + update_len, 0);
	batch = (DispatchLogBatch *) dsm_segment_address(seg);
	batch->database_id = MyDatabaseId;
	batch->caller_pid = MyProcPid;
	batch->nrows = n;
	batch->account_update = update;
	strlcpy(batch->account_id, account_id ? account_id : "", sizeof(batch->account_id));
	batch->done = 0;
	batch->error[0] = '\0';
	text = batch_texts(batch);
	for (int i = 0; i < n; i++)
	{
		Size		len = strlen(log_jsons[i]) + 1;

		batch->row_ids[i] = row_ids[i];
		memcpy(text, log_jsons[i], len);
		text += len;
	}
	if (update_len > 0)
		memcpy(text, update_text, update_len);

	/* The permanent writer first; a worker of our own when its queue cannot take the batch. */
	switch (vs_log_writer_write(seg, batch->error, sizeof(batch->error)))
	{
		case VS_LOG_WRITER_COMMITTED:
			batch->done = 1;
			break;
		case VS_LOG_WRITER_FAILED:
			batch->done = 0;
			break;
		case VS_LOG_WRITER_NOT_QUEUED:
			batch->done = run_writer_worker(seg, batch);
			break;
	}
	/* The sealed tokens leave no copy behind in the segment. */
	if (update_len > 0)
		memset(text, 0, update_len);
	if (!batch->done)
	{
		char		why[sizeof(batch->error)];
		bool		outcomes = false;	/* rows replacing "in flight" ones: calls already sent */

		strlcpy(why, batch->error[0] ? batch->error : "it did not start", sizeof(why));
		for (int i = 0; i < n; i++)
			outcomes = outcomes || row_ids[i] > 0;
		dsm_detach(seg);

		/*
		 * Never fall back to the caller's transaction: a row written there is
		 * lost when it rolls back, and with it the record that stops an init
		 * from being sent twice, or a call from counting against the rate
		 * limit. The callers write a call's row before sending it, so a call
		 * whose row failed is not sent; transient: the dispatcher retries
		 * later. A call already sent keeps its "in flight" row, outcome
		 * unknown: an init is then never sent again without settle_post.
		 */
		if (outcomes)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("vibescaling: could not record the outcome of %d call(s) to TikTok durably: %s", n, why),
					 errdetail("The calls were sent. Their dispatch log rows stay \"in flight\": outcome unknown."),
					 errhint("Check the TikTok account; for a post whose init's outcome is unknown, "
							 "call vibescaling.settle_post(post_id, on_tiktok, publish_id).")));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("vibescaling: could not write %d dispatch log row(s) durably: %s", n, why),
				 errdetail("A call to TikTok is sent only after its dispatch log row is committed; "
						   "this one was not sent."),
				 errhint("The failure is transient; try again later.")));
	}
	memcpy(row_ids, batch->row_ids, n * sizeof(int64));
	dsm_detach(seg);
}

/* Writes a batch of dispatch_logs rows durably (see dispatch_log_writer.h). */
void
vs_write_dispatch_logs(int n, const char *const *log_jsons, int64 *row_ids)
{
	write_durably(n, log_jsons, row_ids, VS_ACCOUNT_NO_UPDATE, NULL, NULL);
}

/* Replaces a row and updates an account in one durable transaction (see dispatch_log_writer.h). */
void
vs_write_account_update(int64 row_id, const char *log_json, VsAccountUpdate update, const char *account_id,
						const char *update_text)
{
	write_durably(log_json != NULL ? 1 : 0, &log_json, &row_id, update, account_id, update_text);
}

/* Writes one dispatch_logs row durably (see dispatch_log_writer.h). */
int64
vs_write_dispatch_log(const char *log_json)
{
	int64		row_id = 0;

	vs_write_dispatch_logs(1, &log_json, &row_id);
	return row_id;
}

/* Replaces a row written by vs_write_dispatch_log, durably (see dispatch_log_writer.h). */
void
vs_update_dispatch_log(int64 row_id, const char *log_json)
{
	vs_write_dispatch_logs(1, &log_json, &row_id);
}

extern "C" {
PGDLLEXPORT void vs_dispatch_log_writer_main(Datum main_arg);

/* Background worker: writes the batch's rows in one transaction of its own and commits. */
void
vs_dispatch_log_writer_main(Datum main_arg)
{
	dsm_segment *seg;
	DispatchLogBatch *batch;

	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(1);			/* the caller is gone: nobody waits for these rows */
	batch = (DispatchLogBatch *) dsm_segment_address(seg);

	/* Written as the bootstrap superuser: the worker runs fixed INSERT/UPDATE statements. */
	BackgroundWorkerInitializeConnectionByOid(batch->database_id, BOOTSTRAP_SUPERUSERID, 0);
	pgstat_report_activity(STATE_RUNNING, "vibescaling: writing dispatch log rows");

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* Never wait forever: the caller is waiting for us. */
		SetConfigOption("lock_timeout", "5s", PGC_SUSET, PGC_S_SESSION);
		SetConfigOption("statement_timeout", "30s", PGC_SUSET, PGC_S_SESSION);
		/* A superuser session: never resolve a name through public. */
		SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
		PushActiveSnapshot(GetTransactionSnapshot());
		vs_store_log_batch(batch);
		PopActiveSnapshot();
		CommitTransactionCommand();
		batch->done = 1;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		strlcpy(batch->error, edata->message ? edata->message : "unknown error", sizeof(batch->error));
		PG_RE_THROW();
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}
}

/* vs_write_dispatch_log with publish_id and uploaded_bytes added (see the header). */
void
vs_write_dispatch_log_with(const char *log_json, const char *publish_id, long long uploaded_bytes)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		args[3] = {CStringGetTextDatum(log_json), CStringGetTextDatum(publish_id),
						   Int64GetDatum(uploaded_bytes)};
	char	   *value;
	char	   *merged;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT ($1::pg_catalog.jsonb OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('publish_id', $2)"
							  " OPERATOR(pg_catalog.||) CASE WHEN $3 OPERATOR(pg_catalog.>=) 0"
							  " THEN pg_catalog.jsonb_build_object('uploaded_bytes', $3) ELSE '{}' END)::text",
							  3, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not extend the dispatch log row");
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	merged = (char *) SPI_palloc(strlen(value) + 1);
	strcpy(merged, value);
	SPI_finish();
	vs_write_dispatch_log(merged);
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_durable_log);

/*
 * vibescaling._durable_log(row jsonb) RETURNS void: writes one dispatch_logs
 * row (keys as the table's columns: post_id, tiktok_account_id, trigger,
 * endpoint, http_status, outcome, error_code, error_message, log_id,
 * publish_id, duration_ms, outcome_unknown) committed on its own, so that
 * it survives the caller's rollback (see vs_write_dispatch_log). For SQL
 * callers that record a refusal before raising (webhooks). STRICT.
 */
Datum
vs_durable_log(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	char	   *log_json;

	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a dispatch log row must be a JSON object")));
	log_json = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	vs_write_dispatch_log(log_json);
	PG_RETURN_VOID();
}
}
