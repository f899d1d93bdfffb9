/*
 * multi_transport.cpp: a batch of requests on the process's libcurl multi
 * handle (see multi_transport.hpp).
 *
 * Connections are kept alive and reused (single calls through vs_call use
 * this pool too, with max_concurrent 0). That brings the hazard of libcurl
 * silently re-sending a request when a reused connection turns out dead
 * before any reply byte ("Connection died, retrying a fresh connect"):
 * setup_transfer's pre-request callback (curl_transfer.cpp) stops the
 * second send, so no request ever leaves the process twice.
 *
 * The batch is driven by libcurl's event interface, so that a wakeup costs
 * in proportion to the sockets that are ready rather than to the transfers
 * in flight: libcurl reports through CURLMOPT_SOCKETFUNCTION which sockets
 * to watch for what (kept in an epoll instance of the process, created with
 * the multi handle and kept as long), and through CURLMOPT_TIMERFUNCTION
 * when it next needs to run timeouts; the loop waits in epoll_wait and hands
 * libcurl only the sockets that are ready (curl_multi_socket_action) or the
 * expired timer (CURL_SOCKET_TIMEOUT). Without epoll (epoll_create1 failed,
 * or an epoll call failed later) the process falls back for good to the
 * curl_multi_perform + curl_multi_poll loop, which walks every transfer on
 * each wakeup.
 */
#include "multi_transport.hpp"

#include "curl_transfer.hpp"

#include <curl/curl.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#if LIBCURL_VERSION_NUM < 0x075000
#error "vs_call_many needs libcurl >= 7.80 (CURLOPT_PREREQFUNCTION blocks silent re-sends)"
#endif

namespace vibescaling {

namespace {

/* Longest wait in epoll_wait / curl_multi_poll, so should_abort is asked at least this often. */
constexpr int kPollMs = 100;

/* Most ready sockets taken from one epoll_wait (the others wait for the next). */
constexpr int kMaxEvents = 256;

/* Serializes batches on the shared multi handle (Postgres backends are single-threaded; tests may not be). */
std::mutex	g_multi_mutex;

/*
 * The process's multi handle, created on first use. Deliberately never
 * cleaned up (like http_transport.cpp's easy handle): a destructor at exit
 * could run after OpenSSL's own atexit cleanup and crash the exiting
 * backend; the OS reclaims it and its idle connections anyway.
 */
CURLM	   *g_multi = nullptr;

/*
 * What libcurl's socket and timer callbacks tell the batch loop; lives, like
 * the multi handle, as long as the process. Between batches libcurl keeps
 * idle connections in its cache but watches none of their sockets (it says
 * CURL_POLL_REMOVE when a transfer lets go of one), so epoll holds only the
 * sockets of transfers in flight; a later batch reusing a connection gets
 * its socket re-added through the callback. Touched only with the mutex held.
 */
struct EventLoop
{
	int			epfd = -1;		/* the epoll instance; -1: none, use perform + poll */
	bool		failed = false; /* an epoll_ctl failed: give up on epoll (see use_poll_loop) */
	bool		timer_armed = false;	/* libcurl wants CURL_SOCKET_TIMEOUT at deadline */
	std::chrono::steady_clock::time_point deadline;
};

EventLoop	g_loop;

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

/*
 * CURLMOPT_SOCKETFUNCTION: libcurl wants socket s watched for what
 * (CURL_POLL_IN / OUT / INOUT), or no longer (CURL_POLL_REMOVE). The epoll
 * registration follows, keyed by the descriptor number: ADD first, since
 * the number may be new or reused by a new socket (the kernel drops the
 * registration of a closed socket by itself), MOD when ADD finds it there
 * already (a change of direction of a socket being watched). A REMOVE of a
 * socket epoll no longer has (ENOENT; EBADF: closed already) is fine. Any
 * other failure marks the loop failed. Never throws.
 */
int
on_socket(CURL *, curl_socket_t s, int what, void *userp, void *) noexcept
{
	EventLoop  *loop = static_cast<EventLoop *>(userp);

	if (loop->epfd < 0)
		return 0;
	if (what == CURL_POLL_REMOVE)
	{
		if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, s, nullptr) != 0 &&
			errno != ENOENT && errno != EBADF)
			loop->failed = true;
		return 0;
	}

