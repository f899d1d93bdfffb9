/* reply_parser_test.cpp: TikTok reply envelopes -> vs_call_result. */
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

/* True when every byte sequence in s is valid UTF-8 and there is no NUL. */
bool
valid_utf8(const std::string &s)
{
	std::size_t i = 0;

	while (i < s.size())
	{
		unsigned char c = static_cast<unsigned char>(s[i]);
		std::size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;

		if (c == 0 || len == 0 || i + len > s.size())
			return false;
		for (std::size_t k = 1; k < len; k++)
			if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

/* Checks the fields every bad_response shares. */
void
expect_bad_response(vs_call_result &r, long status)
{
	EXPECT_EQ(r.ok, 0);
	EXPECT_EQ(r.http_status, status);
	EXPECT_STREQ(r.error_code, "bad_response");
	EXPECT_STREQ(r.sqlstate, "08P01");
	EXPECT_EQ(r.retryable, 1);
	EXPECT_EQ(r.outcome_unknown, 0);
	EXPECT_STREQ(r.data_json, "{}");
	EXPECT_STREQ(r.publish_id, "");
	EXPECT_TRUE(valid_utf8(r.error_message)) << r.error_message;
	EXPECT_LE(std::string(r.error_message).size(), 300u) << r.error_message;
}

}								/* namespace */

// A successful video init: ok, publish_id, log_id, data re-serialized.
TEST(ReplyParser, Ok)
{
	ScopedResult res;

	parse(res, 200, R"({"data":{"publish_id":"v_pub_url~v2.123456"},
	                   "error":{"code":"ok","message":"","log_id":"202411250000000000000ABCDEF"}})");
	EXPECT_EQ(res->ok, 1);
	EXPECT_EQ(res->http_status, 200);
	EXPECT_STREQ(res->error_code, "ok");
	EXPECT_STREQ(res->error_message, "");
	EXPECT_STREQ(res->log_id, "202411250000000000000ABCDEF");
	EXPECT_STREQ(res->publish_id, "v_pub_url~v2.123456");
	EXPECT_STREQ(res->data_json, R"({"publish_id":"v_pub_url~v2.123456"})");
	EXPECT_STREQ(res->sqlstate, "00000");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_EQ(res->outcome_unknown, 0);
	EXPECT_EQ(res->duration_ms, 0.0);
}

// creator_info's HTTP 200 with a spam_risk code is a failure.
TEST(ReplyParser, Http200WithErrorCodeIsFailure)
{
	ScopedResult res;

	parse(res, 200, R"({"data":{},"error":{"code":"spam_risk_too_many_posts",
	                   "message":"The user has reached the daily post cap","log_id":"L1"}})");
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 200);
	EXPECT_STREQ(res->error_code, "spam_risk_too_many_posts");
	EXPECT_STREQ(res->error_message, "The user has reached the daily post cap");
	EXPECT_STREQ(res->log_id, "L1");
	EXPECT_STREQ(res->sqlstate, "53000");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_STREQ(res->data_json, "{}");
}

// A typical 4xx error envelope.
TEST(ReplyParser, ErrorEnvelope)
{
	ScopedResult res;

	parse(res, 403, R"({"error":{"code":"url_ownership_unverified","message":"verify the domain","log_id":"L2"}})");
	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "url_ownership_unverified");
	EXPECT_STREQ(res->sqlstate, "42501");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_STREQ(res->data_json, "{}");

	ScopedResult rate;

	parse(rate, 429, R"({"error":{"code":"rate_limit_exceeded","message":"slow down"}})");
	EXPECT_STREQ(rate->error_code, "rate_limit_exceeded");
	EXPECT_STREQ(rate->sqlstate, "53000");
	EXPECT_EQ(rate->retryable, 1);
	EXPECT_STREQ(rate->log_id, "");

	ScopedResult internal;

	parse(internal, 503, R"({"error":{"code":"internal_error","message":"oops","log_id":"L3"}})");
	EXPECT_STREQ(internal->sqlstate, "08000");
	EXPECT_EQ(internal->retryable, 1);
}

