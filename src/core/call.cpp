/*
 * call.cpp: wires request building, the HTTP transport and reply parsing
 * into one call.
 */
#include "call.hpp"

#include "call_steps.hpp"
#include "http_transport.hpp"

#include <utility>

namespace vibescaling {

/* One call end to end; see the header. */
CallOutcome
perform_call(const vs_http_options *opt, vs_endpoint ep, const char *access_token,
			 const char *options_json, bool *perform_started)
{
	PreparedCall call = prepare_call(opt, ep, access_token, options_json);

	if (call.refused)
		return finish_call(call, std::move(call.refusal));

	HttpReply	reply = http_send(call.request, perform_started);

	return finish_call(call, outcome_from_reply(ep, reply));
}

}								/* namespace vibescaling */
