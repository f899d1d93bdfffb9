/*
 * account_tokens.cpp: reading a connected account's status and access token
 * (SPI), the token decrypted here in C (token_seal.h), once per transaction.
 */
#include "pg_headers.h"
#include "kept_plans.h"
#include "account_tokens.h"
#include "token_seal.h"

extern "C" {
#include "utils/hsearch.h"
}

#include <string.h>

/*
 * The tokens this transaction decrypted, by account and token version: a
 * dispatcher round loads its accounts twice (its creator_info calls, then
 * its inits), and so does a publish, and each token is decrypted once. A
 * refresh bumps the version, so a replaced token is never served. The
 * plaintexts live in TopTransactionContext and are overwritten when the
 * transaction ends; past kMaxCachedTokens a token is not kept.
 */
typedef struct CachedTokenKey
{
	char		account_id[UUID_LEN * 2 + 5];	/* uuid_out's text */
	long long	token_version;
} CachedTokenKey;

typedef struct CachedToken
{
	CachedTokenKey key;
	char	   *token;
} CachedToken;

static const long kMaxCachedTokens = 4096;
static HTAB *cached_tokens = NULL;
static bool cached_tokens_callback = false;

/* Overwrites every cached token; the memory goes with the transaction's. */
static void
forget_cached_tokens(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS seq;
	CachedToken *entry;

	if (cached_tokens == NULL)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	hash_seq_init(&seq, cached_tokens);
	while ((entry = (CachedToken *) hash_seq_search(&seq)) != NULL)
		if (entry->token != NULL)
			memset(entry->token, 0, strlen(entry->token));
	cached_tokens = NULL;
}

/* The key of an account's token at a version. */
static CachedTokenKey
token_key_of(const char *account_id, long long token_version)
{
	CachedTokenKey key;

	memset(&key, 0, sizeof(key));
	strlcpy(key.account_id, account_id, sizeof(key.account_id));
	key.token_version = token_version;
	return key;
}

/*
 * The account's access token (palloc'd in the current context): from the
 * transaction's cache, else decrypted from sealed and kept.
 */
static char *
access_token(const char *account_id, long long token_version, bytea *sealed)
{
	CachedTokenKey key = token_key_of(account_id, token_version);
	CachedToken *entry;
	bool		found;
	char	   *token;

	if (cached_tokens == NULL)
	{
		HASHCTL		ctl;

		if (!cached_tokens_callback)
		{
			RegisterXactCallback(forget_cached_tokens, NULL);
			cached_tokens_callback = true;
		}
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(CachedTokenKey);
		ctl.entrysize = sizeof(CachedToken);
		ctl.hcxt = TopTransactionContext;
		cached_tokens = hash_create("vibescaling tokens", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = (CachedToken *) hash_search(cached_tokens, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return pstrdup(entry->token);
	token = vs_unseal_token(sealed);
	if (hash_get_num_entries(cached_tokens) < kMaxCachedTokens)
	{
		entry = (CachedToken *) hash_search(cached_tokens, &key, HASH_ENTER, &found);
		entry->token = MemoryContextStrdup(TopTransactionContext, token);
	}
	return token;
}

/* The role that owns vibescaling.tiktok_accounts (see account_tokens.h). */
Oid
vs_token_table_owner(void)
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

/* A copy of s in the memory context SPI_connect was called from (survives SPI_finish). */
static char *
spi_copy(const char *s)
{
	char	   *copy = (char *) SPI_palloc(strlen(s) + 1);

	strcpy(copy, s);
	return copy;
}

/* Loads n accounts in one query (see account_tokens.h). */
void
vs_load_accounts(int n, const char *const *account_ids, VsAccount *out)
{
	Datum	   *ids;
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		args[1];
	Oid			saved_user;
	int			saved_context;

	if (n <= 0)
		return;
	ids = (Datum *) palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
		ids[i] = CStringGetTextDatum(account_ids[i]);
	args[0] = PointerGetDatum(construct_array(ids, n, TEXTOID, -1, false, TYPALIGN_INT));

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(vs_token_table_owner(), saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		/*
		 * One row per input, in input order; a missing account has a NULL
		 * status. read_only = false: a fresh snapshot sees a token the
		 * refresher just committed.
		 */
		static SPIPlanPtr kept = NULL;

		if (vs_execute_kept(&kept, "SELECT coalesce(a.status, 'not_found'), a.access_token_enc,"
								  " coalesce(extract(epoch FROM a.access_token_expires_at - now()), 1e9),"
								  " coalesce(a.token_version, 0)"
								  " FROM unnest($1::uuid[]) WITH ORDINALITY u(id, i)"
								  " LEFT JOIN vibescaling.tiktok_accounts a ON a.id = u.id ORDER BY u.i",
							1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) n)
			elog(ERROR, "could not read vibescaling.tiktok_accounts");
		for (int i = 0; i < n; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		no_token;
			Datum		sealed = SPI_getbinval(row, desc, 2, &no_token);

			out[i].status = spi_copy(SPI_getvalue(row, desc, 1));
			out[i].expires_in_s = strtod(SPI_getvalue(row, desc, 3), NULL);
			out[i].token_version = strtoll(SPI_getvalue(row, desc, 4), NULL, 10);
			out[i].access_token = NULL;
			if (!no_token)
			{
				char	   *token = access_token(account_ids[i], out[i].token_version,
												 DatumGetByteaPP(sealed));

				out[i].access_token = spi_copy(token);
				memset(token, 0, strlen(token));
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
}

/* Loads an account, decrypting its access token (see account_tokens.h). */
void
vs_load_account(const char *account_id, VsAccount *out)
{
	vs_load_accounts(1, &account_id, out);
	if (strcmp(out->status, "not_found") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("TikTok account %s not found", account_id)));
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
