/*
 * range_fetch_test.cpp: vs_probe_source / vs_fetch_range against an
 * in-process cpp-httplib server on 127.0.0.1 that serves a video with
 * ranges, without ranges, short, lying, redirecting or failing.
 */
#include "test_support.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <regex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char kSignature[] = "SIGSECRET-abcdef0123456789";

/* The served video: an MP4 header, then bytes of every value. */
std::string
make_video(std::size_t size)
{
	std::string v(size, '\0');
	const char	head[] = "\x00\x00\x00\x20" "ftypisom";

	for (std::size_t i = 0; i < size; i++)
		v[i] = static_cast<char>((i * 31 + i / 253) & 0xFF);
	for (std::size_t i = 0; i < sizeof head - 1 && i < size; i++)
		v[i] = head[i];
	return v;
}

/* What the server saw of one GET. */
struct SeenGet
{
	std::string path;
	std::string range;
	bool		has_authorization;
};

/*
 * A video source. Paths: /ranged/<name> serves the video with proper
 * single ranges (416 "bytes * /SIZE" past the end); /plain/<name> ignores
 * Range (200, whole file); /chunked sends 200 without Content-Length;
 * /empty is a zero-byte file with ranges; /liar answers 206 with twice the
 * bytes asked; /shifted answers 206 from byte 0 whatever was asked;
 * /hop/<n> redirects n times then to /ranged/v.mp4; /file redirects to
 * file:///etc/passwd; /missing 404 quoting its target; /s500 a 500;
 * /slow answers late.
 */
class FakeSource
{
public:
	explicit FakeSource(std::size_t size = 100000) : video_(make_video(size))
	{
		server_.set_keep_alive_max_count(1);
		server_.Get(R"(/.*)", [this](const httplib::Request &req, httplib::Response &res) {
			/* Our own Range handling, not httplib's. */
			const_cast<httplib::Request &>(req).ranges.clear();
			{
				std::lock_guard<std::mutex> lock(mutex_);
				seen_.push_back({req.path, req.get_header_value("Range"), req.has_header("Authorization")});
			}
			handle(req, res);
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		base_ = "http://127.0.0.1:" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	~FakeSource()
	{
		release_.store(true);
		server_.stop();
		thread_.join();
	}

	/* The URL of a path, with a pre-signed-style secret query string. */
	std::string url(const std::string &path) const
	{
		return base_ + path + "?X-Amz-Expires=3600&X-Amz-Signature=" + kSignature;
	}

	const std::string &video() const { return video_; }

	/* A copy of the GETs seen so far. */
	std::vector<SeenGet> seen()
	{
		std::lock_guard<std::mutex> lock(mutex_);
		return seen_;
	}

private:
	/* Serves a body with single-range support. */
	static void serve_ranged(const std::string &body, const httplib::Request &req,
							 httplib::Response &res, const char *type)
	{
		std::smatch m;
		std::string range = req.get_header_value("Range");
		long long	size = static_cast<long long>(body.size());

		if (!std::regex_match(range, m, std::regex(R"(bytes=(\d+)-(\d+))")))
		{
			res.set_content(body, type);
			return;
		}
		long long	first = std::stoll(m[1]);
		long long	last = std::min(std::stoll(m[2]), size - 1);

		if (first >= size)
		{
			res.status = 416;
			res.set_header("Content-Range", "bytes */" + std::to_string(size));
			return;
		}
		res.status = 206;
		res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" +
					   std::to_string(last) + "/" + std::to_string(size));
		res.set_content(body.substr(first, last - first + 1), type);
	}

	/* Answers one GET by path. */
	void handle(const httplib::Request &req, httplib::Response &res)
	{
		const std::string &p = req.path;
		std::smatch m;

		if (p.rfind("/ranged/", 0) == 0)
			serve_ranged(video_, req, res, "Video/MP4; codecs=\"avc1\"");
		else if (p.rfind("/plain/", 0) == 0)
			res.set_content(video_, "video/webm");
		else if (p == "/empty")
			serve_ranged(std::string(), req, res, "video/mp4");
		else if (p == "/chunked")
		{
			std::string body = video_;

			res.set_chunked_content_provider("video/mp4", [body](size_t offset, httplib::DataSink &sink) {
				if (offset >= body.size())
				{
					sink.done();
					return true;
				}
				std::size_t n = std::min<std::size_t>(4096, body.size() - offset);

				return sink.write(body.data() + offset, n);
			});
		}
		else if (p == "/liar" || p == "/shifted")
		{
			std::string range = req.get_header_value("Range");

			if (!std::regex_match(range, m, std::regex(R"(bytes=(\d+)-(\d+))")))
			{
				res.status = 400;
				return;
			}
			long long	first = p == "/liar" ? std::stoll(m[1]) : 0;
			long long	n = (std::stoll(m[2]) - std::stoll(m[1]) + 1) * (p == "/liar" ? 2 : 1);

			res.status = 206;
			res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" +
						   std::to_string(first + n - 1) + "/" + std::to_string(video_.size()));
			res.set_content(video_.substr(first, n), "video/mp4");
		}
		else if (std::regex_match(p, m, std::regex(R"(/hop/(\d+))")))
		{
			int			n = std::stoi(m[1]);

			res.status = 302;
			res.set_header("Location", n > 1 ? "/hop/" + std::to_string(n - 1) : std::string("/ranged/v.mp4"));
		}
		else if (p == "/file")
		{
			res.status = 302;
			res.set_header("Location", "file:///etc/passwd");
		}
		else if (p == "/missing")
		{
			res.status = 404;
			res.set_content("<h1>Not Found</h1> no such key: " + req.path + "?X-Amz-Signature=" +
							req.get_param_value("X-Amz-Signature"), "text/html");
		}
		else if (p == "/s500")
		{
			res.status = 500;
			res.set_content("oops", "text/plain");
		}
		else if (p == "/slow")
		{
			auto		deadline = Clock::now() + std::chrono::seconds(5);

			while (!release_.load() && Clock::now() < deadline)
				std::this_thread::sleep_for(std::chrono::milliseconds(10));
			res.set_content("late", "video/mp4");
		}
		else
			res.status = 404;
	}

	std::string video_;
	httplib::Server server_;
	std::thread thread_;
	int			port_ = -1;
	std::string base_;
	std::atomic<bool> release_{false};
	std::mutex	mutex_;
	std::vector<SeenGet> seen_;
};

/* HTTP options with the given timeout (base_url unused here). */
vs_http_options
options(long request_timeout_ms = 5000)
{
	vs_http_options o{};

	o.base_url = "";
	o.connect_timeout_ms = 2000;
	o.request_timeout_ms = request_timeout_ms;
	o.should_abort = nullptr;
	o.source_allowed_networks = "127.0.0.1/32";	/* the fake source is on loopback */
	return o;
}

/* A buffer of length bytes followed by guard bytes that must stay untouched. */
struct GuardedBuffer
{
	static constexpr std::size_t kGuard = 64;
	std::string bytes;
	std::size_t length;

