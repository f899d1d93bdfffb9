/*
 * webhook_hmac.cpp: HMAC-SHA256 for webhook signatures, with PostgreSQL's
 * own implementation (src/common/hmac.c): no SQL, so no function name is
 * resolved through a search_path, and the app's secret (the key) is never
 * a constant of a planned statement.
 */
#include "pg_headers.h"

extern "C" {
#include "common/hmac.h"
#include "common/sha2.h"
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_hmac_sha256);

/* vibescaling._webhook_hmac(message bytea, key bytea) RETURNS bytea, STRICT: HMAC-SHA256. */
Datum
vs_hmac_sha256(PG_FUNCTION_ARGS)
{
	bytea	   *message = PG_GETARG_BYTEA_PP(0);
	bytea	   *key = PG_GETARG_BYTEA_PP(1);
	bytea	   *result = (bytea *) palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	bool		ok;

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("vibescaling: could not create an HMAC context")));
	ok = pg_hmac_init(ctx, (const uint8 *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)) == 0 &&
		pg_hmac_update(ctx, (const uint8 *) VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message)) == 0 &&
		pg_hmac_final(ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) == 0;
	pg_hmac_free(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("vibescaling: HMAC-SHA256 failed")));
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	PG_RETURN_BYTEA_P(result);
}
}
