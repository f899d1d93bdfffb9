/*
 * oauth_transport_test.cpp: oauth_token, oauth_revoke and user_info through
 * vs_call against an in-process cpp-httplib server (method, headers, form
 * bodies, query, replies, secrets kept out of messages and logs).
 */
#include "test_support.hpp"

#include <httplib.h>
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace {

const char kBearer[] = "act.BEARER-secret-0001";

/* What the server saw of one request. */
struct Seen
{
	std::string method;
	std::string path;
	std::string target;
	std::string query_fields;
	bool		has_authorization;
	std::string authorization;
	bool		has_content_type;
	std::string content_type;
	std::string body;
	int			remote_port;
};

/* A fake TikTok OAuth / user info server on an ephemeral port. */
class FakeOAuth
{
public:
	/* Starts listening; keep_alive as in http_transport_test. */
	explicit FakeOAuth(bool keep_alive = false)
	{
		if (keep_alive)
			server_.set_keep_alive_timeout(1);
		else
			server_.set_keep_alive_max_count(1);
		server_.Post("/v2/oauth/token/", [this](const httplib::Request &req, httplib::Response &res) {
			record(req);
			std::string code = req.has_param("code") ? req.get_param_value("code") : "";
			std::string secret = req.get_param_value("client_secret");

			if (secret != "cs&=+ 1")
			{
				res.status = 401;
				/* A careless server echoing what it got, raw and form-encoded. */
				res.set_content(R"({"error":"invalid_client","error_description":"bad secret )" + secret +
								" in " + req.body + R"(","log_id":"LOG-C"})", "application/json");
			}
			else if (code == "code-used" || req.get_param_value("refresh_token") == "rft.OLD")
			{
				res.status = 400;
				res.set_content(R"({"error":"invalid_grant","error_description":"Authorization code )" + code +
								R"( is expired or invalid.","log_id":"LOG-G"})", "application/json");
			}
			else
				res.set_content(R"({"access_token":"act.NEW","expires_in":86400,"open_id":"open-1",)"
								R"("refresh_expires_in":31536000,"refresh_token":"rft.NEW",)"
								R"("scope":"user.info.basic,video.publish","token_type":"Bearer"})",
								"application/json");
		});
		server_.Post("/v2/oauth/revoke/", [this](const httplib::Request &req, httplib::Response &res) {
			record(req);
			if (req.get_param_value("token").empty())
			{
				res.status = 400;
				res.set_content(R"({"error":"invalid_request","error_description":"token is required"})",
								"application/json");
			}
			else
				res.status = 200;	/* TikTok: success is an empty body */
		});
		server_.Get("/v2/user/info/", [this](const httplib::Request &req, httplib::Response &res) {
			record(req);
			if (req.get_header_value("Authorization") != std::string("Bearer ") + kBearer)
			{
				res.status = 401;
				res.set_content(R"({"data":{},"error":{"code":"access_token_invalid","message":"token )" +
								req.get_header_value("Authorization") + R"( is invalid","log_id":"LOG-UI"}})",
								"application/json");
				return;
			}
			res.set_content(R"({"data":{"user":{"open_id":"open-1","union_id":"union-1",)"
							R"("avatar_url":"https://a/1.jpg","display_name":"Ann"}},)"
							R"("error":{"code":"ok","message":"","log_id":"LOG-U"}})", "application/json");
		});
		port_ = server_.bind_to_any_port("127.0.0.1");
		base_url_ = "http://127.0.0.1:" + std::to_string(port_);
		thread_ = std::thread([this] { server_.listen_after_bind(); });
		while (!server_.is_running())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}

	/* Stops the server. */
	~FakeOAuth()
	{
		server_.stop();
		thread_.join();
	}

	/* "http://127.0.0.1:<port>". */
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
		seen_.push_back({req.method, req.path, req.target,
						 req.has_param("fields") ? req.get_param_value("fields") : "",
						 req.has_header("Authorization"), req.get_header_value("Authorization"),
						 req.has_header("Content-Type"), req.get_header_value("Content-Type"),
						 req.body, req.remote_port});
	}

	httplib::Server server_;
	std::thread thread_;
	int			port_ = -1;
	std::string base_url_;
	std::mutex	mutex_;
	std::vector<Seen> seen_;
};

/* HTTP options for base_url (which must outlive them). */
vs_http_options
options(const std::string &base_url)
{
	vs_http_options o{};

	o.base_url = base_url.c_str();
	o.connect_timeout_ms = 2000;
	o.request_timeout_ms = 5000;
	o.should_abort = nullptr;
	return o;
}

/* Asserts that neither the message nor the dispatch log holds any of the needles. */
void
expect_not_logged(vs_call_result &r, std::initializer_list<const char *> needles)
{
	std::string log = take_text(vs_dispatch_log_json(&r, "1", "2", "test", "oauth_token"));

	for (const char *needle : needles)
	{
		EXPECT_EQ(std::string(r.error_message).find(needle), std::string::npos)
			<< needle << " in " << r.error_message;
		EXPECT_EQ(log.find(needle), std::string::npos) << needle << " in " << log;
	}
}

