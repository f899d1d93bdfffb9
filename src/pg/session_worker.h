/*
 * session_worker.h: starting a short-lived background worker that serves
 * the current backend (the dispatch-log writer, the token refresher): it
 * connects to the same database, reads its job from a DSM segment, and
 * commits a transaction of its own.
 */
#ifndef VS_SESSION_WORKER_H
#define VS_SESSION_WORKER_H

/*
 * Registers a worker running function_name (in this library) with the DSM
 * segment's handle as its argument; the current backend is notified of its
 * start and stop. type names it in pg_stat_activity. False when no worker
 * slot is free (max_worker_processes); raises 25006 on a standby, which
 * would start the worker only after a promotion.
 */
bool		vs_start_session_worker(const char *function_name, const char *type,
									dsm_segment *seg, BackgroundWorkerHandle **handle);

#endif
