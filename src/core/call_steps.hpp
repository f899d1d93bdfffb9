/*
 * call_steps.hpp: the two halves of one TikTok call around the transport,
 * shared by vs_call (call.cpp, one request) and vs_call_many
 * (call_many.cpp, a batch): building the request for an endpoint, and
 * turning the HTTP reply into a CallOutcome with secrets redacted.
 */
#ifndef VS_CALL_STEPS_HPP
#define VS_CALL_STEPS_HPP

#include "call_outcome.hpp"
#include "http_transport.hpp"
#include "vs_core.h"

#include <string>
#include <vector>

namespace vibescaling {

/* One call ready to send, or refused before sending. */
struct PreparedCall
{
	vs_endpoint ep = VS_EP_UNKNOWN;
	bool		refused = false;	/* refusal holds the invalid_param outcome */
	CallOutcome refusal;
	HttpRequest request;		/* what to send when not refused */
	std::vector<std::string> secrets;	/* values to mask in error_message */
};

/*
 * Builds the request for ep (NULL access_token counts as ""): body from
 * options_json, URL base_url + path, method, content type and bearer as the
 * endpoint table says, timeouts and should_abort from opt, Retry-After
 * captured. Problems found before sending (no opt or base_url, unknown
 * endpoint, token with control characters, bad options) make a refused
 * call whose outcome is "invalid_param" with http_status 0. Throws
 * std::bad_alloc.
 */
PreparedCall prepare_call(const vs_http_options *opt, vs_endpoint ep,
						  const char *access_token, const char *options_json);

/*
 * The outcome of a sent call of endpoint ep from its reply (consumed): the
 * parsed reply, an init ok without a publish_id made bad_response, the
 * Retry-After header in seconds; or the transport failure as is. For the
 * endpoints that create a post, every failure except one whose reply
 * proves TikTok refused (proves_refusal: a well-formed envelope with a
 * known refusal code, HTTP 2xx/4xx) gets outcome_unknown and never_resend,
 * and its message says so; that includes a transport failure after the
 * request may have left. Secrets are not redacted here (see finish_call).
 * Throws std::bad_alloc.
 */
CallOutcome outcome_from_reply(vs_endpoint ep, HttpReply &reply);

/* The call's final outcome: its error_message with call.secrets masked. Throws std::bad_alloc. */
CallOutcome finish_call(const PreparedCall &call, CallOutcome out);

}								/* namespace vibescaling */

#endif
