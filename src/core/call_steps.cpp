/*
 * call_steps.cpp: request building and reply interpretation for one call,
 * shared by the single call and the batch.
 */
#include "call_steps.hpp"

#include "endpoints.hpp"
#include "reply_parser.hpp"
#include "request_builder.hpp"
#include "retry_after.hpp"
#include "secrets.hpp"

#include <ctime>
#include <utility>

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

/*
 * Makes the failed outcome of an init one of unknown outcome that is never
 * resent: TikTok may have created the post, and it has no idempotency key.
 */
void
mark_init_unknown(CallOutcome &out)
{
	out.outcome_unknown = true;
	out.never_resend = true;
	if (!out.error_message.empty())
		out.error_message += "; ";
	out.error_message += "the outcome is unknown (TikTok may have created the post), "
		"so the init will not be resent";
}

/* Marks call as refused with message. */
void
refuse(PreparedCall &call, const std::string &message)
{
	call.refused = true;
	call.refusal = refused(message);
}

}								/* namespace */

/* Builds one call's request, or refuses it; see the header. */
PreparedCall
prepare_call(const vs_http_options *opt, vs_endpoint ep, const char *access_token,
			 const char *options_json)
{
	const char *token = access_token ? access_token : "";
	const EndpointInfo *info = endpoint_info(ep);
	PreparedCall call;

	call.ep = ep;
	/* Collected before sending: a server may echo any of them back in its message. */
	call.secrets = secret_values(options_json, token);

	if (opt == nullptr || opt->base_url == nullptr || *opt->base_url == '\0')
	{
		refuse(call, "no TikTok base_url configured");
		return call;
	}
	if (info == nullptr)
	{
		refuse(call, "unknown endpoint");
		return call;
	}
	if (info->bearer && has_control_chars(token))
	{
		refuse(call, "access token contains control characters");
		return call;
	}

	HttpRequest &req = call.request;

	try
	{
		req.body = build_request_body(ep, options_json);
	}
	catch (const OptionsError &e)
	{
		refuse(call, e.what());
		return call;
	}
	req.url = join_url(opt->base_url, info->path);
	req.verb = (info->method == HttpMethod::kGet) ? HttpVerb::kGet : HttpVerb::kPost;
	req.send_bearer = info->bearer;
	if (info->bearer)
		req.bearer_token = token;
	if (info->body == BodyFormat::kForm)
		req.content_type = "application/x-www-form-urlencoded";
	req.connect_timeout_ms = opt->connect_timeout_ms;
	if (opt->ca_file != nullptr)
		req.ca_file = opt->ca_file;
	req.request_timeout_ms = opt->request_timeout_ms;
	req.should_abort = opt->should_abort;
	req.capture_headers.push_back("retry-after");
	return call;
}

/* The outcome of a sent call from its reply; see the header. */
CallOutcome
outcome_from_reply(vs_endpoint ep, HttpReply &reply)
{
	CallOutcome out;
	bool		creates_post = endpoint_creates_post(ep);

	if (reply.completed)
	{
		out = parse_endpoint_reply(ep, reply.http_status, reply.body.data(), reply.body.size());

		/*
		 * An init TikTok says it accepted, but without a publish_id we can
		 * name: a bad reply, and TikTok may well have the post.
		 */
		if (out.ok && creates_post && out.publish_id.empty())
		{
			out.ok = false;
			out.error_code = "bad_response";
			out.error_message = "TikTok answered ok to an init without a publish_id string";
		}

		/*
		 * A failed init is safe to send again only when TikTok's reply
		 * proves it refused the request (a well-formed envelope with a
		 * known refusal code, not a 5xx). A reply we cannot read, an
		 * unknown code or a server fault may follow a post TikTok made.
		 */
		if (!out.ok && creates_post &&
			!proves_refusal(reply.http_status, reply.body.data(), reply.body.size()))
			mark_init_unknown(out);

		/* TikTok's (or a proxy's) hint how long to wait, on any reply. */
		auto		it = reply.headers.find("retry-after");

		if (it != reply.headers.end())
			out.retry_after_s = retry_after_seconds(it->second, std::time(nullptr));
	}
	else
	{
		out.http_status = reply.http_status;
		out.error_code = std::move(reply.error_code);
		out.error_message = std::move(reply.error_message);
		out.outcome_unknown = reply.outcome_unknown;
		/* Sent (or maybe sent) with no reply read: a timeout, a dropped connection, a cut body. */
		if (creates_post && out.outcome_unknown)
			mark_init_unknown(out);
	}
	out.duration_ms = reply.duration_ms;
	return out;
}

/* The outcome with the call's secrets masked; see the header. */
CallOutcome
finish_call(const PreparedCall &call, CallOutcome out)
{
	out.error_message = redact_secrets(std::move(out.error_message), call.secrets);
	return out;
}

}								/* namespace vibescaling */
