/*
 * dispatch_helpers.cpp: the background workers that share a dispatcher
 * run's rounds, or its uploads (vibescaling.dispatch_sessions).
 *
 * A round is a barrier: its creator_info calls all come back before its
 * inits leave, and its inits all come back before it commits. While one
 * session works through a round's checks and records, nothing of its own
 * is in flight. Several sessions, each with a share of
 * max_concurrent_requests, keep calls in flight while the others work:
 * each helper runs the same rounds (_dispatch_next_round, FOR UPDATE SKIP
 * LOCKED) and then the same one-by-one pass (_dispatch_next_single) as
 * dispatch_due_posts, in transactions of its own, as the calling role with
 * the caller's vibescaling.* settings. A run of dispatch_due_uploads
 * shares its videos the same way, in upload rounds (each session streams
 * one video at a time), so up to dispatch_sessions uploads run at once.
 * Every exactly-once rule is the rounds' own (row locks, the per-account
 * advisory lock, the durable log); a helper adds no shortcut around them.
 *
 * The caller waits for its helpers before its procedure returns; its error
 * or cancel terminates them (their rounds roll back as a cancelled
 * dispatcher's do).
 */
#include "pg_headers.h"
#include "gucs.h"
#include "session_worker.h"

extern "C" {
#include "access/xlog.h"
#include "utils/datum.h"
}

#include <string.h>

/* What a helper needs from the run that started it; in a DSM segment. */
typedef struct DispatchHelperJob
{
	TimestampTz as_of;
	int32		round_size;
	bool		uploads;		/* the videos the extension uploads only (dispatch_due_uploads) */
	Oid			database_id;
	Oid			session_user_id;	/* the caller's login role: a worker connects as it */
	Oid			current_user_id;	/* the role the caller runs as (SET ROLE) */
	Size		settings_len;	/* "name\0value\0" pairs that follow */
	char		settings[FLEXIBLE_ARRAY_MEMBER];
} DispatchHelperJob;

#define MAX_HELPERS 16

/* The running dispatcher's helpers (this session's), kept across its COMMITs. */
static dsm_segment *run_segment = NULL;
static BackgroundWorkerHandle *run_helpers[MAX_HELPERS];
static int	run_helper_count = 0;
static bool xact_callback_registered = false;

/* Frees this session's helper handles and the run's segment: the run is over. */
static void
forget_helpers(void)
{
	for (int i = 0; i < run_helper_count; i++)
		pfree(run_helpers[i]);
	run_helper_count = 0;
	if (run_segment != NULL)
	{
		dsm_detach(run_segment);
		run_segment = NULL;
	}
}

/* Terminates this session's helpers and forgets them (an aborted run). */
static void
terminate_helpers(void)
{
	for (int i = 0; i < run_helper_count; i++)
		TerminateBackgroundWorker(run_helpers[i]);
	forget_helpers();
}

/* A run that fails or is cancelled takes its helpers down with it. */
static void
dispatch_helpers_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT && (run_helper_count > 0 || run_segment != NULL))
		terminate_helpers();
}

/*
 * Appends the caller's vibescaling.* settings a helper would not have by
 * itself to buf as "name\0value\0" pairs: those a session can set, set
 * other than in the server's configuration or the database's defaults
 * (which the helper reads as the caller did). Secret settings are never
 * copied: they are set in the server's configuration only.
 */
static void
collect_settings(StringInfo buf)
{
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		/* GetConfigOptionByNum fills one string per pg_settings column (17 in 15). */
		const char *values[32];
		bool		noshow;

		memset(values, 0, sizeof(values));
		GetConfigOptionByNum(i, values, &noshow);
		if (noshow || values[0] == NULL || values[1] == NULL ||
			strncmp(values[0], "vibescaling.", strlen("vibescaling.")) != 0)
			continue;
		/* values[6]: context; values[8]: source. */
		if (values[6] == NULL || (strcmp(values[6], "user") != 0 && strcmp(values[6], "superuser") != 0))
			continue;
		if (values[8] != NULL &&
			(strcmp(values[8], "default") == 0 || strcmp(values[8], "configuration file") == 0 ||
			 strcmp(values[8], "command line") == 0 || strcmp(values[8], "database") == 0))
			continue;
		if (GetConfigOptionFlags(values[0], true) & GUC_SUPERUSER_ONLY)
			continue;
		appendBinaryStringInfo(buf, values[0], strlen(values[0]) + 1);
		appendBinaryStringInfo(buf, values[1], strlen(values[1]) + 1);
	}
}

