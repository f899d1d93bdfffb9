/*
 * call_many.cpp: prepares every call of a batch, sends the valid ones
 * together, and interprets each reply as a single call would.
 */
#include "call_many.hpp"

#include "call_steps.hpp"
#include "multi_transport.hpp"

#include <cstddef>
#include <utility>

namespace vibescaling {

/* A batch of calls end to end; see the header. */
std::vector<CallOutcome>
perform_call_many(const vs_http_options *opt, int max_concurrent, int n,
				  const vs_call_spec *specs, bool *started)
{
	std::size_t count = n > 0 ? static_cast<std::size_t>(n) : 0;
	std::vector<PreparedCall> calls;
	std::vector<const HttpRequest *> requests(count, nullptr);

	calls.reserve(count);
	for (std::size_t i = 0; i < count; i++)
	{
		calls.push_back(prepare_call(opt, specs[i].endpoint, specs[i].access_token,
									 specs[i].options_json));
		/* Refused calls stay null: the transport skips them. */
		if (!calls[i].refused)
			requests[i] = &calls[i].request;
	}

	std::vector<HttpReply> replies =
		http_send_many(requests, max_concurrent, opt != nullptr ? opt->should_abort : nullptr,
					   started);
	std::vector<CallOutcome> outcomes;

	outcomes.reserve(count);
	for (std::size_t i = 0; i < count; i++)
	{
		PreparedCall &call = calls[i];

		if (call.refused)
			outcomes.push_back(finish_call(call, std::move(call.refusal)));
		else
			outcomes.push_back(finish_call(call, outcome_from_reply(call.ep, replies[i])));
	}
	return outcomes;
}

}								/* namespace vibescaling */
