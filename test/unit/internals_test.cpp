/* internals_test.cpp: C++ helpers behind the C API (UTF-8 repair, redaction, OOM fallbacks). */
#include "c_result.hpp"
#include "text_util.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

using namespace vibescaling;

namespace {

/* utf8_sanitize over a whole std::string. */
std::string
clean(const std::string &s, std::size_t max = std::string::npos, bool flatten = true)
{
	return utf8_sanitize(s.data(), s.size(), max, flatten);
}

}								/* namespace */

// Valid UTF-8 passes unchanged; invalid sequences are replaced byte by byte.
TEST(TextUtil, Sanitize)
{
	EXPECT_EQ(clean("plain"), "plain");
	EXPECT_EQ(clean("caf\xC3\xA9 \xF0\x9F\x8E\xB5"), "caf\xC3\xA9 \xF0\x9F\x8E\xB5");
	EXPECT_EQ(clean("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
	EXPECT_EQ(clean("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");			/* overlong '/' */
	EXPECT_EQ(clean("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");	/* surrogate */
	EXPECT_EQ(clean("\xF4\x90\x80\x80").size(), 12u);					/* > U+10FFFF */
	EXPECT_EQ(clean(std::string("a\0b", 3)), "a\xEF\xBF\xBD" "b");
	EXPECT_EQ(clean("a\r\nb\tc"), "a  b c");
	EXPECT_EQ(clean("a\r\nb", std::string::npos, false), "a\r\nb");
}

// Truncation stops before a character that would not fit and marks the cut.
TEST(TextUtil, Truncate)
{
	EXPECT_EQ(clean("abcdef", 3), "abc...");
	EXPECT_EQ(clean("abc", 3), "abc");
	EXPECT_EQ(clean("ab\xE2\x82\xAC", 4), "ab...");
	EXPECT_EQ(clean("ab\xE2\x82", 10), "ab\xEF\xBF\xBD\xEF\xBF\xBD");	/* cut sequence in input */
}

// The token never survives redaction.
TEST(TextUtil, Redact)
{
	EXPECT_EQ(redact("Bearer tok and tok", "tok"), "Bearer [redacted] and [redacted]");
	EXPECT_EQ(redact("nothing here", ""), "nothing here");
	EXPECT_EQ(redact("aaaa", "aa"), "[redacted][redacted]");
}

// The out-of-memory failure uses static strings that the free functions recognize and skip.
TEST(CResult, StaticOomFallback)
{
	vs_call_result r;

	fill_c_static_oom(&r, true);
	EXPECT_EQ(r.ok, 0);
	EXPECT_STREQ(r.error_code, "out_of_memory");
	EXPECT_STREQ(r.sqlstate, vs_sqlstate_for("out_of_memory", 0));
	EXPECT_STREQ(r.data_json, "{}");
	EXPECT_STREQ(r.publish_id, "");
	EXPECT_EQ(r.outcome_unknown, 1);
	for (char *p : {r.error_code, r.error_message, r.log_id, r.publish_id, r.data_json, r.sqlstate})
		EXPECT_TRUE(is_static_text(p));
	vs_free(r.error_message);	/* must not free a static string */
	vs_call_result_free(&r);	/* nor must this */
	EXPECT_EQ(r.error_code, nullptr);
}

// A core failure (exception caught at the wall) is a complete, malloc'd result.
TEST(CResult, CoreFailure)
{
	ScopedResult res;

	fill_c_failure(&res.r, "core_error", "boom", false);
	EXPECT_STREQ(res->error_code, "core_error");
	EXPECT_STREQ(res->error_message, "boom");
	EXPECT_STREQ(res->sqlstate, "38000");
	EXPECT_STREQ(res->data_json, "{}");
	EXPECT_EQ(res->retryable, 0);
	EXPECT_FALSE(is_static_text(res->error_code));
}

// A CallOutcome is copied field by field, with sqlstate and retryable derived.
TEST(CResult, FillFromOutcome)
{
	CallOutcome o;

	o.http_status = 0;
	o.error_code = "timeout";
	o.error_message = "Timeout was reached";
	o.duration_ms = 301.5;
	o.outcome_unknown = true;
	ScopedResult res;

	fill_c_result(o, &res.r);
	EXPECT_EQ(res->ok, 0);
	EXPECT_STREQ(res->error_code, "timeout");
	EXPECT_STREQ(res->sqlstate, "08000");
	EXPECT_EQ(res->retryable, 1);
	EXPECT_EQ(res->outcome_unknown, 1);
	EXPECT_DOUBLE_EQ(res->duration_ms, 301.5);
	EXPECT_STREQ(res->data_json, "{}");
	EXPECT_STREQ(res->log_id, "");
}