const char kCodeExchange[] =
	R"({"client_key":"ck-1","client_secret":"cs&=+ 1","grant_type":"authorization_code",)"
	R"("code":"code-fresh","redirect_uri":"https://app.example/cb","code_verifier":"ver-1"})";

}								/* namespace */

// The code exchange: form POST without Authorization; the tokens come back in data only.
TEST(OAuthTransport, CodeExchange)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_OAUTH_TOKEN, kBearer, kCodeExchange, &res.r);
	ASSERT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_EQ(res->http_status, 200);
	EXPECT_STREQ(res->sqlstate, "00000");
	EXPECT_NE(std::string(res->data_json).find(R"("access_token":"act.NEW")"), std::string::npos);
	EXPECT_NE(std::string(res->data_json).find(R"("refresh_token":"rft.NEW")"), std::string::npos);

	std::vector<Seen> seen = server.seen();

	ASSERT_EQ(seen.size(), 1u);
	EXPECT_EQ(seen[0].method, "POST");
	EXPECT_EQ(seen[0].target, "/v2/oauth/token/");
	EXPECT_FALSE(seen[0].has_authorization) << seen[0].authorization;
	EXPECT_EQ(seen[0].content_type, "application/x-www-form-urlencoded");
	EXPECT_EQ(seen[0].body,
			  "client_key=ck-1&client_secret=cs%26%3D%2B%201&code=code-fresh&grant_type=authorization_code"
			  "&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=ver-1");
	EXPECT_EQ(take_text(vs_build_request_body(VS_EP_OAUTH_TOKEN, kCodeExchange, nullptr)), seen[0].body);

	std::string result = take_text(vs_result_json(&res.r));

	EXPECT_NE(result.find("act.NEW"), std::string::npos) << result;	/* the caller needs them */
	expect_not_logged(res.r, {"act.NEW", "rft.NEW", "cs&", "code-fresh", "ver-1", kBearer});
}

// The refresh: form POST, exact body; a NULL access_token is fine for OAuth.
TEST(OAuthTransport, Refresh)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_OAUTH_TOKEN, nullptr,
			R"({"client_key":"ck-1","client_secret":"cs&=+ 1","grant_type":"refresh_token","refresh_token":"rft.CUR"})",
			&res.r);
	ASSERT_EQ(res->ok, 1) << res->error_message;
	ASSERT_EQ(server.seen().size(), 1u);
	EXPECT_EQ(server.seen()[0].body,
			  "client_key=ck-1&client_secret=cs%26%3D%2B%201&grant_type=refresh_token&refresh_token=rft.CUR");
	EXPECT_FALSE(server.seen()[0].has_authorization);
}

// invalid_grant echoing the code: failure, 28000, the code redacted from the message and log.
TEST(OAuthTransport, InvalidGrantRedacted)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_OAUTH_TOKEN, kBearer,
			R"({"client_key":"ck-1","client_secret":"cs&=+ 1","grant_type":"authorization_code",)"
			R"("code":"code-used","redirect_uri":"https://app.example/cb"})",
			&res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 400);
	EXPECT_STREQ(res->error_code, "invalid_grant");
	EXPECT_STREQ(res->error_message, "Authorization code *** is expired or invalid.");
	EXPECT_STREQ(res->log_id, "LOG-G");
	EXPECT_STREQ(res->sqlstate, "28000");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_EQ(res->outcome_unknown, 0);
	expect_not_logged(res.r, {"code-used"});
}

// invalid_client echoing the secret and the whole form: every secret redacted, raw and encoded.
TEST(OAuthTransport, InvalidClientRedacted)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;
	const char *opts =
		R"({"client_key":"ck-1","client_secret":"WRONG secret+1","grant_type":"refresh_token","refresh_token":"rft.CUR-123"})";

	vs_call(&opt, VS_EP_OAUTH_TOKEN, kBearer, opts, &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 401);
	EXPECT_STREQ(res->error_code, "invalid_client");
	EXPECT_STREQ(res->sqlstate, "28000");
	EXPECT_STREQ(res->error_message,
				 "bad secret *** in client_key=ck-1&client_secret=***&grant_type=refresh_token&refresh_token=***");
	expect_not_logged(res.r, {"WRONG", "rft.CUR", "secret%2B1"});
}