/* Waits until every helper of this session has stopped; true if there were any. */
static bool
wait_for_helpers(void)
{
	bool		had = run_helper_count > 0;

	for (int i = 0; i < run_helper_count; i++)
	{
		for (;;)
		{
			pid_t		pid;
			BgwHandleStatus status = GetBackgroundWorkerPid(run_helpers[i], &pid);

			if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED)
				break;
			/* notify_pid is ours: the postmaster sets our latch when it stops. */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	forget_helpers();
	return had;
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_start_dispatch_helpers);
PG_FUNCTION_INFO_V1(vs_wait_dispatch_helpers);
PGDLLEXPORT void vs_dispatch_helper_main(Datum main_arg);

/*
 * vibescaling._start_dispatch_helpers(as_of, helpers, round_size, uploads):
 * starts up to helpers background workers that dispatch the posts due at
 * as_of in rounds of round_size posts (with uploads: of the videos the
 * extension uploads, streamed one at a time); returns how many it started (fewer
 * when worker slots are short, none on a standby).
 */
Datum
vs_start_dispatch_helpers(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_GETARG_TIMESTAMPTZ(0);
	int32		wanted = PG_GETARG_INT32(1);
	int32		round_size = PG_GETARG_INT32(2);
	bool		uploads = PG_GETARG_BOOL(3);
	StringInfoData settings;
	DispatchHelperJob *job;
	MemoryContext old;
	char		name[BGW_MAXLEN];

	if (round_size < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("round_size must be at least 1")));
	if (RecoveryInProgress())
		PG_RETURN_INT32(0);
	/* A run that ended without waiting (it cannot, but be safe) is waited for first. */
	(void) wait_for_helpers();
	wanted = Min(wanted, MAX_HELPERS);
	if (wanted <= 0)
		PG_RETURN_INT32(0);
	if (!xact_callback_registered)
	{
		RegisterXactCallback(dispatch_helpers_xact_callback, NULL);
		xact_callback_registered = true;
	}

	initStringInfo(&settings);
	collect_settings(&settings);
	run_segment = dsm_create(offsetof(DispatchHelperJob, settings) + settings.len, 0);
	/* The run's COMMITs must not unmap it: it lives until the helpers are waited for. */
	dsm_pin_mapping(run_segment);
	job = (DispatchHelperJob *) dsm_segment_address(run_segment);
	job->as_of = as_of;
	job->round_size = round_size;
	job->uploads = uploads;
	job->database_id = MyDatabaseId;
	job->session_user_id = GetSessionUserId();
	job->current_user_id = GetUserId();
	job->settings_len = settings.len;
	memcpy(job->settings, settings.data, settings.len);
	pfree(settings.data);

	snprintf(name, sizeof(name), "vibescaling dispatch helper for PID %d", MyProcPid);
	/* The handles outlive this transaction (the run COMMITs each round). */
	old = MemoryContextSwitchTo(TopMemoryContext);
	while (run_helper_count < wanted &&
		   vs_register_worker("vs_dispatch_helper_main", "vibescaling dispatch helper", name,
							  UInt32GetDatum(dsm_segment_handle(run_segment)), MyProcPid,
							  &run_helpers[run_helper_count]))
		run_helper_count++;
	MemoryContextSwitchTo(old);
	if (run_helper_count == 0)
		forget_helpers();
	PG_RETURN_INT32(run_helper_count);
}

/*
 * vibescaling._wait_dispatch_helpers(): waits until this session's dispatch
 * helpers have stopped; true if there were any.
 */
Datum
vs_wait_dispatch_helpers(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(wait_for_helpers());
}

/* Runs one statement of a helper's loop in a transaction of its own; returns its one value. */
static Datum
run_step(const char *sql, int nargs, Oid *types, Datum *values, bool *isnull, const char *activity)
{
	Datum		result = (Datum) 0;
	bool		null = true;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "vibescaling dispatch helper: \"%s\" returned no row", sql);
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null);
	if (!null)
	{
		/* Outlives the transaction: the caller frees it. */
		Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, 0);
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		result = datumCopy(result, att->attbyval, att->attlen);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	*isnull = null;
	return result;
}

