/* gucs.cpp: vibescaling's configuration parameters. */
#include "pg_headers.h"
#include "gucs.h"

char	   *vs_guc_api_base_url = NULL;
int			vs_guc_connect_timeout_ms = 5000;
int			vs_guc_request_timeout_ms = 30000;

/* Defines the vibescaling.* GUCs; called once from _PG_init. */
void
vs_define_gucs(void)
{
	/*
	 * Superuser-only: whoever sets the base URL receives the accounts'
	 * bearer tokens, so an API role must not be able to point it elsewhere.
	 */
	DefineCustomStringVariable("vibescaling.api_base_url",
							   "Base URL of TikTok's API (point it at the simulator for tests).",
							   NULL,
							   &vs_guc_api_base_url,
							   "https://open.tiktokapis.com",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.connect_timeout_ms",
							"Longest wait for a TCP/TLS connection to TikTok.",
							NULL,
							&vs_guc_connect_timeout_ms,
							5000, 1, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.request_timeout_ms",
							"Longest time one call to TikTok may take, connection included.",
							NULL,
							&vs_guc_request_timeout_ms,
							30000, 1, 3600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("vibescaling");
}
