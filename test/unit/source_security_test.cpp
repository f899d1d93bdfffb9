/*
 * source_security_test.cpp: the fences around the extension's own download
 * of a post's video_url (vs_probe_source / vs_fetch_range), against
 * in-process servers on two loopback addresses (127.0.0.1 and 127.0.0.2)
 * and raw sockets: loopback refused unless allowed (also through DNS and
 * through a redirect from an allowed host), one generic error for every
 * transport failure, no reply body or URL secret in any message, http(s)
 * only, TikTok's 4 GB cap, the container sniffed whatever the
 * Content-Type says, and the stall timeout. Calls to TikTok's own base
 * URL are not subject to the address rules.
 */
#include "test_support.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char kSecretQuery[] = "X-Amz-Signature=QSECRET0123456789&X-Amz-Credential=AKIAQSECRET";

/* An MP4-looking video of size bytes. */
std::string
mp4_bytes(std::size_t size)
{
	std::string v(size, 'v');
	const char	head[] = "\x00\x00\x00\x20" "ftypisom\x00\x00\x02\x00";

	v.replace(0, sizeof head - 1, std::string(head, sizeof head - 1));
	return v;
}

/*
 * A source on one loopback address. Paths: /video (MP4, ranges), /text (a
 * text file served as video/mp4), /go (302 to the target set by
 * redirect_to), /ftp (302 to ftp://), /dict (302 to dict://), /banner (404
 * with a body and a Server header to leak), /s500 (a 500 with a body).
 */
class Source
{
public:
	explicit Source(const std::string &address) : video_(mp4_bytes(4096))
	{
		server_.set_keep_alive_max_count(1);
		server_.Get(R"(/.*)", [this](const httplib::Request &req, httplib::Response &res) {
			const_cast<httplib::Request &>(req).ranges.clear();
			hits_.fetch_add(1);
			handle(req, res);
		});
		port_ = server_.bind_to_any_port(address);
		base_ = "http://" + address + ":" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	~Source()
	{
		server_.stop();
		thread_.join();
	}

	/* The URL of path on this source, with a pre-signed-style query string. */
	std::string url(const std::string &path) const { return base_ + path + "?" + kSecretQuery; }

	int			port() const { return port_; }
	int			hits() const { return hits_.load(); }
	void		redirect_to(const std::string &url)
	{
		std::lock_guard<std::mutex> lock(mutex_);
		target_ = url;
	}
	const std::string &video() const { return video_; }

private:
	/* Answers one GET by path. */
	void handle(const httplib::Request &req, httplib::Response &res)
	{
		if (req.path == "/video" || req.path == "/text")
		{
			std::string body = req.path == "/video" ? video_ : std::string(4096, 'x');
			long long	first = 0;
			long long	last = static_cast<long long>(body.size()) - 1;
			std::string range = req.get_header_value("Range");

			if (std::sscanf(range.c_str(), "bytes=%lld-%lld", &first, &last) == 2)
			{
				last = std::min<long long>(last, static_cast<long long>(body.size()) - 1);
				res.status = 206;
				res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) +
							   "/" + std::to_string(body.size()));
				body = body.substr(static_cast<std::size_t>(first), static_cast<std::size_t>(last - first + 1));
			}
			res.set_content(body, "video/mp4");
		}
		else if (req.path == "/go")
		{
			std::lock_guard<std::mutex> lock(mutex_);

			res.status = 302;
			res.set_header("Location", target_);
		}
		else if (req.path == "/ftp" || req.path == "/dict")
		{
			res.status = 302;
			res.set_header("Location", req.path == "/ftp" ? "ftp://127.0.0.1/v.mp4" : "dict://127.0.0.1:11211/stats");
		}
		else if (req.path == "/banner" || req.path == "/s500")
		{
			res.status = req.path == "/banner" ? 404 : 500;
			res.set_header("Server", "SecretDaemon/1.2.3 BANNER");
			res.set_content("INTERNAL-BODY: redis_version:7.0.0 " + req.path + "?" + kSecretQuery, "text/plain");
		}
		else
			res.status = 404;
	}

	std::string video_;
	httplib::Server server_;
	std::thread thread_;
	int			port_ = -1;
	std::string base_;
	std::atomic<int> hits_{0};
	std::mutex	mutex_;
	std::string target_;
};

