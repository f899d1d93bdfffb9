/*
 * range_fetch.cpp: GETs of a video source, whole-size probe and byte
 * ranges. This is our own download (not TikTok): redirects are followed
 * (at most kSourceMaxRedirects, http/https only), no Authorization header
 * is sent, and the URL's query string (a pre-signed URL's credentials) is
 * masked in every message.
 *
 * Bodies of 200/206 replies go straight into the caller's buffer, never
 * past its end; other replies' bodies are kept only for the message (cut
 * at kErrorBodyBytes).
 */
#include "range_fetch.hpp"

#include "http_transport.hpp"
#include "json_raii.hpp"
#include "text_util.hpp"
#include "transfer_util.hpp"

#include <climits>
#include <cstdint>

namespace vibescaling {

namespace {

/* Error bodies are read up to this size (they only feed the message). */
constexpr std::size_t kErrorBodyBytes = 64 * 1024;

/* At most this many bytes of an error body are quoted in a message. */
constexpr std::size_t kSnippetBytes = 200;

/* A failure detected before anything was sent. */
CallOutcome
refused(const char *message)
{
	CallOutcome out;

	out.error_code = "invalid_param";
	out.error_message = message;
	return out;
}

/* A failure with a code and message about a reply of http_status. */
CallOutcome
failure(long http_status, const char *code, const std::string &message)
{
	CallOutcome out;

	out.http_status = http_status;
	out.error_code = code;
	out.error_message = utf8_sanitize(message.data(), message.size(), 1000, true);
	return out;
}

/* A GET of url with the settings both calls share. */
HttpRequest
source_request(const vs_http_options *opt, const char *url)
{
	HttpRequest req;

	req.url = url;
	req.verb = HttpVerb::kGet;
	req.send_bearer = false;
	req.accept = "";			/* curl's default: any type */
	req.max_redirects = kSourceMaxRedirects;
	req.max_reply_bytes = kErrorBodyBytes;
	req.truncate_reply = true;
	req.capture_headers = {"content-range", "content-length", "content-type"};
	req.connect_timeout_ms = opt->connect_timeout_ms;
	if (opt->ca_file != nullptr)
		req.ca_file = opt->ca_file;
	req.request_timeout_ms = opt->request_timeout_ms;
	req.should_abort = opt->should_abort;
	return req;
}

/* A captured reply header, "" when absent. */
std::string
header(const HttpReply &reply, const char *name)
{
	auto		it = reply.headers.find(name);

	return it != reply.headers.end() ? it->second : std::string();
}

/* The media type of a Content-Type value: lower-case, without parameters or blanks. */
std::string
media_type(const std::string &value)
{
	std::string out;

	for (char c : value)
	{
		if (c == ';')
			break;
		if (c == ' ' || c == '\t')
			continue;
		out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
	}
	return utf8_sanitize(out.data(), out.size(), 255, true);
}

/* "source_http_error" for an unexpected status, quoting the start of the body. */
CallOutcome
http_error(const HttpReply &reply)
{
	std::string msg = "the video source answered HTTP " + std::to_string(reply.http_status);

	if (!reply.body.empty())
		msg += ": " + utf8_sanitize(reply.body.data(), reply.body.size(), kSnippetBytes, true);
	return failure(reply.http_status, "source_http_error", msg);
}

/* The outcome of a transfer that got no usable reply. */
CallOutcome
transport_failure(const HttpReply &reply)
{
	CallOutcome out;

	out.http_status = reply.http_status;
	out.error_code = reply.error_code;
	out.error_message = reply.error_message;
	out.outcome_unknown = reply.outcome_unknown;
	return out;
}

/* The probe's answer from a reply (GET Range: bytes=0-0). */
CallOutcome
probe_outcome(const HttpReply &reply)
{
	long		status = reply.http_status;
	long long	size = -1;
	bool		accepts_ranges = false;
	ContentRange range = parse_content_range(header(reply, "content-range"));

	if (status == 206 || status == 416)
	{
		/* 416 for bytes=0-0 is an empty source: "bytes * /0". */
		if (status == 416 && !(range.valid && range.unsatisfied))
			return http_error(reply);
		accepts_ranges = true;
		if (range.valid)
			size = range.total;
	}
	else if (status == 200)
		size = parse_content_length(header(reply, "content-length"));	/* it ignored Range */
	else
		return http_error(reply);

	CallOutcome out;
	JsonPtr		data = new_json_object();

	json_put_new(data.get(), "size", json_integer(size));
	json_put(data.get(), "content_type", json_text(media_type(header(reply, "content-type")).c_str()).get());
	json_put_new(data.get(), "accepts_ranges", json_boolean(accepts_ranges));
	out.http_status = status;
	out.data_json = json_dump(data.get());
	if (size < 0)
	{
		out.error_code = "source_size_unknown";
		out.error_message = "the video source answered HTTP " + std::to_string(status) +
			" without telling its size (no Content-Range total or Content-Length)";
		return out;
	}
	out.ok = true;
	out.error_code = "ok";
	return out;
}

/* The outcome of a range GET for [first, first + length). */
CallOutcome
range_outcome(const HttpReply &reply, long long first, long long length)
{
	long		status = reply.http_status;
	long long	got = static_cast<long long>(reply.sink_bytes);
	long long	last = first + length - 1;
	ContentRange range = parse_content_range(header(reply, "content-range"));
	long long	total = -1;

	if (status == 206 && range.valid)
		total = range.total;
	else if (status == 200)
		total = parse_content_length(header(reply, "content-length"));

	if (status == 416)
		return failure(status, "source_too_short",
					   "the video source has no byte " + std::to_string(first) + " (HTTP 416" +
					   (range.valid && range.total >= 0 ? ", size " + std::to_string(range.total) : std::string()) +
					   ")");
	if (status != 200 && status != 206)
		return http_error(reply);

	std::string asked = "bytes " + std::to_string(first) + "-" + std::to_string(last);
	CallOutcome out;

	if (status == 200 && (first != 0 || reply.sink_overflow))
		out = failure(status, "range_not_supported",
					  "the video source ignored the Range header (HTTP 200 with the whole file) for " +
					  asked);
	else if (reply.sink_overflow)
		out = failure(status, "bad_response",
					  "the video source sent more than the " + std::to_string(length) +
					  " bytes asked for (" + asked + ")");
	else if (status == 206 && range.valid &&
			 (range.unsatisfied || range.first != first || range.last > last))
		out = failure(status, "bad_response",
					  "the video source answered a different range than " + asked);
	else if (got != length)
	{
		bool		shorter_source = (total >= 0 && total <= last) ||
			(status == 206 && range.valid && range.last < last);

		out = failure(status, shorter_source ? "source_too_short" : "bad_response",
					  "the video source sent " + std::to_string(got) + " of the " +
					  std::to_string(length) + " bytes asked for (" + asked +
					  (total >= 0 ? ", size " + std::to_string(total) : std::string()) + ")");
	}
	else
	{
		out.ok = true;
		out.http_status = status;
		out.error_code = "ok";
	}

	JsonPtr		data = new_json_object();

	json_put_new(data.get(), "received", json_integer(got));
	json_put_new(data.get(), "total", json_integer(total));
	out.data_json = json_dump(data.get());
	return out;
}

}								/* namespace */

/* Size and type of the source at url; see the header. */
CallOutcome
probe_source(const vs_http_options *opt, const char *url, bool *perform_started)
{
	if (opt == nullptr)
		return refused("no HTTP options given for the source download");
	if (url == nullptr || !is_http_url(url))
		return refused("the source URL must be an http or https URL without control characters");

	std::string url_text = url;
	char		first_byte[1];
	HttpRequest req = source_request(opt, url);

	/* A GET, not a HEAD: pre-signed URLs are often signed for GET only. */
	req.range = "0-0";
	req.sink = first_byte;
	req.sink_capacity = sizeof first_byte;	/* a 200 (whole file) stops after one byte */

	HttpReply	reply = http_send(req, perform_started);
	CallOutcome out = reply.completed ? probe_outcome(reply) : transport_failure(reply);

	out.duration_ms = reply.duration_ms;
	out.error_message = redact_url(std::move(out.error_message), url_text);
	return out;
}

/* Bytes [first, first + length) of the source at url into buffer; see the header. */
CallOutcome
fetch_range(const vs_http_options *opt, const char *url, long long first, long long length,
			char *buffer, long long *received, bool *perform_started)
{
	if (received != nullptr)
		*received = 0;
	if (opt == nullptr)
		return refused("no HTTP options given for the source download");
	if (url == nullptr || !is_http_url(url))
		return refused("the source URL must be an http or https URL without control characters");
	if (first < 0 || length <= 0 || length > LLONG_MAX - first)
		return refused("first must be >= 0 and length > 0");
	if (static_cast<unsigned long long>(length) > static_cast<unsigned long long>(SIZE_MAX))
		return refused("length does not fit in memory");
	if (buffer == nullptr)
		return refused("buffer must not be NULL");

	std::string url_text = url;
	HttpRequest req = source_request(opt, url);

	req.range = std::to_string(first) + "-" + std::to_string(first + length - 1);
	req.sink = buffer;
	req.sink_capacity = static_cast<std::size_t>(length);
	req.sink_takes_200 = (first == 0);	/* else a 200 is the file's start: not ours to store */

	HttpReply	reply = http_send(req, perform_started);

	if (received != nullptr)
		*received = static_cast<long long>(reply.sink_bytes);

	CallOutcome out = reply.completed ? range_outcome(reply, first, length) : transport_failure(reply);

	out.duration_ms = reply.duration_ms;
	out.error_message = redact_url(std::move(out.error_message), url_text);
	return out;
}

}								/* namespace vibescaling */
