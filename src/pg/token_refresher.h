/*
 * token_refresher.h: refreshing an account's access token, durably and
 * once.
 *
 * TikTok rotates the refresh token: once a refresh answers, the old refresh
 * token is dead. The new tokens must therefore be stored whatever becomes of
 * the caller's transaction, and two backends must not both spend the same
 * refresh token. So the refresh runs in a short-lived background worker, in
 * a transaction of its own that locks the account row (FOR NO KEY UPDATE): it
 * calls /v2/oauth/token/, stores the new tokens (encrypted), writes the
 * dispatch_logs row and commits. A second refresher waits for the row lock,
 * sees that the token changed (token_version) and does nothing.
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
 * dispatch_logs with the given trigger and post. Waits for the worker;
 * query cancel stops the wait (the worker finishes and stores its result).
 */
void		vs_refresh_account_token(const char *account_id, long long seen_version, bool force,
									 const char *trigger, const char *post_id,
									 const vs_http_options *http, VsRefreshResult *result);

#endif