// A FAILED publish answers code ok: the call itself succeeded.
TEST(ReplyParser, FailedStatusWithCodeOkIsOk)
{
	ScopedResult res;

	parse(res, 200, R"({"data":{"status":"FAILED","fail_reason":"video_pull_failed",)"
		  R"("publicaly_available_post_id":[],"uploaded_bytes":0},"error":{"code":"ok","message":"","log_id":"L"}})");
	EXPECT_EQ(res->ok, 1);
	EXPECT_STREQ(res->sqlstate, "00000");
	EXPECT_STREQ(res->data_json,
				 R"({"status":"FAILED","fail_reason":"video_pull_failed","publicaly_available_post_id":[],"uploaded_bytes":0})");
	EXPECT_STREQ(res->publish_id, "");
}

// 19-digit post ids (> 2^53) survive exactly; key order is kept.
TEST(ReplyParser, BigIntegersExact)
{
	ScopedResult res;

	parse(res, 200, R"({"data":{"status":"PUBLISH_COMPLETE",)"
		  R"("publicaly_available_post_id":[7300000000000000123,9223372036854775807],)"
		  R"("downloaded_bytes":4294967296},"error":{"code":"ok","message":"","log_id":"L"}})");
	EXPECT_EQ(res->ok, 1);
	EXPECT_STREQ(res->data_json,
				 R"({"status":"PUBLISH_COMPLETE","publicaly_available_post_id":[7300000000000000123,9223372036854775807],"downloaded_bytes":4294967296})");
}

// A non-2xx reply that claims "ok" is contradictory: bad_response.
TEST(ReplyParser, Non2xxWithCodeOk)
{
	ScopedResult res;

	parse(res, 500, R"({"data":{},"error":{"code":"ok","message":"","log_id":"L9"}})");
	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "bad_response");
	EXPECT_STREQ(res->sqlstate, "08P01");
	EXPECT_STREQ(res->log_id, "L9");
	EXPECT_NE(std::string(res->error_message).find("500"), std::string::npos);
}