/*
 * A raw TCP server on 127.0.0.1: each connection's request headers are
 * read, then reply is written (may be empty) and the connection is held
 * open until the server stops (a source that never finishes).
 */
class RawServer
{
public:
	explicit RawServer(std::string reply) : reply_(std::move(reply))
	{
		sockaddr_in addr{};

		fd_ = socket(AF_INET, SOCK_STREAM, 0);
		addr.sin_family = AF_INET;
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		addr.sin_port = 0;
		int			one = 1;

		setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
		EXPECT_EQ(listen(fd_, 8), 0);
		socklen_t	len = sizeof addr;

		getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len);
		port_ = ntohs(addr.sin_port);
		thread_ = std::thread([this] { serve(); });
	}

	~RawServer()
	{
		stop_.store(true);
		thread_.join();
		for (int c : clients_)
			close(c);
		close(fd_);
	}

	std::string url(const std::string &path) const
	{
		return "http://127.0.0.1:" + std::to_string(port_) + path + "?" + kSecretQuery;
	}

	int			accepted() const { return accepted_.load(); }

private:
	/* Accepts connections until stopped; answers each once and holds it. */
	void serve()
	{
		while (!stop_.load())
		{
			pollfd		p = {fd_, POLLIN, 0};

			if (poll(&p, 1, 20) <= 0)
				continue;
			int			c = accept(fd_, nullptr, nullptr);

			if (c < 0)
				continue;
			accepted_.fetch_add(1);
			clients_.push_back(c);
			std::string request;
			char		buf[4096];
			auto		deadline = Clock::now() + std::chrono::seconds(2);

			while (request.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline)
			{
				pollfd		q = {c, POLLIN, 0};

				if (poll(&q, 1, 20) <= 0)
					continue;
				ssize_t		n = read(c, buf, sizeof buf);

				if (n <= 0)
					break;
				request.append(buf, static_cast<std::size_t>(n));
			}
			if (!reply_.empty())
				(void) !write(c, reply_.data(), reply_.size());
		}
	}

	std::string reply_;
	int			fd_ = -1;
	int			port_ = 0;
	std::thread thread_;
	std::atomic<bool> stop_{false};
	std::atomic<int> accepted_{0};
	std::vector<int> clients_;
};

/* Source download options: allow is the allow-list (NULL for none). */
vs_http_options
source_options(const char *allow, long stall_ms = 5000, long request_timeout_ms = 10000)
{
	vs_http_options o{};

	o.base_url = "";
	o.connect_timeout_ms = 2000;
	o.request_timeout_ms = request_timeout_ms;
	o.source_allowed_networks = allow;
	o.source_connect_timeout_ms = 2000;
	o.source_stall_timeout_ms = stall_ms;
	return o;
}

/* Probes url with opt into res. */
void
probe(const vs_http_options &opt, const std::string &url, ScopedResult &res)
{
	vs_probe_source(&opt, url.c_str(), &res.r);
}

/* Fetches [first, first + length) of url into a fresh buffer. */
void
fetch(const vs_http_options &opt, const std::string &url, long long first, long long length,
	  ScopedResult &res, long long *received = nullptr)
{
	std::vector<char> buf(static_cast<std::size_t>(length));

	vs_fetch_range(&opt, url.c_str(), first, length, buf.data(), received, &res.r);
}

/* Nothing secret, no body text and no banner anywhere in the result. */
void
expect_nothing_leaks(vs_call_result &r, const std::string &where)
{
	std::string all = std::string(r.error_message) + " " + take_text(vs_result_json(&r)) + " " +
		take_text(vs_dispatch_log_json(&r, nullptr, nullptr, "test", "source"));

	for (const char *leak : {"QSECRET", "AKIA", "X-Amz", "INTERNAL-BODY", "redis_version", "SecretDaemon",
							 "BANNER", "127.0.0", "Connection refused", "port "})
		EXPECT_EQ(all.find(leak), std::string::npos) << where << ": \"" << leak << "\" in " << all;
}

/* The generic failure of a source that could not be read. */
void
expect_unreachable(vs_call_result &r, const std::string &where)
{
	EXPECT_EQ(r.ok, 0) << where;
	EXPECT_STREQ(r.error_code, "source_unreachable") << where << ": " << r.error_message;
	EXPECT_STREQ(r.error_message,
				 "could not download the video source (no connection, no answer in time, or refused)")
		<< where;
	EXPECT_EQ(r.http_status, 0) << where;
	EXPECT_STREQ(r.sqlstate, "08000") << where;
	EXPECT_EQ(r.retryable, 1) << where;
	EXPECT_EQ(r.outcome_unknown, 0) << where;
	expect_nothing_leaks(r, where);
}

}								/* namespace */

