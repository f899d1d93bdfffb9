/*
 * range_fetch.cpp: GETs of a video source, whole-size probe and byte
 * ranges. This is our own download (not TikTok) of a URL a tenant chose,
 * so it is fenced in:
 *   - only public addresses are connected to, unless the allow-list names
 *     them (address_policy.hpp), checked on every socket after DNS and on
 *     every redirect hop (at most kSourceMaxRedirects, http/https only);
 *   - no Authorization header is sent, environment proxies are not used;
 *   - its own connect timeout and stall timeout (no byte for that long);
 *   - nothing past TikTok's 4 GiB is read, and a source announcing more is
 *     refused;
 *   - the probe reads the first bytes and only a video container (sniffed,
 *     whatever the Content-Type says) is accepted, unless its caller
 *     probes any media (the media checks name the format themselves);
 *   - messages never quote the source's reply, and every transport
 *     failure (refused address, refused connection, DNS, timeout, stall,
 *     TLS, redirects) is the one generic "source_unreachable", so that a
 *     caller cannot map ports and hosts through them. The URL itself never
 *     appears in a message (its query string may be a pre-signed URL's
 *     credentials).
 *
 * Bodies of 200/206 replies go straight into the caller's buffer, never
 * past its end; other replies' bodies are not read.
 */
#include "range_fetch.hpp"

#include "address_policy.hpp"
#include "chunk_plan.hpp"
#include "http_transport.hpp"
#include "json_raii.hpp"
#include "text_util.hpp"
#include "transfer_util.hpp"
#include "video_sniff.hpp"

#include <climits>
#include <stdexcept>
#include <cstdint>

