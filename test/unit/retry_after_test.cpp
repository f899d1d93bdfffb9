/*
 * retry_after_test.cpp: the Retry-After header. The parser on its own
 * (delta-seconds, the three HTTP-date forms, garbage), then vs_call against
 * an in-process cpp-httplib server on 127.0.0.1 that answers with a chosen
 * Retry-After (seconds, an HTTP-date, none, garbage), and the "retry_after"
 * key of vs_result_json.
 */
#include "retry_after.hpp"
#include "test_support.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <thread>

using namespace vibescaling;

namespace {

const char kToken[] = "act.SECRET-token-retry-after";
const char kInitOptions[] = R"({"caption":"hi","privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4"})";

/* 2024-03-01T12:00:00Z: a fixed "now" for the parser tests. */
constexpr std::time_t kNow = 1709294400;

/* An HTTP-date (IMF-fixdate) for t. */
std::string
imf_fixdate(std::time_t t)
{
	std::tm		tm_utc;
	char		buf[64];

	gmtime_r(&t, &tm_utc);
	std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm_utc);
	return buf;
}

/*
 * A fake TikTok whose init replies carry the Retry-After value set with
 * answer() (none when unset): video_init answers 429 rate_limit_exceeded,
 * inbox_video_init 200 ok, content_init a 503 HTML page.
 */