// Loopback is refused without the allow-list, by literal address and by host name; nothing is sent.
TEST(SourceSecurity, LoopbackRefusedWithoutAllowList)
{
	Source		src("127.0.0.1");

	for (const char *allow : {static_cast<const char *>(nullptr), "", "10.0.0.0/8", "127.0.0.2/32"})
	{
		vs_http_options opt = source_options(allow);
		std::string where = allow ? allow : "NULL";

		for (const std::string &url : {src.url("/video"),
									   "http://localhost:" + std::to_string(src.port()) + "/video?" + kSecretQuery,
									   "http://[::ffff:127.0.0.1]:" + std::to_string(src.port()) + "/video"})
		{
			ScopedResult p;
			ScopedResult f;

			probe(opt, url, p);
			expect_unreachable(p.r, "probe " + where + " " + url);
			fetch(opt, url, 0, 100, f);
			expect_unreachable(f.r, "fetch " + where + " " + url);
		}
	}
	EXPECT_EQ(src.hits(), 0) << "a refused address is never connected to";

	/* Allowed: the same source is read. */
	vs_http_options opt = source_options("127.0.0.1/32");
	ScopedResult ok;

	probe(opt, src.url("/video"), ok);
	EXPECT_EQ(ok->ok, 1) << ok->error_code << ": " << ok->error_message;
	EXPECT_STREQ(ok->data_json, R"({"size":4096,"content_type":"video/mp4","accepts_ranges":true})");
}

// A redirect from an allowed host to a refused one fails, and the refused one sees nothing.
TEST(SourceSecurity, RedirectToRefusedAddress)
{
	Source		first("127.0.0.1");
	Source		second("127.0.0.2");
	vs_http_options only_first = source_options("127.0.0.1/32");

	first.redirect_to(second.url("/video"));
	{
		ScopedResult p;
		ScopedResult f;

		probe(only_first, first.url("/go"), p);
		expect_unreachable(p.r, "probe via redirect");
		fetch(only_first, first.url("/go"), 0, 100, f);
		expect_unreachable(f.r, "fetch via redirect");
	}
	EXPECT_EQ(first.hits(), 2);
	EXPECT_EQ(second.hits(), 0) << "the redirect target must never be connected to";

	/* A redirect to a link-local (metadata) address, by name of a refused family. */
	first.redirect_to("http://169.254.169.254/latest/meta-data/");
	{
		ScopedResult p;

		probe(only_first, first.url("/go"), p);
		expect_unreachable(p.r, "redirect to 169.254.169.254");
	}

	/* Both allowed: the redirect is followed. */
	vs_http_options both = source_options("127.0.0.1/32, 127.0.0.2/32");

	first.redirect_to(second.url("/video"));
	{
		ScopedResult p;
		long long	received = -1;
		ScopedResult f;

		probe(both, first.url("/go"), p);
		EXPECT_EQ(p->ok, 1) << p->error_code << ": " << p->error_message;
		fetch(both, first.url("/go"), 100, 200, f, &received);
		EXPECT_EQ(f->ok, 1) << f->error_code << ": " << f->error_message;
		EXPECT_EQ(received, 200);
	}
	EXPECT_EQ(second.hits(), 2);
}

// A closed port, a refused address and a silent server give the same code, message and status.
TEST(SourceSecurity, PortStatesLookAlike)
{
	int			closed_port;
	{
		/* A port that was just free: nothing listens on it now. */
		int			fd = socket(AF_INET, SOCK_STREAM, 0);
		sockaddr_in addr{};
		socklen_t	len = sizeof addr;

		addr.sin_family = AF_INET;
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
		getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
		closed_port = ntohs(addr.sin_port);
		close(fd);
	}
	RawServer	silent("");
	std::string closed = "http://127.0.0.1:" + std::to_string(closed_port) + "/v?" + kSecretQuery;
	std::vector<std::string> messages;

	{
		ScopedResult r;

		probe(source_options("127.0.0.1/32"), closed, r);
		expect_unreachable(r.r, "closed port");
		messages.push_back(std::string(r->error_code) + r->error_message + r->sqlstate);
	}
	{
		ScopedResult r;

		probe(source_options(""), closed, r);
		expect_unreachable(r.r, "refused address");
		messages.push_back(std::string(r->error_code) + r->error_message + r->sqlstate);
	}
	{
		ScopedResult r;

		probe(source_options("127.0.0.1/32", 300), silent.url("/v"), r);
		expect_unreachable(r.r, "silent server");
		messages.push_back(std::string(r->error_code) + r->error_message + r->sqlstate);
	}
	EXPECT_EQ(messages[0], messages[1]);
	EXPECT_EQ(messages[1], messages[2]);
}

