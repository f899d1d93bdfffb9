/*
 * http_transport_test.cpp: vs_call against an in-process cpp-httplib
 * server on 127.0.0.1 (success, refused, timeout, abort, kept-alive connections, caps).
 */
#include "test_support.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char kToken[] = "act.SECRET-token-1234567890";

/* What the server saw of one request. */
struct Seen
{
	std::string path;
	std::string authorization;
	std::string content_type;
	std::string body;
	int			remote_port;
};

/* A fake TikTok on an ephemeral port, serving from its own thread. */
class FakeTikTok
{
public:
	/*
	 * Registers the routes and starts listening. Without keep_alive each
	 * connection serves one request, so stop() need not wait out idle
	 * keep-alive connections held open by the client's shared handle.
	 */
	explicit FakeTikTok(bool keep_alive = false)
	{
		if (keep_alive)
			server_.set_keep_alive_timeout(1);
		else
			server_.set_keep_alive_max_count(1);
		server_.Post(R"(/v2/post/publish/.*)", [this](const httplib::Request &req, httplib::Response &res) {
			record(req);
			if (req.path == "/v2/post/publish/status/fetch/")
				res.set_content(R"({"data":{"status":"PUBLISH_COMPLETE","publicaly_available_post_id":[7300000000000000123]},)"
								R"("error":{"code":"ok","message":"","log_id":"LOG-STATUS"}})",
								"application/json");
			else if (req.path == "/v2/post/publish/video/init/")
				res.set_content(R"({"data":{"publish_id":"v_pub_url~v2.777"},"error":{"code":"ok","message":"","log_id":"LOG-INIT"}})",
								"application/json");
			else if (req.path == "/v2/post/publish/creator_info/query/")
			{
				/* Slow: sleeps until released (or 5 s). */
				auto deadline = Clock::now() + std::chrono::seconds(5);

				while (!release_.load() && Clock::now() < deadline)
					std::this_thread::sleep_for(std::chrono::milliseconds(10));
				res.set_content(R"({"data":{},"error":{"code":"ok","message":"","log_id":"LATE"}})", "application/json");
			}
			else if (req.path == "/v2/post/publish/inbox/video/init/")
			{
				res.status = 502;
				res.set_content("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html");
			}
			else if (req.path == "/v2/post/publish/content/init/")
				res.set_content(std::string(5 * 1024 * 1024, ' '), "application/json");
			else
				res.status = 404;
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		base_url_ = "http://127.0.0.1:" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	/* Releases slow handlers and stops the server. */
	~FakeTikTok()
	{
		release_.store(true);
		server_.stop();
		thread_.join();
	}

	/* "http://127.0.0.1:<port>" (a reference: vs_http_options keeps the pointer). */
	const std::string &base_url() const { return base_url_; }

	/* A copy of the requests seen so far. */
	std::vector<Seen> seen()
	{
		std::lock_guard<std::mutex> lock(mutex_);
		return seen_;
	}

private:
	/* Stores what a request carried. */
	void record(const httplib::Request &req)
	{
		std::lock_guard<std::mutex> lock(mutex_);
		seen_.push_back({req.path, req.get_header_value("Authorization"),
						 req.get_header_value("Content-Type"), req.body, req.remote_port});
	}

	httplib::Server server_;
	std::thread thread_;
	int			port_ = -1;
	std::string base_url_;
	std::atomic<bool> release_{false};
	std::mutex	mutex_;
	std::vector<Seen> seen_;
};

/* HTTP options for base_url (which must outlive them) with the given timeouts. */
vs_http_options options(const std::string &&base_url, long = 0, int (*)(void) = nullptr) = delete;

/* HTTP options for base_url (which must outlive them) with the given timeouts. */
vs_http_options
options(const std::string &base_url, long request_timeout_ms = 5000,
		int (*should_abort)(void) = nullptr)
{
	vs_http_options o{};

	o.base_url = base_url.c_str();
	o.connect_timeout_ms = 2000;
	o.request_timeout_ms = request_timeout_ms;
	o.should_abort = should_abort;
	return o;
}

/* A TCP port on 127.0.0.1 with nothing listening (bound, then closed). */
int
closed_port()
{
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in addr{};
	socklen_t	len = sizeof addr;

	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
	getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
	close(fd);
	return ntohs(addr.sin_port);
}

/* should_abort hooks: abort after a deadline, or at once. */
std::atomic<long long> g_abort_at_ns{0};

/* Nonzero once the steady clock passes g_abort_at_ns. */
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

/* Never asks to abort. */
int
never_abort(void)
{
	return 0;
}

/* Asserts that neither JSON document of a result mentions the token. */
void
expect_no_token(vs_call_result &r)
{
	std::string result = take_text(vs_result_json(&r));
	std::string log = take_text(vs_dispatch_log_json(&r, "1", "2", "test", "x"));

	EXPECT_EQ(result.find("SECRET"), std::string::npos) << result;
	EXPECT_EQ(log.find("SECRET"), std::string::npos) << log;
	EXPECT_EQ(std::string(r.error_message).find("SECRET"), std::string::npos);
}

}								/* namespace */

// A full round trip: headers and body reach the server, the reply is parsed.
TEST(HttpTransport, SuccessRoundTrip)
{
	FakeTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url(), 5000, never_abort);
	const char *options_json = R"({"caption":"hi","privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4"})";
	ScopedResult res;

	vs_call(&opt, VS_EP_VIDEO_INIT, kToken, options_json, &res.r);
	EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_EQ(res->http_status, 200);
	EXPECT_STREQ(res->error_code, "ok");
	EXPECT_STREQ(res->publish_id, "v_pub_url~v2.777");
	EXPECT_STREQ(res->log_id, "LOG-INIT");
	EXPECT_STREQ(res->sqlstate, "00000");
	EXPECT_EQ(res->outcome_unknown, 0);
	EXPECT_EQ(res->retryable, 0);
	EXPECT_GT(res->duration_ms, 0.0);
	EXPECT_LT(res->duration_ms, 5000.0);

	std::vector<Seen> seen = tiktok.seen();

	ASSERT_EQ(seen.size(), 1u);
	EXPECT_EQ(seen[0].path, "/v2/post/publish/video/init/");
	EXPECT_EQ(seen[0].authorization, std::string("Bearer ") + kToken);
	EXPECT_EQ(seen[0].content_type, "application/json; charset=UTF-8");
	EXPECT_EQ(take_text(vs_build_request_body(VS_EP_VIDEO_INIT, options_json, nullptr)), seen[0].body);
	expect_no_token(res.r);
}

// Big ids survive the whole path; a trailing slash on base_url is fine; no should_abort is fine.
TEST(HttpTransport, StatusFetchBigIdsAndTrailingSlash)
{
	FakeTikTok tiktok;
	std::string base = tiktok.base_url() + "//";
	vs_http_options opt = options(base);
	ScopedResult res;

	vs_call(&opt, VS_EP_STATUS_FETCH, kToken, R"({"publish_id":"v_pub_url~v2.777"})", &res.r);
	ASSERT_EQ(res->ok, 1) << res->error_message;
	EXPECT_STREQ(res->data_json, R"({"status":"PUBLISH_COMPLETE","publicaly_available_post_id":[7300000000000000123]})");
	std::string result = take_text(vs_result_json(&res.r));

	EXPECT_NE(result.find("[7300000000000000123]"), std::string::npos) << result;
	ASSERT_EQ(tiktok.seen().size(), 1u);
	EXPECT_EQ(tiktok.seen()[0].path, "/v2/post/publish/status/fetch/");
	EXPECT_EQ(tiktok.seen()[0].body, R"({"publish_id":"v_pub_url~v2.777"})");
}

// Single calls share the kept-alive pool of vs_call_many (its no-re-send
// rule is tested in call_many_test.cpp): three calls, one connection.
TEST(HttpTransport, SingleCallsKeepTheConnectionAlive)
{
	FakeTikTok tiktok(true);
	vs_http_options opt = options(tiktok.base_url());

	for (int i = 0; i < 3; i++)
	{
		ScopedResult res;

		vs_call(&opt, VS_EP_STATUS_FETCH, kToken, R"({"publish_id":"p"})", &res.r);
		ASSERT_EQ(res->ok, 1) << res->error_message;
	}
	std::vector<Seen> seen = tiktok.seen();

	ASSERT_EQ(seen.size(), 3u);
	EXPECT_EQ(seen[0].remote_port, seen[1].remote_port);
	EXPECT_EQ(seen[1].remote_port, seen[2].remote_port);
}

// Nothing listening: connect_failed, retryable, certainly not sent.
TEST(HttpTransport, ConnectRefused)
{
	std::string base = "http://127.0.0.1:" + std::to_string(closed_port());
	vs_http_options opt = options(base);
	ScopedResult res;

	vs_call(&opt, VS_EP_VIDEO_INIT, kToken,
			R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4"})", &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 0);
	EXPECT_STREQ(res->error_code, "connect_failed");
	EXPECT_STREQ(res->sqlstate, "08001");
	EXPECT_EQ(res->retryable, 1);
	EXPECT_EQ(res->outcome_unknown, 0);
	EXPECT_STRNE(res->error_message, "");
	EXPECT_STREQ(res->data_json, "{}");
	EXPECT_STREQ(res->publish_id, "");
	expect_no_token(res.r);
}

// The server answers later than request_timeout: timeout, outcome unknown, bounded wait.
TEST(HttpTransport, Timeout)
{
	FakeTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url(), 300);
	ScopedResult res;
	auto		start = Clock::now();

