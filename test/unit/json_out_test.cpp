/* json_out_test.cpp: the dispatch log and SQL result documents. */
#include "test_support.hpp"

#include <gtest/gtest.h>

// The result JSON of a success: exact keys, types and order; data is an object.
TEST(JsonOut, ResultSuccess)
{
	ScopedResult res;

	parse(res, 200, R"({"data":{"publish_id":"v_pub_url~v2.1","ids":[7300000000000000123]},)"
		  R"("error":{"code":"ok","message":"","log_id":"L1"}})");
	res->duration_ms = 12.3456;
	EXPECT_EQ(take_text(vs_result_json(&res.r)),
			  R"({"ok":true,"http_status":200,"error_code":"ok","error_message":"","log_id":"L1",)"
			  R"("publish_id":"v_pub_url~v2.1","data":{"publish_id":"v_pub_url~v2.1","ids":[7300000000000000123]},)"
			  R"("sqlstate":"00000","duration_ms":12.346,"retryable":false,"outcome_unknown":false,"retry_after":null})");
}

// The result JSON of a failure.
TEST(JsonOut, ResultFailure)
{
	ScopedResult res;

	parse(res, 429, R"({"error":{"code":"rate_limit_exceeded","message":"Too \"many\"","log_id":"L2"}})");
	res->duration_ms = 5.0;
	res->outcome_unknown = 1;
	EXPECT_EQ(take_text(vs_result_json(&res.r)),
			  R"({"ok":false,"http_status":429,"error_code":"rate_limit_exceeded","error_message":"Too \"many\"",)"
			  R"("log_id":"L2","publish_id":"","data":{},"sqlstate":"53000","duration_ms":5.0,)"
			  R"("retryable":true,"outcome_unknown":true,"retry_after":null})");
}

// A message containing the placeholder text cannot confuse the "data" splice.
TEST(JsonOut, ResultSpliceIsRobust)
{
	ScopedResult res;

	parse(res, 400, R"({"data":{"k":1.5},"error":{"code":"invalid_param","message":"\"data\":null","log_id":"data"}})");
	EXPECT_EQ(take_text(vs_result_json(&res.r)),
			  R"({"ok":false,"http_status":400,"error_code":"invalid_param","error_message":"\"data\":null",)"
			  R"("log_id":"data","publish_id":"","data":{"k":1.5},"sqlstate":"22023","duration_ms":0.0,)"
			  R"("retryable":false,"outcome_unknown":false,"retry_after":null})");
}

// The dispatch log: exact keys, NULL ids as JSON null.
TEST(JsonOut, DispatchLog)
{
	ScopedResult res;

	parse(res, 200, R"({"data":{"publish_id":"v_pub_url~v2.9"},"error":{"code":"ok","message":"","log_id":"L7"}})");
	res->duration_ms = 1234.5678;
	EXPECT_EQ(take_text(vs_dispatch_log_json(&res.r, "42", "7", "schedule", "video_init")),
			  R"({"post_id":"42","tiktok_account_id":"7","trigger":"schedule","endpoint":"video_init",)"
			  R"("http_status":200,"outcome":"success","error_code":"ok","error_message":"","log_id":"L7",)"
			  R"("publish_id":"v_pub_url~v2.9","duration_ms":1234.568,"outcome_unknown":false,"retry_after":null})");
	EXPECT_EQ(take_text(vs_dispatch_log_json(&res.r, nullptr, nullptr, "manual", "status_fetch")),
			  R"({"post_id":null,"tiktok_account_id":null,"trigger":"manual","endpoint":"status_fetch",)"
			  R"("http_status":200,"outcome":"success","error_code":"ok","error_message":"","log_id":"L7",)"
			  R"("publish_id":"v_pub_url~v2.9","duration_ms":1234.568,"outcome_unknown":false,"retry_after":null})");
}

// A failed call logs outcome "failure".
TEST(JsonOut, DispatchLogFailure)
{
	ScopedResult res;

	parse(res, 502, "<html>bad gateway</html>");
	res->outcome_unknown = 1;
	std::string log = take_text(vs_dispatch_log_json(&res.r, "1", "2", "retry", "video_init"));

	EXPECT_NE(log.find(R"("outcome":"failure")"), std::string::npos) << log;
	EXPECT_NE(log.find(R"("error_code":"bad_response")"), std::string::npos) << log;
	EXPECT_NE(log.find(R"("http_status":502)"), std::string::npos) << log;
	EXPECT_NE(log.find(R"("outcome_unknown":true,"retry_after":null})"), std::string::npos) << log;
}

// Caller-built results with NULL strings, bad UTF-8 and odd durations still give valid JSON.
// (A memset result has retry_after_s 0, not -1: "retry_after":0. Callers set -1 for none.)
TEST(JsonOut, DefensiveInputs)
{
	vs_call_result r;

	std::memset(&r, 0, sizeof r);
	r.duration_ms = -3;
	r.error_message = const_cast<char *>("bad \xFF byte");
	r.data_json = const_cast<char *>("not json");
	EXPECT_EQ(take_text(vs_result_json(&r)),
			  "{\"ok\":false,\"http_status\":0,\"error_code\":\"\",\"error_message\":\"bad \xEF\xBF\xBD byte\","
			  "\"log_id\":\"\",\"publish_id\":\"\",\"data\":{},\"sqlstate\":\"\",\"duration_ms\":0.0,"
			  "\"retryable\":false,\"outcome_unknown\":false,\"retry_after\":0}");
	EXPECT_EQ(vs_result_json(nullptr), nullptr);
	EXPECT_EQ(vs_dispatch_log_json(nullptr, "1", "2", "t", "e"), nullptr);
	EXPECT_EQ(take_text(vs_dispatch_log_json(&r, nullptr, nullptr, nullptr, nullptr)).rfind(
				  R"({"post_id":null,"tiktok_account_id":null,"trigger":null,"endpoint":null,"http_status":0,)", 0),
			  0u);
}