// A source that accepts and never answers is abandoned after the stall timeout, not the request timeout.
TEST(SourceSecurity, StalledSourceAbandoned)
{
	RawServer	silent("");
	/* Headers, then silence: a body that never comes. */
	RawServer	half("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/100\r\n"
					 "Content-Length: 100\r\n\r\n\x00\x00\x00\x20" "ftyp");

	for (RawServer *srv : {&silent, &half})
	{
		auto		start = Clock::now();
		ScopedResult r;

		fetch(source_options("127.0.0.1/32", 500, 20000), srv->url("/v"), 0, 100, r);
		double		waited = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

		expect_unreachable(r.r, srv == &silent ? "silent" : "half");
		EXPECT_GE(waited, 450.0);
		EXPECT_LT(waited, 3000.0) << "abandoned after about the stall timeout, long before 20 s";
		EXPECT_EQ(srv->accepted(), 1);
	}
}

// Error pages are never quoted: no body, no banner, no URL; the status alone.
TEST(SourceSecurity, NoReplyBodyInMessages)
{
	Source		src("127.0.0.1");
	vs_http_options opt = source_options("127.0.0.1/32");

	for (const char *path : {"/banner", "/s500"})
	{
		ScopedResult p;
		ScopedResult f;

		probe(opt, src.url(path), p);
		EXPECT_STREQ(p->error_code, "source_http_error");
		EXPECT_EQ(std::string(p->error_message),
				  std::string("could not download the video source (HTTP ") + (path[1] == 'b' ? "404" : "500") + ")");
		expect_nothing_leaks(p.r, std::string("probe ") + path);
		fetch(opt, src.url(path), 0, 100, f);
		EXPECT_STREQ(f->error_code, "source_http_error");
		expect_nothing_leaks(f.r, std::string("fetch ") + path);
	}

	/* Userinfo and query string never appear, whatever fails. */
	std::string with_userinfo = "http://alice:PWSECRET@127.0.0.1:" + std::to_string(src.port()) + "/banner?sig=QSECRET";
	ScopedResult u;

	probe(opt, with_userinfo, u);
	EXPECT_EQ(std::string(u->error_message).find("PWSECRET"), std::string::npos) << u->error_message;
	expect_nothing_leaks(u.r, "userinfo");
}

// Only http and https, for the source and for every redirect.
TEST(SourceSecurity, HttpAndHttpsOnly)
{
	Source		src("127.0.0.1");
	vs_http_options opt = source_options("127.0.0.1/32");

	for (const char *path : {"/ftp", "/dict"})
	{
		ScopedResult p;

		probe(opt, src.url(path), p);
		expect_unreachable(p.r, path);
	}
	for (const char *url : {"ftp://127.0.0.1/v.mp4", "file:///etc/passwd", "gopher://127.0.0.1/", "dict://127.0.0.1/"})
	{
		ScopedResult p;

		probe(opt, url, p);
		EXPECT_STREQ(p->error_code, "invalid_param") << url;
	}
}