// An HTML 502 page from a proxy.
TEST(ReplyParser, HtmlErrorPage)
{
	ScopedResult res;

	parse(res, 502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\r\n</html>\r\n");
	expect_bad_response(res.r, 502);
	EXPECT_EQ(std::string(res->error_message).rfind("TikTok replied HTTP 502 with a body that is not valid JSON", 0), 0u)
		<< res->error_message;
	EXPECT_NE(std::string(res->error_message).find("502 Bad Gateway"), std::string::npos);
	/* one line: CR/LF flattened */
	EXPECT_EQ(std::string(res->error_message).find_first_of("\r\n"), std::string::npos);
}

// Empty bodies, NULL included.
TEST(ReplyParser, EmptyBody)
{
	ScopedResult res;

	parse(res, 200, "");
	expect_bad_response(res.r, 200);
	EXPECT_STREQ(res->error_message, "TikTok replied HTTP 200 with an empty body");

	ScopedResult null_body;

	vs_parse_reply(504, nullptr, 0, &null_body.r);
	expect_bad_response(null_body.r, 504);
}

// Truncated or malformed JSON.
TEST(ReplyParser, MalformedJson)
{
	ScopedResult res;

	parse(res, 200, R"({"data":{"publish_id":"v_pub)");
	expect_bad_response(res.r, 200);

	ScopedResult trailing;

	parse(trailing, 200, R"({"error":{"code":"ok"}} garbage)");
	expect_bad_response(trailing.r, 200);
}

// Bytes that are not UTF-8 are refused and never copied raw into the message.
TEST(ReplyParser, NonUtf8)
{
	ScopedResult res;
	const std::string body = "{\"error\":{\"code\":\"ok\",\"message\":\"\xFF\xFE\xC0\xAF\"}}";

	parse(res, 200, body);
	expect_bad_response(res.r, 200);

	ScopedResult latin1;

	parse(latin1, 500, "Erreur interne: d\xE9j\xE0 vu \xFF");
	expect_bad_response(latin1.r, 500);
	EXPECT_NE(std::string(latin1->error_message).find("\xEF\xBF\xBD"), std::string::npos);

	ScopedResult nul;

	parse(nul, 502, std::string("bad\0body", 8));
	expect_bad_response(nul.r, 502);
}

// JSON that is not an object (array, string, number).
TEST(ReplyParser, JsonNotAnObject)
{
	for (const char *body : {"[1,2,3]", "\"ok\"", "42", "null", "true"})
	{
		ScopedResult res;

		parse(res, 200, body);
		expect_bad_response(res.r, 200);
		EXPECT_NE(std::string(res->error_message).find("not an object"), std::string::npos)
			<< res->error_message;
	}
}

// Objects without a usable "error": missing, wrong type, no code.
TEST(ReplyParser, MissingErrorObject)
{
	for (const char *body : {R"({"data":{"publish_id":"p"}})", R"({"error":5})",
							 R"({"error":{"message":"no code"}})", R"({"error":{"code":7}})",
							 R"({"error":{"code":""}})", R"({})"})
	{
		ScopedResult res;

		parse(res, 200, body);
		expect_bad_response(res.r, 200);
	}
}

// A huge non-JSON body is quoted only briefly.
TEST(ReplyParser, HugeBodyTruncated)
{
	std::string body(1 << 20, 'x');
	body[0] = '<';
	ScopedResult res;

	parse(res, 500, body);
	expect_bad_response(res.r, 500);
	std::string msg = res->error_message;

	EXPECT_LT(msg.size(), 300u);
	EXPECT_EQ(msg.substr(msg.size() - 3), "...");
}

// Truncation never splits a multi-byte character.
TEST(ReplyParser, TruncationKeepsUtf8)
{
	std::string body;

	while (body.size() < 1000)
		body += "\xE2\x82\xAC";	/* EURO SIGN, 3 bytes */
	ScopedResult res;

	parse(res, 502, body);
	expect_bad_response(res.r, 502);
}

// Non-object "data" is ignored ({}); a non-string publish_id is ignored.
TEST(ReplyParser, OddData)
{
	ScopedResult res;

	parse(res, 200, R"({"data":[1],"error":{"code":"ok","message":"","log_id":"L"}})");
	EXPECT_EQ(res->ok, 1);
	EXPECT_STREQ(res->data_json, "{}");

	ScopedResult num;

	parse(num, 200, R"({"data":{"publish_id":12},"error":{"code":"ok"}})");
	EXPECT_EQ(num->ok, 1);
	EXPECT_STREQ(num->publish_id, "");
	EXPECT_STREQ(num->data_json, R"({"publish_id":12})");
	EXPECT_STREQ(num->log_id, "");
	EXPECT_STREQ(num->error_message, "");
}

// OAuth's flat error shape.
TEST(ReplyParser, OAuthFlatError)
{
	ScopedResult res;

	parse(res, 400, R"({"error":"invalid_grant","error_description":"Refresh token is invalid or expired.","log_id":"OAUTH1"})");
	EXPECT_EQ(res->ok, 0);
	EXPECT_EQ(res->http_status, 400);
	EXPECT_STREQ(res->error_code, "invalid_grant");
	EXPECT_STREQ(res->error_message, "Refresh token is invalid or expired.");
	EXPECT_STREQ(res->log_id, "OAUTH1");
	EXPECT_STREQ(res->sqlstate, "28000");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_STREQ(res->data_json, "{}");

	ScopedResult bare;

	parse(bare, 401, R"({"error":"access_token_invalid"})");
	EXPECT_STREQ(bare->error_code, "access_token_invalid");
	EXPECT_STREQ(bare->error_message, "");
	EXPECT_STREQ(bare->sqlstate, "28000");
}

// Unknown codes fall back by HTTP status.
TEST(ReplyParser, UnknownCode)
{
	ScopedResult res;

	parse(res, 400, R"({"error":{"code":"brand_new_error","message":"m"}})");
	EXPECT_STREQ(res->sqlstate, "38000");
	EXPECT_EQ(res->retryable, 0);

	ScopedResult server;

	parse(server, 500, R"({"error":{"code":"brand_new_error","message":"m"}})");
	EXPECT_STREQ(server->sqlstate, "08000");
	EXPECT_EQ(server->retryable, 1);
}

// vs_call_result_free NULLs the fields and tolerates a second call.
TEST(ReplyParser, FreeTwice)
{
	vs_call_result r;

	vs_parse_reply(200, "{}", 2, &r);
	vs_call_result_free(&r);
	EXPECT_EQ(r.error_code, nullptr);
	EXPECT_EQ(r.data_json, nullptr);
	vs_call_result_free(&r);
	vs_call_result_free(nullptr);
	vs_free(nullptr);
}
