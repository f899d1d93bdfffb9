/*
 * module.cpp: the extension's entry points for PostgreSQL (module magic
 * and _PG_init). Everything else lives in files of its own:
 *   gucs.cpp               vibescaling.* settings
 *   tiktok_call.cpp        vibescaling._tiktok_call(), the one SQL function that calls TikTok
 *   account_tokens.cpp     reading an account's access token (SPI)
 *   dispatch_log_writer.cpp durable dispatch_logs rows via a background worker
 *   token_refresher.cpp    refreshing tokens durably and once, in a background worker
 *   session_worker.cpp     starting those short-lived workers
 */
#include "pg_headers.h"
#include "gucs.h"

extern "C" {
PG_MODULE_MAGIC;

void		_PG_init(void);

/* Runs when the library is loaded: defines the GUCs. */
void
_PG_init(void)
{
	vs_define_gucs();
}
}
