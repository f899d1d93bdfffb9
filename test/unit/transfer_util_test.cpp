/* transfer_util_test.cpp: Content-Range / Content-Length parsing and URL secret masking. */
#include "transfer_util.hpp"

#include <gtest/gtest.h>

using namespace vibescaling;

// The forms TikTok and download servers send, and malformed ones.
TEST(TransferUtil, ParseContentRange)
{
	ContentRange r = parse_content_range("bytes 0-5242879/11534343");

	EXPECT_TRUE(r.valid);
	EXPECT_FALSE(r.unsatisfied);
	EXPECT_EQ(r.first, 0);
	EXPECT_EQ(r.last, 5242879);
	EXPECT_EQ(r.total, 11534343);

	r = parse_content_range("  bytes 10-19/*  ");
	EXPECT_TRUE(r.valid);
	EXPECT_EQ(r.first, 10);
	EXPECT_EQ(r.last, 19);
	EXPECT_EQ(r.total, -1);

	r = parse_content_range("bytes */4294967296");
	EXPECT_TRUE(r.valid);
	EXPECT_TRUE(r.unsatisfied);
	EXPECT_EQ(r.first, -1);
	EXPECT_EQ(r.total, 4294967296LL);

	for (const char *bad : {"", "bytes", "bytes 0-9", "bytes 9-0/10", "bytes 0-10/10", "bytes=0-9/10",
							"items 0-9/10", "bytes -1-9/10", "bytes 0-9/10 extra", "bytes */*",
							"bytes 0-99999999999999999999/1", "bytes0-9/10"})
		EXPECT_FALSE(parse_content_range(bad).valid) << bad;
}

// Content-Length: plain decimals only.
TEST(TransferUtil, ParseContentLength)
{
	EXPECT_EQ(parse_content_length("0"), 0);
	EXPECT_EQ(parse_content_length(" 4294967296 "), 4294967296LL);
	EXPECT_EQ(parse_content_length(""), -1);
	EXPECT_EQ(parse_content_length("-1"), -1);
	EXPECT_EQ(parse_content_length("12abc"), -1);
	EXPECT_EQ(parse_content_length("99999999999999999999"), -1);
}

// http and https only, no control bytes.
TEST(TransferUtil, IsHttpUrl)
{
	EXPECT_TRUE(is_http_url("https://open-upload.tiktokapis.com/upload/?upload_id=1&upload_token=x"));
	EXPECT_TRUE(is_http_url("HTTP://127.0.0.1:8080/x"));
	EXPECT_FALSE(is_http_url("https://"));
	EXPECT_FALSE(is_http_url("ftp://h/x"));
	EXPECT_FALSE(is_http_url("file:///etc/passwd"));
	EXPECT_FALSE(is_http_url("//h/x"));
	EXPECT_FALSE(is_http_url("https://h/x\r\nX: 1"));
	EXPECT_FALSE(is_http_url(""));
}

// The query string, and each long value (raw and decoded), are masked; short values are not.
TEST(TransferUtil, RedactUrl)
{
	std::string url = "https://up.example/upload/?upload_id=7&upload_token=abc%2Fdef%2Bghi123&v=2#frag";

	EXPECT_EQ(redact_url("PUT https://up.example/upload/?upload_id=7&upload_token=abc%2Fdef%2Bghi123&v=2 failed", url),
			  "PUT https://up.example/upload/?*** failed");
	EXPECT_EQ(redact_url("token abc%2Fdef%2Bghi123 or abc/def+ghi123", url), "token *** or ***");
	EXPECT_EQ(redact_url("upload 7 v=2 frag", url), "upload 7 v=2 frag");
	EXPECT_EQ(redact_url("nothing", "https://h/x"), "nothing");
	EXPECT_EQ(redact_url("cut abc%2Fdef%2B...", url), "cut ***...");
}
