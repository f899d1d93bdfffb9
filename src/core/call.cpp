/*
 * call.cpp: wires request building, the HTTP transport and reply parsing
 * into one call.
 */
#include "call.hpp"

#include "endpoints.hpp"
#include "http_transport.hpp"
#include "reply_parser.hpp"
#include "request_builder.hpp"

#include <cstring>

namespace vibescaling {

namespace {

/* A failure detected before anything was sent: the caller's input is wrong. */
CallOutcome
refused(const std::string &message)
{
	CallOutcome out;

	out.error_code = "invalid_param";
	out.error_message = message;
	return out;
}

/* True when s contains a byte that cannot appear in an HTTP header. */
bool
has_control_chars(const char *s) noexcept
{
	for (; *s != '\0'; s++)
	{
		unsigned char c = static_cast<unsigned char>(*s);

		if (c < 0x20 || c == 0x7F)
			return true;
	}
	return false;
}

/* base_url without trailing slashes, followed by path. */
std::string
join_url(const char *base_url, const char *path)
{
	std::string url(base_url);

	while (!url.empty() && url.back() == '/')
		url.pop_back();
	return url + path;
}

}								/* namespace */

/* One call end to end; see the header. */
CallOutcome
perform_call(const vs_http_options *opt, vs_endpoint ep, const char *access_token,
			 const char *options_json, bool *perform_started)
{
	if (opt == nullptr || opt->base_url == nullptr || *opt->base_url == '\0')
		return refused("no TikTok base_url configured");
	if (*endpoint_path(ep) == '\0')
		return refused("unknown endpoint");

	const char *token = access_token ? access_token : "";

	if (has_control_chars(token))
		return refused("access token contains control characters");

	HttpRequest req;

	try
	{
		req.body = build_request_body(ep, options_json);
	}
	catch (const OptionsError &e)
	{
		return refused(e.what());
	}
	req.url = join_url(opt->base_url, endpoint_path(ep));
	req.bearer_token = token;
	req.connect_timeout_ms = opt->connect_timeout_ms;
	req.request_timeout_ms = opt->request_timeout_ms;
	req.should_abort = opt->should_abort;
	req.fresh_connection = endpoint_creates_post(ep);

	HttpReply	reply = http_post(req, perform_started);
	CallOutcome out;

	if (reply.completed)
		out = parse_reply(reply.http_status, reply.body.data(), reply.body.size());
	else
	{
		out.http_status = reply.http_status;
		out.error_code = reply.error_code;
		out.error_message = reply.error_message;
		out.outcome_unknown = reply.outcome_unknown;
	}
	out.duration_ms = reply.duration_ms;
	return out;
}

}								/* namespace vibescaling */
