/*
 * token_refresher.h: refreshing an account's access token, durably and
 * once.
 *
 * TikTok rotates the refresh token: once a refresh answers, the old refresh
 * token is dead. The new tokens must therefore be stored whatever becomes of
 * the caller's transaction, and two backends must not both spend the same
 * refresh token. So a refresh holds a session-level advisory lock on the
 * account, reads the account's latest committed state (not the caller's
 * snapshot), calls /v2/oauth/token/ from the backend (query cancel waits
 * until the answer is stored), and hands the new tokens, sealed, with the
 * call's dispatch_logs row to the permanent log writer, which stores both
 * in one committed transaction: no background worker slot is needed. A
 * second refresher waits for the lock, sees that the token changed
 * (token_version) and does nothing.
 */
#ifndef VS_TOKEN_REFRESHER_H
#define VS_TOKEN_REFRESHER_H

#include "../core/vs_core.h"

/* How a refresh ended. */
typedef enum VsRefreshOutcome
{
	VS_REFRESH_FAILED = 0,		/* see sqlstate / error_code / message */
	VS_REFRESH_DONE = 1,		/* new tokens stored */
	VS_REFRESH_NOT_NEEDED = 2	/* another backend refreshed it, or it is not expiring */
} VsRefreshOutcome;

/* The answer of a refresh (plain data). */
typedef struct VsRefreshResult
{
	VsRefreshOutcome outcome;
	long		http_status;
	char		sqlstate[6];
	char		error_code[64];
	char		log_id[128];
	char		message[512];
} VsRefreshResult;

/*
 * Refreshes the account's access token unless another backend already did
 * since token_version seen_version was read, or (when !force) it does not
 * expire within margin_s. Calls that TikTok receives are logged in
 * dispatch_logs with the given trigger and post. Waits for another
 * session's refresh of the account (query cancel stops that wait), never
 * leaves an answered refresh unstored.
 */
void		vs_refresh_account_token(const char *account_id, long long seen_version, bool force,
									 const char *trigger, const char *post_id,
									 const vs_http_options *http, VsRefreshResult *result);

#endif
