/*
 * call_many_test.cpp: vs_call_many against in-process servers on 127.0.0.1:
 * a cpp-httplib fake TikTok (concurrency, keep-alive reuse, mixed endpoints,
 * timeouts, abort, secrets) and a raw-socket HTTP/1.1 server that closes a
 * kept-alive connection after reading its second request (libcurl's silent
 * re-send must be stopped), and a forked single-threaded epoll server for
 * the wide batches (600 at once) and the CPU benchmark of the event loop.
 */
#include "test_support.hpp"
#include "closing_server.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <new>
#include <queue>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char kToken[] = "act.SECRET-batch-token-0123456789";

/* n vs_call_results, zeroed, freed when the test ends. */
struct ScopedResults
{
	std::vector<vs_call_result> r;

	explicit ScopedResults(std::size_t n) : r(n)
	{
		for (vs_call_result &x : r)
			std::memset(&x, 0, sizeof x);
	}
	~ScopedResults()
	{
		for (vs_call_result &x : r)
			vs_call_result_free(&x);
	}
	ScopedResults(const ScopedResults &) = delete;
	ScopedResults &operator=(const ScopedResults &) = delete;
	vs_call_result &operator[](std::size_t i) { return r[i]; }
};

/* The n in "https://v/<n>.mp4" inside body, or "" when absent. */
std::string
video_number(const std::string &body)
{
	std::size_t at = body.find("https://v/");

	if (at == std::string::npos)
		return "";
	at += 10;
	std::size_t end = body.find(".mp4", at);

	return end == std::string::npos ? "" : body.substr(at, end - at);
}

/*
 * A fake TikTok keeping connections alive, serving from a pool wide enough
 * for every connection a test opens (cpp-httplib holds a thread per
 * kept-alive connection). Every handler sleeps delay_ms; video_init echoes
 * the video number as publish_id "pub-<n>" and sleeps slow_ms instead for
 * numbers starting with "slow".
 */
