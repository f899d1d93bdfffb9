/*
 * http_transport.cpp: one request through libcurl's easy interface on a
 * process-wide handle (the per-transfer setup, callbacks and reply
 * collection live in curl_transfer.cpp).
 */
#include "http_transport.hpp"

#include "curl_transfer.hpp"

#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <new>

namespace vibescaling {

namespace {

/* Deleter for an easy handle. */
struct CurlEasyCleanup
{
	void operator()(CURL *h) const noexcept { curl_easy_cleanup(h); }
};

using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyCleanup>;

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
		ensure_curl_global_init();
		CurlEasyPtr fresh(curl_easy_init());

		if (!fresh)
			throw std::bad_alloc();
		g_handle = fresh.release();
	}
	return g_handle;
}

}								/* namespace */

/* Sends req; see the header. */
HttpReply
http_send(const HttpRequest &req, bool *perform_started)
{
	check_request(req);

	std::lock_guard<std::mutex> lock(g_handle_mutex);
	CURL	   *h = shared_handle();

	/* Clears options, keeps the connection cache (keep-alive) and DNS cache. */
	curl_easy_reset(h);

	CurlSlistPtr headers;
	TransferState st;
	char		errbuf[CURL_ERROR_SIZE];

	setup_transfer(h, req, st, headers, errbuf);
	if (req.keep_alive)
	{
		/* Rarely reuse a connection the server has already timed out (the re-send hazard). */
		set_option(h, CURLOPT_MAXAGE_CONN, kMaxIdleConnectionAgeS);
	}
	else
	{
		/* A fresh connection, closed after the reply (see call.cpp for why OAuth wants one). */
		set_option(h, CURLOPT_FRESH_CONNECT, 1L);
		set_option(h, CURLOPT_FORBID_REUSE, 1L);
	}

	if (perform_started != nullptr)
		*perform_started = true;
	auto		start = std::chrono::steady_clock::now();
	CURLcode	rc = curl_easy_perform(h);
	double		duration_ms = elapsed_ms(start);

	if (req.keep_alive)
		count_pooled_transfer(h, st);
	/* The handle outlives this call: never leave it pointing at our stack or the caller's data. */
	release_transfer(h, req);
	return collect_reply(h, rc, st, req, errbuf, duration_ms);
}

}								/* namespace vibescaling */
