/*
 * call_batch.h: the one path of the TikTok calls made with an account's
 * token, from SQL to libcurl and back. _tiktok_call_many (the dispatcher's
 * rounds, the status poller) hands it many calls; _tiktok_call (publish_post,
 * publish_status, connect_account, ...) hands it a batch of one. Only the
 * OAuth calls, made with the app's credentials, go their own way
 * (tiktok_call.cpp, token_refresher.cpp).
 *
 * For every batch:
 *   - the accounts' tokens are read here, in one query (never through SQL);
 *     a token that expires within vibescaling.token_refresh_margin is
 *     refreshed first, and an account whose call TikTok answers
 *     access_token_invalid is refreshed once and its calls are sent once
 *     more (never for trigger "connect": that token was just obtained);
 *   - TikTok's per-token rate limits and Retry-After, from the durable log:
 *     a batch does not wait, what does not fit now is not sent
 *     (rate_limited, 53000, retryable); a single call waits up to
 *     vibescaling.rate_limit_max_wait first;
 *   - every call is durably "in flight" in dispatch_logs before any of them
 *     is sent, and every attempt's row is replaced by its outcome after:
 *     one write to the log writer per step of the batch.
 * The calls go to vs_call_many in the core: at most
 * vibescaling.max_concurrent_requests in flight, over kept-alive
 * connections.
 */
#ifndef VS_CALL_BATCH_H
#define VS_CALL_BATCH_H

#include "pg_headers.h"
#include "../core/vs_core.h"

/* One call of a batch (palloc'd strings), and what became of it. */
typedef struct VsBatchCall
{
	/* in */
	char	   *endpoint_name;
	vs_endpoint endpoint;		/* an account-token endpoint (not OAuth) */
	char	   *account_id;
	char	   *post_id;		/* NULL when none */
	char	   *trigger;
	char	   *options;		/* a JSON object's text */
	/* out */
	vs_call_result result;		/* its strings palloc'd (vs_copy_call_result): never vs_call_result_free it */
	bool		account_unusable;	/* not sent: the account is unknown, not active or has no token */
	/* the engine's own */
	int			account;		/* index into the batch's distinct accounts */
	int64		log_row;		/* its "in flight" row while the call is out, else 0 */
	bool		token_rejected; /* TikTok answered access_token_invalid */
} VsBatchCall;

/*
 * Makes the n calls as the file comment says and sets each one's
 * result. wait_for_rate_limit: wait (interruptibly, up to
 * vibescaling.rate_limit_max_wait) for room in the rate limits instead of
 * refusing at once. Raises only when the log cannot be written (nothing is
 * sent then) or on query cancel.
 */
void		vs_run_calls(VsBatchCall *calls, int n, const vs_http_options *http, bool wait_for_rate_limit);

#endif