	explicit GuardedBuffer(std::size_t n) : bytes(n + kGuard, '\xEE'), length(n) {}
	char	   *data() { return &bytes[0]; }
	std::string content(long long n) const { return bytes.substr(0, static_cast<std::size_t>(n)); }
	bool		guard_intact() const { return bytes.substr(length) == std::string(kGuard, '\xEE'); }
};

/* Fetches [first, first + length) of url into buf. */
void
fetch(const std::string &url, long long first, long long length, GuardedBuffer &buf,
	  long long *received, ScopedResult &res, long timeout_ms = 5000)
{
	vs_http_options opt = options(timeout_ms);

	vs_fetch_range(&opt, url.c_str(), first, length, buf.data(), received, &res.r);
}

/* Asserts that the pre-signed URL's signature is nowhere in the result. */
void
expect_no_signature(vs_call_result &r)
{
	std::string result = take_text(vs_result_json(&r));

	EXPECT_EQ(result.find("SIGSECRET"), std::string::npos) << result;
	EXPECT_EQ(std::string(r.error_message).find("SIGSECRET"), std::string::npos) << r.error_message;
}

}								/* namespace */

// Probe of a server with ranges: size from Content-Range, media type normalized, one byte asked.
TEST(RangeFetch, ProbeRanged)
{
	FakeSource src;
	std::string url = src.url("/ranged/v.mp4");
	vs_http_options opt = options();
	ScopedResult res;

	vs_probe_source(&opt, url.c_str(), &res.r);
	EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_EQ(res->http_status, 206);
	EXPECT_STREQ(res->error_code, "ok");
	EXPECT_STREQ(res->data_json, R"({"size":100000,"content_type":"video/mp4","accepts_ranges":true})");
	ASSERT_EQ(src.seen().size(), 1u);
	EXPECT_EQ(src.seen()[0].range, "bytes=0-63");	/* enough to recognise the container */
	EXPECT_FALSE(src.seen()[0].has_authorization);
}

