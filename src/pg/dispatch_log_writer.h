/*
 * dispatch_log_writer.h: durable dispatch_logs rows.
 *
 * PostgreSQL has no autonomous transactions, yet a dispatch log row must
 * survive the caller's rollback (a failed publish raises an error). So the
 * rows are handed, through a dynamic shared memory segment, to the
 * database's permanent log writer (log_writer.h), or, when its queue cannot
 * take them, to a short-lived background worker of their own; either
 * inserts them in a transaction of its own and commits before the caller
 * goes on.
 */
#ifndef VS_DISPATCH_LOG_WRITER_H
#define VS_DISPATCH_LOG_WRITER_H

#include "pg_headers.h"

/* What a durable write does to an account besides its log rows. */
typedef enum VsAccountUpdate
{
	VS_ACCOUNT_NO_UPDATE = 0,
	VS_ACCOUNT_STORE_TOKENS,	/* text: a token reply, sealed (vs_seal_token_reply_data): _store_tokens */
	VS_ACCOUNT_NEEDS_REAUTH		/* text: the reason; the account needs a new consent */
} VsAccountUpdate;

/*
 * Writes one dispatch_logs row, given as the JSON object the core builds
 * (vs_dispatch_log_json), committed independently of the current
 * transaction; returns the row's id. Waits for the commit, holding off query cancel for that
 * short wait. When the row cannot be committed (the writer failed, and no
 * free background worker slot for a worker of its own) it raises 53000
 * with the transient hint: it never writes in the current transaction,
 * where a rollback would lose it.
 */
int64		vs_write_dispatch_log(const char *log_json);

/*
 * Writes n dispatch_logs rows in one transaction of their own (the log
 * writer's), committed independently of the current transaction: row_ids[i] = 0
 * inserts log_jsons[i], row_ids[i] > 0 replaces that row (an init's "in
 * flight" row becoming its outcome); on return row_ids[i] holds each row's
 * id. How a batch of concurrent calls is logged in one commit.
 */
void		vs_write_dispatch_logs(int n, const char *const *log_jsons, int64 *row_ids);

/*
 * Replaces, durably, the row vs_write_dispatch_log returned: how a call's
 * "in flight" row becomes its outcome (see call_batch.cpp).
 */
void		vs_update_dispatch_log(int64 row_id, const char *log_json);

/*
 * vs_write_dispatch_log, with the publish_id and (when >= 0) the bytes
 * TikTok holds after an upload chunk added to the row.
 */
void		vs_write_dispatch_log_with(const char *log_json, const char *publish_id,
									   long long uploaded_bytes);

/*
 * Replaces row_id by log_json (a token refresh's outcome; NULL: no row) and
 * applies the account update, durably, in one transaction: the tokens
 * TikTok has just rotated are stored whatever becomes of the caller's
 * transaction, or not at all and then with an error.
 */
void		vs_write_account_update(int64 row_id, const char *log_json, VsAccountUpdate update,
									const char *account_id, const char *update_text);

/*
 * Inserts one dispatch_logs row in the current transaction (SPI), for
 * callers that already run in a transaction of their own (the workers).
 */
void		vs_insert_dispatch_log(const char *log_json, int caller_pid);

/*
 * Stores the rows of a batch (the address of a DSM segment that
 * vs_write_dispatch_logs filled) with SPI in the current transaction,
 * setting their ids in it: what a writer does with a batch.
 */
void		vs_store_log_batch(void *batch);

#endif
