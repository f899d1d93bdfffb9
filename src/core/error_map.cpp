/*
 * error_map.cpp: the SQLSTATE table (documented in docs/errors.md) and the
 * retry policy. Keep both in sync with docs/errors.md.
 */
#include "error_map.hpp"

#include <cstddef>
#include <cstring>

namespace vibescaling {

namespace {

/* One code -> SQLSTATE pair. */
struct SqlstateRow
{
	const char *code;
	const char *sqlstate;
};

/* Known codes. 22023 invalid_parameter_value, 42501 insufficient_privilege,
 * 28000 invalid_authorization_specification, 55000 object_not_in_prerequisite_state,
 * 53000 insufficient_resources (a TikTok limit or cap: "try later"; PostgREST
 * answers 503, where 53400 would give 500), 08000/08001/08P01 connection
 * classes, 57014 query_canceled. */
const SqlstateRow kSqlstates[] = {
	{"ok", "00000"},
	{"invalid_param", "22023"},
	{"invalid_params", "22023"},
	{"invalid_publish_id", "22023"},
	{"privacy_level_option_mismatch", "22023"},
	{"token_not_authorized_for_specified_publish_id", "42501"},
	{"scope_not_authorized", "42501"},
	{"spam_risk_user_banned_from_posting", "42501"},
	{"unaudited_client_can_only_post_to_private_accounts", "42501"},
	{"url_ownership_unverified", "42501"},
	{"access_token_invalid", "28000"},
	{"invalid_grant", "28000"},
	{"invalid_client", "28000"},
	{"invalid_request", "22023"},
	{"unauthorized_client", "42501"},
	{"access_denied", "42501"},
	{"app_version_check_failed", "55000"},
	{"publish_not_cancellable", "55000"},
	{"chunk_rejected", "22023"},		/* chunk PUT answered 400: bad headers or length */
	{"upload_url_expired", "55000"},	/* chunk PUT 403: start again with a fresh init */
	{"upload_not_found", "55000"},		/* chunk PUT 404 */
	{"range_mismatch", "55000"},		/* chunk PUT 416: resync from uploaded_bytes */
	{"source_not_video", "22023"},		/* the source's first bytes are no MP4/MOV/WebM */
	{"source_too_large", "22023"},		/* over TikTok's 4 GiB */
	{"source_unreachable", "08000"},	/* any transport failure of a source download */
	{"spam_risk_too_many_posts", "53000"},
	{"spam_risk_too_many_pending_share", "53000"},
	{"reached_active_user_cap", "53000"},
	{"rate_limit_exceeded", "53000"},
	{"internal_error", "08000"},
	{"timeout", "08000"},
	{"transport_error", "08000"},
	{"connect_failed", "08001"},
	{"bad_response", "08P01"},
	{"aborted", "57014"},
};

/* Codes worth retrying later: TikTok overload/faults and transport trouble. */
const char *const kRetryable[] = {
	"rate_limit_exceeded", "internal_error", "timeout",
	"connect_failed", "transport_error", "bad_response", "source_unreachable",
};

/*
 * Codes never retried, whatever the HTTP status: success, the user's own
 * cancel, and chunk PUT answers that resending the same chunk cannot fix.
 */
const char *const kNeverRetried[] = {
	"ok", "aborted",
	"chunk_rejected", "upload_url_expired", "upload_not_found", "range_mismatch",
	"source_not_video", "source_too_large",
};

/*
 * TikTok's refusals: the request was understood and turned down, nothing
 * was created. internal_error is not one (TikTok may have acted before it
 * failed), nor are the status/cancel codes (an init never gets them).
 */
const char *const kRefusals[] = {
	"invalid_param", "invalid_params",
	"access_token_invalid", "scope_not_authorized",
	"spam_risk_too_many_posts", "spam_risk_user_banned_from_posting",
	"spam_risk_too_many_pending_share",
	"privacy_level_option_mismatch", "reached_active_user_cap",
	"unaudited_client_can_only_post_to_private_accounts",
	"url_ownership_unverified", "rate_limit_exceeded", "app_version_check_failed",
};

/* True when code equals one of the listed strings. */
template <std::size_t N>
bool
listed(const char *code, const char *const (&list)[N]) noexcept
{
	for (const char *item : list)
		if (std::strcmp(item, code) == 0)
			return true;
	return false;
}

}								/* namespace */

/* The SQLSTATE (static 5-char string) for an error code and HTTP status. */
const char *
sqlstate_for(const char *error_code, long http_status) noexcept
{
	const char *code = error_code ? error_code : "";

	for (const SqlstateRow &row : kSqlstates)
		if (std::strcmp(row.code, code) == 0)
			return row.sqlstate;
	/* Unknown codes: a server fault is a connection-class problem, else the call failed. */
	return http_status >= 500 ? "08000" : "38000";
}

/* True when a failure with this code / HTTP status may succeed if retried later. */
bool
is_retryable(const char *error_code, long http_status) noexcept
{
	const char *code = error_code ? error_code : "";

	if (listed(code, kNeverRetried))
		return false;
	if (listed(code, kRetryable))
		return true;
	return http_status == 429 || http_status >= 500;
}

/* True for a code that proves TikTok refused the request (see the header). */
bool
is_refusal_code(const char *error_code) noexcept
{
	return error_code != nullptr && listed(error_code, kRefusals);
}

}								/* namespace vibescaling */
