/*
 * token_seal.h: encrypting tokens at rest in C (pgcrypto's PGP symmetric
 * encryption under vibescaling.token_encryption_key), so that no token or
 * key ever passes through a planned SQL statement (see token_seal.cpp).
 */
#ifndef VS_TOKEN_SEAL_H
#define VS_TOKEN_SEAL_H

/* The sealed form of token (palloc'd); 55000 when no key is set. */
bytea	   *vs_seal_token(const char *token);

/* The token in sealed (palloc'd; the caller wipes it); 55000 when no key is set. */
char	   *vs_unseal_token(bytea *sealed);

/*
 * A TikTok token reply's data object (jsonb) with access_token and
 * refresh_token replaced by access_token_sealed and refresh_token_sealed:
 * the hex text of their sealed values, what _store_tokens stores.
 */
Datum		vs_seal_token_reply_data(Datum data);

/* A _tiktok_call result (jsonb) of the oauth_token endpoint with its data's tokens sealed. */
Datum		vs_seal_token_call_result(Datum result);

#endif
