/* endpoints_test.cpp: endpoint names <-> enum <-> paths. */
#include "test_support.hpp"
#include "endpoints.hpp"

#include <gtest/gtest.h>

// Every logical name maps to its enum and TikTok path.
TEST(Endpoints, NamesAndPaths)
{
	struct Row { const char *name; vs_endpoint ep; const char *path; };
	const Row rows[] = {
		{"creator_info", VS_EP_CREATOR_INFO, "/v2/post/publish/creator_info/query/"},
		{"video_init", VS_EP_VIDEO_INIT, "/v2/post/publish/video/init/"},
		{"inbox_video_init", VS_EP_INBOX_VIDEO_INIT, "/v2/post/publish/inbox/video/init/"},
		{"content_init", VS_EP_CONTENT_INIT, "/v2/post/publish/content/init/"},
		{"status_fetch", VS_EP_STATUS_FETCH, "/v2/post/publish/status/fetch/"},
		{"oauth_token", VS_EP_OAUTH_TOKEN, "/v2/oauth/token/"},
		{"oauth_revoke", VS_EP_OAUTH_REVOKE, "/v2/oauth/revoke/"},
		{"user_info", VS_EP_USER_INFO, "/v2/user/info/?fields=open_id,union_id,avatar_url,display_name"},
		{"video_list", VS_EP_VIDEO_LIST, "/v2/video/list/?fields=id,create_time,title,video_description,duration,share_url"},
		{"video_query", VS_EP_VIDEO_QUERY,
		 "/v2/video/query/?fields=id,create_time,duration,view_count,like_count,comment_count,share_count"},
		{"user_stats", VS_EP_USER_STATS, "/v2/user/info/?fields=open_id,follower_count,following_count,likes_count,video_count"},
	};

	for (const Row &row : rows)
	{
		EXPECT_EQ(vs_endpoint_from_name(row.name), row.ep) << row.name;
		EXPECT_STREQ(vs_endpoint_path(row.ep), row.path) << row.name;
	}
}

// Unknown, NULL, empty and differently-cased names are VS_EP_UNKNOWN with an empty path.
TEST(Endpoints, Unknown)
{
	EXPECT_EQ(vs_endpoint_from_name("cancel"), VS_EP_UNKNOWN);
	EXPECT_EQ(vs_endpoint_from_name(""), VS_EP_UNKNOWN);
	EXPECT_EQ(vs_endpoint_from_name(nullptr), VS_EP_UNKNOWN);
	EXPECT_EQ(vs_endpoint_from_name("Video_Init"), VS_EP_UNKNOWN);
	EXPECT_EQ(vs_endpoint_from_name("video_init "), VS_EP_UNKNOWN);
	EXPECT_STREQ(vs_endpoint_path(VS_EP_UNKNOWN), "");
	EXPECT_STREQ(vs_endpoint_path(static_cast<vs_endpoint>(99)), "");
}

// Only the init endpoints create posts: they must never be re-sent.
TEST(Endpoints, OnlyInitsCreatePosts)
{
	EXPECT_TRUE(vibescaling::endpoint_creates_post(VS_EP_VIDEO_INIT));
	EXPECT_TRUE(vibescaling::endpoint_creates_post(VS_EP_INBOX_VIDEO_INIT));
	EXPECT_TRUE(vibescaling::endpoint_creates_post(VS_EP_CONTENT_INIT));
	EXPECT_FALSE(vibescaling::endpoint_creates_post(VS_EP_CREATOR_INFO));
	EXPECT_FALSE(vibescaling::endpoint_creates_post(VS_EP_STATUS_FETCH));
	EXPECT_FALSE(vibescaling::endpoint_creates_post(VS_EP_UNKNOWN));
	EXPECT_FALSE(vibescaling::endpoint_creates_post(VS_EP_OAUTH_TOKEN));
	EXPECT_FALSE(vibescaling::endpoint_creates_post(VS_EP_OAUTH_REVOKE));
	EXPECT_FALSE(vibescaling::endpoint_creates_post(VS_EP_USER_INFO));
}


// How each new endpoint is called.
TEST(Endpoints, OAuthAndUserInfoShape)
{
	using namespace vibescaling;
	const EndpointInfo *token = endpoint_info(VS_EP_OAUTH_TOKEN);
	const EndpointInfo *revoke = endpoint_info(VS_EP_OAUTH_REVOKE);
	const EndpointInfo *user = endpoint_info(VS_EP_USER_INFO);

	ASSERT_TRUE(token && revoke && user);
	EXPECT_EQ(token->method, HttpMethod::kPost);
	EXPECT_EQ(token->body, BodyFormat::kForm);
	EXPECT_FALSE(token->bearer);
	EXPECT_EQ(token->reply, ReplyFormat::kOAuthToken);
	EXPECT_EQ(revoke->method, HttpMethod::kPost);
	EXPECT_EQ(revoke->body, BodyFormat::kForm);
	EXPECT_FALSE(revoke->bearer);
	EXPECT_EQ(revoke->reply, ReplyFormat::kOAuthRevoke);
	EXPECT_EQ(user->method, HttpMethod::kGet);
	EXPECT_EQ(user->body, BodyFormat::kNone);
	EXPECT_TRUE(user->bearer);
	EXPECT_EQ(user->reply, ReplyFormat::kEnvelope);
	EXPECT_EQ(endpoint_info(VS_EP_UNKNOWN), nullptr);
	EXPECT_TRUE(endpoint_info(VS_EP_VIDEO_INIT)->bearer);
}
