/*
 * token_seal.cpp: encrypting tokens at rest without SQL.
 *
 * Tokens are sealed with pgcrypto's PGP symmetric encryption (AES-256,
 * s2k-mode=1: the key is a long random secret, not a password, so it is not
 * stretched) under the superuser-only setting vibescaling.token_encryption_key.
 * pgcrypto's C functions are called directly, not through SQL: a token or
 * the key never becomes a constant or a parameter of a planned statement,
 * where auto_explain (log_nested_statements, log_verbose) would print it,
 * and no function name is resolved through a search_path. The sealed
 * format is pgcrypto's own, so pgp_sym_decrypt() reads it too.
 */
#include "pg_headers.h"
#include "gucs.h"
#include "token_seal.h"

#include <string.h>

/* The options of every seal. */
static const char *const seal_options = "cipher-algo=aes256, s2k-mode=1";

/* A pgcrypto C function, looked up once per backend. */
static PGFunction
pgcrypto_function(const char *name, PGFunction *cache)
{
	if (*cache == NULL)
		*cache = (PGFunction) load_external_function("$libdir/pgcrypto", name, true, NULL);
	return *cache;
}

/* Calls a pgcrypto function with a fresh FmgrInfo (pgcrypto may use flinfo). */
static Datum
call_pgcrypto(PGFunction fn, int nargs, Datum a0, Datum a1, Datum a2)
{
	FmgrInfo	flinfo;

	memset(&flinfo, 0, sizeof(flinfo));
	flinfo.fn_addr = fn;
	flinfo.fn_oid = InvalidOid;
	flinfo.fn_nargs = nargs;
	flinfo.fn_strict = true;
	flinfo.fn_mcxt = CurrentMemoryContext;
	if (nargs == 2)
		return FunctionCall2Coll(&flinfo, InvalidOid, a0, a1);
	return FunctionCall3Coll(&flinfo, InvalidOid, a0, a1, a2);
}

/* The encryption key as text; 55000 when it is not set. */
static text *
token_key(void)
{
	if (vs_guc_token_encryption_key == NULL || *vs_guc_token_encryption_key == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("vibescaling.token_encryption_key is not set: tokens are stored encrypted"),
				 errhint("Set a long random key in postgresql.conf (a superuser-only setting) and reload.")));
	return cstring_to_text(vs_guc_token_encryption_key);
}

/* Overwrites and frees a text that held a secret. */
static void
wipe_text(text *t)
{
	memset(VARDATA_ANY(t), 0, VARSIZE_ANY_EXHDR(t));
	pfree(t);
}

/* Seals a token (see token_seal.h). */
bytea *
vs_seal_token(const char *token)
{
	static PGFunction encrypt = NULL;
	text	   *key = token_key();
	text	   *plain = cstring_to_text(token);
	Datum		sealed;

	sealed = call_pgcrypto(pgcrypto_function("pgp_sym_encrypt_text", &encrypt), 3,
						   PointerGetDatum(plain), PointerGetDatum(key),
						   PointerGetDatum(cstring_to_text(seal_options)));
	wipe_text(plain);
	wipe_text(key);
	return DatumGetByteaPP(sealed);
}

/* Unseals a token (see token_seal.h). */
char *
vs_unseal_token(bytea *sealed)
{
	static PGFunction decrypt = NULL;
	text	   *key = token_key();
	text	   *plain;
	char	   *token;

	plain = DatumGetTextPP(call_pgcrypto(pgcrypto_function("pgp_sym_decrypt_text", &decrypt), 2,
										 PointerGetDatum(sealed), PointerGetDatum(key), (Datum) 0));
	wipe_text(key);
	token = text_to_cstring(plain);
	wipe_text(plain);
	return token;
}

/* Calls a jsonb field accessor (jsonb_object_field or _text); NULL when the field is absent or null. */
static Datum
jsonb_field_or_null(PGFunction accessor, Datum object, const char *name, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		value;

	InitFunctionCallInfoData(*fcinfo, NULL, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = object;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = CStringGetTextDatum(name);
	fcinfo->args[1].isnull = false;
	value = accessor(fcinfo);
	*isnull = fcinfo->isnull;
	return value;
}

/*
 * The JSON object data (jsonb) with each string field named in fields
 * replaced by "<field>_sealed": the hex text of its sealed value.
 */
static Datum
seal_fields(Datum data, const char *const *fields, int nfields)
{
	for (int i = 0; i < nfields; i++)
	{
		Datum		name = CStringGetTextDatum(fields[i]);
		Datum		value;
		bool		isnull;
		text	   *plain;
		char	   *token;
		bytea	   *sealed;
		char	   *hex;
		StringInfoData patch;

		value = jsonb_field_or_null(jsonb_object_field_text, data, fields[i], &isnull);
		if (isnull)
			continue;
		plain = DatumGetTextPP(value);
		token = text_to_cstring(plain);
		wipe_text(plain);
		data = DirectFunctionCall2(jsonb_delete, data, name);
		sealed = vs_seal_token(token);
		memset(token, 0, strlen(token));
		pfree(token);
		hex = DatumGetCString(DirectFunctionCall1(byteaout, PointerGetDatum(sealed)));
		initStringInfo(&patch);
		appendStringInfo(&patch, "{\"%s_sealed\": ", fields[i]);
		/* byteaout gives "\x..."; the hex digits alone are stored. */
		escape_json(&patch, hex + 2);
		appendStringInfoChar(&patch, '}');
		data = DirectFunctionCall2(jsonb_concat, data, DirectFunctionCall1(jsonb_in, CStringGetDatum(patch.data)));
	}
	return data;
}

/* A token reply's data with its tokens sealed (see token_seal.h). */
Datum
vs_seal_token_reply_data(Datum data)
{
	static const char *const fields[] = {"access_token", "refresh_token"};

	return seal_fields(data, fields, 2);
}

/* The call result (jsonb) of an OAuth token call with data's tokens sealed (see token_seal.h). */
Datum
vs_seal_token_call_result(Datum result)
{
	Datum		data;
	bool		isnull;
	Datum		path;
	Datum		elems[1] = {CStringGetTextDatum("data")};

	/* Only an object "data" carries tokens (a failure has none). */
	data = jsonb_field_or_null(jsonb_object_field, result, "data", &isnull);
	if (isnull || !JB_ROOT_IS_OBJECT(DatumGetJsonbP(data)))
		return result;
	path = PointerGetDatum(construct_array(elems, 1, TEXTOID, -1, false, TYPALIGN_INT));
	return DirectFunctionCall4(jsonb_set, result, path, vs_seal_token_reply_data(data), BoolGetDatum(false));
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_seal);
PG_FUNCTION_INFO_V1(vs_unseal);

/* vibescaling._seal(token text) RETURNS bytea, STRICT: the sealed token. */
Datum
vs_seal(PG_FUNCTION_ARGS)
{
	char	   *token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *sealed = vs_seal_token(token);

	memset(token, 0, strlen(token));
	PG_RETURN_BYTEA_P(sealed);
}

/* vibescaling._unseal(sealed bytea) RETURNS text, STRICT: the token. */
Datum
vs_unseal(PG_FUNCTION_ARGS)
{
	char	   *token = vs_unseal_token(PG_GETARG_BYTEA_PP(0));
	text	   *result = cstring_to_text(token);

	memset(token, 0, strlen(token));
	PG_RETURN_TEXT_P(result);
}
}