// Probe of a server without ranges: size from Content-Length, accepts_ranges false; the
// type is the sniffed one (MP4 bytes), not the "video/webm" the server declares.
TEST(RangeFetch, ProbeWithoutRanges)
{
	FakeSource src(3 * 1024 * 1024);
	std::string url = src.url("/plain/v.webm");
	vs_http_options opt = options();
	ScopedResult res;

	vs_probe_source(&opt, url.c_str(), &res.r);
	EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_EQ(res->http_status, 200);
	EXPECT_STREQ(res->data_json, R"({"size":3145728,"content_type":"video/mp4","accepts_ranges":false})");
}

// Probe: no size (chunked 200) is a failure; an empty source is a known size 0.
TEST(RangeFetch, ProbeSizeUnknownAndEmpty)
{
	FakeSource src;
	vs_http_options opt = options();
	{
		std::string url = src.url("/chunked");
		ScopedResult res;

		vs_probe_source(&opt, url.c_str(), &res.r);
		EXPECT_EQ(res->ok, 0);
		EXPECT_EQ(res->http_status, 200);
		EXPECT_STREQ(res->error_code, "source_size_unknown");
		EXPECT_EQ(res->retryable, 0);
		EXPECT_STREQ(res->data_json, R"({"size":-1,"content_type":"video/mp4","accepts_ranges":false})");
	}
	{
		std::string url = src.url("/empty");
		ScopedResult res;

		vs_probe_source(&opt, url.c_str(), &res.r);
		EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
		EXPECT_EQ(res->http_status, 416);
		EXPECT_STREQ(res->data_json, R"({"size":0,"content_type":"","accepts_ranges":true})");
	}
}

// Probe errors: 404 (the page never quoted), 500 retryable, redirects to file:// refused (generic).
TEST(RangeFetch, ProbeErrors)
{
	FakeSource src;
	vs_http_options opt = options();
	{
		std::string url = src.url("/missing");
		ScopedResult res;

		vs_probe_source(&opt, url.c_str(), &res.r);
		EXPECT_EQ(res->ok, 0);
		EXPECT_EQ(res->http_status, 404);
		EXPECT_STREQ(res->error_code, "source_http_error");
		EXPECT_STREQ(res->sqlstate, "38000");
		EXPECT_EQ(res->retryable, 0);
		EXPECT_STREQ(res->error_message, "could not download the video source (HTTP 404)");
		expect_no_signature(res.r);
	}
	{
		std::string url = src.url("/s500");
		ScopedResult res;

		vs_probe_source(&opt, url.c_str(), &res.r);
		EXPECT_STREQ(res->error_code, "source_http_error");
		EXPECT_STREQ(res->sqlstate, "08000");
		EXPECT_EQ(res->retryable, 1);
	}
	{
		std::string url = src.url("/file");
		ScopedResult res;

		vs_probe_source(&opt, url.c_str(), &res.r);
		EXPECT_EQ(res->ok, 0);
		EXPECT_STREQ(res->error_code, "source_unreachable");
		expect_no_signature(res.r);
	}
}

// Up to 5 redirects are followed; a 6th is refused.
TEST(RangeFetch, Redirects)
{
	FakeSource src;
	vs_http_options opt = options();
	{
		std::string url = src.url("/hop/5");
		ScopedResult res;

		vs_probe_source(&opt, url.c_str(), &res.r);
		EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
		EXPECT_STREQ(res->data_json, R"({"size":100000,"content_type":"video/mp4","accepts_ranges":true})");

		GuardedBuffer buf(1000);
		long long	received = -1;
		ScopedResult got;

		fetch(url, 500, 1000, buf, &received, got);
		EXPECT_EQ(got->ok, 1) << got->error_message;
		EXPECT_EQ(buf.content(received), src.video().substr(500, 1000));
	}
	{
		std::string url = src.url("/hop/6");
		ScopedResult res;

		vs_probe_source(&opt, url.c_str(), &res.r);
		EXPECT_EQ(res->ok, 0);
		EXPECT_STREQ(res->error_code, "source_unreachable");
		expect_no_signature(res.r);
	}
}

