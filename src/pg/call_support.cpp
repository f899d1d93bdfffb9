/*
 * call_support.cpp: what every TikTok call shares (see call_support.h): the
 * interrupt check curl polls, the HTTP options from the settings, the
 * results of calls never sent (local, rate-limited, failed refresh), the
 * log row of a call in flight, and wiping secrets from memory.
 */
#include "pg_headers.h"
#include "call_support.h"
#include "gucs.h"

#include <string.h>

/* Polled by curl's progress callback and the batch loop (see call_support.h). */
int
vs_interrupt_requested(void)
{
	return (QueryCancelPending || ProcDiePending || !PostmasterIsAlive()) ? 1 : 0;
}

/* The HTTP options from the settings (see call_support.h). */
void
vs_http_options_from_settings(vs_http_options *http)
{
	http->base_url = vs_guc_api_base_url;
	http->connect_timeout_ms = vs_guc_connect_timeout_ms;
	http->request_timeout_ms = vs_guc_request_timeout_ms;
	http->should_abort = vs_interrupt_requested;
	http->ca_file = vs_guc_ca_file;
	/* Only video source downloads use these (never the calls to api_base_url). */
	http->source_allowed_networks = vs_guc_source_allowed_networks;
	http->source_connect_timeout_ms = vs_guc_source_connect_timeout_ms;
	http->source_stall_timeout_ms = vs_guc_source_stall_timeout_ms;
}

/* Copies a malloc'd core string into palloc'd memory and frees it. */
char *
vs_take_core_string(char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = pstrdup(s);
	vs_free(s);
	return copy;
}

/* Fills *r as a call that was not sent (see call_support.h). */
void
vs_local_failure(vs_call_result *r, const char *error_code, const char *message,
				 const char *sqlstate, bool retryable)
{
	memset(r, 0, sizeof(*r));
	r->retry_after_s = -1;
	r->error_code = (char *) error_code;
	r->error_message = (char *) message;
	r->log_id = (char *) "";
	r->publish_id = (char *) "";
	r->data_json = (char *) "{}";
	r->sqlstate = (char *) sqlstate;
	r->retryable = retryable ? 1 : 0;
}

/* Fills *r as a call refused locally by the rate limit (see call_support.h). */
void
vs_rate_limited_failure(vs_call_result *r)
{
	vs_local_failure(r, "rate_limited",
					 "not sent: the account's TikTok rate limit for this endpoint is used up "
					 "for longer than vibescaling.rate_limit_max_wait",
					 "53000", true);
}

/* Fills *r as a call not made because the refresh failed (see call_support.h). */
void
vs_refresh_failure(vs_call_result *r, const VsRefreshResult *refresh)
{
	vs_local_failure(r, refresh->error_code, refresh->message, refresh->sqlstate,
					 vs_is_retryable(refresh->error_code, refresh->http_status));
	r->http_status = refresh->http_status;
	r->log_id = (char *) refresh->log_id;
}

/* The "in flight" dispatch_logs row of a call (see call_support.h). */
char *
vs_in_flight_log_json(const char *post_id, const char *account_id, const char *trigger,
					  const char *endpoint_name)
{
	vs_call_result pending;

	vs_local_failure(&pending, "in_flight", "sent to TikTok; no answer recorded yet", "08000", false);
	pending.outcome_unknown = 1;
	return vs_take_core_string(vs_dispatch_log_json(&pending, post_id, account_id, trigger, endpoint_name));
}

/* A JSON object's text with string fields added (see call_support.h). */
char *
vs_json_object_with(const char *object_json, int n, const char *const *keys, const char *const *values)
{
	StringInfoData buf;
	const char *end = strrchr(object_json, '}');
	bool		empty = true;

	if (object_json[0] != '{' || end == NULL)
		elog(ERROR, "vibescaling: request options must be a JSON object");
	/* Whether the object already has a member: anything but blanks between the braces. */
	for (const char *c = object_json + 1; c < end; c++)
		if (*c != ' ' && *c != '\n' && *c != '\t' && *c != '\r')
			empty = false;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, object_json, end - object_json);
	for (int i = 0; i < n; i++)
	{
		if (values[i] == NULL)
			continue;
		if (!empty)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, keys[i]);
		appendStringInfoString(&buf, ": ");
		escape_json(&buf, values[i]);
		empty = false;
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* Overwrites and frees a secret string (see call_support.h). */
void
vs_wipe_string(char *s)
{
	if (s == NULL)
		return;
	memset(s, 0, strlen(s));
	pfree(s);
}

/* Raises 55000 unless the app's client key and secret are configured (see call_support.h). */
void
vs_require_client_credentials(void)
{
	if (vs_guc_client_key == NULL || *vs_guc_client_key == '\0' ||
		vs_guc_client_secret == NULL || *vs_guc_client_secret == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("vibescaling.client_key and vibescaling.client_secret are not set"),
				 errhint("Set your TikTok app's credentials in postgresql.conf (superuser-only settings).")));
}