class RetryAfterTikTok
{
public:
	RetryAfterTikTok()
	{
		server_.set_keep_alive_max_count(1);
		server_.Post(R"(/v2/post/publish/.*)", [this](const httplib::Request &req, httplib::Response &res) {
			{
				std::lock_guard<std::mutex> lock(mutex_);

				if (has_header_)
					res.set_header("Retry-After", header_);
			}
			if (req.path == "/v2/post/publish/video/init/")
			{
				res.status = 429;
				res.set_content(R"({"error":{"code":"rate_limit_exceeded","message":"slow down","log_id":"LOG-429"}})",
								"application/json");
			}
			else if (req.path == "/v2/post/publish/inbox/video/init/")
				res.set_content(R"({"data":{"publish_id":"v_inbox_file~v2.1"},"error":{"code":"ok","message":"","log_id":"LOG-OK"}})",
								"application/json");
			else if (req.path == "/v2/post/publish/content/init/")
			{
				res.status = 503;
				res.set_content("<html><body>Service Unavailable</body></html>", "text/html");
			}
			else
				res.status = 404;
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		base_url_ = "http://127.0.0.1:" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	~RetryAfterTikTok()
	{
		server_.stop();
		thread_.join();
	}

	/* Replies carry "Retry-After: value" from now on. */
	void answer(const std::string &value)
	{
		std::lock_guard<std::mutex> lock(mutex_);

		has_header_ = true;
		header_ = value;
	}

	/* Replies carry no Retry-After from now on. */
	void answer_none()
	{
		std::lock_guard<std::mutex> lock(mutex_);

		has_header_ = false;
	}

	/* HTTP options pointing at this server. */
	vs_http_options options() const
	{
		vs_http_options o{};

		o.base_url = base_url_.c_str();
		o.connect_timeout_ms = 2000;
		o.request_timeout_ms = 5000;
		o.should_abort = nullptr;
		return o;
	}

private:
	httplib::Server server_;
	std::thread thread_;
	int			port_ = -1;
	std::string base_url_;
	std::mutex	mutex_;
	bool		has_header_ = false;
	std::string header_;
};

/* vs_call of video_init (a 429) against tiktok; the result's JSON. */
std::string
call_init(RetryAfterTikTok &tiktok, ScopedResult &res, vs_endpoint ep = VS_EP_VIDEO_INIT)
{
	vs_http_options opt = tiktok.options();

	vs_call(&opt, ep, kToken, kInitOptions, &res.r);
	return take_text(vs_result_json(&res.r));
}

}								/* namespace */

// delta-seconds: digits only, surrounding blanks ignored, huge values capped.
TEST(RetryAfterParse, DeltaSeconds)
{
	EXPECT_EQ(retry_after_seconds("120", kNow), 120);
	EXPECT_EQ(retry_after_seconds("0", kNow), 0);
	EXPECT_EQ(retry_after_seconds("007", kNow), 7);
	EXPECT_EQ(retry_after_seconds(" \t900 ", kNow), 900);
	EXPECT_EQ(retry_after_seconds("2147483647", kNow), 2147483647L);
	EXPECT_EQ(retry_after_seconds("2147483648", kNow), kMaxRetryAfterSeconds);
	EXPECT_EQ(retry_after_seconds("99999999999999999999999999999", kNow), kMaxRetryAfterSeconds);
}

// The three HTTP-date forms, as seconds from now; past dates are 0, never negative.
TEST(RetryAfterParse, HttpDates)
{
	/* kNow + 90 s in each form. */
	EXPECT_EQ(retry_after_seconds("Fri, 01 Mar 2024 12:01:30 GMT", kNow), 90);
	EXPECT_EQ(retry_after_seconds("Friday, 01-Mar-24 12:01:30 GMT", kNow), 90);
	EXPECT_EQ(retry_after_seconds("Fri Mar  1 12:01:30 2024", kNow), 90);
	EXPECT_EQ(retry_after_seconds("Sat Mar 16 12:00:00 2024", kNow), 15 * 86400);
	/* Across a leap day and a year. */
	EXPECT_EQ(retry_after_seconds("Thu, 29 Feb 2024 12:00:00 GMT", kNow - 2 * 86400), 86400);
	EXPECT_EQ(retry_after_seconds("Sat, 01 Mar 2025 12:00:00 GMT", kNow), 365 * 86400);
	/* The past: 0. */
	EXPECT_EQ(retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", kNow), 0);
	EXPECT_EQ(retry_after_seconds("Fri, 01 Mar 2024 11:59:59 GMT", kNow), 0);
	EXPECT_EQ(retry_after_seconds("Fri, 01 Mar 2024 12:00:00 GMT", kNow), 0);
	/* RFC 850's two-digit year: more than 50 years ahead means the past century. */
	EXPECT_EQ(retry_after_seconds("Sunday, 06-Nov-94 08:49:37 GMT", kNow), 0);
	EXPECT_EQ(retry_after_seconds("Wednesday, 01-Mar-73 12:00:00 GMT", kNow),
			  retry_after_seconds("Wed, 01 Mar 2073 12:00:00 GMT", kNow));
	EXPECT_GT(retry_after_seconds("Wednesday, 01-Mar-73 12:00:00 GMT", kNow), 0);
	/* Far future: capped. */
	EXPECT_EQ(retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT", kNow), kMaxRetryAfterSeconds);
}

// Anything else is no hint at all: -1.
TEST(RetryAfterParse, Garbage)
{
	for (const char *bad : {"", "   ", "soon", "-5", "+5", "1.5", "12abc", "12 34", "0x10", "1e3",
							"Fri, 01 Mar 2024 12:01:30 UTC",	/* not GMT */
							"Fri, 01 Mar 2024 12:01:30 gmt",	/* case-sensitive */
							"fri, 01 Mar 2024 12:01:30 GMT",
							"Fri, 1 Mar 2024 12:01:30 GMT",	/* day not 2 digits */
							"Fri,01 Mar 2024 12:01:30 GMT",
							"Fri, 01 Mar 2024 12:01:30 GMT junk",
							"Fri, 01 March 2024 12:01:30 GMT",
							"Fri, 30 Feb 2024 12:00:00 GMT",	/* no such day */
							"Fri, 29 Feb 2023 12:00:00 GMT",
							"Fri, 00 Mar 2024 12:00:00 GMT",
							"Fri, 01 Mar 2024 24:00:00 GMT",	/* no such time */
							"Fri, 01 Mar 2024 12:60:00 GMT",
							"Fri, 01 Mar 2024 12:00:61 GMT",
							"Fri, 01 Mar 24 12:00:00 GMT",
							"Fri, 01-Mar-24 12:00:00 GMT",	/* RFC 850 needs the long day name */
							"Friday, 01-Mar-2024 12:00:00 GMT",
							"Fri Mar 1 12:01:30 2024",		/* asctime pads the day with a space */
							"Fri Mar  1 12:01:30 2024 GMT",
							"2024-03-01T12:01:30Z"})
		EXPECT_EQ(retry_after_seconds(bad, kNow), -1) << '"' << bad << '"';
	EXPECT_EQ(retry_after_seconds(std::string("12\0" "3", 4), kNow), -1);
}

// A 429 with "Retry-After: 900": 900 seconds, in the result and its JSON.
TEST(RetryAfterCall, Seconds)
{
	RetryAfterTikTok tiktok;
	ScopedResult res;

	tiktok.answer("900");
	std::string json = call_init(tiktok, res);

	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 429);
	EXPECT_STREQ(res->error_code, "rate_limit_exceeded");
	EXPECT_STREQ(res->log_id, "LOG-429");
	EXPECT_EQ(res->retryable, 1);
	EXPECT_EQ(res->retry_after_s, 900);
	EXPECT_NE(json.find(R"("outcome_unknown":false,"retry_after":900})"), std::string::npos) << json;
	EXPECT_EQ(json.find("SECRET"), std::string::npos) << json;
}

// An HTTP-date five minutes ahead: about 300 seconds from now; one in the past: 0.
TEST(RetryAfterCall, HttpDate)
{
	RetryAfterTikTok tiktok;

	{
		ScopedResult res;
		std::time_t before = std::time(nullptr);

		tiktok.answer(imf_fixdate(before + 300));
		std::string json = call_init(tiktok, res);
		std::time_t after = std::time(nullptr);

		EXPECT_STREQ(res->error_code, "rate_limit_exceeded");
		EXPECT_LE(res->retry_after_s, 300);
		EXPECT_GE(res->retry_after_s, 300 - (after - before));
		EXPECT_NE(json.find(R"("retry_after":)" + std::to_string(res->retry_after_s) + "}"), std::string::npos)
			<< json;
	}
	{
		ScopedResult res;

		tiktok.answer(imf_fixdate(std::time(nullptr) - 3600));
		std::string json = call_init(tiktok, res);

		EXPECT_EQ(res->retry_after_s, 0) << "a date in the past is 0 seconds, never negative";
		EXPECT_NE(json.find(R"("retry_after":0})"), std::string::npos) << json;
	}
}

// No header: -1, and JSON null.
TEST(RetryAfterCall, Absent)
{
	RetryAfterTikTok tiktok;
	ScopedResult res;

	tiktok.answer_none();
	std::string json = call_init(tiktok, res);

	EXPECT_STREQ(res->error_code, "rate_limit_exceeded");
	EXPECT_EQ(res->retry_after_s, -1);
	EXPECT_NE(json.find(R"("outcome_unknown":false,"retry_after":null})"), std::string::npos) << json;
}

// A header that is neither seconds nor an HTTP-date counts as absent.
TEST(RetryAfterCall, Garbage)
{
	RetryAfterTikTok tiktok;

	for (const char *bad : {"soon", "-30", "1.5", "Fri, 30 Feb 2024 12:00:00 GMT"})
	{
		ScopedResult res;

		tiktok.answer(bad);
		std::string json = call_init(tiktok, res);

		EXPECT_STREQ(res->error_code, "rate_limit_exceeded") << bad;
		EXPECT_EQ(res->retry_after_s, -1) << bad;
		EXPECT_NE(json.find(R"("retry_after":null})"), std::string::npos) << bad << ": " << json;
	}
}

// Any reply may carry it: a success, and a proxy's 503 HTML page (bad_response).
TEST(RetryAfterCall, OnSuccessAndHtml)
{
	RetryAfterTikTok tiktok;

	tiktok.answer("5");
	{
		ScopedResult res;

		call_init(tiktok, res, VS_EP_INBOX_VIDEO_INIT);
		EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
		EXPECT_EQ(res->retry_after_s, 5);
	}
	{
		ScopedResult res;
		vs_http_options opt = tiktok.options();

		vs_call(&opt, VS_EP_CONTENT_INIT, kToken,
				R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p/1.jpg"]})", &res.r);
		EXPECT_EQ(res->http_status, 503);
		EXPECT_STREQ(res->error_code, "bad_response");
		EXPECT_EQ(res->retryable, 0) << "a 503 page on an init: outcome unknown, never resent";
		EXPECT_EQ(res->outcome_unknown, 1);
		EXPECT_EQ(res->retry_after_s, 5);
	}
}

// No reply, a refusal before sending, and the parsers without transport: -1.
TEST(RetryAfterCall, NoReplyMeansNone)
{
	ScopedResult refused;
	vs_http_options opt{};

	opt.base_url = "";
	opt.connect_timeout_ms = 1000;
	opt.request_timeout_ms = 1000;
	opt.should_abort = nullptr;
	vs_call(&opt, VS_EP_VIDEO_INIT, kToken, kInitOptions, &refused.r);
	EXPECT_STREQ(refused->error_code, "invalid_param");
	EXPECT_EQ(refused->retry_after_s, -1);

	ScopedResult parsed;

	parse(parsed, 429, R"({"error":{"code":"rate_limit_exceeded","message":"","log_id":"L"}})");
	EXPECT_EQ(parsed->retry_after_s, -1);
	EXPECT_NE(take_text(vs_result_json(&parsed.r)).find(R"("retry_after":null})"), std::string::npos);
}
