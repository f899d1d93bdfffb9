/*
 * multi_transport.cpp: a batch of requests on the process's libcurl multi
 * handle (see multi_transport.hpp).
 *
 * Unlike http_transport.cpp, connections are kept alive and reused, which
 * brings back the hazard that made vs_call open a fresh connection per
 * call: libcurl silently re-sends a request when a reused connection turns
 * out dead before any reply byte ("Connection died, retrying a fresh
 * connect"). Here CURLOPT_PREREQFUNCTION, which libcurl calls right before
 * each send of a request (the re-send included), counts the sends and
 * aborts the second one, so no request ever leaves the process twice.
 */
#include "multi_transport.hpp"

#include "curl_transfer.hpp"

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include <strings.h>

#if LIBCURL_VERSION_NUM < 0x075000
#error "vs_call_many needs libcurl >= 7.80 (CURLOPT_PREREQFUNCTION blocks silent re-sends)"
#endif

namespace vibescaling {

namespace {

/* Longest wait in curl_multi_poll, so should_abort is asked at least this often. */
constexpr int kPollMs = 100;

/* Serializes batches on the shared multi handle (Postgres backends are single-threaded; tests may not be). */
std::mutex	g_multi_mutex;

/*
 * The process's multi handle, created on first use. Deliberately never
 * cleaned up (like http_transport.cpp's easy handle): a destructor at exit
 * could run after OpenSSL's own atexit cleanup and crash the exiting
 * backend; the OS reclaims it and its idle connections anyway.
 */
CURLM	   *g_multi = nullptr;

/* The pool counters (atomics: pool_stats may run while a batch holds the mutex). */
std::atomic<long long> g_transfers{0};
std::atomic<long long> g_connections_opened{0};
std::atomic<long long> g_connections_reused{0};

/* Throws for a failed curl_multi_* call (std::bad_alloc on out-of-memory). */
void
check_multi(CURLMcode mc, const char *what)
{
	if (mc == CURLM_OK)
		return;
	if (mc == CURLM_OUT_OF_MEMORY)
		throw std::bad_alloc();
	throw std::runtime_error(std::string(what) + " failed: " + curl_multi_strerror(mc));
}

/* The shared multi handle, creating it (and initializing libcurl) on first use; caller holds the mutex. */
CURLM *
shared_multi()
{
	if (g_multi == nullptr)
	{
		ensure_curl_global_init();
		CURLM	   *fresh = curl_multi_init();

		if (fresh == nullptr)
			throw std::bad_alloc();
		/* Many streams on one HTTP/2 connection when the server offers it. */
		CURLMcode	mc = curl_multi_setopt(fresh, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);

		if (mc != CURLM_OK)
		{
			curl_multi_cleanup(fresh);
			check_multi(mc, "curl_multi_setopt");
		}
		g_multi = fresh;
	}
	return g_multi;
}

/* True for an "https://" URL (scheme case-insensitive). */
bool
is_https(const std::string &url) noexcept
{
	return url.size() >= 8 && strncasecmp(url.c_str(), "https://", 8) == 0;
}

/* One transfer of a batch in flight; owns its easy handle and what the callbacks write to. */
struct Slot
{
	CURLM	   *multi = nullptr;
	CURL	   *easy = nullptr;
	bool		in_multi = false;
	std::size_t index = 0;		/* position in the batch */
	const HttpRequest *request = nullptr;
	TransferState st;
	CurlSlistPtr headers;
	char		errbuf[CURL_ERROR_SIZE];
	int			sends = 0;		/* times libcurl was about to send the request */
	bool		resend_blocked = false; /* the second send was stopped */
	std::chrono::steady_clock::time_point start;

	Slot() { errbuf[0] = '\0'; }
	Slot(const Slot &) = delete;
	Slot &operator=(const Slot &) = delete;

