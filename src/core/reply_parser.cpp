/*
 * reply_parser.cpp: reads TikTok's response envelope, and OAuth's flat
 * replies.
 *
 * Success is decided by error.code alone ("ok"), never by the HTTP status:
 * creator_info answers HTTP 200 with spam_risk_* codes. A non-2xx reply
 * claiming "ok" is contradictory and is treated as a bad response.
 */
#include "reply_parser.hpp"

#include "endpoints.hpp"
#include "error_map.hpp"
#include "json_raii.hpp"
#include "text_util.hpp"

#include <cstring>

namespace vibescaling {

namespace {

/* At most this many bytes of a bad body are quoted in the message. */
constexpr std::size_t kSnippetBytes = 200;

/* A "bad_response" outcome with message "TikTok replied HTTP <status> <what>". */
CallOutcome
bad_response(long http_status, const std::string &what)
{
	CallOutcome out;

	out.http_status = http_status;
	out.error_code = "bad_response";
	out.error_message = "TikTok replied HTTP " + std::to_string(http_status) + " " + what;
	return out;
}

/* A short, valid UTF-8, single-line quote of the start of body. */
std::string
snippet(const char *body, std::size_t body_len)
{
	return utf8_sanitize(body, body_len, kSnippetBytes, true);
}

/* The string member key of obj, or "" when absent or not a string. */
std::string
string_member(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return std::string();
	return std::string(json_string_value(v), json_string_length(v));
}

/*
 * ": <start of body>" for a message, or, when the body may hold tokens
 * (an OAuth token reply), only its size.
 */
std::string
quote_body(const char *body, std::size_t body_len, bool may_quote)
{
	if (may_quote)
		return ": " + snippet(body, body_len);
	return " (" + std::to_string(body_len) + " bytes, not quoted: it may hold tokens)";
}

/* The body parsed as JSON (any value), or null when it is not valid JSON. */
JsonPtr
load_json(const char *body, std::size_t body_len)
{
	json_error_t err;

	/* jansson rejects invalid UTF-8 and \u0000, which Postgres could not store anyway;
	 * integers are parsed as long long, so 19-digit post ids stay exact. */
	return JsonPtr(json_loadb(body, body_len, JSON_DECODE_ANY, &err));
}

/* Parses the envelope (or a flat OAuth error) of an already-parsed JSON object. */
CallOutcome
parse_envelope(const json_t *root, long http_status, const char *body, std::size_t body_len,
			   bool may_quote)
{
	CallOutcome out;
	const json_t *error = json_object_get(root, "error");

	out.http_status = http_status;
	if (json_is_object(error))
	{
		out.error_code = string_member(error, "code");
		out.error_message = string_member(error, "message");
		out.log_id = string_member(error, "log_id");
	}
	else if (json_is_string(error))
	{
		/* OAuth endpoints answer flat: {"error":"invalid_grant","error_description":..} */
		out.error_code = string_member(root, "error");
		out.error_message = string_member(root, "error_description");
		out.log_id = string_member(root, "log_id");
		if (out.error_code == "ok")
			return bad_response(http_status, "with a flat \"error\":\"ok\"");
	}
	else
		return bad_response(http_status, "without an \"error\" object" +
							quote_body(body, body_len, may_quote));

	if (out.error_code.empty())
		return bad_response(http_status, "with an \"error\" that has no code" +
							quote_body(body, body_len, may_quote));

	const json_t *data = json_object_get(root, "data");

	if (json_is_object(data))
	{
		out.data_json = json_dump(data);
		out.publish_id = string_member(data, "publish_id");
	}

	bool		success_status = http_status >= 200 && http_status < 300;

	if (out.error_code == "ok" && !success_status)
	{
		CallOutcome bad = bad_response(http_status, "with error code \"ok\"");

		/* Keep what TikTok did say: a publish_id may still matter to the caller. */
		bad.log_id = out.log_id;
		bad.publish_id = out.publish_id;
		bad.data_json = out.data_json;
		return bad;
	}
	out.ok = (out.error_code == "ok");
	return out;
}

/* True when the body is empty or only whitespace. */
bool
blank(const char *body, std::size_t body_len) noexcept
{
	for (std::size_t i = 0; i < body_len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
			return false;
	return true;
}

/*
 * Parses an OAuth reply (token or revoke). Errors, flat or envelope-style,
 * go through parse_envelope. A token reply's body is never quoted: it may
 * hold freshly issued tokens that no redaction knows about.
 */
CallOutcome
parse_oauth_reply(bool token_reply, long http_status, const char *body, std::size_t body_len)
{
	bool		success_status = http_status >= 200 && http_status < 300;
	bool		may_quote = !token_reply;

	if (body == nullptr || blank(body, body_len))
	{
		if (!token_reply && success_status)
		{
			CallOutcome out;	/* revoke: an empty body is TikTok's success */

			out.ok = true;
			out.http_status = http_status;
			out.error_code = "ok";
			return out;
		}
		return bad_response(http_status, "with an empty body");
	}

	JsonPtr		root = load_json(body, body_len);

	if (!root)
		return bad_response(http_status, "with a body that is not valid JSON" +
							quote_body(body, body_len, may_quote));
	if (!json_is_object(root.get()))
		return bad_response(http_status, "with JSON that is not an object" +
							quote_body(body, body_len, may_quote));

	const json_t *error = json_object_get(root.get(), "error");

	if (error != nullptr && !json_is_null(error))
	{
		CallOutcome out = parse_envelope(root.get(), http_status, body, body_len, may_quote);

		/* An envelope "ok" only says "no error": a token reply still needs its token. */
		if (!out.ok || !token_reply)
			return out;
	}

	if (!success_status)
		return bad_response(http_status, "without an \"error\"" +
							quote_body(body, body_len, may_quote));

	CallOutcome out;

	out.http_status = http_status;
	out.log_id = string_member(root.get(), "log_id");
	if (token_reply)
	{
		const json_t *access_token = json_object_get(root.get(), "access_token");

		if (!json_is_string(access_token) || json_string_length(access_token) == 0)
		{
			CallOutcome bad = bad_response(http_status, "without an \"access_token\" or an \"error\"" +
										   quote_body(body, body_len, false));

			bad.log_id = out.log_id;
			return bad;
		}
	}
	out.ok = true;
	out.error_code = "ok";
	out.data_json = json_dump(root.get());	/* the tokens: for the caller only */
	return out;
}

}								/* namespace */

/* Parses a TikTok reply; see the header. */
CallOutcome
parse_reply(long http_status, const char *body, std::size_t body_len)
{
	if (body == nullptr || body_len == 0)
		return bad_response(http_status, "with an empty body");

	JsonPtr		root = load_json(body, body_len);

	if (!root)
		return bad_response(http_status, "with a body that is not valid JSON: " +
							snippet(body, body_len));
	if (!json_is_object(root.get()))
		return bad_response(http_status, "with JSON that is not an object: " +
							snippet(body, body_len));
	return parse_envelope(root.get(), http_status, body, body_len, true);
}

/* Parses the reply of endpoint ep; see the header. */
CallOutcome
parse_endpoint_reply(vs_endpoint ep, long http_status, const char *body, std::size_t body_len)
{
	const EndpointInfo *info = endpoint_info(ep);
	ReplyFormat format = info ? info->reply : ReplyFormat::kEnvelope;

	switch (format)
	{
		case ReplyFormat::kOAuthToken:
			return parse_oauth_reply(true, http_status, body, body_len);
		case ReplyFormat::kOAuthRevoke:
			return parse_oauth_reply(false, http_status, body, body_len);
		case ReplyFormat::kEnvelope:
			break;
	}
	return parse_reply(http_status, body, body_len);
}

/* True when the reply proves TikTok refused the request; see the header. */
bool
proves_refusal(long http_status, const char *body, std::size_t body_len)
{
	/* A 5xx may come after TikTok acted (a fault, a proxy timing out): it proves nothing. */
	bool		status_ok = (http_status >= 200 && http_status < 300) ||
		(http_status >= 400 && http_status < 500);

	if (!status_ok || body == nullptr || body_len == 0)
		return false;

	JsonPtr		root = load_json(body, body_len);

	if (!root || !json_is_object(root.get()))
		return false;

	const json_t *data = json_object_get(root.get(), "data");
	const json_t *error = json_object_get(root.get(), "error");

	/* "data" may be absent or null (a gateway's 429), but not some other shape. */
	if ((data != nullptr && !json_is_object(data) && !json_is_null(data)) || !json_is_object(error))
		return false;

	const json_t *code = json_object_get(error, "code");

	/* A code with an embedded NUL is no code of TikTok's. */
	if (!json_is_string(code) || std::strlen(json_string_value(code)) != json_string_length(code))
		return false;
	return is_refusal_code(json_string_value(code));
}

}								/* namespace vibescaling */