// TikTok's 4 GB cap: a source announcing more is refused, and nothing past it is asked for.
TEST(SourceSecurity, SizeCap)
{
	const long long over = 4LL * 1024 * 1024 * 1024 + 1;
	std::string head("\x00\x00\x00\x20" "ftypisom", 12);
	/* RawServer answers one request per connection: "Connection: close" says so to a keep-alive client. */
	RawServer	big_range("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-63/" + std::to_string(over) +
						  "\r\nContent-Length: 64\r\nConnection: close\r\n\r\n" + head + std::string(52, 'v'));
	RawServer	big_length("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(over) + "\r\n\r\n" + head);
	RawServer	exact("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-63/4294967296\r\n"
					  "Content-Length: 64\r\nConnection: close\r\n\r\n" + head + std::string(52, 'v'));
	vs_http_options opt = source_options("127.0.0.1/32", 500);

	for (RawServer *srv : {&big_range, &big_length})
	{
		ScopedResult p;

		probe(opt, srv->url("/v"), p);
		EXPECT_EQ(p->ok, 0);
		EXPECT_STREQ(p->error_code, "source_too_large") << p->error_message;
		EXPECT_STREQ(p->sqlstate, "22023");
		EXPECT_EQ(p->retryable, 0);
		expect_nothing_leaks(p.r, "too large");
	}
	{
		ScopedResult f;

		fetch(opt, big_range.url("/v"), 0, 64, f);
		EXPECT_STREQ(f->error_code, "source_too_large") << f->error_message;
	}
	{
		ScopedResult p;

		probe(opt, exact.url("/v"), p);
		EXPECT_EQ(p->ok, 1) << p->error_code << ": " << p->error_message << " (exactly 4 GiB is allowed)";
	}
	{
		/* Asking past 4 GiB is refused before sending. */
		ScopedResult f;
		char		buf[16];
		int			before = exact.accepted();

		vs_fetch_range(&opt, exact.url("/v").c_str(), 4LL * 1024 * 1024 * 1024 - 8, 16, buf, nullptr, &f.r);
		EXPECT_STREQ(f->error_code, "invalid_param");
		EXPECT_EQ(exact.accepted(), before);
	}
}

// The container decides: a text file served as video/mp4 is refused (22023); an MP4 served as text is fine.
TEST(SourceSecurity, SniffedTypeDecides)
{
	Source		src("127.0.0.1");
	vs_http_options opt = source_options("127.0.0.1/32");
	ScopedResult text;

	probe(opt, src.url("/text"), text);
	EXPECT_EQ(text->ok, 0);
	EXPECT_STREQ(text->error_code, "source_not_video");
	EXPECT_STREQ(text->sqlstate, "22023");
	EXPECT_EQ(text->retryable, 0);
	EXPECT_NE(std::string(text->error_message).find("not MP4, MOV or WebM"), std::string::npos) << text->error_message;
	EXPECT_STREQ(text->data_json, R"({"size":4096,"content_type":"","accepts_ranges":true})");

	RawServer	mp4_as_text("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" +
							std::string("\x1A\x45\xDF\xA3", 4) + std::string(60, 'w'));
	ScopedResult webm;

	probe(source_options("127.0.0.1/32", 500), mp4_as_text.url("/v"), webm);
	EXPECT_EQ(webm->ok, 1) << webm->error_code << ": " << webm->error_message;
	EXPECT_STREQ(webm->data_json, R"({"size":64,"content_type":"video/webm","accepts_ranges":false})");
}

// A malformed allow-list fails the download before anything is sent.
TEST(SourceSecurity, MalformedAllowList)
{
	Source		src("127.0.0.1");
	vs_http_options opt = source_options("127.0.0.1/33");
	ScopedResult p;

	probe(opt, src.url("/video"), p);
	EXPECT_STREQ(p->error_code, "invalid_param");
	EXPECT_NE(std::string(p->error_message).find("allowed source networks"), std::string::npos) << p->error_message;
	EXPECT_EQ(src.hits(), 0);
}

// The address rules are only for sources: calls to TikTok's base URL on loopback still work.
TEST(SourceSecurity, TikTokCallsUnaffected)
{
	httplib::Server tiktok;

	tiktok.set_keep_alive_max_count(1);
	tiktok.Post(R"(/v2/post/publish/status/fetch/)", [](const httplib::Request &, httplib::Response &res) {
		res.set_content(R"({"data":{"status":"PROCESSING_UPLOAD"},"error":{"code":"ok","message":"","log_id":"L"}})",
						"application/json");
	});
	int			port = tiktok.bind_to_any_port("127.0.0.1");
	std::thread thread([&] { tiktok.listen_after_bind(); });

	while (!tiktok.is_running())
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	std::string base = "http://127.0.0.1:" + std::to_string(port);
	vs_http_options opt = source_options("");	/* no allow-list at all */
	ScopedResult r;

	opt.base_url = base.c_str();
	vs_call(&opt, VS_EP_STATUS_FETCH, "tok", R"({"publish_id":"p"})", &r.r);
	EXPECT_EQ(r->ok, 1) << r->error_code << ": " << r->error_message;
	tiktok.stop();
	thread.join();
}