	vs_call(&opt, VS_EP_CREATOR_INFO, kToken, "{}", &res.r);
	double		waited = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "timeout");
	EXPECT_STREQ(res->sqlstate, "08000");
	EXPECT_EQ(res->http_status, 0);
	EXPECT_EQ(res->retryable, 1);
	EXPECT_EQ(res->outcome_unknown, 1);
	EXPECT_GE(res->duration_ms, 250.0);
	EXPECT_LT(res->duration_ms, 1500.0);
	EXPECT_LT(waited, 1500.0);
	expect_no_token(res.r);
	EXPECT_EQ(tiktok.seen().size(), 1u);	/* the request did reach the server */
}

// should_abort turning nonzero mid-call stops it quickly: aborted, outcome unknown.
TEST(HttpTransport, AbortMidCall)
{
	FakeTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url(), 10000, abort_after_deadline);
	ScopedResult res;
	auto		start = Clock::now();

	g_abort_at_ns.store((start + std::chrono::milliseconds(200)).time_since_epoch().count());
	vs_call(&opt, VS_EP_CREATOR_INFO, kToken, "{}", &res.r);
	double		waited = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "aborted");
	EXPECT_STREQ(res->sqlstate, "57014");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_EQ(res->outcome_unknown, 1);
	EXPECT_GE(waited, 190.0);
	EXPECT_LT(waited, 1200.0);
	expect_no_token(res.r);
}