class BatchTikTok
{
public:
	/* Registers the routes and starts listening. */
	BatchTikTok()
	{
		server_.new_task_queue = [] { return new httplib::ThreadPool(96); };
		/*
		 * The default options plus TCP_NODELAY (inherited by accepted
		 * sockets: without it cpp-httplib's separate header and body writes
		 * meet the client's delayed ACK on a kept-alive connection, 40 ms a
		 * reply); and remember the listening socket.
		 */
		server_.set_socket_options([this](socket_t sock) {
			int			one = 1;

			httplib::default_socket_options(sock);
			setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			listen_fd_ = sock;
		});
		server_.set_keep_alive_max_count(100000);
		server_.set_keep_alive_timeout(1);
		server_.Post(R"(/v2/post/publish/.*)", [this](const httplib::Request &req, httplib::Response &res) {
			Busy		busy(*this);
			std::string n = video_number(req.body);

			pause(n.compare(0, 4, "slow") == 0 ? slow_ms.load() : delay_ms.load());
			if (req.path == "/v2/post/publish/video/init/" && n == "nopub")
				res.set_content(R"({"data":{},"error":{"code":"ok","message":"","log_id":"LOG-N"}})",
								"application/json");
			else if (req.path == "/v2/post/publish/video/init/")
				res.set_content(R"({"data":{"publish_id":"pub-)" + n +
								R"("},"error":{"code":"ok","message":"","log_id":"LOG-I"}})",
								"application/json");
			else if (req.path == "/v2/post/publish/status/fetch/" &&
					 req.body.find("echo-auth") != std::string::npos)
			{
				/* A careless server quoting the Authorization header back. */
				res.status = 401;
				res.set_content(R"({"data":{},"error":{"code":"access_token_invalid","message":"token )" +
								req.get_header_value("Authorization") + R"( is invalid","log_id":"LOG-A"}})",
								"application/json");
			}
			else if (req.path == "/v2/post/publish/status/fetch/" &&
					 req.body.find("limited") != std::string::npos)
			{
				res.status = 429;
				res.set_header("Retry-After", "7");
				res.set_content(R"({"data":{},"error":{"code":"rate_limit_exceeded","message":"slow down","log_id":"LOG-R"}})",
								"application/json");
			}
			else if (req.path == "/v2/post/publish/content/init/")
				res.set_content(std::string(5 * 1024 * 1024, ' '), "application/json");
			else if (req.path == "/v2/post/publish/status/fetch/")
				res.set_content(R"({"data":{"status":"PROCESSING_DOWNLOAD"},"error":{"code":"ok","message":"","log_id":"LOG-S"}})",
								"application/json");
			else if (req.path == "/v2/post/publish/creator_info/query/")
				res.set_content(R"({"data":{"creator_username":"ann"},"error":{"code":"ok","message":"","log_id":"LOG-C"}})",
								"application/json");
			else
				res.status = 404;
		});
		server_.Get("/v2/user/info/", [this](const httplib::Request &, httplib::Response &res) {
			Busy		busy(*this);

			pause(delay_ms.load());
			res.set_content(R"({"data":{"user":{"open_id":"open-1"}},"error":{"code":"ok","message":"","log_id":"LOG-U"}})",
							"application/json");
		});
		server_.Post("/v2/oauth/token/", [this](const httplib::Request &, httplib::Response &res) {
			Busy		busy(*this);

			pause(delay_ms.load());
			res.set_content(R"({"access_token":"act.NEW","refresh_token":"rft.NEW","open_id":"open-1","expires_in":86400})",
							"application/json");
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		/*
		 * cpp-httplib listens with a backlog of 5: a burst of 50 connects
		 * overflows it and the kernel drops handshakes, which stalls a
		 * connection for seconds. listen() again raises it (Linux).
		 */
		listen(listen_fd_, 256);
		base_url_ = "http://127.0.0.1:" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	/* Releases sleeping handlers and stops the server. */
	~BatchTikTok()
	{
		release_.store(true);
		server_.stop();
		thread_.join();
	}

	/* "http://127.0.0.1:<port>" (a reference: vs_http_options keeps the pointer). */
	const std::string &base_url() const { return base_url_; }

	std::atomic<int> delay_ms{0};	/* every handler sleeps this long */
	std::atomic<int> slow_ms{0};	/* video_init of a "slow..." video sleeps this long */
	std::atomic<int> requests{0};	/* requests that reached a handler */
	std::atomic<int> max_in_flight{0};	/* most handlers running at once */

private:
	/* Counts a request and the handlers running at once for its lifetime. */
	struct Busy
	{
		explicit Busy(BatchTikTok &s) : s_(s)
		{
			s_.requests++;
			int			now = ++s_.in_flight_;
			int			seen = s_.max_in_flight.load();

			while (now > seen && !s_.max_in_flight.compare_exchange_weak(seen, now))
				;
		}
		~Busy() { s_.in_flight_--; }
		BatchTikTok &s_;
	};

	/* Sleeps ms, or less once the server is being stopped. */
	void pause(int ms)
	{
		auto		deadline = Clock::now() + std::chrono::milliseconds(ms);

		while (!release_.load() && Clock::now() < deadline)
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
	}

	httplib::Server server_;
	std::thread thread_;
	int			listen_fd_ = -1;
	int			port_ = -1;
	std::string base_url_;
	std::atomic<bool> release_{false};
	std::atomic<int> in_flight_{0};
};

/*
 * A keep-alive HTTP/1.1 server in a forked child process (so its CPU time
 * and file descriptors are not the test's): one thread, epoll, TCP_NODELAY.
 * It answers every request after a random delay in [min_delay_us,
 * max_delay_us], a video_init reply with publish_id "pub-<n>" for the video
 * number n of the body. Connections numbered 1 .. close_first_n (in accept
 * order) with an odd number are closed right after their first reply,
 * without a "Connection: close" header: to the client they are kept-alive
 * connections the server timed out while idle. Counters and the connection
 * each request came on live in shared memory.
 */
class ForkedServer
{
public:
	static constexpr int kMaxLogged = 1 << 16;	/* requests whose connection is logged */

	ForkedServer(int min_delay_us, int max_delay_us, int close_first_n = 0)
	{
		shared_ = static_cast<Shared *>(mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
											 MAP_SHARED | MAP_ANONYMOUS, -1, 0));
		if (shared_ == MAP_FAILED)
			throw std::runtime_error("mmap failed");
		new (shared_) Shared();

		int			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int			one = 1;
		sockaddr_in addr{};
		socklen_t	len = sizeof addr;

		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		addr.sin_family = AF_INET;
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 || listen(fd, 4096) != 0)
			throw std::runtime_error("bind/listen failed");
		getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
		base_url_ = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
		fflush(nullptr);
		pid_ = fork();
		if (pid_ < 0)
			throw std::runtime_error("fork failed");
		if (pid_ == 0)
		{
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			/* Not the test's sockets (its pooled connections would outlive their close there). */
			if ((fd > 3 && close_range(3, fd - 1, 0) != 0) || close_range(fd + 1, ~0U, 0) != 0)
				for (int other = 3; other < (1 << 16); other++)
					if (other != fd)
						close(other);
			serve(fd, min_delay_us, max_delay_us, close_first_n);
			_exit(0);
		}
		close(fd);
	}

	~ForkedServer()
	{
		kill(pid_, SIGKILL);
		waitpid(pid_, nullptr, 0);
		munmap(shared_, sizeof(Shared));
	}

	ForkedServer(const ForkedServer &) = delete;
	ForkedServer &operator=(const ForkedServer &) = delete;

	const std::string &base_url() const { return base_url_; }
	int			requests() const { return shared_->requests.load(); }
	int			accepted() const { return shared_->accepted.load(); }
	int			max_open() const { return shared_->max_open.load(); }
	/* The connection number (1, 2, ... in accept order) request i (0-based) came on. */
	int			connection_of(int i) const { return shared_->conn_of_request[i]; }

