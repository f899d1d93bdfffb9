/* session_worker.cpp: registering this library's background workers. */
#include "pg_headers.h"
#include "session_worker.h"

extern "C" {
#include "access/xlog.h"
}

#include <string.h>

/* Raises 25006 on a standby (see session_worker.h). */
void
vs_refuse_on_standby(void)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("vibescaling runs on the primary: this server is a standby"),
				 errhint("Call it on the primary; a standby sends nothing to TikTok.")));
}

/* Registers a database-connected worker of this library (see session_worker.h). */
bool
vs_register_worker(const char *function_name, const char *type, const char *name,
				   Datum main_arg, pid_t notify_pid, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "vibescaling");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function_name);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", type);
	worker.bgw_main_arg = main_arg;
	worker.bgw_notify_pid = notify_pid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/* Registers a worker that serves this backend (see session_worker.h). */
bool
vs_start_session_worker(const char *function_name, const char *type,
						dsm_segment *seg, BackgroundWorkerHandle **handle)
{
	char		name[BGW_MAXLEN];

	/*
	 * A standby starts these workers only after its promotion: waiting for
	 * one there would hang the caller. Nothing is called from a standby.
	 */
	vs_refuse_on_standby();
	snprintf(name, sizeof(name), "%s for PID %d", type, MyProcPid);
	return vs_register_worker(function_name, type, name, UInt32GetDatum(dsm_segment_handle(seg)),
							  MyProcPid, handle);
}
