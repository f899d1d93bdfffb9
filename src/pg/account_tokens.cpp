/* account_tokens.cpp: reading a connected account's access token (SPI). */
#include "pg_headers.h"
#include "account_tokens.h"

#include <string.h>

/* Returns the access token of an active account (see account_tokens.h). */
char *
vs_load_access_token(const char *account_id)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(account_id)};
	char	   *status;
	char	   *token;
	char	   *result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT status, access_token FROM vibescaling.tiktok_accounts WHERE id = $1::uuid",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read vibescaling.tiktok_accounts");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("TikTok account %s not found", account_id)));

	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("TikTok account %s is %s, it cannot call TikTok", account_id, status),
				 errhint("Reconnect the account.")));

	/* Copy out of SPI's memory into the caller's context before SPI_finish. */
	token = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	result = (char *) SPI_palloc(strlen(token) + 1);
	strcpy(result, token);
	memset(token, 0, strlen(token));
	SPI_finish();
	return result;
}
