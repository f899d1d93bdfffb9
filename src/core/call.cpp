/*
 * call.cpp: wires request building, the HTTP transport and reply parsing
 * into one call.
 */
#include "call.hpp"

#include "call_steps.hpp"
#include "http_transport.hpp"
#include "multi_transport.hpp"

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

	/*
	 * Through the kept-alive pool that vs_call_many uses (which never lets
	 * libcurl re-send a request by itself), so that single calls spare a
	 * handshake too; except the OAuth calls, on a connection of their own:
	 * if a kept-alive connection died under one, its outcome would be
	 * unknown, and a refresh token TikTok rotated without our hearing the
	 * answer would leave the account to be reconnected by hand.
	 */
	HttpReply	reply;

	if (ep == VS_EP_OAUTH_TOKEN || ep == VS_EP_OAUTH_REVOKE)
		reply = http_send(call.request, perform_started);
	else
		reply = std::move(http_send_many({&call.request}, 0, call.request.should_abort, perform_started).front());

	return finish_call(call, outcome_from_reply(ep, reply));
}

}								/* namespace vibescaling */
