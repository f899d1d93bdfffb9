/*
 * reply_parser.cpp: reads TikTok's response envelope.
 *
 * Success is decided by error.code alone ("ok"), never by the HTTP status:
 * creator_info answers HTTP 200 with spam_risk_* codes. A non-2xx reply
 * claiming "ok" is contradictory and is treated as a bad response.
 */
#include "reply_parser.hpp"

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

}								/* namespace */

/* Parses a TikTok reply; see the header. */
CallOutcome
parse_reply(long http_status, const char *body, std::size_t body_len)
{
	if (body == nullptr || body_len == 0)
		return bad_response(http_status, "with an empty body");

	json_error_t err;
	/* jansson rejects invalid UTF-8 and \u0000, which Postgres could not store anyway;
	 * integers are parsed as long long, so 19-digit post ids stay exact. */
	JsonPtr		root(json_loadb(body, body_len, JSON_DECODE_ANY, &err));

	if (!root)
		return bad_response(http_status, "with a body that is not valid JSON: " +
							snippet(body, body_len));
	if (!json_is_object(root.get()))
		return bad_response(http_status, "with JSON that is not an object: " +
							snippet(body, body_len));

	CallOutcome out;
	const json_t *error = json_object_get(root.get(), "error");

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
		out.error_code = string_member(root.get(), "error");
		out.error_message = string_member(root.get(), "error_description");
		out.log_id = string_member(root.get(), "log_id");
		if (out.error_code == "ok")
			return bad_response(http_status, "with a flat \"error\":\"ok\"");
	}
	else
		return bad_response(http_status, "without an \"error\" object: " +
							snippet(body, body_len));

	if (out.error_code.empty())
		return bad_response(http_status, "with an \"error\" that has no code: " +
							snippet(body, body_len));

	const json_t *data = json_object_get(root.get(), "data");

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

}								/* namespace vibescaling */
