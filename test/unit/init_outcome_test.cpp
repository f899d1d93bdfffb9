/*
 * init_outcome_test.cpp: an init (video_init, inbox_video_init,
 * content_init) whose reply does not prove that TikTok refused it has an
 * unknown outcome and is never resent; only a well-formed envelope with a
 * known refusal code is a clean, known failure. Table-driven over every
 * kind of unreadable reply, through vs_call and vs_call_many against an
 * in-process cpp-httplib server on 127.0.0.1, and over proves_refusal
 * itself. Other endpoints keep their retry rules.
 */
#include "reply_parser.hpp"
#include "test_support.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char kToken[] = "act.INIT-token-1234567890";

/* One canned reply of the fake TikTok. */
struct Canned
{
	const char *label;
	int			status;
	std::string body;
	const char *content_type;
	bool		refusal;		/* the reply proves TikTok refused: a known failure */
	const char *error_code;		/* expected error_code */
	int			retryable;		/* expected retryable when the outcome is known */
};

/* A JSON body with invalid UTF-8 inside a string. */
std::string
invalid_utf8_body()
{
	return std::string("{\"data\":{\"publish_id\":\"v_pub_url~v2.\xff\xfe\"},"
					   "\"error\":{\"code\":\"ok\",\"message\":\"\",\"log_id\":\"L\"}}");
}

/* An envelope with the given code (HTTP status chosen by the caller). */
std::string
envelope(const std::string &code, const std::string &data = "{}")
{
	return R"({"data":)" + data + R"(,"error":{"code":")" + code + R"(","message":"m","log_id":"LOG-1"}})";
}

/* Every reply kind: the unreadable ones first, then the clean refusals and a success. */
const std::vector<Canned> &
cases()
{
	static const std::vector<Canned> all = {
		{"malformed JSON", 200, R"({"data": {"publish_id": "v_pub_url~v2.12)", "application/json", false, "bad_response", 0},
		{"empty body", 200, "", "application/json", false, "bad_response", 0},
		{"blank body", 200, " \r\n\t ", "application/json", false, "bad_response", 0},
		{"HTML 200", 200, "<html><body>hello</body></html>", "text/html", false, "bad_response", 0},
		{"HTML 502", 502, "<html><h1>502 Bad Gateway</h1></html>", "text/html", false, "bad_response", 0},
		{"JSON array", 200, R"([{"data":{},"error":{"code":"invalid_param"}}])", "application/json", false,
			"bad_response", 0},
		{"JSON string", 200, R"("invalid_param")", "application/json", false, "bad_response", 0},
		{"JSON null", 200, "null", "application/json", false, "bad_response", 0},
		{"wrong types", 200, R"({"data":[],"error":{"code":7,"message":null,"log_id":[]}})", "application/json",
			false, "bad_response", 0},
		{"error not an object", 400, R"({"data":{},"error":["invalid_param"]})", "application/json", false,
			"bad_response", 0},
		{"flat OAuth-style error", 400, R"({"error":"invalid_param","error_description":"x"})",
			"application/json", false, "invalid_param", 0},
		{"refusal code with data an array", 400, envelope("invalid_param", "[1]"), "application/json", false,
			"invalid_param", 0},
		{"refusal code with a NUL", 400, R"({"data":{},"error":{"code":"invalid_param\u0000x"}})",
			"application/json", false, "bad_response", 0},
		{"invalid UTF-8", 200, invalid_utf8_body(), "application/json", false, "bad_response", 0},
		{"ok without publish_id", 200, envelope("ok"), "application/json", false, "bad_response", 0},
		{"ok with a numeric publish_id", 200, envelope("ok", R"({"publish_id":12345})"), "application/json",
			false, "bad_response", 0},
		{"ok on a 500", 500, envelope("ok", R"({"publish_id":"v_pub_url~v2.5"})"), "application/json", false,
			"bad_response", 0},
		{"500 internal_error", 500, envelope("internal_error"), "application/json", false, "internal_error", 0},
		{"503 with a refusal code", 503, envelope("invalid_param"), "application/json", false, "invalid_param", 0},
		{"504 empty", 504, "", "text/plain", false, "bad_response", 0},
		{"unknown error code", 400, envelope("brand_new_code"), "application/json", false, "brand_new_code", 0},
		{"unknown error code on 200", 200, envelope("something_odd"), "application/json", false,
			"something_odd", 0},
		{"refusal code on a 302", 302, envelope("invalid_param"), "application/json", false, "invalid_param", 0},
		/* The replies that prove a refusal: known outcome, retry as the code says. */
		{"400 invalid_param", 400, envelope("invalid_param"), "application/json", true, "invalid_param", 0},
		{"400 invalid_params", 400, envelope("invalid_params"), "application/json", true, "invalid_params", 0},
		{"401 access_token_invalid", 401, envelope("access_token_invalid"), "application/json", true,
			"access_token_invalid", 0},
		{"403 spam_risk_too_many_posts", 403, envelope("spam_risk_too_many_posts"), "application/json", true,
			"spam_risk_too_many_posts", 0},
		{"403 url_ownership_unverified", 403, envelope("url_ownership_unverified"), "application/json", true,
			"url_ownership_unverified", 0},
		{"200 spam_risk_too_many_pending_share", 200, envelope("spam_risk_too_many_pending_share"),
			"application/json", true, "spam_risk_too_many_pending_share", 0},
		{"429 rate_limit_exceeded", 429, envelope("rate_limit_exceeded"), "application/json", true,
			"rate_limit_exceeded", 1},
		{"429 rate_limit_exceeded without data", 429,
			R"({"error":{"code":"rate_limit_exceeded","message":"","log_id":"L"}})", "application/json", true,
			"rate_limit_exceeded", 1},
	};
	return all;
}