private:
	struct Shared
	{
		std::atomic<int> requests{0};
		std::atomic<int> accepted{0};
		std::atomic<int> max_open{0};	/* most connections open at once */
		int			conn_of_request[kMaxLogged] = {};
	};

	struct Conn
	{
		bool		open = false;
		unsigned	gen = 0;		/* bumped on close: replies due to a closed fd are dropped */
		int			no = 0;
		bool		close_after_first = false;
		std::string in;
	};

	struct Due
	{
		Clock::time_point at;
		int			fd;
		unsigned	gen;
		std::string reply;

		bool operator>(const Due &o) const { return at > o.at; }
	};

	/* The child: serves until killed. */
	void serve(int listen_fd, int min_us, int max_us, int close_first_n)
	{
		std::vector<Conn> conns(1 << 16);
		std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due;
		std::mt19937 rng(12345);
		std::uniform_int_distribution<int> delay(min_us, max_us);
		int			ep = epoll_create1(0);
		epoll_event ev{};
		epoll_event evs[256];
		int			open_now = 0;

		fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.fd = listen_fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);

		auto		close_conn = [&](int fd) {
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
			close(fd);
			conns[fd].open = false;
			conns[fd].gen++;
			conns[fd].in.clear();
			open_now--;
		};

		for (;;)
		{
			int			timeout = 1000;

			if (!due.empty())
			{
				auto		left = std::chrono::duration_cast<std::chrono::microseconds>(due.top().at - Clock::now()).count();

				timeout = left <= 0 ? 0 : static_cast<int>((left + 999) / 1000);
			}
			int			n = epoll_wait(ep, evs, 256, timeout);

			for (int e = 0; e < n; e++)
			{
				int			fd = evs[e].data.fd;

				if (fd == listen_fd)
				{
					int			c;

					while ((c = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
					{
						int			one = 1;
						Conn	   &conn = conns[c];

						setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
						conn.open = true;
						conn.no = ++shared_->accepted;
						conn.close_after_first = conn.no <= close_first_n && conn.no % 2 == 1;
						conn.in.clear();
						if (++open_now > shared_->max_open.load())
							shared_->max_open.store(open_now);
						ev.events = EPOLLIN;
						ev.data.fd = c;
						epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
					}
					continue;
				}
				Conn	   &conn = conns[fd];
				char		buf[16384];
				bool		eof = false;

				for (;;)
				{
					ssize_t		got = read(fd, buf, sizeof buf);

					if (got > 0)
						conn.in.append(buf, static_cast<std::size_t>(got));
					else
					{
						eof = got == 0 || (errno != EAGAIN && errno != EINTR);
						if (got < 0 && errno == EINTR)
							continue;
						break;
					}
				}
				for (;;)
				{
					std::size_t head_end = conn.in.find("\r\n\r\n");

					if (head_end == std::string::npos)
						break;
					std::size_t length = 0;
					std::size_t at = conn.in.find("Content-Length: ");

					if (at != std::string::npos && at < head_end)
						length = std::strtoul(conn.in.c_str() + at + 16, nullptr, 10);
					if (conn.in.size() < head_end + 4 + length)
						break;
					std::string body = conn.in.substr(head_end + 4, length);

					conn.in.erase(0, head_end + 4 + length);
					int			r = shared_->requests.load();

					if (r < kMaxLogged)
						shared_->conn_of_request[r] = conn.no;
					shared_->requests.store(r + 1);

					std::string json = R"({"data":{"publish_id":"pub-)" + video_number(body) +
						R"("},"error":{"code":"ok","message":"","log_id":"LOG-F"}})";

					due.push(Due{Clock::now() + std::chrono::microseconds(delay(rng)), fd, conn.gen,
								 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
								 std::to_string(json.size()) + "\r\n\r\n" + json});
				}
				if (eof)
					close_conn(fd);
			}
			for (Clock::time_point now = Clock::now(); !due.empty() && due.top().at <= now;)
			{
				const Due  &d = due.top();
				Conn	   &conn = conns[d.fd];

				if (conn.open && conn.gen == d.gen)
				{
					std::size_t off = 0;

					while (off < d.reply.size())
					{
						ssize_t		w = write(d.fd, d.reply.data() + off, d.reply.size() - off);

						if (w > 0)
							off += static_cast<std::size_t>(w);
						else if (w < 0 && (errno == EAGAIN || errno == EINTR))
						{
							pollfd		p{d.fd, POLLOUT, 0};

							poll(&p, 1, 100);
						}
						else
							break;
					}
					if (conn.close_after_first)
						close_conn(d.fd);
				}
				due.pop();
			}
		}
	}

	Shared	   *shared_ = nullptr;
	pid_t		pid_ = -1;
	std::string base_url_;
};

/* HTTP options for base_url (which must outlive them). */
vs_http_options
options(const std::string &base_url, long request_timeout_ms = 10000,
		int (*should_abort)(void) = nullptr)
{
	vs_http_options o{};

	o.base_url = base_url.c_str();
	o.connect_timeout_ms = 2000;
	o.request_timeout_ms = request_timeout_ms;
	o.should_abort = should_abort;
	return o;
}

/* The options of a PULL_FROM_URL video_init for video number n (kept alive in a static pool). */
std::string
init_options(const std::string &n)
{
	return R"({"caption":"c","privacy_level":"SELF_ONLY","video_url":"https://v/)" + n + R"(.mp4"})";
}

/* should_abort: nonzero once the steady clock passes g_abort_at_ns. */
std::atomic<long long> g_abort_at_ns{0};

/* Nonzero once the deadline has passed. */
int
abort_after_deadline(void)
{
	return Clock::now().time_since_epoch().count() >= g_abort_at_ns.load() ? 1 : 0;
}

/* Always asks to abort. */
int
abort_now(void)
{
	return 1;
}

/* The pool counters now. */
vs_pool_stats
stats()
{
	vs_pool_stats s;

	vs_get_pool_stats(&s);
	return s;
}

}								/* namespace */