	epoll_event ev;

	std::memset(&ev, 0, sizeof ev);
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
	ev.data.fd = s;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, s, &ev) == 0)
		return 0;
	if (errno == EEXIST && epoll_ctl(loop->epfd, EPOLL_CTL_MOD, s, &ev) == 0)
		return 0;
	loop->failed = true;
	return 0;
}

/*
 * CURLMOPT_TIMERFUNCTION: libcurl wants curl_multi_socket_action with
 * CURL_SOCKET_TIMEOUT in timeout_ms (0: at once), or no timer (-1).
 * Never throws.
 */
int
on_timer(CURLM *, long timeout_ms, void *userp) noexcept
{
	EventLoop  *loop = static_cast<EventLoop *>(userp);

	loop->timer_armed = timeout_ms >= 0;
	if (loop->timer_armed)
		loop->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	return 0;
}

/*
 * Sets up the event interface on multi: the epoll instance (close-on-exec)
 * and the two callbacks. Without it (any step failing), g_loop.epfd stays
 * -1 and batches use perform + poll.
 */
void
setup_event_loop(CURLM *multi) noexcept
{
	int			epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0)
		return;
	g_loop.epfd = epfd;
	if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &on_socket) != CURLM_OK ||
		curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, static_cast<void *>(&g_loop)) != CURLM_OK ||
		curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &on_timer) != CURLM_OK ||
		curl_multi_setopt(multi, CURLMOPT_TIMERDATA, static_cast<void *>(&g_loop)) != CURLM_OK)
	{
		curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, static_cast<curl_socket_callback>(nullptr));
		curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, static_cast<curl_multi_timer_callback>(nullptr));
		close(epfd);
		g_loop.epfd = -1;
	}
}

/*
 * Gives up on epoll for the rest of the process (an epoll call failed, so
 * its registrations may no longer match what libcurl watches): the
 * callbacks are unset, the instance closed, and the batch in flight goes on
 * with perform + poll, which need neither. Never throws.
 */
void
use_poll_loop(CURLM *multi) noexcept
{
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, static_cast<curl_socket_callback>(nullptr));
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, static_cast<curl_multi_timer_callback>(nullptr));
	if (g_loop.epfd >= 0)
		close(g_loop.epfd);
	g_loop.epfd = -1;
	g_loop.failed = false;
	g_loop.timer_armed = false;
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
		setup_event_loop(fresh);
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
	std::size_t pos = 0;		/* position in Batch::active_ while there */
	const HttpRequest *request = nullptr;
	TransferState st;
	CurlSlistPtr headers;
	char		errbuf[CURL_ERROR_SIZE];
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

		Slot	   *raw = slot.get();

		raw->pos = active_.size();
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
		std::size_t at = slot != nullptr ? slot->pos : active_.size();

		if (at >= active_.size() || active_[at].get() != slot)
			return;				/* not ours (cannot happen: the mutex keeps other batches out) */

		std::unique_ptr<Slot> owned = std::move(active_[at]);

		/* The last one takes its place (no walk over the batch). */
		if (at + 1 < active_.size())
		{
			active_[at] = std::move(active_.back());
			active_[at]->pos = at;
		}
		active_.pop_back();

		double		duration_ms = elapsed_ms(owned->start);

		curl_multi_remove_handle(multi_, owned->easy);
		owned->in_multi = false;

		count_pooled_transfer(owned->easy, owned->st);
		release_transfer(owned->easy, *owned->request);
		HttpReply	reply = collect_reply(owned->easy, rc, owned->st, *owned->request,
										  owned->errbuf, duration_ms);

		if (!reply.completed && aborted_by_caller)
		{
			reply.error_code = "aborted";
			reply.error_message = "aborted by the caller before the reply arrived";
		}
		replies_[owned->index] = std::move(reply);
	}

	CURLM	   *multi_;
	const std::vector<const HttpRequest *> &requests_;
	std::vector<HttpReply> &replies_;
	bool	   *started_;
	std::vector<std::unique_ptr<Slot>> active_;	/* destroyed (stopped) with the batch */
};

