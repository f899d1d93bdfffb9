/*
 * call_outcome.hpp: the C++ form of one call's outcome, before it is
 * copied into the malloc'd vs_call_result handed across the C boundary.
 */
#ifndef VS_CALL_OUTCOME_HPP
#define VS_CALL_OUTCOME_HPP

#include <string>

namespace vibescaling {

/* What happened on one call; sqlstate and retryable are derived from it. */
struct CallOutcome
{
	bool		ok = false;			/* an HTTP 2xx reply with error.code "ok" */
	long		http_status = 0;	/* 0 when no HTTP reply arrived */
	std::string error_code;			/* "ok", TikTok's code, or a transport code */
	std::string error_message;
	std::string log_id;
	std::string publish_id;
	std::string data_json = "{}";
	double		duration_ms = 0.0;
	bool		outcome_unknown = false;	/* the request may have been acted upon */
	bool		never_resend = false;	/* an init of unknown outcome: retryable is forced to 0 */
	long		retry_after_s = -1;	/* the reply's Retry-After in seconds, -1 when none */
};

}								/* namespace vibescaling */

#endif
