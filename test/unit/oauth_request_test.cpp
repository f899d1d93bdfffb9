/* oauth_request_test.cpp: OAuth form bodies, percent-encoding, user_info's empty body. */
#include "test_support.hpp"
#include "text_util.hpp"

#include <gtest/gtest.h>

namespace {

/* The body for ep, or "ERROR: <message>". */
std::string
body(vs_endpoint ep, const char *options)
{
	char	   *error = nullptr;
	char	   *text = vs_build_request_body(ep, options, &error);

	if (text == nullptr)
	{
		EXPECT_NE(error, nullptr);
		return "ERROR: " + take_text(error);
	}
	EXPECT_EQ(error, nullptr);
	return take_text(text);
}

/* True when s is an error naming needle and quoting none of the forbidden values. */
::testing::AssertionResult
is_error_about(const std::string &s, const std::string &needle,
			   std::initializer_list<const char *> forbidden = {})
{
	if (s.rfind("ERROR: ", 0) != 0)
		return ::testing::AssertionFailure() << "not an error: " << s;
	if (s.find(needle) == std::string::npos)
		return ::testing::AssertionFailure() << "error does not mention " << needle << ": " << s;
	for (const char *value : forbidden)
		if (s.find(value) != std::string::npos)
			return ::testing::AssertionFailure() << "error quotes " << value << ": " << s;
	return ::testing::AssertionSuccess();
}

}								/* namespace */

// RFC 3986: unreserved bytes pass, everything else is %XX (upper case), byte by byte.
TEST(PercentEncode, Rfc3986)
{
	using vibescaling::percent_encode;

	EXPECT_EQ(percent_encode(""), "");
	EXPECT_EQ(percent_encode("AZaz09-._~"), "AZaz09-._~");
	EXPECT_EQ(percent_encode("a&b=c+d e"), "a%26b%3Dc%2Bd%20e");
	EXPECT_EQ(percent_encode("https://app.example/cb?x=1#f"),
			  "https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1%23f");
	EXPECT_EQ(percent_encode("caf\xC3\xA9 \xF0\x9F\x8E\xB5"), "caf%C3%A9%20%F0%9F%8E%B5");
	EXPECT_EQ(percent_encode("%*!'()/"), "%25%2A%21%27%28%29%2F");
	EXPECT_EQ(percent_encode(std::string("\0\x7F\xFF", 3)), "%00%7F%FF");
}

