/*
 * module.cpp: the extension's entry points for PostgreSQL (module magic
 * and _PG_init). Everything else lives in files of its own; every file of
 * src/pg, one line each:
 *   account_tokens.cpp      reading an account's status and access token (SPI, as the table's owner)
 *   account_tokens.h        its interface
 *   call_batch.cpp          the one path of every call with an account's token: tokens, refresh, rate limits, durable rows, libcurl
 *   call_batch.h            its interface, and the rules every call follows
 *   call_support.cpp        shared by all calls (OAuth too): HTTP options, interrupt check, "in flight" rows
 *   call_support.h          its interface
 *   dispatch_helpers.cpp    the background sessions that share a dispatch_due_posts run's rounds
 *   dispatch_log_writer.cpp durable dispatch_logs rows and token updates (the permanent writer, else a worker per batch); _durable_log()
 *   dispatch_log_writer.h   its interface, and why rows are written that way
 *   gucs.cpp                the vibescaling.* settings
 *   gucs.h                  their C variables
 *   kept_plans.cpp          fixed SPI statements of the call path, prepared once per backend
 *   kept_plans.h            its interface
 *   log_writer.cpp          the permanent dispatch log writer: a queue in shared memory, one writer per database
 *   log_writer.h            its interface
 *   media_check.cpp         _media_facts(), _media_verdict(): a video's or photo's facts (FFmpeg) and TikTok's limits on them
 *   module.cpp              this file: module magic and _PG_init
 *   pg_headers.h            the PostgreSQL headers with C linkage (no C++ resource owners in src/pg)
 *   pool_stats.cpp          vibescaling.http_pool_stats(), this backend's connection pool counters
 *   post_write_trigger.cpp  the posts BEFORE INSERT OR UPDATE trigger (C) and _role_can_read_source()
 *   session_worker.cpp      registering the background workers; the short-lived ones that serve this backend
 *   session_worker.h        its interface
 *   tiktok_call.cpp         vibescaling._tiktok_call(), one call to TikTok: a batch of one, or an OAuth call
 *   tiktok_call_many.cpp    vibescaling._tiktok_call_many(), many calls at once (dispatcher, status poller)
 *   token_refresher.cpp     refreshing tokens durably and once (the log writer stores them); _refresh_token()
 *   token_refresher.h       its interface, and why refreshes run that way
 *   token_seal.cpp          sealing tokens at rest with pgcrypto's C functions; _seal(), _unseal()
 *   token_seal.h            its interface
 *   video_source.cpp        reading a video (or photo) chunk by chunk from a large object, vibescaling.media or a URL
 *   video_source.h          its interface
 *   video_upload.cpp        FILE_UPLOAD: _describe_video(), _plan_chunks(), _upload_chunks()
 *   webhook_hmac.cpp        _webhook_hmac(), HMAC-SHA256 with PostgreSQL's own implementation
 */
#include "pg_headers.h"
#include "gucs.h"
#include "log_writer.h"

extern "C" {
PG_MODULE_MAGIC;

void		_PG_init(void);

/* Runs when the library is loaded: defines the GUCs and, when preloaded, asks for the log writer's queue. */
void
_PG_init(void)
{
	vs_define_gucs();
	vs_log_writer_init();
}
}