// 200 calls, at most 50 at once, against a server taking 100 ms each: all
// succeed, each result belongs to its own spec, and the server saw several
// but never more than 50 requests at once, over at most 50 connections.
TEST(CallMany, ConcurrentBatch)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	const int	n = 200;
	std::vector<std::string> opts;
	std::vector<vs_call_spec> specs(n);
	ScopedResults res(n);

	tiktok.delay_ms.store(100);
	opts.reserve(n);
	for (int i = 0; i < n; i++)
	{
		opts.push_back(init_options(std::to_string(i)));
		specs[i] = {VS_EP_VIDEO_INIT, kToken, opts[i].c_str()};
	}
	vs_pool_stats before = stats();

	vs_call_many(&opt, 50, n, specs.data(), res.r.data());
	vs_pool_stats after = stats();

	for (int i = 0; i < n; i++)
	{
		ASSERT_EQ(res[i].ok, 1) << i << ": " << res[i].error_code << ": " << res[i].error_message;
		EXPECT_EQ(std::string(res[i].publish_id), "pub-" + std::to_string(i));
		EXPECT_STREQ(res[i].log_id, "LOG-I");
		EXPECT_EQ(res[i].outcome_unknown, 0);
		EXPECT_EQ(res[i].retry_after_s, -1);
	}
	EXPECT_EQ(tiktok.requests.load(), n);
	EXPECT_LE(tiktok.max_in_flight.load(), 50);
	EXPECT_GT(tiktok.max_in_flight.load(), 1);
	EXPECT_EQ(after.transfers - before.transfers, n);
	EXPECT_LE(after.connections_opened - before.connections_opened, 50);
	EXPECT_EQ((after.connections_opened - before.connections_opened) +
			  (after.connections_reused - before.connections_reused), n);
}

// Two batches of 20, 10 at once, against a server keeping connections
// alive: the first opens at most 10 connections, the second none.
TEST(CallMany, ConnectionsReusedAcrossBatches)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	std::vector<vs_call_spec> specs(20, vs_call_spec{VS_EP_CREATOR_INFO, kToken, "{}"});

	tiktok.delay_ms.store(20);
	vs_pool_stats s0 = stats();
	{
		ScopedResults res(20);

		vs_call_many(&opt, 10, 20, specs.data(), res.r.data());
		for (int i = 0; i < 20; i++)
			ASSERT_EQ(res[i].ok, 1) << res[i].error_code << ": " << res[i].error_message;
	}
	vs_pool_stats s1 = stats();
	{
		ScopedResults res(20);

		vs_call_many(&opt, 10, 20, specs.data(), res.r.data());
		for (int i = 0; i < 20; i++)
			ASSERT_EQ(res[i].ok, 1) << res[i].error_code << ": " << res[i].error_message;
	}
	vs_pool_stats s2 = stats();

	EXPECT_GE(s1.connections_opened - s0.connections_opened, 1);
	EXPECT_LE(s1.connections_opened - s0.connections_opened, 10);
	EXPECT_EQ(s2.connections_opened - s1.connections_opened, 0);
	EXPECT_GE(s2.connections_reused - s0.connections_reused, 20);
	EXPECT_EQ(s2.connections_reused - s1.connections_reused, 20);
	EXPECT_EQ(s2.transfers - s0.transfers, 40);
}

// Every endpoint kind in one batch, with an invalid spec in the middle:
// the others succeed and match what vs_call returns for the same spec.
TEST(CallMany, MixedEndpointsAndInvalidSpec)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	std::string init = init_options("7");
	const char *oauth = R"({"client_key":"ck","client_secret":"cs-SECRET-1","grant_type":"refresh_token","refresh_token":"rft.SECRET-OLD"})";
	std::vector<vs_call_spec> specs = {
		{VS_EP_VIDEO_INIT, kToken, init.c_str()},
		{VS_EP_STATUS_FETCH, kToken, R"({"publish_id":"pub-7"})"},
		{VS_EP_VIDEO_INIT, kToken, R"({"video_url":"https://v/8.mp4"})"},	/* no privacy_level */
		{VS_EP_UNKNOWN, kToken, "{}"},
		{VS_EP_CREATOR_INFO, "tok\r\nX-Evil: 1", "{}"},
		{VS_EP_USER_INFO, kToken, "{}"},
		{VS_EP_OAUTH_TOKEN, nullptr, oauth},
		{VS_EP_CREATOR_INFO, kToken, nullptr},
	};
	const int	n = static_cast<int>(specs.size());
	ScopedResults res(specs.size());

	vs_call_many(&opt, 3, n, specs.data(), res.r.data());

	for (int i : {0, 1, 5, 6, 7})
	{
		ASSERT_EQ(res[i].ok, 1) << i << ": " << res[i].error_code << ": " << res[i].error_message;
		ScopedResult single;

		vs_call(&opt, specs[i].endpoint, specs[i].access_token, specs[i].options_json, &single.r);
		EXPECT_EQ(res[i].http_status, single->http_status) << i;
		EXPECT_STREQ(res[i].error_code, single->error_code) << i;
		EXPECT_STREQ(res[i].publish_id, single->publish_id) << i;
		EXPECT_STREQ(res[i].log_id, single->log_id) << i;
		EXPECT_STREQ(res[i].data_json, single->data_json) << i;
		EXPECT_STREQ(res[i].sqlstate, single->sqlstate) << i;
	}
	EXPECT_STREQ(res[0].publish_id, "pub-7");
	EXPECT_STREQ(res[1].data_json, R"({"status":"PROCESSING_DOWNLOAD"})");
	EXPECT_NE(std::string(res[5].data_json).find("open-1"), std::string::npos);
	EXPECT_NE(std::string(res[6].data_json).find("act.NEW"), std::string::npos);
	for (int i : {2, 3, 4})
	{
		EXPECT_EQ(res[i].ok, 0) << i;
		EXPECT_STREQ(res[i].error_code, "invalid_param") << i;
		EXPECT_EQ(res[i].http_status, 0) << i;
		EXPECT_EQ(res[i].outcome_unknown, 0) << i;
		EXPECT_STREQ(res[i].sqlstate, "22023") << i;
	}
	EXPECT_NE(std::string(res[2].error_message).find("privacy_level"), std::string::npos);
	EXPECT_EQ(std::string(res[4].error_message).find("Evil"), std::string::npos);
	/* 5 sent by the batch, 5 more by the vs_call comparisons. */
	EXPECT_EQ(tiktok.requests.load(), 10);
}

