/*
 * curl_transfer.cpp: the per-transfer libcurl setup, callbacks and reply
 * collection shared by http_transport.cpp and multi_transport.cpp.
 */
#include "curl_transfer.hpp"

#include "address_policy.hpp"
#include "text_util.hpp"

#include <sys/socket.h>

#include <atomic>
#include <cstring>

namespace vibescaling {

namespace {

/*
 * curl write callback: into the sink when there is one (206 replies, and
 * 200 ones when sink_takes_200), else appended to the reply body up to
 * max_body. Returning less than
 * asked makes curl stop with CURLE_WRITE_ERROR; the flags say why.
 */
size_t
on_write(char *data, size_t size, size_t nmemb, void *userp) noexcept
{
	TransferState *st = static_cast<TransferState *>(userp);
	size_t		n = size * nmemb;

	if (st->sink != nullptr)
	{
		long		status = 0;

		curl_easy_getinfo(st->handle, CURLINFO_RESPONSE_CODE, &status);
		if (status == 206 || (status == 200 && st->sink_takes_200))
		{
			std::size_t room = st->sink_capacity - st->sink_bytes;
			std::size_t take = n < room ? n : room;

			if (take > 0)
				std::memcpy(st->sink + st->sink_bytes, data, take);
			st->sink_bytes += take;
			if (take < n)
			{
				st->sink_overflow = true;
				return 0;
			}
			return n;
		}
	}
	if (st->body.size() + n > st->max_body)
	{
		if (!st->truncate_body)
		{
			st->too_large = true;
			return 0;
		}
		n = st->max_body - st->body.size();
		st->truncated = true;
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
	return st->truncated ? 0 : n;
}

/* s without leading and trailing spaces, tabs, CR and LF. */
std::string
trimmed(const char *p, std::size_t n)
{
	std::size_t b = 0;

	while (b < n && (p[b] == ' ' || p[b] == '\t' || p[b] == '\r' || p[b] == '\n'))
		b++;
	while (n > b && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	return std::string(p + b, n - b);
}

/*
 * curl header callback: keeps the requested reply headers. A status line
 * starts a new response (a redirect, an interim 1xx): forget earlier ones.
 */
size_t
on_header(char *data, size_t size, size_t nitems, void *userp) noexcept
{
	TransferState *st = static_cast<TransferState *>(userp);
	size_t		n = size * nitems;

	try
	{
		if (n >= 5 && std::memcmp(data, "HTTP/", 5) == 0)
		{
			st->headers.clear();
			return n;
		}
		const char *colon = static_cast<const char *>(std::memchr(data, ':', n));

		if (colon == nullptr || st->capture == nullptr)
			return n;
		std::string name = trimmed(data, static_cast<std::size_t>(colon - data));

		for (char &c : name)
			if (c >= 'A' && c <= 'Z')
				c = static_cast<char>(c - 'A' + 'a');
		for (const std::string &wanted : *st->capture)
			if (wanted == name)
			{
				st->headers[name] = trimmed(colon + 1, n - static_cast<std::size_t>(colon + 1 - data));
				break;
			}
	}
	catch (...)
	{
		st->out_of_memory = true;
		return 0;				/* makes curl fail */
	}
	return n;
}

/*
 * curl progress callback: asks the caller whether to give up (query
 * cancel), and gives up itself when no byte has moved for stall_timeout_ms.
 */
int
on_progress(void *userp, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) noexcept
{
	TransferState *st = static_cast<TransferState *>(userp);

	/* Nonzero makes curl stop with CURLE_ABORTED_BY_CALLBACK. */
	if (st->should_abort != nullptr && st->should_abort() != 0)
		return 1;
	if (st->stall_timeout_ms > 0)
	{
		auto		now = std::chrono::steady_clock::now();

		if (dlnow + ulnow != st->progress_bytes)
		{
			st->progress_bytes = dlnow + ulnow;
			st->progress_at = now;
		}
		else if (now - st->progress_at >= std::chrono::milliseconds(st->stall_timeout_ms))
		{
			st->stalled = true;
			return 1;
		}
	}
	return 0;
}

/*
 * curl open-socket callback (source downloads): opens the socket only when
 * the address policy permits the address DNS gave, for every connection
 * of the transfer, redirect hops included. CURL_SOCKET_BAD makes curl try
 * the next address, then fail with CURLE_COULDNT_CONNECT.
 */
curl_socket_t
on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *address) noexcept
{
	TransferState *st = static_cast<TransferState *>(userp);
	IpAddress	ip;

	if (purpose != CURLSOCKTYPE_IPCXN ||
		!address_from_sockaddr(&address->addr, address->addrlen, &ip) ||
		st->address_policy == nullptr || !st->address_policy->permits(ip))
	{
		st->address_refused = true;
		return CURL_SOCKET_BAD;
	}
	int			type = address->socktype;

#ifdef SOCK_CLOEXEC
	type |= SOCK_CLOEXEC;		/* not inherited by programs the backend starts */
#endif
	return socket(address->family, type, address->protocol);
}

/*
 * curl pre-request callback: libcurl is about to send the request on an
 * established connection (a new or a reused one). The first time on a
 * redirect hop is the send; a second time can only be libcurl's own retry
 * after a reused connection died before any reply byte, so it is refused:
 * the first copy may already have been acted on, and a re-send nobody
 * logged is what the dispatch log must never miss. For source downloads it
 * also checks, on the connected socket's peer address, that the address is
 * allowed. Refusing stops the transfer.
 */
int
on_prereq(void *userp, char *conn_primary_ip, char *, int, int) noexcept
{
	TransferState *st = static_cast<TransferState *>(userp);
	long		hop = 0;

	curl_easy_getinfo(st->handle, CURLINFO_REDIRECT_COUNT, &hop);
	if (hop != st->sends_hop)
	{
		st->sends_hop = hop;
		st->sends = 0;
	}
	if (++st->sends > 1)
	{
		st->resend_blocked = true;
		return CURL_PREREQFUNC_ABORT;
	}
	if (st->address_policy == nullptr)
		return CURL_PREREQFUNC_OK;

	IpAddress	ip;

	if (conn_primary_ip == nullptr || !parse_ip_address(conn_primary_ip, &ip) ||
		!st->address_policy->permits(ip))
	{
		st->address_refused = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
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

}								/* namespace */

namespace {

/* The kept-alive connection counters (atomics: pool_stats may run while a batch holds its mutex). */
std::atomic<long long> g_transfers{0};
std::atomic<long long> g_connections_opened{0};
std::atomic<long long> g_connections_reused{0};

}								/* namespace */

/* A snapshot of the counters; see the header. */
PoolStats
pool_stats() noexcept
{
	PoolStats	s;

	s.transfers = g_transfers.load();
	s.connections_opened = g_connections_opened.load();
	s.connections_reused = g_connections_reused.load();
	return s;
}

/* Counts a finished kept-alive transfer; see the header. */
void
count_pooled_transfer(CURL *h, const TransferState &st) noexcept
{
	long		connects = 0;

	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
	g_transfers++;
	g_connections_opened += connects;
	/* Each send went over a new connection or a reused one. */
	if (st.sends > connects)
		g_connections_reused += st.sends - connects;
}

/* Initializes libcurl once per process; see the header. */
void
ensure_curl_global_init()
{
	/* curl_global_init is reference counted; calling it once per process is enough. */
	static const CURLcode global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (global_rc != CURLE_OK)
		throw std::runtime_error(std::string("curl_global_init failed: ") +
								 curl_easy_strerror(global_rc));
}

/* Refuses requests whose header values could inject headers; see the header. */
void
check_request(const HttpRequest &req)
{
	/* A CR/LF in the token would inject headers. */
	if (req.send_bearer && has_control_chars(req.bearer_token))
		throw std::invalid_argument("access token contains control characters");
	if (has_control_chars(req.content_type))
		throw std::invalid_argument("content type contains control characters");
	if (has_control_chars(req.accept))
		throw std::invalid_argument("accept header contains control characters");
	for (const std::string &line : req.extra_headers)
		if (has_control_chars(line))
			throw std::invalid_argument("header line contains control characters");
	if (has_control_chars(req.range))
		throw std::invalid_argument("range contains control characters");
}

/* Sets the options every request gets; see the header. */
void
setup_transfer(CURL *h, const HttpRequest &req, TransferState &st, CurlSlistPtr &headers,
			   char *errbuf)
{
	bool		has_body = req.verb != HttpVerb::kGet;
	const char *body_data = req.body_data != nullptr ? req.body_data : req.body.data();
	std::size_t body_size = req.body_data != nullptr ? req.body_size : req.body.size();

	if (req.send_bearer)
		add_header(headers, "Authorization: Bearer " + req.bearer_token);
	if (has_body)
		add_header(headers, "Content-Type: " + req.content_type);
	if (!req.accept.empty())
		add_header(headers, "Accept: " + req.accept);
	for (const std::string &line : req.extra_headers)
		add_header(headers, line);
	add_header(headers, "Expect:");	/* no 100-continue round trip */

	errbuf[0] = '\0';
	st.handle = h;
	st.should_abort = req.should_abort;
	st.max_body = req.max_reply_bytes;
	st.truncate_body = req.truncate_reply;
	st.sink = req.sink;
	st.sink_capacity = req.sink != nullptr ? req.sink_capacity : 0;
	st.sink_takes_200 = req.sink_takes_200;
	st.capture = &req.capture_headers;
	st.address_policy = req.address_policy;
	st.stall_timeout_ms = req.stall_timeout_ms;
	st.progress_at = std::chrono::steady_clock::now();

	set_option(h, CURLOPT_URL, req.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
	set_option(h, CURLOPT_PROTOCOLS_STR, "http,https");
	set_option(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	set_option(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	set_option(h, CURLOPT_REDIR_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	set_option(h, CURLOPT_NOSIGNAL, 1L);
	if (req.max_redirects > 0)
	{
		set_option(h, CURLOPT_FOLLOWLOCATION, 1L);
		set_option(h, CURLOPT_MAXREDIRS, req.max_redirects);
	}
	else
		set_option(h, CURLOPT_FOLLOWLOCATION, 0L);
	set_option(h, CURLOPT_CONNECTTIMEOUT_MS, req.connect_timeout_ms > 0 ? req.connect_timeout_ms : 0L);
	if (!req.ca_file.empty())
		set_option(h, CURLOPT_CAINFO, req.ca_file.c_str());
	set_option(h, CURLOPT_TIMEOUT_MS, req.request_timeout_ms > 0 ? req.request_timeout_ms : 0L);
	set_option(h, CURLOPT_HTTPHEADER, headers.get());
	set_option(h, CURLOPT_USERAGENT, "vibescaling");
	if (!req.range.empty())
		set_option(h, CURLOPT_RANGE, req.range.c_str());
	if (!has_body)
		set_option(h, CURLOPT_HTTPGET, 1L);
	else
	{
		/* POSTFIELDS uses the caller's buffer in place (COPYPOSTFIELDS would copy it). */
		set_option(h, CURLOPT_POST, 1L);
		set_option(h, CURLOPT_POSTFIELDS, body_data);
		set_option(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_size));
		if (req.verb == HttpVerb::kPut)
			set_option(h, CURLOPT_CUSTOMREQUEST, "PUT");
	}
	set_option(h, CURLOPT_WRITEFUNCTION, &on_write);
	set_option(h, CURLOPT_WRITEDATA, static_cast<void *>(&st));
	set_option(h, CURLOPT_HEADERFUNCTION, &on_header);
	set_option(h, CURLOPT_HEADERDATA, static_cast<void *>(&st));
	set_option(h, CURLOPT_NOPROGRESS, 0L);
	set_option(h, CURLOPT_XFERINFOFUNCTION, &on_progress);
	set_option(h, CURLOPT_XFERINFODATA, static_cast<void *>(&st));
	set_option(h, CURLOPT_ERRORBUFFER, errbuf);
	set_option(h, CURLOPT_PREREQFUNCTION, &on_prereq);
	set_option(h, CURLOPT_PREREQDATA, static_cast<void *>(&st));

	if (req.address_policy != nullptr)
	{
		set_option(h, CURLOPT_OPENSOCKETFUNCTION, &on_open_socket);
		set_option(h, CURLOPT_OPENSOCKETDATA, static_cast<void *>(&st));
		/* A proxy would be the address checked, not the source: connect directly. */
		set_option(h, CURLOPT_PROXY, "");
	}
	if (req.stall_timeout_ms > 0)
	{
		set_option(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		set_option(h, CURLOPT_LOW_SPEED_TIME, (req.stall_timeout_ms + 999) / 1000);
	}
	if (req.max_file_size > 0)
		set_option(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(req.max_file_size));
}

/* Unhooks h from the transfer's buffers; see the header. */
void
release_transfer(CURL *h, const HttpRequest &req) noexcept
{
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, static_cast<char *>(nullptr));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, static_cast<curl_slist *>(nullptr));
	curl_easy_setopt(h, CURLOPT_WRITEDATA, static_cast<void *>(nullptr));
	curl_easy_setopt(h, CURLOPT_HEADERDATA, static_cast<void *>(nullptr));
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, static_cast<void *>(nullptr));
	curl_easy_setopt(h, CURLOPT_PREREQDATA, static_cast<void *>(nullptr));
	if (req.address_policy != nullptr)
		curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, static_cast<void *>(nullptr));
	if (req.verb != HttpVerb::kGet)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, static_cast<const char *>(nullptr));
}

/* The reply (or failure) of a finished transfer; see the header. */
HttpReply
collect_reply(CURL *h, CURLcode rc, TransferState &st, const HttpRequest &req,
			  const char *errbuf, double duration_ms)
{
	HttpReply	reply;

	reply.duration_ms = duration_ms;

	long		status = 0;
	curl_off_t	connect_us = 0;
	long		request_size = 0;

	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_size);

	reply.http_status = status;
	reply.sink_bytes = st.sink_bytes;
	reply.sink_overflow = st.sink_overflow;
	reply.truncated = st.truncated;
	reply.address_refused = st.address_refused;
	reply.stalled = st.stalled;
	reply.resend_blocked = st.resend_blocked;
	if (st.out_of_memory)
		throw std::bad_alloc();
	/* Stopped on purpose after a whole status line and headers: a usable reply. */
	bool		cut_on_purpose = rc == CURLE_WRITE_ERROR && (st.sink_overflow || st.truncated);

	if (rc == CURLE_OK || cut_on_purpose)
	{
		reply.completed = true;
		reply.body = std::move(st.body);
		reply.headers = std::move(st.headers);
		return reply;
	}

	if (st.too_large)
	{
		reply.error_code = "bad_response";
		reply.error_message = "TikTok replied HTTP " + std::to_string(status) +
			" with a body larger than " + std::to_string(st.max_body / (1024 * 1024)) + " MB";
	}
	else if (st.stalled)
	{
		reply.error_code = "timeout";
		reply.error_message = "no data moved for " + std::to_string(st.stall_timeout_ms) + " ms";
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

	/*
	 * A connect failure after the request was sent can only be libcurl's
	 * re-send failing to connect: the same story as a blocked re-send.
	 */
	if (st.resend_blocked || (st.sends > 0 && reply.error_code == "connect_failed"))
	{
		reply.error_code = "transport_error";
		reply.error_message = "the connection closed before any reply arrived; "
			"the request was not re-sent (it may have been received)";
	}
	/* Sent once: the server may have acted on it. */
	if (st.sends > 0)
		reply.outcome_unknown = true;
	return reply;
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
		case CURLE_FILESIZE_EXCEEDED:
			return "file_too_large";
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

}								/* namespace vibescaling */
