/*
 * http_transport.cpp: libcurl transport.
 *
 * Runs inside Postgres backends: no signals (CURLOPT_NOSIGNAL, Postgres owns
 * SIGALRM), no exceptions through curl's C frames (callbacks are noexcept
 * and only set flags), and cancellation through should_abort polled from
 * the progress callback.
 */
#include "http_transport.hpp"

#include "text_util.hpp"

#include <curl/curl.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>

namespace vibescaling {

namespace {

/* Replies larger than this are not TikTok's JSON: refuse them. */
constexpr std::size_t kMaxReplyBytes = 4u * 1024u * 1024u;

/* Deleter for an easy handle. */
struct CurlEasyCleanup
{
	void operator()(CURL *h) const noexcept { curl_easy_cleanup(h); }
};

/* Deleter for a header list. */
struct CurlSlistFree
{
	void operator()(curl_slist *l) const noexcept { curl_slist_free_all(l); }
};

using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyCleanup>;
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistFree>;

/* Per-transfer state shared with the callbacks. */
struct TransferState
{
	std::string body;
	bool		too_large = false;
	bool		out_of_memory = false;
	int			(*should_abort) (void) = nullptr;
};

/* Serializes use of the shared handle (Postgres backends are single-threaded; tests may not be). */
std::mutex g_handle_mutex;

/*
 * The process's easy handle, created on first use. Deliberately never
 * cleaned up: a destructor at exit could run after OpenSSL's own atexit
 * cleanup and crash the exiting backend; the OS reclaims it anyway.
 */
CURL	   *g_handle = nullptr;

/* The shared handle, creating it (and initializing libcurl) on first use; caller holds the mutex. */
CURL *
shared_handle()
{
	if (g_handle == nullptr)
	{
		/* curl_global_init is reference counted; calling it once per process is enough. */
		static const CURLcode global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);

		if (global_rc != CURLE_OK)
			throw std::runtime_error(std::string("curl_global_init failed: ") +
									 curl_easy_strerror(global_rc));
		CurlEasyPtr fresh(curl_easy_init());

		if (!fresh)
			throw std::bad_alloc();
		g_handle = fresh.release();
	}
	return g_handle;
}

/* curl write callback: appends to the reply body up to kMaxReplyBytes. */
size_t
on_write(char *data, size_t size, size_t nmemb, void *userp) noexcept
{
	TransferState *st = static_cast<TransferState *>(userp);
	size_t		n = size * nmemb;

	if (st->body.size() + n > kMaxReplyBytes)
	{
		st->too_large = true;
		return 0;				/* makes curl fail with CURLE_WRITE_ERROR */
	}
	try
	{
		st->body.append(data, n);
	}
	catch (...)
	{
		st->out_of_memory = true;
		return 0;
	}
	return n;
}

/* curl progress callback: asks the caller whether to give up (query cancel). */
int
on_progress(void *userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept
{
	TransferState *st = static_cast<TransferState *>(userp);

	/* Nonzero makes curl stop with CURLE_ABORTED_BY_CALLBACK. */
	return (st->should_abort != nullptr && st->should_abort() != 0) ? 1 : 0;
}

/* Throws when curl_easy_setopt fails (only on out-of-memory or an old libcurl). */
template <typename T>
void
set(CURL *h, CURLoption option, T value)
{
	CURLcode	rc = curl_easy_setopt(h, option, value);

	if (rc == CURLE_OUT_OF_MEMORY)
		throw std::bad_alloc();
	if (rc != CURLE_OK)
		throw std::runtime_error(std::string("curl_easy_setopt failed: ") +
								 curl_easy_strerror(rc));
}

/* Appends a header line to list; throws std::bad_alloc on failure. */
void
add_header(CurlSlistPtr &list, const std::string &line)
{
	curl_slist *grown = curl_slist_append(list.get(), line.c_str());

	if (grown == nullptr)
		throw std::bad_alloc();
	list.release();
	list.reset(grown);
}

/* True when s contains a byte that could break a header line. */
bool
has_control_chars(const std::string &s) noexcept
{
	for (unsigned char c : s)
		if (c < 0x20 || c == 0x7F)
			return true;
	return false;
}

/* Our code for a failed transfer. */
const char *
transport_code(CURLcode rc) noexcept
{
	switch (rc)
	{
		case CURLE_ABORTED_BY_CALLBACK:
			return "aborted";
		case CURLE_OPERATION_TIMEDOUT:
			return "timeout";
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return "connect_failed";
		default:
			return "transport_error";
	}
}

/* Milliseconds since start on the steady clock. */
double
elapsed_ms(std::chrono::steady_clock::time_point start) noexcept
{
	return std::chrono::duration<double, std::milli>(
		std::chrono::steady_clock::now() - start).count();
}

}								/* namespace */

/* POSTs req.body to req.url, or GETs it; see the header. */
HttpReply
http_send(const HttpRequest &req, bool *perform_started)
{
	/* A CR/LF in the token would inject headers. */
	if (req.send_bearer && has_control_chars(req.bearer_token))
		throw std::invalid_argument("access token contains control characters");
	if (has_control_chars(req.content_type))
		throw std::invalid_argument("content type contains control characters");

	std::lock_guard<std::mutex> lock(g_handle_mutex);
	CURL	   *h = shared_handle();

	/* Clears options, keeps the connection cache (keep-alive) and DNS cache. */
	curl_easy_reset(h);

	CurlSlistPtr headers;

	if (req.send_bearer)
		add_header(headers, "Authorization: Bearer " + req.bearer_token);
	if (!req.get)
		add_header(headers, "Content-Type: " + req.content_type);
	add_header(headers, "Accept: application/json");
	add_header(headers, "Expect:");	/* no 100-continue round trip */

	TransferState st;
	char		errbuf[CURL_ERROR_SIZE];

	errbuf[0] = '\0';
	st.should_abort = req.should_abort;

	set(h, CURLOPT_URL, req.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
	set(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	set(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	set(h, CURLOPT_NOSIGNAL, 1L);
	set(h, CURLOPT_FOLLOWLOCATION, 0L);
	set(h, CURLOPT_FRESH_CONNECT, req.fresh_connection ? 1L : 0L);
	set(h, CURLOPT_CONNECTTIMEOUT_MS, req.connect_timeout_ms > 0 ? req.connect_timeout_ms : 0L);
	set(h, CURLOPT_TIMEOUT_MS, req.request_timeout_ms > 0 ? req.request_timeout_ms : 0L);
	set(h, CURLOPT_HTTPHEADER, headers.get());
	set(h, CURLOPT_USERAGENT, "vibescaling");
	if (req.get)
		set(h, CURLOPT_HTTPGET, 1L);
	else
	{
		set(h, CURLOPT_POST, 1L);
		set(h, CURLOPT_POSTFIELDS, req.body.c_str());
		set(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
	}
	set(h, CURLOPT_WRITEFUNCTION, &on_write);
	set(h, CURLOPT_WRITEDATA, static_cast<void *>(&st));
	set(h, CURLOPT_NOPROGRESS, 0L);
	set(h, CURLOPT_XFERINFOFUNCTION, &on_progress);
	set(h, CURLOPT_XFERINFODATA, static_cast<void *>(&st));
	set(h, CURLOPT_ERRORBUFFER, errbuf);

	if (perform_started != nullptr)
		*perform_started = true;
	auto		start = std::chrono::steady_clock::now();
	CURLcode	rc = curl_easy_perform(h);

	HttpReply	reply;

	reply.duration_ms = elapsed_ms(start);

	long		status = 0;
	curl_off_t	connect_us = 0;
	long		request_size = 0;

	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_size);
	/* The handle outlives this call: never leave it pointing at our stack. */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, static_cast<char *>(nullptr));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, static_cast<curl_slist *>(nullptr));

	reply.http_status = status;
	if (st.out_of_memory)
		throw std::bad_alloc();
	if (rc == CURLE_OK)
	{
		reply.completed = true;
		reply.body = std::move(st.body);
		return reply;
	}

	if (st.too_large)
	{
		reply.error_code = "bad_response";
		reply.error_message = "TikTok replied HTTP " + std::to_string(status) +
			" with a body larger than 4 MB";
	}
	else
	{
		reply.error_code = transport_code(rc);
		std::string msg = curl_easy_strerror(rc);

		if (errbuf[0] != '\0' && msg != errbuf)
			msg += std::string(": ") + errbuf;
		/* curl's messages do not quote headers, but never risk leaking the token. */
		if (req.send_bearer)
			msg = redact(msg, req.bearer_token);
		reply.error_message = utf8_sanitize(msg.data(), msg.size(), 1000, true);
	}
	/* Once connected (or something was written) the server may have acted on it. */
	reply.outcome_unknown = reply.error_code != "connect_failed" &&
		(connect_us > 0 || request_size > 0);
	return reply;
}

}								/* namespace vibescaling */