// The single-call rules hold in a batch: an init ok without a publish_id is
// a bad reply of unknown outcome, Retry-After is read, a reply over 4 MB
// is refused.
TEST(CallMany, SingleCallRules)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	std::string nopub = init_options("nopub");
	std::vector<vs_call_spec> specs = {
		{VS_EP_VIDEO_INIT, kToken, nopub.c_str()},
		{VS_EP_STATUS_FETCH, kToken, R"({"publish_id":"limited"})"},
		{VS_EP_CONTENT_INIT, kToken, R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p/1.jpg"]})"},
		{VS_EP_STATUS_FETCH, kToken, R"({"publish_id":"p-1"})"},
	};
	ScopedResults res(specs.size());

	vs_call_many(&opt, 4, static_cast<int>(specs.size()), specs.data(), res.r.data());

	EXPECT_EQ(res[0].ok, 0);
	EXPECT_EQ(res[0].http_status, 200);
	EXPECT_STREQ(res[0].error_code, "bad_response");
	EXPECT_EQ(res[0].outcome_unknown, 1);

	EXPECT_EQ(res[1].ok, 0);
	EXPECT_EQ(res[1].http_status, 429);
	EXPECT_STREQ(res[1].error_code, "rate_limit_exceeded");
	EXPECT_EQ(res[1].retry_after_s, 7);
	EXPECT_EQ(res[1].retryable, 1);

	EXPECT_EQ(res[2].ok, 0);
	EXPECT_STREQ(res[2].error_code, "bad_response");
	EXPECT_NE(std::string(res[2].error_message).find("4 MB"), std::string::npos) << res[2].error_message;
	EXPECT_EQ(res[2].outcome_unknown, 1);

	EXPECT_EQ(res[3].ok, 1) << res[3].error_message;
	EXPECT_EQ(res[3].retry_after_s, -1);
}

// One call outlives request_timeout_ms: it alone times out (outcome
// unknown: it was sent); the others succeed.
TEST(CallMany, PerCallTimeout)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url(), 700);
	std::vector<std::string> opts = {init_options("1"), init_options("slow2"), init_options("3"),
									 init_options("4"), init_options("5")};
	std::vector<vs_call_spec> specs;
	ScopedResults res(opts.size());

	tiktok.slow_ms.store(3000);
	for (const std::string &o : opts)
		specs.push_back({VS_EP_VIDEO_INIT, kToken, o.c_str()});
	vs_call_many(&opt, 2, static_cast<int>(specs.size()), specs.data(), res.r.data());

	EXPECT_EQ(res[1].ok, 0);
	EXPECT_STREQ(res[1].error_code, "timeout");
	EXPECT_STREQ(res[1].sqlstate, "08000");
	EXPECT_EQ(res[1].http_status, 0);
	EXPECT_EQ(res[1].outcome_unknown, 1);
	EXPECT_EQ(res[1].retryable, 0) << "an init that may have reached TikTok is never resent";
	EXPECT_STREQ(res[1].publish_id, "");
	for (int i : {0, 2, 3, 4})
	{
		ASSERT_EQ(res[i].ok, 1) << i << ": " << res[i].error_code << ": " << res[i].error_message;
		EXPECT_EQ(std::string(res[i].publish_id), "pub-" + std::to_string(i + 1));
	}
}

// should_abort turns nonzero while the server sleeps: every call is
// aborted; those in flight may have been read (outcome unknown), those
// never started were not sent; the next batch works.
TEST(CallMany, AbortMidBatch)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url(), 10000, abort_after_deadline);
	const int	n = 12;
	const int	width = 4;
	std::vector<std::string> opts;
	std::vector<vs_call_spec> specs;
	ScopedResults res(n);

	tiktok.delay_ms.store(2000);
	for (int i = 0; i < n; i++)
		opts.push_back(init_options(std::to_string(i)));
	for (int i = 0; i < n; i++)
		specs.push_back({VS_EP_VIDEO_INIT, kToken, opts[i].c_str()});
	g_abort_at_ns.store((Clock::now() + std::chrono::milliseconds(200)).time_since_epoch().count());
	vs_call_many(&opt, width, n, specs.data(), res.r.data());

	for (int i = 0; i < n; i++)
	{
		EXPECT_EQ(res[i].ok, 0) << i;
		EXPECT_STREQ(res[i].error_code, "aborted") << i;
		EXPECT_STREQ(res[i].sqlstate, "57014") << i;
		EXPECT_EQ(res[i].retryable, 0) << i;
		EXPECT_EQ(res[i].outcome_unknown, i < width ? 1 : 0) << i << ": " << res[i].error_message;
	}
	EXPECT_EQ(tiktok.requests.load(), width);	/* the others never left */

	/* The pool is clean for the next batch. */
	tiktok.delay_ms.store(0);
	vs_http_options calm = options(tiktok.base_url());
	ScopedResults again(3);

	vs_call_many(&calm, width, 3, specs.data(), again.r.data());
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(again[i].ok, 1) << again[i].error_code << ": " << again[i].error_message;
}

