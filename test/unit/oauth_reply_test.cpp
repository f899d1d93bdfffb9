/* oauth_reply_test.cpp: OAuth token / revoke replies and user_info's envelope. */
#include "test_support.hpp"

#include <gtest/gtest.h>

namespace {

/* Parses (status, body) as endpoint ep into res. */
void
parse_as(ScopedResult &res, vs_endpoint ep, long status, const std::string &body)
{
	vs_parse_endpoint_reply(ep, status, body.data(), body.size(), &res.r);
}

const char kTokenReply[] =
	R"({"access_token":"act.NEW-ACCESS","expires_in":86400,"open_id":"open-1",)"
	R"("refresh_expires_in":31536000,"refresh_token":"rft.NEW-REFRESH",)"
	R"("scope":"user.info.basic,video.publish","token_type":"Bearer"})";

}								/* namespace */

// A token success: ok, the whole flat object as data, log_id when present.
TEST(OAuthReply, TokenSuccess)
{
	ScopedResult res;

	parse_as(res, VS_EP_OAUTH_TOKEN, 200, kTokenReply);
	EXPECT_EQ(res->ok, 1);
	EXPECT_EQ(res->http_status, 200);
	EXPECT_STREQ(res->error_code, "ok");
	EXPECT_STREQ(res->error_message, "");
	EXPECT_STREQ(res->sqlstate, "00000");
	EXPECT_STREQ(res->log_id, "");
	EXPECT_STREQ(res->publish_id, "");
	EXPECT_STREQ(res->data_json, kTokenReply);
	EXPECT_EQ(res->retryable, 0);

	/* The caller gets the tokens; the dispatch log never does. */
	std::string result = take_text(vs_result_json(&res.r));
	std::string log = take_text(vs_dispatch_log_json(&res.r, nullptr, "a", "oauth", "oauth_token"));

	EXPECT_NE(result.find(std::string("\"data\":") + kTokenReply), std::string::npos) << result;
	EXPECT_EQ(log.find("NEW-"), std::string::npos) << log;
	EXPECT_NE(log.find("\"outcome\":\"success\""), std::string::npos) << log;

	ScopedResult with_log;

	parse_as(with_log, VS_EP_OAUTH_TOKEN, 200,
			 R"({"access_token":"a","refresh_token":"r","log_id":"LOG-TOK"})");
	EXPECT_EQ(with_log->ok, 1);
	EXPECT_STREQ(with_log->log_id, "LOG-TOK");
}

// invalid_grant (HTTP 400): code, description, log_id, SQLSTATE 28000, not retryable.
TEST(OAuthReply, InvalidGrant400)
{
	ScopedResult res;

	parse_as(res, VS_EP_OAUTH_TOKEN, 400,
			 R"({"error":"invalid_grant","error_description":"Authorization code is expired or invalid.","log_id":"LOG-G"})");
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 400);
	EXPECT_STREQ(res->error_code, "invalid_grant");
	EXPECT_STREQ(res->error_message, "Authorization code is expired or invalid.");
	EXPECT_STREQ(res->log_id, "LOG-G");
	EXPECT_STREQ(res->sqlstate, "28000");
	EXPECT_STREQ(res->data_json, "{}");
	EXPECT_EQ(res->retryable, 0);
}