namespace vibescaling {

namespace {

/* Bytes the probe reads to recognise the container. */
constexpr std::size_t kSniffBytes = 64;

/* Defaults of the source timeouts (vs_http_options: <= 0). */
constexpr long kDefaultSourceConnectTimeoutMs = 5000;
constexpr long kDefaultSourceStallTimeoutMs = 10000;

/* The one message of every transport failure of a source: it tells nothing of the port or host. */
constexpr char kUnreachableMessage[] =
	"could not download the video source (no connection, no answer in time, or refused)";

/* A failure detected before anything was sent. */
CallOutcome
refused(const std::string &message)
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

/* "source_too_large": more than TikTok takes. */
CallOutcome
too_large(long http_status, long long size)
{
	std::string what = size >= 0 ? std::to_string(size) + " bytes, " : std::string();

	return failure(http_status, "source_too_large",
				   "the video source is larger than TikTok accepts (" + what + "at most " +
				   std::to_string(kMaxVideoSize) + ")");
}

/*
 * A GET of url with the settings both calls share. policy must outlive the
 * request.
 */
HttpRequest
source_request(const vs_http_options *opt, const char *url, const AddressPolicy &policy)
{
	HttpRequest req;

	req.url = url;
	req.verb = HttpVerb::kGet;
	req.send_bearer = false;
	req.accept = "";			/* curl's default: any type */
	req.max_redirects = kSourceMaxRedirects;
	req.max_reply_bytes = 0;	/* error pages are never read: nothing of them is quoted */
	req.truncate_reply = true;
	req.capture_headers = {"content-range", "content-length"};
	req.connect_timeout_ms = opt->source_connect_timeout_ms > 0 ? opt->source_connect_timeout_ms
		: kDefaultSourceConnectTimeoutMs;
	req.stall_timeout_ms = opt->source_stall_timeout_ms > 0 ? opt->source_stall_timeout_ms
		: kDefaultSourceStallTimeoutMs;
	if (opt->ca_file != nullptr)
		req.ca_file = opt->ca_file;
	req.request_timeout_ms = opt->request_timeout_ms;
	req.should_abort = opt->should_abort;
	req.address_policy = &policy;
	req.max_file_size = kMaxVideoSize;
	req.keep_alive = true;		/* a video's ranges come one after another from one host */
	return req;
}

/* The address policy of opt, or false with *error set when its allow-list is malformed. */
bool
source_policy(const vs_http_options *opt, AddressPolicy *policy, std::string *error)
{
	try
	{
		*policy = AddressPolicy::with_allowed(opt->source_allowed_networks);
		return true;
	}
	catch (const std::invalid_argument &e)
	{
		*error = std::string("the allowed source networks are malformed: ") + e.what();
		return false;
	}
}

/* A captured reply header, "" when absent. */
std::string
header(const HttpReply &reply, const char *name)
{
	auto		it = reply.headers.find(name);

	return it != reply.headers.end() ? it->second : std::string();
}

/* "source_http_error" for an unexpected status: the status only, never the body. */
CallOutcome
http_error(const HttpReply &reply)
{
	return failure(reply.http_status, "source_http_error",
				   "could not download the video source (HTTP " + std::to_string(reply.http_status) + ")");
}

/*
 * The outcome of a transfer that got no usable reply: "aborted" for the
 * caller's own cancel, a too large body, else the one generic
 * "source_unreachable" (a refused address looks like a refused connection).
 */
CallOutcome
transport_failure(const HttpReply &reply)
{
	if (reply.error_code == "file_too_large")
		return too_large(reply.http_status, -1);

	CallOutcome out;

	if (reply.error_code == "aborted" && !reply.address_refused && !reply.stalled)
	{
		out.error_code = "aborted";
		out.error_message = "the video source download was cancelled";
		return out;
	}
	/* A GET of a source creates nothing: its outcome is never unknown. */
	out.error_code = "source_unreachable";
	out.error_message = kUnreachableMessage;
	return out;
}

/*
 * The probe's answer from a reply (GET Range: bytes=0-63) whose first
 * head_len bytes are in head; bytes that are no video are refused only
 * when require_video.
 */
CallOutcome
probe_outcome(const HttpReply &reply, const unsigned char *head, std::size_t head_len,
			  bool require_video)
{
	long		status = reply.http_status;
	long long	size = -1;
	bool		accepts_ranges = false;
	ContentRange range = parse_content_range(header(reply, "content-range"));

	if (status == 206 || status == 416)
	{
		/* 416 for bytes=0-63 is an empty source: "bytes * /0". */
		if (status == 416 && !(range.valid && range.unsatisfied && range.total == 0))
			return http_error(reply);
		accepts_ranges = true;
		if (range.valid)
			size = range.total;
	}
	else if (status == 200)
		size = parse_content_length(header(reply, "content-length"));	/* it ignored Range */
	else
		return http_error(reply);

	if (size > kMaxVideoSize)
		return too_large(status, size);

	/* The container decides the type, never the Content-Type header. */
	const char *type = head_len > 0 ? sniff_video_type(head, head_len) : nullptr;
	CallOutcome out;
	JsonPtr		data = new_json_object();

	json_put_new(data.get(), "size", json_integer(size));
	json_put(data.get(), "content_type", json_text(type != nullptr ? type : "").get());
	json_put_new(data.get(), "accepts_ranges", json_boolean(accepts_ranges));
	out.http_status = status;
	out.data_json = json_dump(data.get());
	if (size < 0)
	{
		out.error_code = "source_size_unknown";
		out.error_message = "could not download the video source (HTTP " + std::to_string(status) +
			" without its size: no Content-Range total or Content-Length)";
		return out;
	}
	if (require_video && size > 0 && type == nullptr)
	{
		out.error_code = "source_not_video";
		out.error_message = "the video source is not MP4, MOV or WebM: its first bytes match none "
			"of those containers, whatever its Content-Type says";
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

	if (total > kMaxVideoSize || (status == 416 && range.valid && range.total > kMaxVideoSize))
		return too_large(status, total > kMaxVideoSize ? total : range.total);
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

/*
 * Sends a source request on a kept-alive connection. A GET changes
 * nothing at the source, so when libcurl's own re-send over a reused
 * connection that died was stopped (no reply byte arrived), it is sent
 * once more here, on a fresh connection.
 */
HttpReply
send_source_request(HttpRequest &req, bool *perform_started)
{
	HttpReply	reply = http_send(req, perform_started);

	if (!reply.completed && reply.resend_blocked)
	{
		req.keep_alive = false;
		reply = http_send(req, perform_started);
	}
	return reply;
}

}								/* namespace */

/* Size and type of the source at url; see the header. */
CallOutcome
probe_source(const vs_http_options *opt, const char *url, bool *perform_started, bool require_video)
{
	if (opt == nullptr)
		return refused("no HTTP options given for the source download");
	if (url == nullptr || !is_http_url(url))
		return refused("the source URL must be an http or https URL without control characters");

	AddressPolicy policy;
	std::string error;

	if (!source_policy(opt, &policy, &error))
		return refused(error);

	std::string url_text = url;
	unsigned char head[kSniffBytes];
	HttpRequest req = source_request(opt, url, policy);

	/* A GET, not a HEAD: pre-signed URLs are often signed for GET only. */
	req.range = "0-" + std::to_string(kSniffBytes - 1);
	req.sink = reinterpret_cast<char *>(head);
	req.sink_capacity = sizeof head;	/* a 200 (whole file) stops after these bytes */

	HttpReply	reply = send_source_request(req, perform_started);
	CallOutcome out = reply.completed ? probe_outcome(reply, head, reply.sink_bytes, require_video) : transport_failure(reply);

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
	if (first + length > kMaxVideoSize)
		return refused("a video source is read only within TikTok's limit of " +
					   std::to_string(kMaxVideoSize) + " bytes");
	if (static_cast<unsigned long long>(length) > static_cast<unsigned long long>(SIZE_MAX))
		return refused("length does not fit in memory");
	if (buffer == nullptr)
		return refused("buffer must not be NULL");

	AddressPolicy policy;
	std::string error;

	if (!source_policy(opt, &policy, &error))
		return refused(error);

	std::string url_text = url;
	HttpRequest req = source_request(opt, url, policy);

	req.range = std::to_string(first) + "-" + std::to_string(first + length - 1);
	req.sink = buffer;
	req.sink_capacity = static_cast<std::size_t>(length);
	req.sink_takes_200 = (first == 0);	/* else a 200 is the file's start: not ours to store */

	HttpReply	reply = send_source_request(req, perform_started);

	if (received != nullptr)
		*received = static_cast<long long>(reply.sink_bytes);

	CallOutcome out = reply.completed ? range_outcome(reply, first, length) : transport_failure(reply);

	out.duration_ms = reply.duration_ms;
	out.error_message = redact_url(std::move(out.error_message), url_text);
	return out;
}

}								/* namespace vibescaling */
