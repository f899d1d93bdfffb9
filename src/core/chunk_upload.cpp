/*
 * chunk_upload.cpp: PUT of one FILE_UPLOAD chunk ("FILE_UPLOAD chunks" in
 * docs/tiktok-api.md).
 *
 * The upload_url carries its upload token in the query string, so the URL
 * is a secret: it is never quoted, and its query string is masked in every
 * message. The PUT sends no Authorization header. Each PUT goes through
 * http_send, on a connection of its own; a PUT of the same range is
 * idempotent, so a kept-alive connection would be safe too, but uploads do
 * not use the pool yet.
 */
#include "chunk_upload.hpp"

#include "chunk_plan.hpp"
#include "http_transport.hpp"
#include "json_raii.hpp"
#include "text_util.hpp"
#include "transfer_util.hpp"

#include <cstring>

namespace vibescaling {

namespace {

/* At most this many bytes of an unexpected body are quoted in a message. */
constexpr std::size_t kSnippetBytes = 200;

/* The content types TikTok takes for a chunk. */
const char *const kVideoTypes[] = {"video/mp4", "video/quicktime", "video/webm"};

/* A failure detected before anything was sent. */
CallOutcome
refused(const char *message)
{
	CallOutcome out;

	out.error_code = "invalid_param";
	out.error_message = message;
	return out;
}

/* Why the chunk cannot be sent, or nullptr when it can. */
const char *
chunk_problem(const vs_http_options *opt, const vs_chunk_put *chunk)
{
	if (opt == nullptr)
		return "no HTTP options given for the chunk upload";
	if (chunk == nullptr)
		return "no chunk given";
	if (chunk->upload_url == nullptr || !is_http_url(chunk->upload_url))
		return "upload_url must be an http or https URL without control characters";
	bool		known_type = false;

	for (const char *type : kVideoTypes)
		if (chunk->content_type != nullptr && std::strcmp(chunk->content_type, type) == 0)
			known_type = true;
	if (!known_type)
		return "content_type must be video/mp4, video/quicktime or video/webm";
	if (chunk->total <= 0 || chunk->total > kMaxVideoSize)
		return "total must be between 1 byte and 4 GiB";
	if (chunk->first < 0 || chunk->length <= 0 || chunk->first >= chunk->total ||
		chunk->length > chunk->total - chunk->first)
		return "first and length must give a non-empty range inside [0, total)";
	if (chunk->data == nullptr)
		return "data must not be NULL";
	return nullptr;
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

/* True when the body is empty or only whitespace. */
bool
blank(const std::string &body) noexcept
{
	for (char c : body)
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			return false;
	return true;
}

}								/* namespace */

/* The error_code for a chunk PUT answered with http_status. */
const char *
chunk_put_error_code(long http_status) noexcept
{
	switch (http_status)
	{
		case 400:
			return "chunk_rejected";
		case 403:
			return "upload_url_expired";
		case 404:
			return "upload_not_found";
		case 416:
			return "range_mismatch";
		case 429:
			return "rate_limit_exceeded";
		default:
			break;
	}
	if (http_status >= 500)
		return "internal_error";
	if (http_status >= 400)
		return "chunk_rejected";
	return "bad_response";		/* 1xx/2xx/3xx other than 201/206: not the upload protocol */
}

/* The outcome of a chunk PUT that got an HTTP reply. */
CallOutcome
chunk_put_reply(long http_status, const std::string &body, const std::string &content_range)
{
	CallOutcome out;
	ContentRange range = parse_content_range(content_range);
	long long	uploaded = (range.valid && !range.unsatisfied && range.first == 0) ?
		range.last + 1 : -1;
	bool		complete = http_status == 201;

	out.http_status = http_status;
	out.ok = http_status == 201 || http_status == 206;

	JsonPtr		data = new_json_object();

	json_put_new(data.get(), "complete", json_boolean(complete));
	json_put_new(data.get(), "uploaded_bytes", json_integer(uploaded));
	out.data_json = json_dump(data.get());

	/* The upload endpoint answers errors (and maybe successes) in TikTok's envelope. */
	std::string tiktok_code;
	std::string tiktok_message;

	if (!blank(body))
	{
		json_error_t err;
		JsonPtr		root(json_loadb(body.data(), body.size(), 0, &err));
		const json_t *error = root ? json_object_get(root.get(), "error") : nullptr;

		if (json_is_object(error))
		{
			tiktok_code = string_member(error, "code");
			tiktok_message = string_member(error, "message");
			out.log_id = string_member(error, "log_id");
		}
	}

	if (out.ok)
	{
		out.error_code = "ok";
		return out;
	}

	out.error_code = chunk_put_error_code(http_status);
	std::string msg = "chunk upload answered HTTP " + std::to_string(http_status);

	if (!tiktok_code.empty() || !tiktok_message.empty())
	{
		msg += " (" + tiktok_code;
		if (!tiktok_message.empty())
			msg += (tiktok_code.empty() ? "" : ": ") + tiktok_message;
		msg += ")";
	}
	else if (blank(body))
		msg += " with an empty body";
	else
		msg += ": " + utf8_sanitize(body.data(), body.size(), kSnippetBytes, true);
	out.error_message = utf8_sanitize(msg.data(), msg.size(), 1000, true);
	return out;
}

/* PUTs one chunk; see the header. */
CallOutcome
put_chunk(const vs_http_options *opt, const vs_chunk_put *chunk, bool *perform_started)
{
	const char *problem = chunk_problem(opt, chunk);

	if (problem != nullptr)
		return refused(problem);

	std::string url = chunk->upload_url;
	long long	last = chunk->first + chunk->length - 1;
	HttpRequest req;

	req.url = url;
	req.verb = HttpVerb::kPut;
	req.send_bearer = false;		/* the URL carries the upload token */
	req.content_type = chunk->content_type;
	req.body_data = chunk->data;
	req.body_size = static_cast<std::size_t>(chunk->length);
	req.extra_headers.push_back("Content-Range: bytes " + std::to_string(chunk->first) + "-" +
								std::to_string(last) + "/" + std::to_string(chunk->total));
	req.capture_headers.push_back("content-range");
	req.connect_timeout_ms = opt->connect_timeout_ms;
	if (opt->ca_file != nullptr)
		req.ca_file = opt->ca_file;
	req.request_timeout_ms = opt->request_timeout_ms;
	req.should_abort = opt->should_abort;
	req.keep_alive = true;		/* the video's chunks go one after another to one host */

	HttpReply	reply = http_send(req, perform_started);
	CallOutcome out;

	if (reply.completed)
	{
		auto		it = reply.headers.find("content-range");

		out = chunk_put_reply(reply.http_status, reply.body,
							  it != reply.headers.end() ? it->second : std::string());
	}
	else
	{
		out.http_status = reply.http_status;
		out.error_code = reply.error_code;
		out.error_message = reply.error_message;
		out.outcome_unknown = reply.outcome_unknown;
	}
	out.duration_ms = reply.duration_ms;
	out.error_message = redact_url(std::move(out.error_message), url);
	return out;
}

}								/* namespace vibescaling */
