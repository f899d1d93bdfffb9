/* account_tokens.h: reading a connected account's status and access token. */
#ifndef VS_ACCOUNT_TOKENS_H
#define VS_ACCOUNT_TOKENS_H

/* What a call needs to know about an account (palloc'd strings). */
typedef struct VsAccount
{
	char	   *status;			/* active | needs_reauth | disconnected */
	char	   *access_token;	/* decrypted; NULL once wiped */
	double		expires_in_s;	/* seconds until the access token expires (1e9 if unknown) */
	long long	token_version;	/* bumped by every refresh (see token_refresher.h) */
} VsAccount;

/*
 * Loads an account, decrypting its access token. The query runs as the
 * owner of vibescaling.tiktok_accounts, so the calling role needs no right
 * on the token columns. Raises P0002 for an unknown account.
 */
void		vs_load_account(const char *account_id, VsAccount *out);

/*
 * Loads n accounts in one query, as vs_load_account does (same rights,
 * fresh snapshot): out[i] for account_ids[i] (uuid_out's text). Each token
 * is decrypted in C, once per transaction and token version: a second load
 * in the same transaction takes it from there. An unknown account gets
 * status "not_found" and no token; nothing raises for it.
 */
void		vs_load_accounts(int n, const char *const *account_ids, VsAccount *out);

/* Raises 55000 unless the account is active and has a token. */
void		vs_require_active(const char *account_id, const VsAccount *account);

/* The role that owns vibescaling.tiktok_accounts (the extension's owner), who may read its tokens. */
Oid			vs_token_table_owner(void);

/* Overwrites and frees the token held in *account. */
void		vs_forget_token(VsAccount *account);

#endif