// A flat error is a failure whatever the HTTP status, 200 included.
TEST(OAuthReply, FlatErrorAnyStatus)
{
	struct Row { long status; const char *code; const char *sqlstate; int retryable; };
	const Row rows[] = {
		{200, "invalid_request", "22023", 0},
		{401, "invalid_client", "28000", 0},
		{403, "unauthorized_client", "42501", 0},
		{403, "access_denied", "42501", 0},
		{400, "unsupported_grant_type", "38000", 0},
		{429, "rate_limit_exceeded", "53000", 1},
		{503, "server_error", "08000", 1},
	};

	for (const Row &row : rows)
	{
		ScopedResult res;

		parse_as(res, VS_EP_OAUTH_TOKEN, row.status,
				 std::string(R"({"error":")") + row.code + R"(","error_description":"d"})");
		EXPECT_EQ(res->ok, 0) << row.code;
		EXPECT_STREQ(res->error_code, row.code);
		EXPECT_STREQ(res->error_message, "d");
		EXPECT_STREQ(res->sqlstate, row.sqlstate) << row.code;
		EXPECT_EQ(res->retryable, row.retryable) << row.code;
	}
}

// TikTok's occasional envelope-style error on the OAuth endpoints.
TEST(OAuthReply, EnvelopeError)
{
	for (vs_endpoint ep : {VS_EP_OAUTH_TOKEN, VS_EP_OAUTH_REVOKE})
	{
		ScopedResult res;

		parse_as(res, ep, 401,
				 R"({"data":{},"error":{"code":"invalid_client","message":"Client key or secret is invalid.","log_id":"LOG-E"}})");
		EXPECT_EQ(res->ok, 0);
		EXPECT_STREQ(res->error_code, "invalid_client");
		EXPECT_STREQ(res->error_message, "Client key or secret is invalid.");
		EXPECT_STREQ(res->log_id, "LOG-E");
		EXPECT_STREQ(res->sqlstate, "28000");
	}
}

// 200 without access_token and without error: bad_response, and the body is never quoted.
TEST(OAuthReply, TokenWithoutAccessToken)
{
	for (const char *body : {R"({"refresh_token":"rft.LEAK","open_id":"o"})",
							 R"({"access_token":"","refresh_token":"rft.LEAK"})",
							 R"({"access_token":7,"refresh_token":"rft.LEAK"})",
							 R"({"error":null,"refresh_token":"rft.LEAK"})",
							 R"({"data":{"x":"rft.LEAK"},"error":{"code":"ok","message":""}})"})
	{
		ScopedResult res;

		parse_as(res, VS_EP_OAUTH_TOKEN, 200, body);
		EXPECT_EQ(res->ok, 0) << body;
		EXPECT_STREQ(res->error_code, "bad_response") << body;
		EXPECT_STREQ(res->sqlstate, "08P01");
		EXPECT_EQ(std::string(res->error_message).find("LEAK"), std::string::npos) << res->error_message;
		EXPECT_EQ(std::string(res->data_json).find("LEAK"), std::string::npos) << res->data_json;
	}
}

// Token replies that are not a JSON object are bad responses that never quote the body.
TEST(OAuthReply, TokenBadBodies)
{
	struct Row { long status; const char *body; };
	const Row rows[] = {
		{200, ""},
		{200, "   "},
		{200, R"({"access_token":"act.LEAK","refresh_tok)"},
		{200, R"(["act.LEAK"])"},
		{502, "<html>act.LEAK</html>"},
		{400, R"({"access_token":"act.LEAK"})"},	/* a token with a failure status: contradictory */
		{200, R"({"error":"","access_token":"act.LEAK"})"},
		{200, R"({"error":"ok","access_token":"act.LEAK"})"},
		{200, R"({"error":{"message":"m"},"access_token":"act.LEAK"})"},
	};

	for (const Row &row : rows)
	{
		ScopedResult res;

		parse_as(res, VS_EP_OAUTH_TOKEN, row.status, row.body);
		EXPECT_EQ(res->ok, 0) << row.body;
		EXPECT_EQ(res->http_status, row.status);
		EXPECT_STREQ(res->error_code, "bad_response") << row.body;
		EXPECT_EQ(std::string(res->error_message).find("LEAK"), std::string::npos)
			<< row.body << " -> " << res->error_message;
		EXPECT_EQ(std::string(res->data_json).find("LEAK"), std::string::npos);
	}
}

// Revoke: an empty 200 is success; so is JSON without "error".
TEST(OAuthReply, RevokeSuccess)
{
	for (const char *body : {"", "\r\n", "{}", R"({"log_id":"LOG-R"})"})
	{
		ScopedResult res;

		parse_as(res, VS_EP_OAUTH_REVOKE, 200, body);
		EXPECT_EQ(res->ok, 1) << body;
		EXPECT_STREQ(res->error_code, "ok");
		EXPECT_STREQ(res->sqlstate, "00000");
		EXPECT_STREQ(res->error_message, "");
	}
	ScopedResult null_body;

	vs_parse_endpoint_reply(VS_EP_OAUTH_REVOKE, 200, nullptr, 0, &null_body.r);
	EXPECT_EQ(null_body->ok, 1);
	EXPECT_STREQ(null_body->data_json, "{}");

	ScopedResult logged;

	parse_as(logged, VS_EP_OAUTH_REVOKE, 200, R"({"log_id":"LOG-R"})");
	EXPECT_STREQ(logged->log_id, "LOG-R");
}

// Revoke failures: flat errors, empty non-2xx, HTML.
TEST(OAuthReply, RevokeFailures)
{
	ScopedResult flat;

	parse_as(flat, VS_EP_OAUTH_REVOKE, 400,
			 R"({"error":"invalid_request","error_description":"token is required","log_id":"L"})");
	EXPECT_EQ(flat->ok, 0);
	EXPECT_STREQ(flat->error_code, "invalid_request");
	EXPECT_STREQ(flat->error_message, "token is required");
	EXPECT_STREQ(flat->sqlstate, "22023");

	ScopedResult empty500;

	parse_as(empty500, VS_EP_OAUTH_REVOKE, 500, "");
	EXPECT_STREQ(empty500->error_code, "bad_response");
	EXPECT_EQ(empty500->retryable, 1);

	ScopedResult html;

	parse_as(html, VS_EP_OAUTH_REVOKE, 200, "<html>oops</html>");
	EXPECT_STREQ(html->error_code, "bad_response");
	EXPECT_NE(std::string(html->error_message).find("oops"), std::string::npos);	/* no tokens here: quoted */

	ScopedResult no_error_404;

	parse_as(no_error_404, VS_EP_OAUTH_REVOKE, 404, "{}");
	EXPECT_STREQ(no_error_404->error_code, "bad_response");
}

// user_info: the usual envelope; data holds {"user": {...}}.
TEST(OAuthReply, UserInfoEnvelope)
{
	ScopedResult res;

	parse_as(res, VS_EP_USER_INFO, 200,
			 R"({"data":{"user":{"open_id":"o1","union_id":"u1","avatar_url":"https://a/1.jpg","display_name":"Ann"}},)"
			 R"("error":{"code":"ok","message":"","log_id":"LOG-U"}})");
	EXPECT_EQ(res->ok, 1);
	EXPECT_STREQ(res->data_json,
				 R"({"user":{"open_id":"o1","union_id":"u1","avatar_url":"https://a/1.jpg","display_name":"Ann"}})");
	EXPECT_STREQ(res->log_id, "LOG-U");

	ScopedResult denied;

	parse_as(denied, VS_EP_USER_INFO, 401,
			 R"({"data":{},"error":{"code":"scope_not_authorized","message":"m","log_id":"L"}})");
	EXPECT_STREQ(denied->error_code, "scope_not_authorized");
	EXPECT_STREQ(denied->sqlstate, "42501");

	ScopedResult flat;	/* the envelope endpoints keep accepting a flat error */

	parse_as(flat, VS_EP_USER_INFO, 401, R"({"error":"access_token_invalid"})");
	EXPECT_STREQ(flat->error_code, "access_token_invalid");
}

// An unknown endpoint parses as an envelope, like vs_parse_reply.
TEST(OAuthReply, UnknownEndpointIsEnvelope)
{
	ScopedResult res;

	parse_as(res, VS_EP_UNKNOWN, 200, kTokenReply);
	EXPECT_STREQ(res->error_code, "bad_response");
	EXPECT_STREQ(res->data_json, "{}");
	vs_parse_endpoint_reply(VS_EP_OAUTH_TOKEN, 200, "{}", 2, nullptr);	/* no crash */
}
