/* account_tokens.h: reading a connected account's access token. */
#ifndef VS_ACCOUNT_TOKENS_H
#define VS_ACCOUNT_TOKENS_H

/*
 * Returns the access token of an active account, palloc'd in the caller's
 * memory context. Raises P0002 for an unknown account, 55000 for one that
 * is not active.
 */
char	   *vs_load_access_token(const char *account_id);

#endif