// Code exchange: exact body, fixed order, no code_verifier unless given.
TEST(OAuthForm, AuthorizationCode)
{
	EXPECT_EQ(body(VS_EP_OAUTH_TOKEN,
				   R"({"client_key":"ck1","client_secret":"cs1","grant_type":"authorization_code",)"
				   R"("code":"code-abc","redirect_uri":"https://app.example/cb"})"),
			  "client_key=ck1&client_secret=cs1&code=code-abc&grant_type=authorization_code"
			  "&redirect_uri=https%3A%2F%2Fapp.example%2Fcb");
	/* Key order in the options does not matter; extra options are ignored. */
	EXPECT_EQ(body(VS_EP_OAUTH_TOKEN,
				   R"({"redirect_uri":"https://a/cb","code_verifier":"v3r1f13r","code":"c",)"
				   R"("refresh_token":"ignored","grant_type":"authorization_code",)"
				   R"("client_secret":"s","client_key":"k","caption":"x"})"),
			  "client_key=k&client_secret=s&code=c&grant_type=authorization_code"
			  "&redirect_uri=https%3A%2F%2Fa%2Fcb&code_verifier=v3r1f13r");
	/* An empty or null code_verifier is absent. */
	for (const char *verifier : {"\"\"", "null"})
		EXPECT_EQ(body(VS_EP_OAUTH_TOKEN,
					   (std::string(R"({"client_key":"k","client_secret":"s","grant_type":"authorization_code",)"
									R"("code":"c","redirect_uri":"r","code_verifier":)") + verifier + "}").c_str()),
				  "client_key=k&client_secret=s&code=c&grant_type=authorization_code&redirect_uri=r")
			<< verifier;
}

// Refresh: exact body, fixed order.
TEST(OAuthForm, RefreshToken)
{
	EXPECT_EQ(body(VS_EP_OAUTH_TOKEN,
				   R"({"client_key":"ck1","client_secret":"cs1","grant_type":"refresh_token",)"
				   R"("refresh_token":"rft.ABC/def+ghi=","code":"ignored","redirect_uri":"ignored"})"),
			  "client_key=ck1&client_secret=cs1&grant_type=refresh_token&refresh_token=rft.ABC%2Fdef%2Bghi%3D");
}

// Revoke: exact body, fixed order.
TEST(OAuthForm, Revoke)
{
	EXPECT_EQ(body(VS_EP_OAUTH_REVOKE,
				   R"({"token":"act.T0K","client_secret":"cs1","client_key":"ck1"})"),
			  "client_key=ck1&client_secret=cs1&token=act.T0K");
}

// Every value is percent-encoded: '&', '=', '+', space, '%', non-ASCII cannot break the form.
TEST(OAuthForm, ValuesAreEncoded)
{
	EXPECT_EQ(body(VS_EP_OAUTH_TOKEN,
				   "{\"client_key\":\"k y\",\"client_secret\":\"a&b=c+d e%\","
				   "\"grant_type\":\"authorization_code\",\"code\":\"c\xC3\xA9\\u00e9&grant_type=x\","
				   "\"redirect_uri\":\"https://app.example/cb?a=1&b=2\"}"),
			  "client_key=k%20y&client_secret=a%26b%3Dc%2Bd%20e%25&code=c%C3%A9%C3%A9%26grant_type%3Dx"
			  "&grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fa%3D1%26b%3D2");
	EXPECT_EQ(body(VS_EP_OAUTH_REVOKE,
				   R"({"client_key":"k","client_secret":"s","token":"a b\nc"})"),
			  "client_key=k&client_secret=s&token=a%20b%0Ac");
}

// Missing, empty, null or ill-typed required fields are refused, naming the option, never a value.
TEST(OAuthForm, MissingFields)
{
	const char *code_base = R"("client_key":"k","client_secret":"S3CR3T","grant_type":"authorization_code","code":"C0DE","redirect_uri":"r")";

	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN, "{}"), "client_key"));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN, nullptr), "client_key"));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","grant_type":"refresh_token","refresh_token":"RT"})"),
							   "client_secret", {"RT"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","client_secret":"S3CR3T","code":"C0DE","redirect_uri":"r"})"),
							   "grant_type", {"S3CR3T", "C0DE"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","client_secret":"S3CR3T","grant_type":"password"})"),
							   "grant_type", {"S3CR3T", "password"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","client_secret":"S3CR3T","grant_type":"authorization_code","redirect_uri":"r"})"),
							   "\"code\"", {"S3CR3T"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","client_secret":"S3CR3T","grant_type":"authorization_code","code":"","redirect_uri":"r"})"),
							   "\"code\""));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","client_secret":"S3CR3T","grant_type":"authorization_code","code":"C0DE"})"),
							   "redirect_uri", {"S3CR3T", "C0DE"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","client_secret":"S3CR3T","grant_type":"refresh_token","code":"C0DE"})"),
							   "refresh_token", {"S3CR3T", "C0DE"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":"k","client_secret":"S3CR3T","grant_type":"refresh_token","refresh_token":null})"),
							   "refresh_token"));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									(std::string("{") + code_base + R"(,"code_verifier":5})").c_str()),
							   "code_verifier", {"S3CR3T", "C0DE"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_TOKEN,
									R"({"client_key":1,"client_secret":"S3CR3T","grant_type":"refresh_token","refresh_token":"RT"})"),
							   "client_key", {"S3CR3T", "RT"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_REVOKE, R"({"client_key":"k","client_secret":"S3CR3T"})"),
							   "token", {"S3CR3T"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_REVOKE, R"({"client_key":"k","token":"T0K"})"),
							   "client_secret", {"T0K"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_REVOKE, R"({"client_secret":"S3CR3T","token":"T0K"})"),
							   "client_key", {"S3CR3T", "T0K"}));
	EXPECT_TRUE(is_error_about(body(VS_EP_OAUTH_REVOKE, R"({"client_key":"k","client_secret":"s","token":""})"),
							   "token"));
}

// Invalid options JSON: the message never quotes the text near the error (it may be a secret).
TEST(OAuthForm, BadJsonIsNotQuoted)
{
	std::string e = body(VS_EP_OAUTH_TOKEN, R"({"client_key":"k","client_secret":"S3CR3T-PART)");

	EXPECT_TRUE(is_error_about(e, "not valid JSON", {"S3CR3T"}));
	e = body(VS_EP_OAUTH_REVOKE, R"({"client_key":"k","token":T0KEN-BARE})");
	EXPECT_TRUE(is_error_about(e, "not valid JSON", {"T0KEN"}));
	EXPECT_TRUE(is_error_about(e, "line 1"));
}

// user_info is a GET: an empty body whatever the options.
TEST(OAuthForm, UserInfoHasNoBody)
{
	EXPECT_EQ(body(VS_EP_USER_INFO, "{}"), "");
	EXPECT_EQ(body(VS_EP_USER_INFO, nullptr), "");
	EXPECT_EQ(body(VS_EP_USER_INFO, R"({"caption":"x"})"), "");
}
