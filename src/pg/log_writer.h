/*
 * log_writer.h: the permanent dispatch log writer.
 *
 * One background worker per database (started on first use, leaving after
 * a minute without work) commits the dispatch_logs rows that backends hand
 * it, in transactions of its own: what the backends of a moment hand it
 * shares one commit. A backend queues its batch (a DSM segment) in a slot
 * of the extension's shared memory, wakes the writer and waits for the
 * commit; when every slot is taken, it waits for one. The short-lived
 * worker per batch (dispatch_log_writer.cpp) is what a backend falls back
 * to when the writer cannot start: never the caller's own transaction.
 */
#ifndef VS_LOG_WRITER_H
#define VS_LOG_WRITER_H

#include "pg_headers.h"

/* Asks for the queue's shared memory; called from _PG_init (the library is preloaded). */
void		vs_log_writer_init(void);

/* What became of a batch handed to the writer. */
typedef enum VsLogWriterResult
{
	VS_LOG_WRITER_COMMITTED,	/* the rows are committed, their ids in the batch */
	VS_LOG_WRITER_NOT_QUEUED,	/* the queue could not take it: nothing was written */
	VS_LOG_WRITER_FAILED		/* the writer took it and failed or vanished: why says */
} VsLogWriterResult;

/*
 * Hands the batch in seg (whose rows vs_store_log_batch stores) to this
 * database's writer and waits for its commit, holding off query cancel
 * (the rows must not be lost half way), at most 60 s.
 */
VsLogWriterResult vs_log_writer_write(dsm_segment *seg, char *why, Size why_len);

#endif
