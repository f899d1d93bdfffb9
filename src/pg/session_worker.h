/*
 * session_worker.h: registering this library's background workers, and
 * starting a short-lived one that serves the current backend (the
 * dispatch-log writer's fallback, the token refresher): it connects to the
 * same database, reads its job from a DSM segment, and commits a
 * transaction of its own.
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

/*
 * Raises 25006 on a standby: vibescaling writes and sends nothing there
 * (a worker would start only after a promotion).
 */
void		vs_refuse_on_standby(void);

/*
 * Registers a worker running function_name (in this library), connected to
 * a database, never restarted by the postmaster; type names it in
 * pg_stat_activity, name in its process title. notify_pid (0: none) hears
 * of its start and stop. False when no worker slot is free.
 */
bool		vs_register_worker(const char *function_name, const char *type, const char *name,
							   Datum main_arg, pid_t notify_pid, BackgroundWorkerHandle **handle);

#endif
