/*
 * dispatch_log_writer.cpp: durable dispatch_logs rows through a dynamic
 * background worker (see dispatch_log_writer.h for why).
 */
#include "pg_headers.h"
#include "dispatch_log_writer.h"
#include "session_worker.h"

#include <string.h>

/* What the caller and the worker share in the DSM segment. */
typedef struct DispatchLogSlot
{
	Oid			database_id;	/* the caller's database */
	int			caller_pid;		/* recorded as dispatch_logs.backend_pid */
	int64		row_id;			/* in: 0 to insert, else the row to replace; out: the row's id */
	volatile int done;			/* set by the worker after its commit */
	char		error[256];		/* the worker's error, when it failed */
	char		log_json[FLEXIBLE_ARRAY_MEMBER];
} DispatchLogSlot;

/* The row's columns from the log JSON ($1) and the caller's pid ($2). */
#define LOG_COLUMNS \
	"(post_id, tiktok_account_id, trigger, endpoint, http_status, outcome, error_code," \
	" error_message, log_id, publish_id, duration_ms, outcome_unknown, uploaded_bytes, backend_pid)"
#define LOG_VALUES \
	" SELECT r.post_id, r.tiktok_account_id, r.trigger, r.endpoint, nullif(r.http_status, 0), r.outcome," \
	"  r.error_code, nullif(r.error_message, ''), nullif(r.log_id, ''), nullif(r.publish_id, ''), r.duration_ms," \
	"  coalesce(r.outcome_unknown, false), r.uploaded_bytes, $2" \
	" FROM jsonb_populate_record(NULL::vibescaling.dispatch_logs, $1::jsonb) r"

static const char *insert_sql =
	"INSERT INTO vibescaling.dispatch_logs " LOG_COLUMNS LOG_VALUES " RETURNING id";
static const char *replace_sql =
	"UPDATE vibescaling.dispatch_logs SET " LOG_COLUMNS " = (" LOG_VALUES ") WHERE id = $3 RETURNING id";

/* Inserts one row (row_id 0) or replaces row row_id, with SPI in the current transaction; returns its id. */
static int64
store_log_row(const char *log_json, int caller_pid, int64 row_id)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, INT8OID};
	Datum		args[3] = {CStringGetTextDatum(log_json), Int32GetDatum(caller_pid), Int64GetDatum(row_id)};
	bool		isnull;
	int64		id;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(row_id > 0 ? replace_sql : insert_sql, row_id > 0 ? 3 : 2, argtypes, args,
							  NULL, false, 0) < 0 || SPI_processed != 1)
		elog(ERROR, "could not write vibescaling.dispatch_logs");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return id;
}

/* Inserts one row with SPI in the current transaction. */
void
vs_insert_dispatch_log(const char *log_json, int caller_pid)
{
	(void) store_log_row(log_json, caller_pid, 0);
}

/* Starts the writer worker for a filled slot; false when none could start. */
static bool
run_writer_worker(dsm_segment *seg, DispatchLogSlot *slot)
{
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;

	if (!vs_start_session_worker("vs_dispatch_log_writer_main", "vibescaling dispatch log writer", seg, &handle))
	{
		strlcpy(slot->error, "no free background worker slot (max_worker_processes)", sizeof(slot->error));
		return false;
	}

	/*
	 * Hold off cancel while waiting: the worker commits within its own
	 * lock/statement timeouts, and leaving early would lose the row when the
	 * segment goes away before the worker attaches.
	 */
	HOLD_INTERRUPTS();
	status = WaitForBackgroundWorkerShutdown(handle);
	RESUME_INTERRUPTS();

	/* The server is gone: stop here, as every backend does (the log stays as it is). */
	if (status == BGWH_POSTMASTER_DIED)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("vibescaling: the postmaster died while a dispatch log row was being written")));

	return status == BGWH_STOPPED && slot->done;
}

/* Writes (row_id 0) or replaces a dispatch_logs row durably; returns its id. */
static int64
write_durably(const char *log_json, int64 row_id)
{
	Size		len = strlen(log_json);
	dsm_segment *seg = dsm_create(offsetof(DispatchLogSlot, log_json) + len + 1, 0);
	DispatchLogSlot *slot = (DispatchLogSlot *) dsm_segment_address(seg);

	slot->database_id = MyDatabaseId;
	slot->caller_pid = MyProcPid;
	slot->row_id = row_id;
	slot->done = 0;
	slot->error[0] = '\0';
	memcpy(slot->log_json, log_json, len + 1);

	if (run_writer_worker(seg, slot))
		row_id = slot->row_id;
	else
	{
		ereport(WARNING,
				(errmsg("vibescaling: dispatch log row written in the caller's transaction; it is lost if that transaction rolls back"),
				 errdetail("The background writer failed: %s",
						   slot->error[0] ? slot->error : "it did not start")));
		row_id = store_log_row(log_json, MyProcPid, row_id);
	}
	dsm_detach(seg);
	return row_id;
}

/* Writes one dispatch_logs row durably (see dispatch_log_writer.h). */
int64
vs_write_dispatch_log(const char *log_json)
{
	return write_durably(log_json, 0);
}

/* Replaces a row written by vs_write_dispatch_log, durably (see dispatch_log_writer.h). */
void
vs_update_dispatch_log(int64 row_id, const char *log_json)
{
	(void) write_durably(log_json, row_id);
}

extern "C" {
PGDLLEXPORT void vs_dispatch_log_writer_main(Datum main_arg);

/* Background worker: inserts the slot's row in its own transaction and commits. */
void
vs_dispatch_log_writer_main(Datum main_arg)
{
	dsm_segment *seg;
	DispatchLogSlot *slot;

	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(1);			/* the caller is gone; it falls back to its own insert */
	slot = (DispatchLogSlot *) dsm_segment_address(seg);

	/* Written as the bootstrap superuser: the worker runs one fixed INSERT. */
	BackgroundWorkerInitializeConnectionByOid(slot->database_id, BOOTSTRAP_SUPERUSERID, 0);
	pgstat_report_activity(STATE_RUNNING, "vibescaling: writing a dispatch log row");

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* Never wait forever: the caller is waiting for us. */
		SetConfigOption("lock_timeout", "5s", PGC_SUSET, PGC_S_SESSION);
		SetConfigOption("statement_timeout", "10s", PGC_SUSET, PGC_S_SESSION);
		PushActiveSnapshot(GetTransactionSnapshot());
		slot->row_id = store_log_row(slot->log_json, slot->caller_pid, slot->row_id);
		PopActiveSnapshot();
		CommitTransactionCommand();
		slot->done = 1;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		strlcpy(slot->error, edata->message ? edata->message : "unknown error", sizeof(slot->error));
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
	if (SPI_execute_with_args("SELECT ($1::jsonb || jsonb_build_object('publish_id', $2)"
							  " || CASE WHEN $3 >= 0 THEN jsonb_build_object('uploaded_bytes', $3) ELSE '{}' END)::text",
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