// Revoke: form POST without Authorization; an empty 200 is success.
TEST(OAuthTransport, Revoke)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_OAUTH_REVOKE, kBearer,
			R"({"client_key":"ck-1","client_secret":"cs&=+ 1","token":"act.OLD"})", &res.r);
	EXPECT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_EQ(res->http_status, 200);
	EXPECT_STREQ(res->error_code, "ok");
	EXPECT_STREQ(res->data_json, "{}");

	std::vector<Seen> seen = server.seen();

	ASSERT_EQ(seen.size(), 1u);
	EXPECT_EQ(seen[0].method, "POST");
	EXPECT_EQ(seen[0].target, "/v2/oauth/revoke/");
	EXPECT_FALSE(seen[0].has_authorization);
	EXPECT_EQ(seen[0].content_type, "application/x-www-form-urlencoded");
	EXPECT_EQ(seen[0].body, "client_key=ck-1&client_secret=cs%26%3D%2B%201&token=act.OLD");
}

// user_info: GET with the query and the bearer, no body, no Content-Type; data = {"user": ..}.
TEST(OAuthTransport, UserInfo)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_USER_INFO, kBearer, R"({"caption":"ignored"})", &res.r);
	ASSERT_EQ(res->ok, 1) << res->error_code << ": " << res->error_message;
	EXPECT_STREQ(res->data_json,
				 R"({"user":{"open_id":"open-1","union_id":"union-1","avatar_url":"https://a/1.jpg","display_name":"Ann"}})");
	EXPECT_STREQ(res->log_id, "LOG-U");

	std::vector<Seen> seen = server.seen();

	ASSERT_EQ(seen.size(), 1u);
	EXPECT_EQ(seen[0].method, "GET");
	EXPECT_EQ(seen[0].path, "/v2/user/info/");
	EXPECT_EQ(seen[0].target, "/v2/user/info/?fields=open_id,union_id,avatar_url,display_name");
	EXPECT_EQ(seen[0].query_fields, "open_id,union_id,avatar_url,display_name");
	EXPECT_EQ(seen[0].authorization, std::string("Bearer ") + kBearer);
	EXPECT_EQ(seen[0].body, "");
	EXPECT_FALSE(seen[0].has_content_type) << seen[0].content_type;
}

// user_info with a rejected token: the server echoes it, the message does not.
TEST(OAuthTransport, UserInfoTokenRedacted)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_USER_INFO, "act.OTHER-token-9", "{}", &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "access_token_invalid");
	EXPECT_STREQ(res->error_message, "token Bearer *** is invalid");
	expect_not_logged(res.r, {"act.OTHER"});
}

// Bad OAuth options are refused before anything is sent.
TEST(OAuthTransport, RefusedBeforeSending)
{
	FakeOAuth server;
	vs_http_options opt = options(server.base_url());
	ScopedResult res;

	vs_call(&opt, VS_EP_OAUTH_TOKEN, kBearer,
			R"({"client_key":"ck-1","client_secret":"cs&=+ 1","grant_type":"refresh_token"})", &res.r);
	EXPECT_STREQ(res->error_code, "invalid_param");
	EXPECT_STREQ(res->sqlstate, "22023");
	EXPECT_EQ(res->http_status, 0);
	EXPECT_NE(std::string(res->error_message).find("refresh_token"), std::string::npos);

	ScopedResult revoke;

	vs_call(&opt, VS_EP_OAUTH_REVOKE, kBearer, R"({"client_key":"ck-1","client_secret":"s"})", &revoke.r);
	EXPECT_STREQ(revoke->error_code, "invalid_param");

	ScopedResult evil;	/* a bad bearer token still refuses user_info */

	vs_call(&opt, VS_EP_USER_INFO, "tok\r\nX-Evil: 1", "{}", &evil.r);
	EXPECT_STREQ(evil->error_code, "invalid_param");

	ScopedResult ignored;	/* ...but does not matter to OAuth, which never sends it */

	vs_call(&opt, VS_EP_OAUTH_REVOKE, "tok\r\nX-Evil: 1",
			R"({"client_key":"ck-1","client_secret":"cs&=+ 1","token":"act.OLD"})", &ignored.r);
	EXPECT_EQ(ignored->ok, 1) << ignored->error_message;
	ASSERT_EQ(server.seen().size(), 1u);
	EXPECT_EQ(server.seen()[0].target, "/v2/oauth/revoke/");
}

// user_info rides the kept-alive pool; oauth_token never does (if a kept-alive
// connection died under it, a code or a rotated refresh token could be spent
// without our hearing the answer).
TEST(OAuthTransport, TokenUsesFreshConnection)
{
	FakeOAuth server(true);
	vs_http_options opt = options(server.base_url());

	for (vs_endpoint ep : {VS_EP_USER_INFO, VS_EP_USER_INFO, VS_EP_OAUTH_TOKEN})
	{
		ScopedResult res;

		vs_call(&opt, ep, kBearer, kCodeExchange, &res.r);
		ASSERT_EQ(res->ok, 1) << res->error_message;
	}
	std::vector<Seen> seen = server.seen();

	ASSERT_EQ(seen.size(), 3u);
	EXPECT_EQ(seen[0].remote_port, seen[1].remote_port);	/* kept alive */
	EXPECT_NE(seen[1].remote_port, seen[2].remote_port);	/* oauth_token: a connection of its own */
}
