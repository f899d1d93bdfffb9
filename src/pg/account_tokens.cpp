/* account_tokens.cpp: reading a connected account's status and access token (SPI). */
#include "pg_headers.h"
#include "account_tokens.h"

#include <string.h>

/* The role that owns vibescaling.tiktok_accounts (the extension's owner). */
static Oid
token_table_owner(void)
{
	Oid			relid = get_relname_relid("tiktok_accounts", get_namespace_oid("vibescaling", false));
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "vibescaling.tiktok_accounts does not exist");
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* Copies an SPI value (or NULL) into the caller's memory context. */
static char *
spi_value_copy(int column)
{
	char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column);
	char	   *copy;

	if (value == NULL)
		return NULL;
	copy = (char *) SPI_palloc(strlen(value) + 1);
	strcpy(copy, value);
	memset(value, 0, strlen(value));
	return copy;
}

/* Loads an account, decrypting its access token (see account_tokens.h). */
void
vs_load_account(const char *account_id, VsAccount *out)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(account_id)};
	Oid			saved_user;
	int			saved_context;
	char	   *expires;

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(token_table_owner(), saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT a.status, vibescaling._unseal(a.access_token_enc),"
								  " coalesce(extract(epoch FROM a.access_token_expires_at - now()), 1e9),"
								  " a.token_version"
								  " FROM vibescaling.tiktok_accounts a WHERE a.id = $1::uuid",
								  /* read_only = false: a fresh snapshot sees a token the refresher just committed */
								  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read vibescaling.tiktok_accounts");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("TikTok account %s not found", account_id)));
		out->status = spi_value_copy(1);
		out->access_token = spi_value_copy(2);
		expires = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		out->expires_in_s = strtod(expires, NULL);
		out->token_version = strtoll(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4), NULL, 10);
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
}

/* Raises 55000 unless the account is active and has a token. */
void
vs_require_active(const char *account_id, const VsAccount *account)
{
	if (strcmp(account->status, "active") != 0 || account->access_token == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("TikTok account %s is %s, it cannot call TikTok", account_id, account->status),
				 errhint("Reconnect the account with vibescaling.connect_account().")));
}

/* Overwrites and frees the token held in *account. */
void
vs_forget_token(VsAccount *account)
{
	if (account->access_token != NULL)
	{
		memset(account->access_token, 0, strlen(account->access_token));
		pfree(account->access_token);
		account->access_token = NULL;
	}
}
