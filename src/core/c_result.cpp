/*
 * c_result.cpp: CallOutcome -> vs_call_result (malloc'd strings), and back
 * to free().
 */
#include "c_result.hpp"

#include "error_map.hpp"

#include <cstdlib>
#include <cstring>

namespace vibescaling {

namespace {

/* Static fallbacks used when malloc fails; recognized by is_static_text. */
char		kStaticEmpty[] = "";
char		kStaticEmptyObject[] = "{}";
char		kStaticOomCode[] = "out_of_memory";
char		kStaticOomMessage[] = "vibescaling: out of memory";
char		kStaticOomSqlstate[] = "38000";	/* sqlstate_for("out_of_memory", 0) */

/* A malloc'd copy of s, or fallback when malloc fails. */
char *
dup_or(const char *s, char *fallback) noexcept
{
	char	   *p = strdup(s ? s : "");

	return p ? p : fallback;
}

/* Frees *p unless it is a static fallback, then NULLs it. */
void
release(char **p) noexcept
{
	if (*p != nullptr && !is_static_text(*p))
		std::free(*p);
	*p = nullptr;
}

}								/* namespace */

/* True for the static fallback strings, which must never be passed to free(). */
bool
is_static_text(const void *p) noexcept
{
	return p == kStaticEmpty || p == kStaticEmptyObject || p == kStaticOomCode ||
		p == kStaticOomMessage || p == kStaticOomSqlstate;
}

/* A malloc'd copy of s (NULL counts as ""), or the static "out of memory" text. */
char *
dup_text(const char *s) noexcept
{
	return dup_or(s, kStaticOomMessage);
}

/* Fills *out from o, deriving sqlstate and retryable; never throws. */
void
fill_c_result(const CallOutcome &o, vs_call_result *out) noexcept
{
	const char *code = o.error_code.c_str();

	out->ok = o.ok ? 1 : 0;
	out->http_status = o.http_status;
	out->error_code = dup_or(code, kStaticOomCode);
	out->error_message = dup_or(o.error_message.c_str(), kStaticEmpty);
	out->log_id = dup_or(o.log_id.c_str(), kStaticEmpty);
	out->publish_id = dup_or(o.publish_id.c_str(), kStaticEmpty);
	out->data_json = dup_or(o.data_json.c_str(), kStaticEmptyObject);
	out->sqlstate = dup_or(o.ok ? "00000" : sqlstate_for(code, o.http_status),
						   kStaticOomSqlstate);
	out->duration_ms = o.duration_ms;
	/* An init that TikTok may have acted on is never resent, whatever its code says. */
	out->retryable = (!o.ok && !o.never_resend && is_retryable(code, o.http_status)) ? 1 : 0;
	out->outcome_unknown = o.outcome_unknown ? 1 : 0;
	out->retry_after_s = o.retry_after_s;

	/* A lost code or publish_id must not pass for a clean answer: report out of memory. */
	if (out->error_code == kStaticOomCode || out->publish_id == kStaticEmpty ||
		out->sqlstate == kStaticOomSqlstate)
	{
		bool		tiktok_may_have_acted = o.outcome_unknown || o.http_status != 0;
		double		duration = o.duration_ms;

		free_c_result(out);
		fill_c_failure(out, "out_of_memory", kStaticOomMessage, tiktok_may_have_acted);
		out->http_status = o.http_status;
		out->duration_ms = duration;
		out->retry_after_s = o.retry_after_s;
	}
}

/* Fills *out with a failure raised inside the core; never throws. */
void
fill_c_failure(vs_call_result *out, const char *error_code, const char *message,
			   bool outcome_unknown) noexcept
{
	if (error_code == nullptr)
		error_code = "core_error";
	out->ok = 0;
	out->http_status = 0;
	out->error_code = strdup(error_code);
	out->error_message = strdup(message ? message : "");
	out->log_id = strdup("");
	out->publish_id = strdup("");
	out->data_json = strdup("{}");
	out->sqlstate = strdup(sqlstate_for(error_code, 0));
	out->duration_ms = 0.0;
	out->retryable = is_retryable(error_code, 0) ? 1 : 0;
	out->outcome_unknown = outcome_unknown ? 1 : 0;
	out->retry_after_s = -1;
	if (!out->error_code || !out->error_message || !out->log_id || !out->publish_id ||
		!out->data_json || !out->sqlstate)
	{
		free_c_result(out);
		fill_c_static_oom(out, outcome_unknown);
	}
}

/* Fills *out with an out-of-memory failure made only of static strings (no malloc). */
void
fill_c_static_oom(vs_call_result *out, bool outcome_unknown) noexcept
{
	out->ok = 0;
	out->http_status = 0;
	out->error_code = kStaticOomCode;
	out->error_message = kStaticOomMessage;
	out->log_id = kStaticEmpty;
	out->publish_id = kStaticEmpty;
	out->data_json = kStaticEmptyObject;
	out->sqlstate = kStaticOomSqlstate;
	out->duration_ms = 0.0;
	out->retryable = 0;
	out->outcome_unknown = outcome_unknown ? 1 : 0;
	out->retry_after_s = -1;
}

/* Frees the strings in *r (skipping static fallbacks) and NULLs them. */
void
free_c_result(vs_call_result *r) noexcept
{
	release(&r->error_code);
	release(&r->error_message);
	release(&r->log_id);
	release(&r->publish_id);
	release(&r->data_json);
	release(&r->sqlstate);
}

}								/* namespace vibescaling */