// should_abort answering at once: nothing is sent, nothing is unknown.
TEST(CallMany, AbortBeforeStart)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url(), 10000, abort_now);
	std::vector<vs_call_spec> specs(5, vs_call_spec{VS_EP_CREATOR_INFO, kToken, "{}"});
	ScopedResults res(5);

	vs_call_many(&opt, 2, 5, specs.data(), res.r.data());
	for (int i = 0; i < 5; i++)
	{
		EXPECT_STREQ(res[i].error_code, "aborted");
		EXPECT_EQ(res[i].outcome_unknown, 0);
	}
	EXPECT_EQ(tiktok.requests.load(), 0);
}

/* One call: a batch of one through vs_call_many, or (single) vs_call. */
void
call_once(bool single, const vs_http_options *opt, const vs_call_spec &spec, vs_call_result *out)
{
	if (single)
		vs_call(opt, spec.endpoint, spec.access_token, spec.options_json, out);
	else
		vs_call_many(opt, 4, 1, &spec, out);
}

/*
 * The kept-alive connection dies under a reused send: one call succeeds
 * (the server keeps its connection), the next call on the same connection
 * is read by the server, which then closes without a reply. libcurl would
 * re-send it on a new connection; it must not. Then a new batch works on a
 * new connection.
 */
void
expect_no_silent_resend(vs_endpoint ep, const char *options_json, bool single = false)
{
	ClosingServer server;
	vs_http_options opt = options(server.base_url());
	vs_call_spec spec = {ep, kToken, options_json};
	vs_pool_stats s0 = stats();

	{
		ScopedResults first(1);

		call_once(single, &opt, spec, first.r.data());
		ASSERT_EQ(first[0].ok, 1) << first[0].error_code << ": " << first[0].error_message;
		ASSERT_EQ(server.requests(), 1);
	}
	{
		ScopedResults second(1);

		call_once(single, &opt, spec, second.r.data());
		EXPECT_EQ(second[0].ok, 0);
		EXPECT_STREQ(second[0].error_code, "transport_error");
		EXPECT_STREQ(second[0].sqlstate, "08000");
		EXPECT_EQ(second[0].http_status, 0);
		EXPECT_EQ(second[0].outcome_unknown, 1);
		EXPECT_NE(std::string(second[0].error_message).find("closed before any reply"), std::string::npos)
			<< second[0].error_message;
		EXPECT_NE(std::string(second[0].error_message).find("not re-sent"), std::string::npos)
			<< second[0].error_message;
	}
	/* Give a (wrong) re-send time to arrive: exactly 2 requests, no third. */
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	EXPECT_EQ(server.requests(), 2);
	{
		ScopedResults third(1);

		call_once(single, &opt, spec, third.r.data());
		ASSERT_EQ(third[0].ok, 1) << third[0].error_code << ": " << third[0].error_message;
	}
	std::vector<int> conns = server.request_connections();

	ASSERT_EQ(conns.size(), 3u);
	EXPECT_EQ(conns[0], 1);
	EXPECT_EQ(conns[1], 1);		/* the second call did reuse the first connection */
	EXPECT_NE(conns[2], 1);		/* the third came on a new one */

	vs_pool_stats s1 = stats();

	EXPECT_EQ(s1.transfers - s0.transfers, 3);
	EXPECT_GE(s1.connections_reused - s0.connections_reused, 1);
}

// No silent re-send of an init (it would post twice).
TEST(CallMany, NoSilentResendOfInit)
{
	expect_no_silent_resend(VS_EP_VIDEO_INIT, init_options("1").c_str());
}

// No silent re-send of creator_info either (an attempt no log would show).
TEST(CallMany, NoSilentResendOfCreatorInfo)
{
	expect_no_silent_resend(VS_EP_CREATOR_INFO, "{}");
}

// The same for a single call (vs_call), which rides the same pool.
TEST(CallMany, SingleCallNoSilentResendOfInit)
{
	expect_no_silent_resend(VS_EP_VIDEO_INIT, init_options("1").c_str(), true);
}

// The same for a single creator_info.
TEST(CallMany, SingleCallNoSilentResendOfCreatorInfo)
{
	expect_no_silent_resend(VS_EP_CREATOR_INFO, "{}", true);
}

// The bearer token a server quotes back never reaches error_message (nor the JSON documents).
TEST(CallMany, TokenNeverInMessages)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	std::vector<vs_call_spec> specs(6, vs_call_spec{VS_EP_STATUS_FETCH, kToken, R"({"publish_id":"echo-auth"})"});
	ScopedResults res(specs.size());

	vs_call_many(&opt, 3, static_cast<int>(specs.size()), specs.data(), res.r.data());
	for (std::size_t i = 0; i < specs.size(); i++)
	{
		EXPECT_EQ(res[i].ok, 0);
		EXPECT_EQ(res[i].http_status, 401);
		EXPECT_STREQ(res[i].error_code, "access_token_invalid");
		EXPECT_STREQ(res[i].error_message, "token Bearer *** is invalid");
		std::string doc = take_text(vs_result_json(&res[i]));
		std::string log = take_text(vs_dispatch_log_json(&res[i], "1", "2", "test", "status_fetch"));

		EXPECT_EQ(doc.find("SECRET"), std::string::npos) << doc;
		EXPECT_EQ(log.find("SECRET"), std::string::npos) << log;
	}
}

