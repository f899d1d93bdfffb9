/*
 * call_support.h: what every call (the call path of call_batch.cpp, and the
 * OAuth calls of tiktok_call.cpp and token_refresher.cpp) shares: the
 * HTTP options from the settings, the interrupt check curl polls, and the
 * results and log rows of calls that were never sent or are in flight.
 */
#ifndef VS_CALL_SUPPORT_H
#define VS_CALL_SUPPORT_H

#include "token_refresher.h"
#include "../core/vs_core.h"

/*
 * Polled by curl: abort on query cancel, statement_timeout, terminate, or
 * the postmaster's death (a backend must not go on talking to TikTok for a
 * server that is gone).
 */
int			vs_interrupt_requested(void);

/* The HTTP options (base URL, CA file, timeouts, interrupt check) from the vibescaling.* settings. */
void		vs_http_options_from_settings(vs_http_options *http);

/* Copies a malloc'd core string into palloc'd memory and frees it (NULL stays NULL). */
char	   *vs_take_core_string(char *s);

/*
 * Fills *r (no malloc'd strings: never vs_call_result_free it) as a call
 * that was not sent: error_code, message and SQLSTATE as given.
 */
void		vs_local_failure(vs_call_result *r, const char *error_code, const char *message,
							 const char *sqlstate, bool retryable);

/* Fills *r as a call not made because the account's rate limit is used up (53000, retryable). */
void		vs_rate_limited_failure(vs_call_result *r);

/* Fills *r as a call not made because the token refresh before it failed. */
void		vs_refresh_failure(vs_call_result *r, const VsRefreshResult *refresh);

/* The dispatch_logs row (palloc'd JSON) of a call about to be sent: outcome unknown until it answers. */
char	   *vs_in_flight_log_json(const char *post_id, const char *account_id, const char *trigger,
								  const char *endpoint_name);

/*
 * The JSON object object_json (a JSON object's text, as JsonbToCString
 * writes it) with n string fields keys[i] = values[i] added (a NULL value is
 * left out), as palloc'd text. Built in C, never by SQL: the values are
 * secrets (client credentials, tokens), which must not become constants or
 * parameters of a planned statement (auto_explain would log them).
 */
char	   *vs_json_object_with(const char *object_json, int n, const char *const *keys,
								const char *const *values);

/* Raises 55000 unless the app's client key and secret are configured (OAuth calls and refreshes need them). */
void		vs_require_client_credentials(void);

/* Overwrites a palloc'd string that held a secret, and frees it. */
void		vs_wipe_string(char *s);

#endif