	/* Stops the transfer if still running and frees the handle (before the header list it uses). */
	~Slot()
	{
		if (in_multi)
			curl_multi_remove_handle(multi, easy);
		if (easy != nullptr)
			curl_easy_cleanup(easy);
	}
};

/*
 * CURLOPT_PREREQFUNCTION: libcurl is about to send the request on an
 * established connection. The first time is the send; a second time can
 * only be libcurl's own retry after a reused connection died (redirects
 * are off), so it is refused: the first copy may already have been acted
 * on, and a re-send nobody logged is what the dispatch log must never miss.
 */
int
on_prereq(void *userp, char *, char *, int, int) noexcept
{
	Slot	   *slot = static_cast<Slot *>(userp);

	if (++slot->sends > 1)
	{
		slot->resend_blocked = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* The reply of a request the batch never started because the caller aborted. */
HttpReply
not_started_abort()
{
	HttpReply	reply;

	reply.error_code = "aborted";
	reply.error_message = "aborted by the caller before the request was sent";
	return reply;
}

/* The transfers of one batch on the multi handle; whatever is still running when it goes away is stopped. */
class Batch
{
public:
	/* An empty batch writing its replies into replies (one per request). */
	Batch(CURLM *multi, const std::vector<const HttpRequest *> &requests,
		  std::vector<HttpReply> &replies, bool *started, std::size_t limit)
		: multi_(multi), requests_(requests), replies_(replies), started_(started)
	{
		active_.reserve(limit);
	}

	/* Number of transfers in flight. */
	std::size_t active() const noexcept { return active_.size(); }

	/* Hands request index to libcurl. */
	void
	start(std::size_t index)
	{
		const HttpRequest &req = *requests_[index];
		std::unique_ptr<Slot> slot(new Slot);

		slot->multi = multi_;
		slot->index = index;
		slot->request = &req;
		slot->easy = curl_easy_init();
		if (slot->easy == nullptr)
			throw std::bad_alloc();

		CURL	   *h = slot->easy;

		setup_transfer(h, req, slot->st, slot->headers, slot->errbuf);
		set_option(h, CURLOPT_PRIVATE, static_cast<void *>(slot.get()));
		/* HTTP/2 over TLS when the server offers it; a libcurl without HTTP/2 refuses the option and stays on 1.1. */
		curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));

		/*
		 * A burst over TLS waits for the first connection to say whether it
		 * multiplexes instead of opening one connection each. Plain http
		 * never multiplexes (no h2c), where waiting would only delay the
		 * burst until the first reply.
		 */
		if (is_https(req.url))
			set_option(h, CURLOPT_PIPEWAIT, 1L);
		/* Rarely reuse a connection the server has already timed out (the re-send hazard). */
		set_option(h, CURLOPT_MAXAGE_CONN, kMaxIdleConnectionAgeS);
		set_option(h, CURLOPT_PREREQFUNCTION, &on_prereq);
		set_option(h, CURLOPT_PREREQDATA, static_cast<void *>(slot.get()));

		Slot	   *raw = slot.get();

		active_.push_back(std::move(slot));	/* capacity reserved: no throw */
		if (started_ != nullptr)
			started_[index] = true;
		raw->start = std::chrono::steady_clock::now();
		CURLMcode	mc = curl_multi_add_handle(multi_, h);

		if (mc != CURLM_OK)
		{
			active_.pop_back();
			check_multi(mc, "curl_multi_add_handle");
		}
		raw->in_multi = true;
	}

	/* Collects every finished transfer's reply; true when at least one finished. */
	bool
	drain()
	{
		bool		any = false;
		int			queued = 0;
		CURLMsg    *msg;

		while ((msg = curl_multi_info_read(multi_, &queued)) != nullptr)
		{
			if (msg->msg != CURLMSG_DONE)
				continue;
			/* msg is invalid once the handle is removed: copy what we need first. */
			CURL	   *easy = msg->easy_handle;
			CURLcode	rc = msg->data.result;
			void	   *priv = nullptr;

			curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
			finish(static_cast<Slot *>(priv), rc, false);
			any = true;
		}
		return any;
	}

	/* Stops every transfer still running: each gets "aborted". */
	void
	abort_all()
	{
		while (!active_.empty())
			finish(active_.back().get(), CURLE_ABORTED_BY_CALLBACK, true);
	}

private:
	/* Removes slot's transfer from the batch and stores its reply. */
	void
	finish(Slot *slot, CURLcode rc, bool aborted_by_caller)
	{
		std::unique_ptr<Slot> owned;

		for (std::size_t i = 0; i < active_.size(); i++)
			if (active_[i].get() == slot)
			{
				owned = std::move(active_[i]);
				active_[i] = std::move(active_.back());
				active_.pop_back();
				break;
			}
		if (!owned)
			return;				/* not ours (cannot happen: the mutex keeps other batches out) */

		double		duration_ms = elapsed_ms(owned->start);

		curl_multi_remove_handle(multi_, owned->easy);
		owned->in_multi = false;

		long		connects = 0;

		curl_easy_getinfo(owned->easy, CURLINFO_NUM_CONNECTS, &connects);
		g_transfers++;
		g_connections_opened += connects;
		/* Each send went over a new connection or a reused one. */
		if (owned->sends > connects)
			g_connections_reused += owned->sends - connects;

		release_transfer(owned->easy, *owned->request);
		HttpReply	reply = collect_reply(owned->easy, rc, owned->st, *owned->request,
										  owned->errbuf, duration_ms);

		if (!reply.completed)
		{
			/*
			 * A connect failure after the request was sent can only be
			 * libcurl's retry failing to connect: the same story as a
			 * blocked re-send.
			 */
			if (owned->resend_blocked ||
				(owned->sends > 0 && reply.error_code == "connect_failed"))
			{
				reply.error_code = "transport_error";
				reply.error_message = "the connection closed before any reply arrived; "
					"the request was not re-sent (it may have been received)";
			}
			if (aborted_by_caller)
			{
				reply.error_code = "aborted";
				reply.error_message = "aborted by the caller before the reply arrived";
			}
			/* Sent once: the server may have acted on it. */
			if (owned->sends > 0)
				reply.outcome_unknown = true;
		}
		replies_[owned->index] = std::move(reply);
	}

	CURLM	   *multi_;
	const std::vector<const HttpRequest *> &requests_;
	std::vector<HttpReply> &replies_;
	bool	   *started_;
	std::vector<std::unique_ptr<Slot>> active_;	/* destroyed (stopped) with the batch */
};

}								/* namespace */

/* A snapshot of the pool counters. */
PoolStats
pool_stats() noexcept
{
	PoolStats	s;

	s.transfers = g_transfers.load();
	s.connections_opened = g_connections_opened.load();
	s.connections_reused = g_connections_reused.load();
	return s;
}

/* Sends a batch over the shared multi handle; see the header. */
std::vector<HttpReply>
http_send_many(const std::vector<const HttpRequest *> &requests, int max_concurrent,
			   int (*should_abort) (void), bool *started)
{
	std::vector<HttpReply> replies(requests.size());
	std::vector<std::size_t> queue;	/* requests to send, in order */

	queue.reserve(requests.size());
	for (std::size_t i = 0; i < requests.size(); i++)
	{
		if (requests[i] == nullptr)
			continue;
		try
		{
			check_request(*requests[i]);
		}
		catch (const std::invalid_argument &e)
		{
			replies[i].error_code = "invalid_param";
			replies[i].error_message = e.what();
			continue;
		}
		queue.push_back(i);
	}
	if (queue.empty())
		return replies;

	int			limit = max_concurrent < 1 ? 1 : max_concurrent;

	if (limit > kMaxBatchConcurrency)
		limit = kMaxBatchConcurrency;

	std::lock_guard<std::mutex> lock(g_multi_mutex);
	CURLM	   *multi = shared_multi();

	/*
	 * Re-set per batch: at most limit connections (idle ones from an
	 * earlier, wider batch are closed as new ones are needed), and a cache
	 * large enough to keep them all alive for the next batch.
	 */
	check_multi(curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(limit)),
				"curl_multi_setopt");
	check_multi(curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(limit)),
				"curl_multi_setopt");

	Batch		batch(multi, requests, replies, started, static_cast<std::size_t>(limit));
	std::size_t next = 0;

	for (;;)
	{
		if (should_abort != nullptr && should_abort() != 0)
		{
			batch.abort_all();
			for (; next < queue.size(); next++)
				replies[queue[next]] = not_started_abort();
			break;
		}
		while (batch.active() < static_cast<std::size_t>(limit) && next < queue.size())
			batch.start(queue[next++]);
		if (batch.active() == 0)
			break;

		int			running = 0;

		check_multi(curl_multi_perform(multi, &running), "curl_multi_perform");
		/* Some finished: start the next ones at once instead of polling. */
		if (batch.drain())
			continue;
		check_multi(curl_multi_poll(multi, nullptr, 0, kPollMs, nullptr), "curl_multi_poll");
	}
	return replies;
}

}								/* namespace vibescaling */