// A 206 range in the middle, and the whole video reassembled from ranges.
TEST(RangeFetch, Fetch206)
{
	FakeSource src;
	std::string url = src.url("/ranged/v.mp4");
	GuardedBuffer buf(30000);
	long long	received = -1;
	ScopedResult res;

	fetch(url, 12345, 30000, buf, &received, res);
	EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_EQ(res->http_status, 206);
	EXPECT_EQ(received, 30000);
	EXPECT_TRUE(buf.content(received) == src.video().substr(12345, 30000));
	EXPECT_TRUE(buf.guard_intact());
	EXPECT_STREQ(res->data_json, R"({"received":30000,"total":100000})");
	EXPECT_EQ(src.seen().back().range, "bytes=12345-42344");
	EXPECT_FALSE(src.seen().back().has_authorization);

	std::string whole;

	for (long long first = 0; first < 100000; first += 40000)
	{
		long long	n = std::min<long long>(40000, 100000 - first);
		GuardedBuffer part(static_cast<std::size_t>(n));
		ScopedResult r;

		fetch(url, first, n, part, &received, r);
		ASSERT_EQ(r->ok, 1) << r->error_message;
		whole += part.content(received);
	}
	EXPECT_TRUE(whole == src.video());
	EXPECT_STREQ(vs_sniff_video_type(reinterpret_cast<const unsigned char *>(whole.data()), whole.size()),
				 "video/mp4");
}

// A server without ranges: a 200 is fine only for the whole file from byte 0.
TEST(RangeFetch, Fetch200WithoutRanges)
{
	FakeSource src;
	std::string url = src.url("/plain/v.webm");
	{
		GuardedBuffer buf(100000);
		long long	received = -1;
		ScopedResult res;

		fetch(url, 0, 100000, buf, &received, res);
		EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
		EXPECT_EQ(res->http_status, 200);
		EXPECT_EQ(received, 100000);
		EXPECT_TRUE(buf.content(received) == src.video());
		EXPECT_TRUE(buf.guard_intact());
	}
	{
		/* The first 1000 bytes: the server sends everything; never written past 1000. */
		GuardedBuffer buf(1000);
		long long	received = -1;
		ScopedResult res;

		fetch(url, 0, 1000, buf, &received, res);
		EXPECT_EQ(res->ok, 0);
		EXPECT_STREQ(res->error_code, "range_not_supported");
		EXPECT_EQ(res->retryable, 0);
		EXPECT_EQ(received, 1000);
		EXPECT_TRUE(buf.guard_intact());
	}
	{
		/* From the middle: a 200 is the file's start, nothing is stored. */
		GuardedBuffer buf(1000);
		long long	received = -1;
		ScopedResult res;

		fetch(url, 5000, 1000, buf, &received, res);
		EXPECT_EQ(res->ok, 0);
		EXPECT_STREQ(res->error_code, "range_not_supported");
		EXPECT_EQ(received, 0);
		EXPECT_EQ(buf.bytes, std::string(1000 + GuardedBuffer::kGuard, '\xEE'));
		expect_no_signature(res.r);
	}
}

// Short bodies: past the end of the source (206 short, 416), or a whole file shorter than asked.
TEST(RangeFetch, ShortBody)
{
	FakeSource src;
	{
		GuardedBuffer buf(100);
		long long	received = -1;
		ScopedResult res;

		fetch(src.url("/ranged/v.mp4"), 99990, 100, buf, &received, res);
		EXPECT_EQ(res->ok, 0);
		EXPECT_EQ(res->http_status, 206);
		EXPECT_STREQ(res->error_code, "source_too_short");
		EXPECT_EQ(received, 10);
		EXPECT_TRUE(buf.content(received) == src.video().substr(99990));
		EXPECT_STREQ(res->data_json, R"({"received":10,"total":100000})");
		EXPECT_NE(std::string(res->error_message).find("10 of the 100 bytes"), std::string::npos)
			<< res->error_message;
		expect_no_signature(res.r);
	}
	{
		GuardedBuffer buf(100);
		long long	received = -1;
		ScopedResult res;

		fetch(src.url("/ranged/v.mp4"), 200000, 100, buf, &received, res);
		EXPECT_EQ(res->ok, 0);
		EXPECT_EQ(res->http_status, 416);
		EXPECT_STREQ(res->error_code, "source_too_short");
		EXPECT_EQ(received, 0);
	}
	{
		GuardedBuffer buf(200000);
		long long	received = -1;
		ScopedResult res;

		fetch(src.url("/plain/v.webm"), 0, 200000, buf, &received, res);
		EXPECT_EQ(res->ok, 0);
		EXPECT_EQ(res->http_status, 200);
		EXPECT_STREQ(res->error_code, "source_too_short");
		EXPECT_EQ(received, 100000);
	}
}

