/* error_map_test.cpp: the SQLSTATE table and retryability. */
#include "test_support.hpp"

#include <gtest/gtest.h>

// The full documented table, code by code.
TEST(ErrorMap, SqlstateTable)
{
	struct Row { const char *code; const char *sqlstate; };
	const Row rows[] = {
		{"ok", "00000"},
		{"invalid_param", "22023"},
		{"invalid_params", "22023"},
		{"invalid_publish_id", "22023"},
		{"privacy_level_option_mismatch", "22023"},
		{"token_not_authorized_for_specified_publish_id", "42501"},
		{"scope_not_authorized", "42501"},
		{"spam_risk_user_banned_from_posting", "42501"},
		{"unaudited_client_can_only_post_to_private_accounts", "42501"},
		{"url_ownership_unverified", "42501"},
		{"access_token_invalid", "28000"},
		{"invalid_grant", "28000"},
		{"invalid_client", "28000"},
		{"invalid_request", "22023"},
		{"unauthorized_client", "42501"},
		{"access_denied", "42501"},
		{"app_version_check_failed", "55000"},
		{"publish_not_cancellable", "55000"},
		{"chunk_rejected", "22023"},
		{"upload_url_expired", "55000"},
		{"upload_not_found", "55000"},
		{"range_mismatch", "55000"},
		{"spam_risk_too_many_posts", "53000"},
		{"spam_risk_too_many_pending_share", "53000"},
		{"reached_active_user_cap", "53000"},
		{"rate_limit_exceeded", "53000"},
		{"internal_error", "08000"},
		{"timeout", "08000"},
		{"transport_error", "08000"},
		{"connect_failed", "08001"},
		{"bad_response", "08P01"},
		{"aborted", "57014"},
	};

	for (const Row &row : rows)
		for (long status : {0L, 200L, 400L, 403L, 429L, 500L, 503L})
			EXPECT_STREQ(vs_sqlstate_for(row.code, status), row.sqlstate)
				<< row.code << " HTTP " << status;
}

// Unknown codes: 08000 for HTTP >= 500, else 38000.
TEST(ErrorMap, SqlstateFallback)
{
	EXPECT_STREQ(vs_sqlstate_for("video_pull_failed", 400), "38000");
	EXPECT_STREQ(vs_sqlstate_for("something_new", 200), "38000");
	EXPECT_STREQ(vs_sqlstate_for("something_new", 0), "38000");
	EXPECT_STREQ(vs_sqlstate_for("something_new", 499), "38000");
	EXPECT_STREQ(vs_sqlstate_for("something_new", 500), "08000");
	EXPECT_STREQ(vs_sqlstate_for("something_new", 504), "08000");
	EXPECT_STREQ(vs_sqlstate_for("", 502), "08000");
	EXPECT_STREQ(vs_sqlstate_for(nullptr, 400), "38000");
	EXPECT_STREQ(vs_sqlstate_for("OK", 200), "38000");	/* codes are case-sensitive */
}

// Retryable codes, whatever the status.
TEST(ErrorMap, RetryableCodes)
{
	for (const char *code : {"rate_limit_exceeded", "internal_error", "timeout",
							 "connect_failed", "transport_error", "bad_response"})
	{
		EXPECT_EQ(vs_is_retryable(code, 0), 1) << code;
		EXPECT_EQ(vs_is_retryable(code, 200), 1) << code;
		EXPECT_EQ(vs_is_retryable(code, 400), 1) << code;
	}
}

// Retryable by HTTP status (429, >= 500) even for unknown or final-looking codes.
TEST(ErrorMap, RetryableStatuses)
{
	EXPECT_EQ(vs_is_retryable("something_new", 429), 1);
	EXPECT_EQ(vs_is_retryable("something_new", 500), 1);
	EXPECT_EQ(vs_is_retryable("something_new", 503), 1);
	EXPECT_EQ(vs_is_retryable(nullptr, 502), 1);
	EXPECT_EQ(vs_is_retryable("something_new", 499), 0);
	EXPECT_EQ(vs_is_retryable("something_new", 400), 0);
}

// Never retryable: ok, aborted, and the final TikTok errors.
TEST(ErrorMap, NotRetryable)
{
	EXPECT_EQ(vs_is_retryable("ok", 200), 0);
	EXPECT_EQ(vs_is_retryable("ok", 500), 0);
	EXPECT_EQ(vs_is_retryable("aborted", 0), 0);
	EXPECT_EQ(vs_is_retryable("aborted", 503), 0);
	for (const char *code : {"invalid_param", "invalid_params", "invalid_publish_id",
							 "privacy_level_option_mismatch", "scope_not_authorized",
							 "access_token_invalid", "invalid_grant", "invalid_client",
							 "invalid_request", "unauthorized_client", "access_denied",
							 "spam_risk_too_many_posts", "spam_risk_too_many_pending_share",
							 "reached_active_user_cap", "url_ownership_unverified",
							 "app_version_check_failed", "publish_not_cancellable"})
		EXPECT_EQ(vs_is_retryable(code, 400), 0) << code;
	EXPECT_EQ(vs_is_retryable("spam_risk_too_many_posts", 200), 0);
	EXPECT_EQ(vs_is_retryable("access_token_invalid", 401), 0);
}

// The chunk PUT codes are never retried, whatever the HTTP status; a 5xx chunk PUT is.
TEST(ErrorMap, ChunkUploadCodes)
{
	for (const char *code : {"chunk_rejected", "upload_url_expired", "upload_not_found",
							 "range_mismatch"})
		for (long status : {0L, 400L, 403L, 404L, 416L, 429L, 500L, 503L})
			EXPECT_EQ(vs_is_retryable(code, status), 0) << code << " HTTP " << status;
	EXPECT_STREQ(vs_sqlstate_for("chunk_rejected", 400), "22023");
	EXPECT_STREQ(vs_sqlstate_for("upload_url_expired", 403), "55000");
	EXPECT_STREQ(vs_sqlstate_for("upload_not_found", 404), "55000");
	EXPECT_STREQ(vs_sqlstate_for("range_mismatch", 416), "55000");
	EXPECT_EQ(vs_is_retryable("internal_error", 503), 1);
	EXPECT_STREQ(vs_sqlstate_for("internal_error", 503), "08000");
}