/*
 * Runs libcurl's timeouts (CURL_SOCKET_TIMEOUT) when its timer has expired.
 * libcurl calls the timer callback only when its next expiry changes; in
 * case it did not (the run found nothing due yet by its own clock), the
 * next expiry is asked with curl_multi_timeout, so the timer is never lost.
 */
void
run_timer_if_due(CURLM *multi)
{
	if (!g_loop.timer_armed || g_loop.deadline > std::chrono::steady_clock::now())
		return;

	std::chrono::steady_clock::time_point fired = g_loop.deadline;
	int			running = 0;

	check_multi(curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running),
				"curl_multi_socket_action");
	if (g_loop.timer_armed && g_loop.deadline == fired)
	{
		long		ms = -1;

		check_multi(curl_multi_timeout(multi, &ms), "curl_multi_timeout");
		/* At least 1 ms: what is due now was just run. */
		on_timer(multi, ms < 0 ? -1 : (ms < 1 ? 1 : ms), &g_loop);
	}
}

/*
 * Waits for a ready socket, at most until libcurl's timer and at most
 * kPollMs, and hands each ready socket to libcurl. A signal interrupting
 * the wait (EINTR) just ends it; any other epoll_wait failure marks the
 * loop failed.
 */
void
wait_and_dispatch(CURLM *multi)
{
	long		wait_ms = kPollMs;

	if (g_loop.timer_armed)
	{
		auto		left = std::chrono::duration_cast<std::chrono::microseconds>(
			g_loop.deadline - std::chrono::steady_clock::now()).count();

		/* Rounded up: waking before the deadline would only wait again. */
		left = left <= 0 ? 0 : (left + 999) / 1000;
		if (left < wait_ms)
			wait_ms = static_cast<long>(left);
	}

	epoll_event events[kMaxEvents];
	int			n = epoll_wait(g_loop.epfd, events, kMaxEvents, static_cast<int>(wait_ms));

	if (n < 0)
	{
		if (errno != EINTR)
			g_loop.failed = true;
		return;
	}
	for (int i = 0; i < n; i++)
	{
		uint32_t	ev = events[i].events;
		int			bits = 0;

		/*
		 * An error or hang-up is passed on as "something happened" (0):
		 * libcurl then checks the socket itself, as it does under
		 * curl_multi_perform, and reads the error or the end of stream.
		 */
		if ((ev & (EPOLLERR | EPOLLHUP)) == 0)
			bits = ((ev & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((ev & EPOLLOUT) ? CURL_CSELECT_OUT : 0);

		int			running = 0;

		check_multi(curl_multi_socket_action(multi, events[i].data.fd, bits, &running),
					"curl_multi_socket_action");
	}
}

}								/* namespace */

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

	/* 0: a single call (vs_call), which leaves the pool's limits as the last batch set them. */
	bool		keep_pool_limits = max_concurrent == 0;
	int			limit = max_concurrent < 1 ? 1 : max_concurrent;

	if (limit > kMaxBatchConcurrency)
		limit = kMaxBatchConcurrency;

	std::lock_guard<std::mutex> lock(g_multi_mutex);
	CURLM	   *multi = shared_multi();

	/*
	 * Re-set per batch: at most limit connections (idle ones from an
	 * earlier, wider batch are closed as new ones are needed), and a cache
	 * large enough to keep them all alive for the next batch. A single call
	 * does not shrink the pool a batch left.
	 */
	if (!keep_pool_limits)
	{
		check_multi(curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(limit)),
					"curl_multi_setopt");
		check_multi(curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(limit)),
					"curl_multi_setopt");
	}

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
		if (g_loop.failed)
			use_poll_loop(multi);
		if (g_loop.epfd >= 0)
		{
			/*
			 * The timer first: curl_multi_add_handle set it to "now", and
			 * only CURL_SOCKET_TIMEOUT starts the transfers just added.
			 */
			run_timer_if_due(multi);
			/* Some finished: start the next ones at once instead of waiting. */
			if (batch.drain())
				continue;
			wait_and_dispatch(multi);
			continue;
		}

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
