/*
 * http_transport.hpp: one HTTP(S) request (POST, GET or PUT) through
 * libcurl, on a per-process reused handle (its DNS cache and kept-alive
 * connections survive between calls). The requests that go one at a time
 * use it: the OAuth token and revoke calls (call.cpp, a fresh connection
 * each), chunk PUTs (chunk_upload.cpp) and video source downloads
 * (range_fetch.cpp), both kept alive. Every other TikTok call, single
 * (vs_call) or batched (vs_call_many), rides the pool of
 * multi_transport.hpp.
 */
#ifndef VS_HTTP_TRANSPORT_HPP
#define VS_HTTP_TRANSPORT_HPP

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace vibescaling {

class AddressPolicy;

/* Replies larger than this are not TikTok's JSON: refused unless a request says otherwise. */
constexpr std::size_t kMaxReplyBytes = 4u * 1024u * 1024u;

/* The request method. */
enum class HttpVerb
{
	kPost,						/* body: body_data/body_size, else body */
	kGet,						/* no body */
	kPut,						/* body: body_data/body_size, else body */
};

/* What to send and how long to wait. */
struct HttpRequest
{
	std::string url;
	HttpVerb	verb = HttpVerb::kPost;
	bool		send_bearer = true; /* "Authorization: Bearer <bearer_token>" */
	std::string bearer_token;		/* must hold no control characters */
	std::string content_type = "application/json; charset=UTF-8";	/* POST/PUT only */
	std::string body;				/* POST/PUT body when body_data is null */

	/*
	 * A POST/PUT body handed to libcurl as is, NOT copied: it must stay
	 * valid until http_send returns. Used instead of body when non-null.
	 */
	const char *body_data = nullptr;
	std::size_t body_size = 0;

	std::string accept = "application/json";	/* "" leaves curl's default Accept header */
	std::vector<std::string> extra_headers;	/* whole "Name: value" lines */
	std::string range;				/* CURLOPT_RANGE ("0-99" sends Range: bytes=0-99), "" none */
	long		max_redirects = 0;	/* > 0: follow up to that many (http/https only) */

	/* Reply headers to keep (lower-case names), from the final response only. */
	std::vector<std::string> capture_headers;

	/*
	 * Reply body limit. Past it the transfer stops: an error ("bad_response")
	 * unless truncate_reply, in which case the reply counts as complete with
	 * HttpReply::truncated set.
	 */
	std::size_t max_reply_bytes = kMaxReplyBytes;
	bool		truncate_reply = false;

	/*
	 * When non-null, the body of a 206 reply (and of a 200 one when
	 * sink_takes_200) is written here (at most sink_capacity bytes, never
	 * more) instead of into HttpReply::body; a longer body stops the
	 * transfer and sets HttpReply::sink_overflow (the reply still counts as
	 * complete). Other replies' bodies go to HttpReply::body as usual.
	 */
	char	   *sink = nullptr;
	std::size_t sink_capacity = 0;
	bool		sink_takes_200 = true;

	std::string ca_file;			/* trusted CAs (PEM) instead of the system's; "" for the system's */
	long		connect_timeout_ms = 0;
	long		request_timeout_ms = 0;
	int			(*should_abort) (void) = nullptr;	/* polled; nonzero aborts */

	/*
	 * When non-null (source downloads), every socket the transfer opens is
	 * checked first: an address the policy does not permit is never
	 * connected to (the transfer fails, HttpReply::address_refused set).
	 * Proxies from the environment are not used then. Must outlive the call.
	 */
	const AddressPolicy *address_policy = nullptr;

	/*
	 * > 0: the transfer is abandoned ("timeout", HttpReply::stalled) when
	 * no byte moves for this long, checked from the progress callback, with
	 * libcurl's low-speed limit (1 byte/s over the same time, in whole
	 * seconds) as a backstop.
	 */
	long		stall_timeout_ms = 0;

	/* > 0: a reply announcing a larger body fails with "file_too_large" (CURLOPT_MAXFILESIZE_LARGE). */
	long long	max_file_size = 0;

	/*
	 * http_send only: reuse a kept-alive connection of the process's handle
	 * (and keep this one open) instead of a fresh connection per request.
	 * libcurl's own re-send over a reused connection that died is stopped
	 * (a "transport_error" of unknown outcome): the caller decides whether
	 * to send again, and logs it.
	 */
	bool		keep_alive = false;
};

/* What came back, or why nothing usable did. */
struct HttpReply
{
	bool		completed = false;	/* a whole HTTP reply was read (or cut on purpose) */
	long		http_status = 0;	/* 0 when no status line arrived */
	std::string body;				/* when completed (not what went to the sink) */
	std::map<std::string, std::string> headers; /* captured: lower-case name -> trimmed value */
	bool		truncated = false;	/* body cut at max_reply_bytes (truncate_reply) */
	std::size_t sink_bytes = 0;		/* bytes written to the sink */
	bool		sink_overflow = false;	/* the body was longer than sink_capacity */
	std::string error_code;			/* when !completed: timeout, aborted, ... */
	std::string error_message;		/* when !completed; never holds the token */
	bool		outcome_unknown = false;	/* the request may have reached the server */
	bool		address_refused = false;	/* the policy refused an address (see HttpRequest) */
	bool		stalled = false;	/* no byte moved for stall_timeout_ms */
	bool		resend_blocked = false; /* libcurl's re-send over a dead reused connection was stopped */
	double		duration_ms = 0.0;
};

/*
 * Sends req (see HttpRequest). Sets *perform_started just before the
 * request can leave the process. Throws std::bad_alloc when memory runs
 * out, std::invalid_argument for a token, content type, header line or
 * range with control characters.
 */
HttpReply	http_send(const HttpRequest &req, bool *perform_started);

}								/* namespace vibescaling */

#endif
