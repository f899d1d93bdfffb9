/*
 * curl_transfer.hpp: what one libcurl transfer needs, shared by the
 * single-call transport (http_transport.cpp, curl_easy_perform) and the
 * batch transport (multi_transport.cpp, the multi interface): request
 * checks, the easy-handle options every request gets, the callbacks, and
 * turning a finished transfer into an HttpReply.
 *
 * Runs inside Postgres backends: no signals (CURLOPT_NOSIGNAL, Postgres owns
 * SIGALRM), no exceptions through curl's C frames (callbacks are noexcept
 * and only copy bytes and set flags), and cancellation through should_abort
 * polled from the progress callback.
 */
#ifndef VS_CURL_TRANSFER_HPP
#define VS_CURL_TRANSFER_HPP

#include "http_transport.hpp"

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace vibescaling {

/* Deleter for a header list. */
struct CurlSlistFree
{
	void operator()(curl_slist *l) const noexcept { curl_slist_free_all(l); }
};

using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistFree>;

/* Per-transfer state shared with the callbacks; must outlive the transfer. */
struct TransferState
{
	CURL	   *handle = nullptr;
	std::string body;
	std::size_t max_body = kMaxReplyBytes;
	bool		truncate_body = false;
	bool		too_large = false;
	bool		truncated = false;	/* stopped on purpose: the reply still counts */
	bool		out_of_memory = false;
	int			(*should_abort) (void) = nullptr;

	char	   *sink = nullptr;
	std::size_t sink_capacity = 0;
	std::size_t sink_bytes = 0;
	bool		sink_overflow = false;
	bool		sink_takes_200 = true;

	const std::vector<std::string> *capture = nullptr;
	std::map<std::string, std::string> headers;

	const AddressPolicy *address_policy = nullptr;
	bool		address_refused = false;

	int			sends = 0;		/* times libcurl was about to send the request (this redirect hop) */
	long		sends_hop = 0;	/* the redirect hop sends counts for */
	bool		resend_blocked = false;	/* libcurl's own re-send was stopped */

	long		stall_timeout_ms = 0;
	curl_off_t	progress_bytes = -1;	/* down + up at the last progress seen */
	std::chrono::steady_clock::time_point progress_at;
	bool		stalled = false;
};

/* How long a kept-alive connection may sit idle before it is closed instead of reused. */
constexpr long kMaxIdleConnectionAgeS = 30;

/* Counters of the kept-alive connections (batches, single calls, uploads) since the process started. */
struct PoolStats
{
	long long	transfers = 0;			/* transfers on kept-alive connections */
	long long	connections_opened = 0;	/* new connections (CURLINFO_NUM_CONNECTS) */
	long long	connections_reused = 0;	/* sends on an already open connection */
};

/* A snapshot of the counters; never throws. */
PoolStats	pool_stats() noexcept;

/* Counts a finished kept-alive transfer on h (its sends over new and reused connections). */
void		count_pooled_transfer(CURL *h, const TransferState &st) noexcept;

/* Initializes libcurl once per process; throws std::runtime_error when that fails. */
void		ensure_curl_global_init();

/*
 * Throws std::invalid_argument when a token, content type, accept value,
 * header line or range of req holds a control character (header injection).
 */
void		check_request(const HttpRequest &req);

/*
 * Sets on h (freshly created or reset) every option req asks for: URL,
 * http/https only, no signals, redirects, timeouts, headers (built into
 * *headers, "Expect:" removed), User-Agent, method and body (req's buffer
 * used in place), and the callbacks, which write into st. errbuf
 * (CURL_ERROR_SIZE bytes), *headers, st and req's body must outlive the
 * transfer. A request is sent at most once per redirect hop: libcurl's own
 * re-send over a reused connection that died before any reply byte is
 * stopped (collect_reply reports it). Connection reuse itself is left to the
 * caller. Throws std::bad_alloc or std::runtime_error.
 */
void		setup_transfer(CURL *h, const HttpRequest &req, TransferState &st,
						   CurlSlistPtr &headers, char *errbuf);

/*
 * Unhooks h from everything setup_transfer pointed it at (error buffer,
 * header list, callback data, body), so a handle that outlives them never
 * points at freed memory.
 */
void		release_transfer(CURL *h, const HttpRequest &req) noexcept;

/*
 * The HttpReply of a finished transfer on h that ended with rc: a complete
 * reply, or the transport failure (code, message without the bearer token,
 * outcome_unknown once connected or something was written; a stopped
 * re-send is a "transport_error" of unknown outcome). Throws
 * std::bad_alloc when a callback ran out of memory.
 */
HttpReply	collect_reply(CURL *h, CURLcode rc, TransferState &st, const HttpRequest &req,
						  const char *errbuf, double duration_ms);

/*
 * Our code for a failed transfer ("aborted", "timeout", "connect_failed",
 * "file_too_large", "transport_error").
 */
const char *transport_code(CURLcode rc) noexcept;

/* Milliseconds since start on the steady clock. */
double		elapsed_ms(std::chrono::steady_clock::time_point start) noexcept;

/* curl_easy_setopt that throws (std::bad_alloc on out-of-memory, else std::runtime_error). */
template <typename T>
void
set_option(CURL *h, CURLoption option, T value)
{
	CURLcode	rc = curl_easy_setopt(h, option, value);

	if (rc == CURLE_OUT_OF_MEMORY)
		throw std::bad_alloc();
	if (rc != CURLE_OK)
		throw std::runtime_error(std::string("curl_easy_setopt failed: ") +
								 curl_easy_strerror(rc));
}

}								/* namespace vibescaling */

#endif