/* The three endpoints that create a post, and options naming a case number. */
struct InitEndpoint
{
	vs_endpoint ep;
	const char *name;
};

const InitEndpoint kInits[] = {
	{VS_EP_VIDEO_INIT, "video_init"},
	{VS_EP_INBOX_VIDEO_INIT, "inbox_video_init"},
	{VS_EP_CONTENT_INIT, "content_init"},
};

/* Options for ep whose URL carries "case-<n>", which the fake TikTok answers with cases()[n]. */
std::string
options_for(vs_endpoint ep, std::size_t n)
{
	std::string tag = "case-" + std::to_string(n);

	if (ep == VS_EP_CONTENT_INIT)
		return R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p.example/)" + tag + R"(.jpg"]})";
	return R"({"caption":"c","privacy_level":"SELF_ONLY","video_url":"https://v.example/)" + tag + R"(.mp4"})";
}

/*
 * A fake TikTok that answers each publish call with the canned reply named
 * by "case-<n>" in its body; "case-slow" sleeps until released (or 5 s);
 * "case-huge" sends 5 MB; no tag: a good init. force(n) answers every
 * call with cases()[n] (for endpoints whose body names no case).
 */
class CannedTikTok
{
public:
	CannedTikTok()
	{
		server_.set_keep_alive_max_count(1);
		server_.Post(R"(/v2/post/publish/.*)", [this](const httplib::Request &req, httplib::Response &res) {
			std::smatch m;
			int			forced = forced_.load();

			if (forced >= 0 || std::regex_search(req.body, m, std::regex(R"(case-(\d+))")))
			{
				const Canned &c = cases().at(forced >= 0 ? static_cast<std::size_t>(forced) : std::stoul(m[1]));

				res.status = c.status;
				if (c.status == 302)
					res.set_header("Location", "/elsewhere");
				res.set_content(c.body, c.content_type);
			}
			else if (req.body.find("case-slow") != std::string::npos)
			{
				auto		deadline = Clock::now() + std::chrono::seconds(5);

				while (!release_.load() && Clock::now() < deadline)
					std::this_thread::sleep_for(std::chrono::milliseconds(10));
				res.set_content(envelope("ok", R"({"publish_id":"late"})"), "application/json");
			}
			else if (req.body.find("case-huge") != std::string::npos)
				res.set_content(std::string(5 * 1024 * 1024, ' '), "application/json");
			else
				res.set_content(envelope("ok", R"({"publish_id":"v_pub_url~v2.good"})"), "application/json");
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		base_url_ = "http://127.0.0.1:" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	~CannedTikTok()
	{
		release_.store(true);
		server_.stop();
		thread_.join();
	}

	/* Answers every call with cases()[n] from now on (-1: by the body again). */
	void force(int n) { forced_.store(n); }

	/* HTTP options pointing at this server. */
	vs_http_options options(long request_timeout_ms = 5000) const
	{
		vs_http_options o{};

		o.base_url = base_url_.c_str();
		o.connect_timeout_ms = 2000;
		o.request_timeout_ms = request_timeout_ms;
		return o;
	}

private:
	httplib::Server server_;
	std::thread thread_;
	int			port_ = -1;
	std::string base_url_;
	std::atomic<bool> release_{false};
	std::atomic<int> forced_{-1};
};

/* Checks one init result against its canned reply. */
void
expect_init_outcome(const vs_call_result &r, const Canned &c, const std::string &where)
{
	EXPECT_EQ(r.ok, 0) << where;
	EXPECT_EQ(r.http_status, c.status) << where;
	EXPECT_EQ(std::string(r.error_code), std::string(c.error_code)) << where;
	std::string message = r.error_message;

	if (c.refusal)
	{
		EXPECT_EQ(r.outcome_unknown, 0) << where << ": a refusal is a known outcome";
		EXPECT_EQ(r.retryable, c.retryable) << where;
		EXPECT_EQ(message.find("outcome is unknown"), std::string::npos) << where << ": " << message;
	}
	else
	{
		EXPECT_EQ(r.outcome_unknown, 1) << where << ": TikTok may have created the post";
		EXPECT_EQ(r.retryable, 0) << where << ": an init of unknown outcome is never resent";
		EXPECT_NE(message.find("the outcome is unknown (TikTok may have created the post), "
							   "so the init will not be resent"), std::string::npos)
			<< where << ": " << message;
		std::string json = take_text(vs_result_json(&r));

		EXPECT_NE(json.find(R"("retryable":false,"outcome_unknown":true)"), std::string::npos) << where << json;
	}
}

}								/* namespace */

// proves_refusal: only a well-formed envelope with a known refusal code on a 2xx/4xx.
TEST(InitOutcome, ProvesRefusalTable)
{
	for (const Canned &c : cases())
		EXPECT_EQ(vibescaling::proves_refusal(c.status, c.body.data(), c.body.size()), c.refusal) << c.label;
	EXPECT_FALSE(vibescaling::proves_refusal(400, nullptr, 0));
	EXPECT_FALSE(vibescaling::proves_refusal(0, envelope("invalid_param").data(), envelope("invalid_param").size()));
	/* Not refusal codes: TikTok faults, and codes an init never gets. */
	for (const char *code : {"internal_error", "ok", "invalid_publish_id", "publish_not_cancellable",
							 "token_not_authorized_for_specified_publish_id", "INVALID_PARAM", ""})
	{
		std::string body = envelope(code);

		EXPECT_FALSE(vibescaling::proves_refusal(400, body.data(), body.size())) << code;
	}
	for (const char *code : {"invalid_param", "invalid_params", "access_token_invalid", "scope_not_authorized",
							 "spam_risk_too_many_posts", "spam_risk_user_banned_from_posting",
							 "spam_risk_too_many_pending_share", "privacy_level_option_mismatch",
							 "reached_active_user_cap", "unaudited_client_can_only_post_to_private_accounts",
							 "url_ownership_unverified", "rate_limit_exceeded", "app_version_check_failed"})
	{
		std::string body = envelope(code);

		EXPECT_TRUE(vibescaling::proves_refusal(403, body.data(), body.size())) << code;
		EXPECT_FALSE(vibescaling::proves_refusal(500, body.data(), body.size())) << code << " on a 500";
	}
}

// vs_call: every unreadable reply to each of the three inits is of unknown outcome, never resent.
TEST(InitOutcome, SingleCallEveryReplyKind)
{
	CannedTikTok tiktok;
	vs_http_options opt = tiktok.options();

	for (const InitEndpoint &init : kInits)
		for (std::size_t n = 0; n < cases().size(); n++)
		{
			ScopedResult res;
			std::string opts = options_for(init.ep, n);

			vs_call(&opt, init.ep, kToken, opts.c_str(), &res.r);
			expect_init_outcome(res.r, cases()[n], std::string(init.name) + " / " + cases()[n].label);
		}
}

// vs_call_many: the batch applies the same rule, each call by its own reply.
TEST(InitOutcome, BatchEveryReplyKind)
{
	CannedTikTok tiktok;
	vs_http_options opt = tiktok.options();

	for (const InitEndpoint &init : kInits)
	{
		std::vector<std::string> opts;
		std::vector<vs_call_spec> specs;

		for (std::size_t n = 0; n < cases().size(); n++)
			opts.push_back(options_for(init.ep, n));
		opts.push_back(R"({"caption":"c","privacy_level":"SELF_ONLY","video_url":"https://v.example/good.mp4"})");
		for (std::size_t n = 0; n < cases().size(); n++)
			specs.push_back({init.ep, kToken, opts[n].c_str()});
		specs.push_back({VS_EP_VIDEO_INIT, kToken, opts.back().c_str()});

		std::vector<vs_call_result> results(specs.size());

		vs_call_many(&opt, 8, static_cast<int>(specs.size()), specs.data(), results.data());
		for (std::size_t n = 0; n < cases().size(); n++)
			expect_init_outcome(results[n], cases()[n], std::string("batch ") + init.name + " / " + cases()[n].label);
		EXPECT_EQ(results.back().ok, 1) << results.back().error_message;
		EXPECT_EQ(results.back().outcome_unknown, 0);
		for (vs_call_result &r : results)
			vs_call_result_free(&r);
	}
}

// A timeout after the request was sent, and a body too large to read: unknown, never resent.
TEST(InitOutcome, TimeoutAndHugeBody)
{
	CannedTikTok tiktok;
	vs_http_options opt = tiktok.options(300);

	for (const InitEndpoint &init : kInits)
	{
		for (const char *tag : {"case-slow", "case-huge"})
		{
			std::string opts = init.ep == VS_EP_CONTENT_INIT
				? std::string(R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p.example/)") + tag + R"(.jpg"]})"
				: std::string(R"({"privacy_level":"SELF_ONLY","video_url":"https://v.example/)") + tag + R"(.mp4"})";
			ScopedResult single;
			std::string where = std::string(init.name) + " " + tag;

			vs_call(&opt, init.ep, kToken, opts.c_str(), &single.r);
			EXPECT_STREQ(single->error_code, std::string(tag) == "case-slow" ? "timeout" : "bad_response") << where;
			EXPECT_EQ(single->outcome_unknown, 1) << where;
			EXPECT_EQ(single->retryable, 0) << where;
			EXPECT_NE(std::string(single->error_message).find("will not be resent"), std::string::npos)
				<< where << ": " << single->error_message;

			vs_call_spec spec = {init.ep, kToken, opts.c_str()};
			ScopedResult batch;

			vs_call_many(&opt, 1, 1, &spec, &batch.r);
			EXPECT_EQ(batch->outcome_unknown, 1) << "batch " << where;
			EXPECT_EQ(batch->retryable, 0) << "batch " << where;
		}
	}
}

// Nothing sent (connection refused): the outcome is known, a retry is safe.
TEST(InitOutcome, ConnectFailedIsKnown)
{
	vs_http_options opt{};

	opt.base_url = "http://127.0.0.1:9";	/* discard: nothing listens */
	opt.connect_timeout_ms = 1000;
	opt.request_timeout_ms = 2000;
	for (const InitEndpoint &init : kInits)
	{
		ScopedResult res;
		std::string opts = options_for(init.ep, 0);

		vs_call(&opt, init.ep, kToken, opts.c_str(), &res.r);
		EXPECT_STREQ(res->error_code, "connect_failed") << init.name;
		EXPECT_EQ(res->outcome_unknown, 0) << init.name;
		EXPECT_EQ(res->retryable, 1) << init.name;
	}
}

// Other endpoints keep their rules: an HTML 502 on creator_info or status_fetch is a retryable bad_response.
TEST(InitOutcome, OtherEndpointsUnchanged)
{
	CannedTikTok tiktok;
	vs_http_options opt = tiktok.options();
	std::size_t html502 = 4;
	std::size_t internal500 = 17;

	ASSERT_STREQ(cases()[html502].label, "HTML 502");
	ASSERT_STREQ(cases()[internal500].label, "500 internal_error");
	for (vs_endpoint ep : {VS_EP_CREATOR_INFO, VS_EP_STATUS_FETCH})
	{
		for (std::size_t n : {html502, internal500})
		{
			ScopedResult res;

			tiktok.force(static_cast<int>(n));
			vs_call(&opt, ep, kToken, R"({"publish_id":"v_pub_url~v2.1"})", &res.r);
			EXPECT_EQ(res->ok, 0);
			EXPECT_EQ(res->outcome_unknown, 0) << cases()[n].label;
			EXPECT_EQ(res->retryable, 1) << cases()[n].label;
			EXPECT_EQ(std::string(res->error_message).find("outcome is unknown"), std::string::npos);
		}
	}
}
