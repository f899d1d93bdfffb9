/* secrets_test.cpp: secret collection and redaction of error messages. */
#include "secrets.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

using namespace vibescaling;

// The secret options and the bearer token are collected; other options are not.
TEST(Secrets, Collect)
{
	std::vector<std::string> s = secret_values(
		R"({"client_key":"CK","client_secret":"CS","grant_type":"authorization_code","code":"CODE",)"
		R"("redirect_uri":"https://r","code_verifier":"VER","refresh_token":"RT","token":"TOK",)"
		R"("caption":"hello","publish_id":"p"})",
		"BEARER");

	EXPECT_EQ(s, (std::vector<std::string>{"BEARER", "CS", "CODE", "VER", "RT", "TOK"}));
	EXPECT_EQ(secret_values(nullptr, nullptr), std::vector<std::string>{});
	EXPECT_EQ(secret_values("{not json", "B"), std::vector<std::string>{"B"});
	EXPECT_EQ(secret_values("[1]", ""), std::vector<std::string>{});
	/* Empty, null and non-string values are skipped; duplicates kept once. */
	EXPECT_EQ(secret_values(R"({"code":"","token":null,"refresh_token":5,"client_secret":"B"})", "B"),
			  std::vector<std::string>{"B"});
}

// Every occurrence of every secret becomes "***"; other text is untouched.
TEST(Secrets, RedactRaw)
{
	std::vector<std::string> s = {"s3cr3t", "code-xyz"};

	EXPECT_EQ(redact_secrets("bad client_secret s3cr3t (s3cr3t) for code code-xyz", s),
			  "bad client_secret *** (***) for code ***");
	EXPECT_EQ(redact_secrets("nothing to hide", s), "nothing to hide");
	EXPECT_EQ(redact_secrets("", s), "");
	EXPECT_EQ(redact_secrets("s3cr3t", {}), "s3cr3t");
	EXPECT_EQ(redact_secrets("x s3cr3t", {"", "s3cr3t"}), "x ***");
}

// A secret containing another one is masked whole (longest first).
TEST(Secrets, RedactNested)
{
	EXPECT_EQ(redact_secrets("token act.ABCDEF and ABC", {"ABC", "act.ABCDEF"}), "token *** and ***");
}

// Echoed forms: percent-encoded (%20 or '+'), JSON-escaped (\/, \u escapes).
TEST(Secrets, RedactEncodedForms)
{
	std::vector<std::string> s = {"a&b=c d/\xC3\xA9"};

	EXPECT_EQ(redact_secrets("body client_secret=a%26b%3Dc%20d%2F%C3%A9&x=1", s), "body client_secret=***&x=1");
	EXPECT_EQ(redact_secrets("body client_secret=a%26b%3Dc+d%2F%C3%A9&x=1", s), "body client_secret=***&x=1");
	EXPECT_EQ(redact_secrets(R"(echo {"s":"a&b=c d\/\u00e9"})", s), R"(echo {"s":"***"})");
	EXPECT_EQ(redact_secrets(R"(echo {"s":"a&b=c d/\u00e9"})", s), R"(echo {"s":"***"})");
	EXPECT_EQ(redact_secrets("echo a&b=c d/\xC3\xA9!", s), "echo ***!");
	EXPECT_EQ(redact_secrets(R"(q "x\"y")", {"x\"y"}), R"(q "***")");
}

// A message cut short ("...") that ends with the start of a secret loses that start too.
TEST(Secrets, RedactCutTail)
{
	std::vector<std::string> s = {"act.SECRET-TOKEN-123"};

	EXPECT_EQ(redact_secrets("TikTok replied HTTP 502 with: <p>act.SECR...", s),
			  "TikTok replied HTTP 502 with: <p>***...");
	/* Under 4 bytes of a secret is not worth mangling a message for. */
	EXPECT_EQ(redact_secrets("ends with act...", s), "ends with act...");
	/* Without the truncation mark nothing is guessed. */
	EXPECT_EQ(redact_secrets("ends with act.SECR", s), "ends with act.SECR");
	EXPECT_EQ(redact_secrets("...", s), "...");
}

// vs_call redaction end to end is in oauth_transport_test.cpp.