// Degenerate arguments: nothing happens, nothing crashes; max_concurrent 0 counts as 1.
TEST(CallMany, DegenerateArguments)
{
	BatchTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	vs_call_spec spec = {VS_EP_CREATOR_INFO, kToken, "{}"};
	ScopedResults res(2);

	vs_call_many(&opt, 4, 0, &spec, res.r.data());
	vs_call_many(&opt, 4, 2, nullptr, res.r.data());
	vs_call_many(&opt, 4, 2, &spec, nullptr);
	vs_call_many(&opt, 4, -1, &spec, res.r.data());
	EXPECT_EQ(res[0].error_code, nullptr);	/* untouched */
	EXPECT_EQ(tiktok.requests.load(), 0);
	vs_get_pool_stats(nullptr);

	vs_call_spec two[2] = {spec, spec};

	vs_call_many(&opt, 0, 2, two, res.r.data());
	EXPECT_EQ(res[0].ok, 1) << res[0].error_message;
	EXPECT_EQ(res[1].ok, 1) << res[1].error_message;
	EXPECT_EQ(tiktok.max_in_flight.load(), 1);

	ScopedResults none(1);

	vs_call_many(nullptr, 4, 1, &spec, none.r.data());
	EXPECT_STREQ(none[0].error_code, "invalid_param");
}

// The same, but libcurl's reconnect for its re-send is refused: still a
// transport_error of unknown outcome (the first copy was read), not a
// connect_failed that would pass for "never sent".
TEST(CallMany, NoSilentResendWhenReconnectFails)
{
	ClosingServer server(true);
	vs_http_options opt = options(server.base_url());
	std::string init = init_options("1");
	vs_call_spec spec = {VS_EP_VIDEO_INIT, kToken, init.c_str()};
	ScopedResults res(2);

	vs_call_many(&opt, 1, 1, &spec, &res[0]);
	ASSERT_EQ(res[0].ok, 1) << res[0].error_code << ": " << res[0].error_message;
	vs_call_many(&opt, 1, 1, &spec, &res[1]);
	EXPECT_EQ(res[1].ok, 0);
	EXPECT_STREQ(res[1].error_code, "transport_error") << res[1].error_message;
	EXPECT_EQ(res[1].outcome_unknown, 1);
	EXPECT_NE(std::string(res[1].error_message).find("not re-sent"), std::string::npos)
		<< res[1].error_message;
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	EXPECT_EQ(server.requests(), 2);
}

/* n video_init specs for video numbers first .. first + n - 1 (opts keeps their options alive). */
std::vector<vs_call_spec>
init_specs(int first, int n, std::vector<std::string> &opts)
{
	std::vector<vs_call_spec> specs;

	opts.clear();
	opts.reserve(n);
	for (int i = 0; i < n; i++)
		opts.push_back(init_options(std::to_string(first + i)));
	for (int i = 0; i < n; i++)
		specs.push_back({VS_EP_VIDEO_INIT, kToken, opts[i].c_str()});
	return specs;
}

/* Every result ok, with the publish_id of its own spec (video numbers first ..). */
void
expect_all_ok(ScopedResults &res, int first, int n)
{
	for (int i = 0; i < n; i++)
	{
		ASSERT_EQ(res[i].ok, 1) << i << ": " << res[i].error_code << ": " << res[i].error_message;
		ASSERT_EQ(std::string(res[i].publish_id), "pub-" + std::to_string(first + i)) << i;
		EXPECT_EQ(res[i].outcome_unknown, 0) << i;
	}
}

// A batch on connections cached by the previous one, of which the server
// has meanwhile closed half while they sat idle: the dead ones are dropped
// (their descriptors closed, the numbers possibly reused for new
// connections), the live ones reused, and every call succeeds exactly once.
TEST(CallMany, ReusesCacheAfterServerClosedHalf)
{
	const int	width = 20;
	ForkedServer server(2000, 5000, width);
	vs_http_options opt = options(server.base_url());
	std::vector<std::string> opts;

	/* Batch 1: one call per connection, connections 1 .. 20; the odd ones close after replying. */
	{
		std::vector<vs_call_spec> specs = init_specs(0, width, opts);
		ScopedResults res(width);

		vs_call_many(&opt, width, width, specs.data(), res.r.data());
		expect_all_ok(res, 0, width);
	}
	ASSERT_EQ(server.accepted(), width);
	std::this_thread::sleep_for(std::chrono::milliseconds(200));	/* the FINs arrive */

	/* Batch 2 (and 3): three rounds over the cache, now half dead. */
	for (int round = 0; round < 2; round++)
	{
		const int	n = 3 * width;
		const int	first = 1000 * (round + 1);
		int			before = server.requests();
		vs_pool_stats s0 = stats();
		std::vector<vs_call_spec> specs = init_specs(first, n, opts);
		ScopedResults res(n);

		vs_call_many(&opt, width, n, specs.data(), res.r.data());
		vs_pool_stats s1 = stats();

		expect_all_ok(res, first, n);
		EXPECT_EQ(server.requests() - before, n);	/* nothing re-sent */
		EXPECT_EQ(s1.transfers - s0.transfers, n);
		EXPECT_EQ((s1.connections_opened - s0.connections_opened) +
				  (s1.connections_reused - s0.connections_reused), n);

		std::set<int> used;

		for (int r = before; r < before + n; r++)
			used.insert(server.connection_of(r));
		for (int c = 1; c <= width; c += 2)
			EXPECT_EQ(used.count(c), 0u) << "request on connection " << c << ", closed by the server";
		if (round == 0)
		{
			/* The ten survivors of batch 1 were reused, and ten new ones replace the dead. */
			for (int c = 2; c <= width; c += 2)
				EXPECT_EQ(used.count(c), 1u) << "surviving connection " << c << " not reused";
			EXPECT_EQ(s1.connections_opened - s0.connections_opened, width / 2);
		}
		else
			EXPECT_EQ(s1.connections_opened - s0.connections_opened, 0);
	}
	EXPECT_EQ(server.accepted(), width + width / 2);
}