// A server sending more than asked, or another range: bad_response, buffer never overrun.
TEST(RangeFetch, MisbehavingServer)
{
	FakeSource src;
	{
		GuardedBuffer buf(1000);
		long long	received = -1;
		ScopedResult res;

		fetch(src.url("/liar"), 100, 1000, buf, &received, res);
		EXPECT_EQ(res->ok, 0);
		EXPECT_STREQ(res->error_code, "bad_response");
		EXPECT_EQ(res->retryable, 1);
		EXPECT_EQ(received, 1000);
		EXPECT_TRUE(buf.guard_intact());
	}
	{
		GuardedBuffer buf(1000);
		long long	received = -1;
		ScopedResult res;

		fetch(src.url("/shifted"), 100, 1000, buf, &received, res);
		EXPECT_EQ(res->ok, 0);
		EXPECT_STREQ(res->error_code, "bad_response");
		EXPECT_NE(std::string(res->error_message).find("different range"), std::string::npos)
			<< res->error_message;
	}
	{
		GuardedBuffer buf(1000);
		long long	received = -1;
		ScopedResult res;

		fetch(src.url("/missing"), 0, 1000, buf, &received, res);
		EXPECT_STREQ(res->error_code, "source_http_error");
		EXPECT_EQ(received, 0);		/* an error page is not video */
		EXPECT_EQ(buf.bytes, std::string(1000 + GuardedBuffer::kGuard, '\xEE'));
		expect_no_signature(res.r);
	}
}

// A late source: abandoned within request_timeout_ms.
TEST(RangeFetch, Timeout)
{
	FakeSource src;
	GuardedBuffer buf(10);
	long long	received = -1;
	ScopedResult res;
	auto		start = Clock::now();

	fetch(src.url("/slow"), 0, 10, buf, &received, res, 300);
	double		waited = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

	EXPECT_STREQ(res->error_code, "source_unreachable");	/* one code for every transport failure */
	EXPECT_EQ(res->retryable, 1);
	EXPECT_LT(waited, 1500.0);
	EXPECT_EQ(received, 0);
	expect_no_signature(res.r);
}

// Bad arguments are refused before anything is sent.
TEST(RangeFetch, RefusedBeforeSending)
{
	FakeSource src;
	std::string url = src.url("/ranged/v.mp4");
	vs_http_options opt = options();
	char		buf[16];
	std::string ftp = "ftp://127.0.0.1/v.mp4";
	std::string file = "file:///etc/passwd";
	std::string crlf = url + "\r\nX: 1";

	for (const std::string *bad : {&ftp, &file, &crlf})
	{
		ScopedResult res;
		long long	received = -1;

		vs_fetch_range(&opt, bad->c_str(), 0, 16, buf, &received, &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param");
		EXPECT_EQ(received, 0);
		ScopedResult probe;

		vs_probe_source(&opt, bad->c_str(), &probe.r);
		EXPECT_STREQ(probe->error_code, "invalid_param");
	}
	struct Case
	{
		long long	first;
		long long	length;
		char	   *buffer;
	};
	for (Case c : {Case{-1, 16, buf}, Case{0, 0, buf}, Case{0, -5, buf}, Case{0, 16, nullptr},
				   Case{9223372036854775000LL, 1000, buf}})
	{
		ScopedResult res;
		long long	received = -1;

		vs_fetch_range(&opt, url.c_str(), c.first, c.length, c.buffer, &received, &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param") << c.first << " " << c.length;
		EXPECT_EQ(res->http_status, 0);
		EXPECT_EQ(received, 0);
	}
	{
		ScopedResult res;

		vs_fetch_range(nullptr, url.c_str(), 0, 16, buf, nullptr, &res.r);
		EXPECT_STREQ(res->error_code, "invalid_param");
		ScopedResult probe;

		vs_probe_source(&opt, nullptr, &probe.r);
		EXPECT_STREQ(probe->error_code, "invalid_param");
	}
	vs_probe_source(&opt, url.c_str(), nullptr);	/* no crash */
	vs_fetch_range(&opt, url.c_str(), 0, 16, buf, nullptr, nullptr);
	EXPECT_EQ(src.seen().size(), 0u);
}