// should_abort answering 1 from the start aborts before anything useful happens.
TEST(HttpTransport, AbortAtOnce)
{
	FakeTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url(), 10000, abort_now);
	ScopedResult res;
	auto		start = Clock::now();

	vs_call(&opt, VS_EP_CREATOR_INFO, kToken, "{}", &res.r);
	double		waited = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

	EXPECT_STREQ(res->error_code, "aborted");
	EXPECT_LT(waited, 1200.0);
}

// An HTML 502 from a proxy is a parsed (bad) reply: bad_response, retryable, outcome known.
TEST(HttpTransport, Html502)
{
	FakeTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_INBOX_VIDEO_INIT, kToken, R"({"video_url":"https://v/1.mp4"})", &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 502);
	EXPECT_STREQ(res->error_code, "bad_response");
	EXPECT_STREQ(res->sqlstate, "08P01");
	/* A 502 page on an init proves no refusal: TikTok may have the post. */
	EXPECT_EQ(res->retryable, 0);
	EXPECT_EQ(res->outcome_unknown, 1);
	EXPECT_NE(std::string(res->error_message).find("502 Bad Gateway"), std::string::npos) << res->error_message;
	EXPECT_NE(std::string(res->error_message).find("will not be resent"), std::string::npos) << res->error_message;
}

// A reply over 4 MB is refused as bad_response.
TEST(HttpTransport, ReplyTooLarge)
{
	FakeTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_CONTENT_INIT, kToken,
			R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p/1.jpg"]})", &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "bad_response");
	EXPECT_EQ(res->http_status, 200);
	EXPECT_NE(std::string(res->error_message).find("4 MB"), std::string::npos) << res->error_message;
	EXPECT_EQ(res->outcome_unknown, 1);
}

// Problems found before sending never reach the server: bad options, bad token, no base_url.
TEST(HttpTransport, RefusedBeforeSending)
{
	FakeTikTok tiktok;
	vs_http_options opt = options(tiktok.base_url());

	{
		ScopedResult res;

		vs_call(&opt, VS_EP_VIDEO_INIT, kToken, R"({"video_url":"https://v/1.mp4"})", &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param");
		EXPECT_STREQ(res->sqlstate, "22023");
		EXPECT_EQ(res->http_status, 0);
		EXPECT_EQ(res->outcome_unknown, 0);
		EXPECT_NE(std::string(res->error_message).find("privacy_level"), std::string::npos);
	}
	{
		ScopedResult res;

		vs_call(&opt, VS_EP_CREATOR_INFO, "tok\r\nX-Evil: 1", "{}", &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param");
		EXPECT_EQ(std::string(res->error_message).find("Evil"), std::string::npos);
	}
	{
		ScopedResult res;

		vs_call(&opt, VS_EP_UNKNOWN, kToken, "{}", &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param");
	}
	{
		std::string no_url;
		vs_http_options empty = options(no_url);
		ScopedResult res;

		vs_call(&empty, VS_EP_CREATOR_INFO, kToken, "{}", &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param");
		ScopedResult none;

		vs_call(nullptr, VS_EP_CREATOR_INFO, kToken, "{}", &none.r);
		EXPECT_STREQ(none->error_code, "invalid_param");
	}
	vs_call(&opt, VS_EP_CREATOR_INFO, kToken, "{}", nullptr);	/* no crash */
	EXPECT_EQ(tiktok.seen().size(), 0u);
}

// A URL scheme curl may not use is a transport_error, not a crash.
TEST(HttpTransport, ForbiddenProtocol)
{
	std::string file_url = "file:///etc";
	vs_http_options opt = options(file_url);
	ScopedResult res;

	vs_call(&opt, VS_EP_CREATOR_INFO, kToken, "{}", &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "transport_error");
	EXPECT_EQ(res->outcome_unknown, 0);
	expect_no_token(res.r);
}
