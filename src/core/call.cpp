/*
 * call.cpp: wires request building, the HTTP transport and reply parsing
 * into one call.
 */
#include "call.hpp"

#include "endpoints.hpp"
#include "http_transport.hpp"
#include "reply_parser.hpp"
#include "request_builder.hpp"
#include "retry_after.hpp"
#include "secrets.hpp"

#include <cstring>
#include <ctime>
#include <string>
#include <vector>

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

/* The call itself, before secrets are redacted from its message. */
CallOutcome
call_unredacted(const vs_http_options *opt, vs_endpoint ep, const char *token,
				const char *options_json, bool *perform_started)
{
	const EndpointInfo *info = endpoint_info(ep);

	if (opt == nullptr || opt->base_url == nullptr || *opt->base_url == '\0')
		return refused("no TikTok base_url configured");
	if (info == nullptr)
		return refused("unknown endpoint");
	if (info->bearer && has_control_chars(token))
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
	req.url = join_url(opt->base_url, info->path);
	req.verb = (info->method == HttpMethod::kGet) ? HttpVerb::kGet : HttpVerb::kPost;
	req.send_bearer = info->bearer;
	if (info->bearer)
		req.bearer_token = token;
	if (info->body == BodyFormat::kForm)
		req.content_type = "application/x-www-form-urlencoded";
	req.connect_timeout_ms = opt->connect_timeout_ms;
	req.request_timeout_ms = opt->request_timeout_ms;
	req.should_abort = opt->should_abort;
	req.capture_headers.push_back("retry-after");

	HttpReply	reply = http_send(req, perform_started);
	CallOutcome out;

	if (reply.completed)
	{
		out = parse_endpoint_reply(ep, reply.http_status, reply.body.data(), reply.body.size());

		/*
		 * An init TikTok says it accepted, but without a publish_id we can
		 * name: a bad reply, and TikTok may well have the post.
		 */
		if (out.ok && endpoint_creates_post(ep) && out.publish_id.empty())
		{
			out.ok = false;
			out.error_code = "bad_response";
			out.error_message = "TikTok answered ok to an init without a publish_id string";
			out.outcome_unknown = true;
		}

		/* TikTok's (or a proxy's) hint how long to wait, on any reply. */
		auto		it = reply.headers.find("retry-after");

		if (it != reply.headers.end())
			out.retry_after_s = retry_after_seconds(it->second, std::time(nullptr));
	}
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

}								/* namespace */

/* One call end to end; see the header. */
CallOutcome
perform_call(const vs_http_options *opt, vs_endpoint ep, const char *access_token,
			 const char *options_json, bool *perform_started)
{
	const char *token = access_token ? access_token : "";

	/* Collected before sending: a server may echo any of them back in its message. */
	std::vector<std::string> secrets = secret_values(options_json, token);
	CallOutcome out = call_unredacted(opt, ep, token, options_json, perform_started);

	out.error_message = redact_secrets(std::move(out.error_message), secrets);
	return out;
}

}								/* namespace vibescaling */