// 600 calls all at once against a server answering in about 1 ms: all
// succeed, each with its own reply, over at most 600 connections.
TEST(CallMany, SixHundredAtOnce)
{
	ForkedServer server(1000, 1000);
	vs_http_options opt = options(server.base_url());
	const int	n = 600;
	std::vector<std::string> opts;
	std::vector<vs_call_spec> specs = init_specs(0, n, opts);
	ScopedResults res(n);
	vs_pool_stats s0 = stats();

	vs_call_many(&opt, n, n, specs.data(), res.r.data());
	vs_pool_stats s1 = stats();

	expect_all_ok(res, 0, n);
	EXPECT_EQ(server.requests(), n);
	EXPECT_LE(server.accepted(), n);
	EXPECT_EQ(s1.transfers - s0.transfers, n);

	/* And again on the kept-alive connections. */
	ScopedResults again(n);

	vs_call_many(&opt, n, n, specs.data(), again.r.data());
	expect_all_ok(again, 0, n);
	EXPECT_EQ(server.requests(), 2 * n);
	EXPECT_LE(server.accepted(), n);
}

/* A SIGALRM handler that does nothing (the signal only interrupts system calls). */
extern "C" void
ignore_alarm(int)
{
}

// A storm of signals (as Postgres delivers them) interrupting the batch's
// waits: every call still completes, with its own reply.
TEST(CallMany, SignalsInterruptingTheWait)
{
	ForkedServer server(5000, 30000);
	vs_http_options opt = options(server.base_url());
	const int	n = 300;
	std::vector<std::string> opts;
	std::vector<vs_call_spec> specs = init_specs(0, n, opts);
	ScopedResults res(n);
	struct sigaction sa{};
	struct sigaction old_sa{};
	itimerval	every{{0, 1000}, {0, 1000}};
	itimerval	off{};

	sa.sa_handler = ignore_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;			/* no SA_RESTART: the wait fails with EINTR */
	ASSERT_EQ(sigaction(SIGALRM, &sa, &old_sa), 0);
	ASSERT_EQ(setitimer(ITIMER_REAL, &every, nullptr), 0);
	vs_call_many(&opt, 50, n, specs.data(), res.r.data());
	setitimer(ITIMER_REAL, &off, nullptr);
	sigaction(SIGALRM, &old_sa, nullptr);

	expect_all_ok(res, 0, n);
	EXPECT_EQ(server.requests(), n);
}

/* user + system CPU time of this process so far, in ms. */
double
cpu_ms()
{
	rusage		ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* An integer from the environment, or fallback. */
int
env_int(const char *name, int fallback)
{
	const char *v = std::getenv(name);

	return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// Benchmark of the batch event loop (disabled; run with
// --gtest_also_run_disabled_tests --gtest_filter='*CallManyBench*'):
// VS_BENCH_BATCHES batches of VS_BENCH_CALLS video_inits (default 5 of
// 5000), VS_BENCH_CONCURRENT at once (512), against the forked server
// answering after a random 0 .. VS_BENCH_MAX_DELAY_MS (50) ms. Prints this
// process's CPU time (getrusage: the server is another process) per 1,000
// calls and the wall time of each batch; batch 1 opens the connections,
// the others reuse them.
TEST(CallManyBench, DISABLED_EventLoopCpu)
{
	const int	n = env_int("VS_BENCH_CALLS", 5000);
	const int	width = env_int("VS_BENCH_CONCURRENT", 512);
	const int	batches = env_int("VS_BENCH_BATCHES", 5);
	const int	max_delay_ms = env_int("VS_BENCH_MAX_DELAY_MS", 50);
	ForkedServer server(0, max_delay_ms * 1000);
	vs_http_options opt = options(server.base_url(), 30000);
	std::vector<std::string> opts;
	std::vector<vs_call_spec> specs = init_specs(0, n, opts);
	double		warm_cpu = 0,
				warm_wall = 0;

	for (int b = 0; b < batches; b++)
	{
		ScopedResults res(n);
		double		c0 = cpu_ms();
		Clock::time_point t0 = Clock::now();

		vs_call_many(&opt, width, n, specs.data(), res.r.data());
		double		wall = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
		double		cpu = cpu_ms() - c0;

		expect_all_ok(res, 0, n);
		std::printf("bench batch %d: %d calls, %d at once, delay 0-%d ms: wall %.0f ms, "
					"CPU %.0f ms = %.1f ms per 1,000 calls\n",
					b + 1, n, width, max_delay_ms, wall, cpu, cpu * 1000.0 / n);
		if (b > 0)
		{
			warm_cpu += cpu;
			warm_wall += wall;
		}
	}
	if (batches > 1)
		std::printf("bench warm batches: CPU %.1f ms per 1,000 calls, wall %.0f ms per batch; "
					"connections accepted %d\n",
					warm_cpu * 1000.0 / (static_cast<double>(n) * (batches - 1)),
					warm_wall / (batches - 1), server.accepted());
}
