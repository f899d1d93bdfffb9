/* session_worker.cpp: starting a short-lived background worker for this backend. */
#include "pg_headers.h"
#include "session_worker.h"

extern "C" {
#include "access/xlog.h"
}

#include <string.h>

/* Registers a worker that serves this backend (see session_worker.h). */
bool
vs_start_session_worker(const char *function_name, const char *type,
						dsm_segment *seg, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	/*
	 * A standby starts these workers only after its promotion: waiting for
	 * one there would hang the caller. Nothing is called from a standby.
	 */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("vibescaling runs on the primary: this server is a standby"),
				 errhint("Call it on the primary; a standby sends nothing to TikTok.")));

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "vibescaling");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function_name);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s for PID %d", type, MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", type);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}