/* Connects as the caller and takes its role and settings. */
static void
become_caller(DispatchHelperJob *job)
{
	const char *p = job->settings;
	const char *end = job->settings + job->settings_len;

	BackgroundWorkerInitializeConnectionByOid(job->database_id, job->session_user_id, 0);
	StartTransactionCommand();
	if (job->current_user_id != job->session_user_id)
		(void) set_config_option("role", GetUserNameFromId(job->current_user_id, false), PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SET, true, ERROR, false);
	/* Code that may run as a superuser resolves no name through public. */
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, ERROR, false);
	while (p < end)
	{
		const char *setting = p;
		const char *value = p + strlen(p) + 1;

		(void) set_config_option(setting, value, superuser() ? PGC_SUSET : PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SET, true, ERROR, false);
		p = value + strlen(value) + 1;
	}
	CommitTransactionCommand();
}

/*
 * True when the catalog has upload rounds (0.1.5's four-argument
 * _dispatch_next_round); an older one, still in place between a package
 * upgrade and ALTER EXTENSION ... UPDATE, has only posts' rounds.
 */
static bool
catalog_has_upload_rounds(void)
{
	bool		isnull;
	Datum		has = run_step("SELECT pg_catalog.to_regprocedure("
							   "'vibescaling._dispatch_next_round(timestamptz, uuid[], integer, boolean)') IS NOT NULL",
							   0, NULL, NULL, &isnull, "vibescaling: dispatch helper start");

	return !isnull && DatumGetBool(has);
}

/*
 * A dispatch helper: the rounds, then the one-by-one pass, of the run that
 * started it (posts, or, for dispatch_due_uploads, the videos the extension
 * uploads), each step a transaction of its own, until nothing is left.
 */
void
vs_dispatch_helper_main(Datum main_arg)
{
	dsm_segment *seg;
	DispatchHelperJob *job;
	Datum		skip;
	Oid			round_types[4] = {TIMESTAMPTZOID, UUIDARRAYOID, INT4OID, BOOLOID};
	bool		rounds;
	Oid			single_types[2] = {TIMESTAMPTZOID, BOOLOID};

	/* Terminated by the caller's cancel: stop at the next interrupt check (curl's included). */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(0);			/* the run is over already */
	{
		DispatchHelperJob *shared_job = (DispatchHelperJob *) dsm_segment_address(seg);
		Size		size = offsetof(DispatchHelperJob, settings) + shared_job->settings_len;

		job = (DispatchHelperJob *) MemoryContextAlloc(TopMemoryContext, size);
		memcpy(job, shared_job, size);
	}
	dsm_detach(seg);
	become_caller(job);

	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		skip = PointerGetDatum(construct_empty_array(UUIDOID));
		MemoryContextSwitchTo(old);
	}
	rounds = !job->uploads || catalog_has_upload_rounds();
	while (rounds)
	{
		Datum		args[4] = {TimestampTzGetDatum(job->as_of), skip, Int32GetDatum(job->round_size),
							   BoolGetDatum(job->uploads)};
		bool		done;
		Datum		next;

		CHECK_FOR_INTERRUPTS();
		/* Three arguments for posts: the call an older catalog answers too. */
		next = run_step(job->uploads ? "SELECT vibescaling._dispatch_next_round($1, $2, $3, $4)"
						: "SELECT vibescaling._dispatch_next_round($1, $2, $3)",
						job->uploads ? 4 : 3, round_types, args, &done,
						job->uploads ? "vibescaling: upload round" : "vibescaling: dispatch round");
		if (done)
			break;
		pfree(DatumGetPointer(skip));
		skip = next;
	}
	for (;;)
	{
		Datum		args[2] = {TimestampTzGetDatum(job->as_of), BoolGetDatum(job->uploads)};
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		if (!DatumGetBool(run_step("SELECT vibescaling._dispatch_next_single($1, $2)", 2, single_types, args,
								   &isnull, "vibescaling: dispatch one post")) || isnull)
			break;
	}
	proc_exit(0);
}
}
