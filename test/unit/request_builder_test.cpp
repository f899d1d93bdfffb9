/* request_builder_test.cpp: exact TikTok request bodies from SQL options. */
#include "test_support.hpp"

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

/* True when s starts with "ERROR: " and mentions needle. */
::testing::AssertionResult
is_error_about(const std::string &s, const std::string &needle)
{
	if (s.rfind("ERROR: ", 0) != 0)
		return ::testing::AssertionFailure() << "not an error: " << s;
	if (s.find(needle) == std::string::npos)
		return ::testing::AssertionFailure() << "error does not mention " << needle << ": " << s;
	return ::testing::AssertionSuccess();
}

}								/* namespace */

// creator_info takes an empty object, whatever the options.
TEST(RequestBody, CreatorInfo)
{
	EXPECT_EQ(body(VS_EP_CREATOR_INFO, "{}"), "{}");
	EXPECT_EQ(body(VS_EP_CREATOR_INFO, nullptr), "{}");
	EXPECT_EQ(body(VS_EP_CREATOR_INFO, "{\"caption\":\"x\",\"privacy_level\":\"SELF_ONLY\"}"), "{}");
}

// video_init with every option set.
TEST(RequestBody, VideoInitFull)
{
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"caption":"hello #tag @you","privacy_level":"PUBLIC_TO_EVERYONE",
				       "disable_duet":true,"disable_comment":true,"disable_stitch":true,
				       "brand_content_toggle":true,"brand_organic_toggle":true,
				       "video_url":"https://cdn.example/v.mp4","mode":"direct",
				       "photo_urls":["ignored"],"publish_id":"ignored"})"),
			  R"({"post_info":{"title":"hello #tag @you","privacy_level":"PUBLIC_TO_EVERYONE",)"
			  R"("disable_duet":true,"disable_comment":true,"disable_stitch":true,)"
			  R"("brand_content_toggle":true,"brand_organic_toggle":true},)"
			  R"("source_info":{"source":"PULL_FROM_URL","video_url":"https://cdn.example/v.mp4"}})");
}

// video_init defaults: booleans false, no title when caption is absent or null.
TEST(RequestBody, VideoInitDefaults)
{
	const std::string expected =
		R"({"post_info":{"privacy_level":"SELF_ONLY","disable_duet":false,"disable_comment":false,)"
		R"("disable_stitch":false,"brand_content_toggle":false,"brand_organic_toggle":false},)"
		R"("source_info":{"source":"PULL_FROM_URL","video_url":"https://v/1.mp4"}})";

	EXPECT_EQ(body(VS_EP_VIDEO_INIT, R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4"})"),
			  expected);
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"caption":null,"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4",)"
				   R"("disable_duet":null})"),
			  expected);
}

// Non-ASCII captions pass through as UTF-8, and quotes are escaped.
TEST(RequestBody, VideoInitUnicodeCaption)
{
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   "{\"caption\":\"caf\xC3\xA9 \\\"q\\\" \xF0\x9F\x8E\xB5\",\"privacy_level\":\"SELF_ONLY\","
				   "\"video_url\":\"https://v/1.mp4\"}"),
			  "{\"post_info\":{\"title\":\"caf\xC3\xA9 \\\"q\\\" \xF0\x9F\x8E\xB5\",\"privacy_level\":\"SELF_ONLY\","
			  "\"disable_duet\":false,\"disable_comment\":false,\"disable_stitch\":false,"
			  "\"brand_content_toggle\":false,\"brand_organic_toggle\":false},"
			  "\"source_info\":{\"source\":\"PULL_FROM_URL\",\"video_url\":\"https://v/1.mp4\"}}");
}

// video_init: privacy_level and video_url are required strings; booleans must be booleans.
TEST(RequestBody, VideoInitErrors)
{
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT, R"({"video_url":"https://v/1.mp4"})"),
							   "privacy_level"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT, R"({"privacy_level":"SELF_ONLY"})"),
							   "video_url"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":1,"video_url":"https://v/1.mp4"})"),
							   "privacy_level"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"","video_url":"https://v/1.mp4"})"),
							   "privacy_level"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","video_url":null})"),
							   "video_url"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4","disable_duet":"yes"})"),
							   "disable_duet"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4","caption":5})"),
							   "caption"));
}

// Options that are not a JSON object are refused for every endpoint.
TEST(RequestBody, BadOptionsJson)
{
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT, "{not json"), "not valid JSON"));
	EXPECT_TRUE(is_error_about(body(VS_EP_STATUS_FETCH, "[1,2]"), "JSON object"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CREATOR_INFO, "\"str\""), "not valid JSON"));
	EXPECT_TRUE(is_error_about(body(VS_EP_UNKNOWN, "{}"), "unknown endpoint"));
	EXPECT_TRUE(is_error_about(body(static_cast<vs_endpoint>(42), "{}"), "unknown endpoint"));
}

// A NULL error pointer is allowed.
TEST(RequestBody, NullErrorPointer)
{
	EXPECT_EQ(vs_build_request_body(VS_EP_VIDEO_INIT, "{}", nullptr), nullptr);
	char	   *text = vs_build_request_body(VS_EP_CREATOR_INFO, "{}", nullptr);

	EXPECT_EQ(take_text(text), "{}");
}

// inbox_video_init sends source_info only, no caption or privacy.
TEST(RequestBody, InboxVideoInit)
{
	EXPECT_EQ(body(VS_EP_INBOX_VIDEO_INIT,
				   R"({"caption":"c","privacy_level":"SELF_ONLY","disable_duet":true,"video_url":"https://v/2.mp4"})"),
			  R"({"source_info":{"source":"PULL_FROM_URL","video_url":"https://v/2.mp4"}})");
	EXPECT_EQ(body(VS_EP_INBOX_VIDEO_INIT, R"({"video_url":"https://v/2.mp4"})"),
			  R"({"source_info":{"source":"PULL_FROM_URL","video_url":"https://v/2.mp4"}})");
	EXPECT_TRUE(is_error_about(body(VS_EP_INBOX_VIDEO_INIT, "{}"), "video_url"));
}

// content_init, direct (the default mode), with every option.
TEST(RequestBody, ContentInitDirectFull)
{
	EXPECT_EQ(body(VS_EP_CONTENT_INIT,
				   R"({"title":"T","caption":"D #x","privacy_level":"MUTUAL_FOLLOW_FRIENDS",)"
				   R"("disable_comment":true,"disable_duet":true,"brand_content_toggle":true,)"
				   R"("brand_organic_toggle":false,"photo_urls":["https://p/1.jpg","https://p/2.webp"],)"
				   R"("photo_cover_index":1,"mode":"direct"})"),
			  R"({"post_info":{"title":"T","description":"D #x","privacy_level":"MUTUAL_FOLLOW_FRIENDS",)"
			  R"("disable_comment":true,"auto_add_music":true,"brand_content_toggle":true,)"
			  R"("brand_organic_toggle":false},)"
			  R"("source_info":{"source":"PULL_FROM_URL","photo_cover_index":1,)"
			  R"("photo_images":["https://p/1.jpg","https://p/2.webp"]},)"
			  R"("post_mode":"DIRECT_POST","media_type":"PHOTO"})");
}

// content_init defaults: direct mode, cover 0, no title/description, toggles false.
TEST(RequestBody, ContentInitDirectDefaults)
{
	EXPECT_EQ(body(VS_EP_CONTENT_INIT, R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p/1.jpg"]})"),
			  R"({"post_info":{"privacy_level":"SELF_ONLY","disable_comment":false,"auto_add_music":true,)"
			  R"("brand_content_toggle":false,"brand_organic_toggle":false},)"
			  R"("source_info":{"source":"PULL_FROM_URL","photo_cover_index":0,"photo_images":["https://p/1.jpg"]},)"
			  R"("post_mode":"DIRECT_POST","media_type":"PHOTO"})");
}

// content_init to the inbox: MEDIA_UPLOAD, post_info only title/description, privacy optional.
TEST(RequestBody, ContentInitInbox)
{
	EXPECT_EQ(body(VS_EP_CONTENT_INIT,
				   R"({"mode":"inbox","title":"T","caption":"D","privacy_level":"SELF_ONLY",)"
				   R"("disable_comment":true,"photo_urls":["https://p/1.jpg"],"photo_cover_index":0})"),
			  R"({"post_info":{"title":"T","description":"D"},)"
			  R"("source_info":{"source":"PULL_FROM_URL","photo_cover_index":0,"photo_images":["https://p/1.jpg"]},)"
			  R"("post_mode":"MEDIA_UPLOAD","media_type":"PHOTO"})");
	EXPECT_EQ(body(VS_EP_CONTENT_INIT, R"({"mode":"inbox","photo_urls":["https://p/1.jpg"]})"),
			  R"({"post_info":{},)"
			  R"("source_info":{"source":"PULL_FROM_URL","photo_cover_index":0,"photo_images":["https://p/1.jpg"]},)"
			  R"("post_mode":"MEDIA_UPLOAD","media_type":"PHOTO"})");
}

// content_init: photo_urls, privacy (direct only), mode and cover index are checked.
TEST(RequestBody, ContentInitErrors)
{
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT, R"({"privacy_level":"SELF_ONLY"})"), "photo_urls"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT, R"({"privacy_level":"SELF_ONLY","photo_urls":[]})"),
							   "photo_urls"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT, R"({"privacy_level":"SELF_ONLY","photo_urls":"https://p/1.jpg"})"),
							   "photo_urls"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT, R"({"privacy_level":"SELF_ONLY","photo_urls":["a",2]})"),
							   "photo_urls"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT, R"({"photo_urls":["https://p/1.jpg"]})"),
							   "privacy_level"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT, R"({"mode":"direct","photo_urls":["https://p/1.jpg"]})"),
							   "privacy_level"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT,
									R"({"mode":"draft","privacy_level":"SELF_ONLY","photo_urls":["https://p/1.jpg"]})"),
							   "mode"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT,
									R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p/1.jpg"],"photo_cover_index":-1})"),
							   "photo_cover_index"));
	EXPECT_TRUE(is_error_about(body(VS_EP_CONTENT_INIT,
									R"({"privacy_level":"SELF_ONLY","photo_urls":["https://p/1.jpg"],"photo_cover_index":"0"})"),
							   "photo_cover_index"));
}

// status_fetch: {"publish_id"} only, required.
TEST(RequestBody, StatusFetch)
{
	EXPECT_EQ(body(VS_EP_STATUS_FETCH, R"({"publish_id":"v_pub_url~v2.123","caption":"x"})"),
			  R"({"publish_id":"v_pub_url~v2.123"})");
	EXPECT_TRUE(is_error_about(body(VS_EP_STATUS_FETCH, "{}"), "publish_id"));
	EXPECT_TRUE(is_error_about(body(VS_EP_STATUS_FETCH, R"({"publish_id":7})"), "publish_id"));
	EXPECT_TRUE(is_error_about(body(VS_EP_STATUS_FETCH, R"({"publish_id":""})"), "publish_id"));
}

// video_list: a page of at most 20, the cursor when given.
TEST(RequestBody, VideoList)
{
	EXPECT_EQ(body(VS_EP_VIDEO_LIST, "{}"), R"({"max_count":20})");
	EXPECT_EQ(body(VS_EP_VIDEO_LIST, R"({"max_count":5,"cursor":1700000000000})"),
			  R"({"max_count":5,"cursor":1700000000000})");
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_LIST, R"({"max_count":21})"), "max_count"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_LIST, R"({"max_count":0})"), "max_count"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_LIST, R"({"cursor":"x"})"), "cursor"));
}

// video_query: filters.video_ids, 1 to 20 digit strings, kept exactly (19 digits).
TEST(RequestBody, VideoQuery)
{
	EXPECT_EQ(body(VS_EP_VIDEO_QUERY, R"({"video_ids":["7311111111111111111","42"]})"),
			  R"({"filters":{"video_ids":["7311111111111111111","42"]}})");
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_QUERY, "{}"), "video_ids"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_QUERY, R"({"video_ids":[]})"), "video_ids"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_QUERY, R"({"video_ids":[7311111111111111111]})"), "video_ids"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_QUERY, R"({"video_ids":["12a"]})"), "video_ids"));
	std::string many = R"({"video_ids":[)";
	for (int i = 0; i < 21; i++)
		many += std::string(i ? "," : "") + "\"" + std::to_string(i + 1) + "\"";
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_QUERY, (many + "]}").c_str()), "video_ids"));
}

// user_stats is a GET: no body.
TEST(RequestBody, UserStats)
{
	EXPECT_EQ(body(VS_EP_USER_STATS, R"({"x":1})"), "");
}

// video_init with FILE_UPLOAD: source_info carries the sizes, video_url is not needed (nor sent).
TEST(RequestBody, VideoInitFileUpload)
{
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","source":"FILE_UPLOAD","video_size":52428807,)"
				   R"("chunk_size":10485760,"total_chunk_count":5})"),
			  R"({"post_info":{"privacy_level":"SELF_ONLY","disable_duet":false,"disable_comment":false,)"
			  R"("disable_stitch":false,"brand_content_toggle":false,"brand_organic_toggle":false},)"
			  R"("source_info":{"source":"FILE_UPLOAD","video_size":52428807,"chunk_size":10485760,)"
			  R"("total_chunk_count":5}})");
	/* A video_url alongside is ignored; a 4 GiB size stays exact. */
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","source":"FILE_UPLOAD","video_url":"https://v/1.mp4",)"
				   R"("video_size":4294967296,"chunk_size":67108864,"total_chunk_count":64})"),
			  R"({"post_info":{"privacy_level":"SELF_ONLY","disable_duet":false,"disable_comment":false,)"
			  R"("disable_stitch":false,"brand_content_toggle":false,"brand_organic_toggle":false},)"
			  R"("source_info":{"source":"FILE_UPLOAD","video_size":4294967296,"chunk_size":67108864,)"
			  R"("total_chunk_count":64}})");
	/* A one-chunk small video. */
	EXPECT_NE(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","source":"FILE_UPLOAD","video_size":1000,)"
				   R"("chunk_size":1000,"total_chunk_count":1})")
				  .find(R"("source_info":{"source":"FILE_UPLOAD","video_size":1000,"chunk_size":1000,"total_chunk_count":1})"),
			  std::string::npos);
}

// An explicit PULL_FROM_URL source is today's body.
TEST(RequestBody, VideoInitExplicitPull)
{
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","source":"PULL_FROM_URL","video_url":"https://v/1.mp4",)"
				   R"("video_size":5})"),
			  body(VS_EP_VIDEO_INIT, R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4"})"));
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","source":null,"video_url":"https://v/1.mp4"})"),
			  body(VS_EP_VIDEO_INIT, R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4"})"));
}

// inbox_video_init with FILE_UPLOAD: source_info only.
TEST(RequestBody, InboxVideoInitFileUpload)
{
	EXPECT_EQ(body(VS_EP_INBOX_VIDEO_INIT,
				   R"({"caption":"c","source":"FILE_UPLOAD","video_size":11534343,"chunk_size":5242880,)"
				   R"("total_chunk_count":2,"is_aigc":true,"video_cover_timestamp_ms":5})"),
			  R"({"source_info":{"source":"FILE_UPLOAD","video_size":11534343,"chunk_size":5242880,)"
			  R"("total_chunk_count":2}})");
	EXPECT_TRUE(is_error_about(body(VS_EP_INBOX_VIDEO_INIT,
									R"({"source":"FILE_UPLOAD","video_size":100,"chunk_size":100})"),
							   "total_chunk_count"));
}

// FILE_UPLOAD sizes: required positive integers, consistent; source must be known.
TEST(RequestBody, FileUploadErrors)
{
	const char *ok_sizes = R"("video_size":11534343,"chunk_size":5242880,"total_chunk_count":2)";
	auto		init = [](const std::string &extra) {
		return body(VS_EP_VIDEO_INIT,
					(R"({"privacy_level":"SELF_ONLY","source":"FILE_UPLOAD",)" + extra + "}").c_str());
	};

	EXPECT_EQ(init(ok_sizes).rfind("ERROR", 0), std::string::npos);
	EXPECT_TRUE(is_error_about(init(R"("chunk_size":5242880,"total_chunk_count":2)"), "video_size"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":11534343,"total_chunk_count":2)"), "chunk_size"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":11534343,"chunk_size":5242880)"), "total_chunk_count"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":"11534343","chunk_size":5242880,"total_chunk_count":2)"),
							   "video_size"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":11534343.0,"chunk_size":5242880,"total_chunk_count":2)"),
							   "video_size"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":0,"chunk_size":5242880,"total_chunk_count":2)"),
							   "video_size"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":11534343,"chunk_size":-1,"total_chunk_count":2)"),
							   "chunk_size"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":11534343,"chunk_size":5242880,"total_chunk_count":0)"),
							   "total_chunk_count"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":11534343,"chunk_size":5242880,"total_chunk_count":3)"),
							   "total_chunk_count"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":1000,"chunk_size":2000,"total_chunk_count":1)"),
							   "chunk_size"));
	EXPECT_TRUE(is_error_about(init(R"("video_size":null,"chunk_size":5242880,"total_chunk_count":2)"),
							   "video_size"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","source":"file_upload","video_url":"https://v/1.mp4"})"),
							   "source"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","source":1,"video_url":"https://v/1.mp4"})"),
							   "source"));
	/* privacy_level is still required with FILE_UPLOAD. */
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT, (std::string(R"({"source":"FILE_UPLOAD",)") + ok_sizes + "}").c_str()),
							   "privacy_level"));
}

// video_cover_timestamp_ms and is_aigc reach post_info only when given.
TEST(RequestBody, VideoInitCoverAndAigc)
{
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4",)"
				   R"("video_cover_timestamp_ms":1000,"is_aigc":true})"),
			  R"({"post_info":{"privacy_level":"SELF_ONLY","disable_duet":false,"disable_comment":false,)"
			  R"("disable_stitch":false,"brand_content_toggle":false,"brand_organic_toggle":false,)"
			  R"("video_cover_timestamp_ms":1000,"is_aigc":true},)"
			  R"("source_info":{"source":"PULL_FROM_URL","video_url":"https://v/1.mp4"}})");
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4",)"
				   R"("video_cover_timestamp_ms":0,"is_aigc":false})"),
			  R"({"post_info":{"privacy_level":"SELF_ONLY","disable_duet":false,"disable_comment":false,)"
			  R"("disable_stitch":false,"brand_content_toggle":false,"brand_organic_toggle":false,)"
			  R"("video_cover_timestamp_ms":0,"is_aigc":false},)"
			  R"("source_info":{"source":"PULL_FROM_URL","video_url":"https://v/1.mp4"}})");
	/* null counts as absent */
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4",)"
				   R"("video_cover_timestamp_ms":null,"is_aigc":null})"),
			  body(VS_EP_VIDEO_INIT, R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4"})"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4","video_cover_timestamp_ms":-1})"),
							   "video_cover_timestamp_ms"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4","video_cover_timestamp_ms":"1000"})"),
							   "video_cover_timestamp_ms"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4","video_cover_timestamp_ms":1.5})"),
							   "video_cover_timestamp_ms"));
	EXPECT_TRUE(is_error_about(body(VS_EP_VIDEO_INIT,
									R"({"privacy_level":"SELF_ONLY","video_url":"https://v/1.mp4","is_aigc":1})"),
							   "is_aigc"));
	/* With FILE_UPLOAD too. */
	EXPECT_EQ(body(VS_EP_VIDEO_INIT,
				   R"({"privacy_level":"SELF_ONLY","source":"FILE_UPLOAD","video_size":1000,"chunk_size":1000,)"
				   R"("total_chunk_count":1,"is_aigc":true})"),
			  R"({"post_info":{"privacy_level":"SELF_ONLY","disable_duet":false,"disable_comment":false,)"
			  R"("disable_stitch":false,"brand_content_toggle":false,"brand_organic_toggle":false,"is_aigc":true},)"
			  R"("source_info":{"source":"FILE_UPLOAD","video_size":1000,"chunk_size":1000,"total_chunk_count":1}})");
}

// A body built from vs_plan_chunks is always accepted.
TEST(RequestBody, FileUploadFromPlan)
{
	for (long long size : {1LL, 5242879LL, 5242880LL, 73400321LL, 4294967296LL})
	{
		vs_chunk_plan p;

		vs_plan_chunks(size, 0, &p);
		ASSERT_EQ(p.ok, 1);
		std::string opts = R"({"privacy_level":"SELF_ONLY","source":"FILE_UPLOAD","video_size":)" +
			std::to_string(p.video_size) + R"(,"chunk_size":)" + std::to_string(p.chunk_size) +
			R"(,"total_chunk_count":)" + std::to_string(p.total_chunk_count) + "}";

		EXPECT_EQ(body(VS_EP_VIDEO_INIT, opts.c_str()).rfind("ERROR", 0), std::string::npos) << opts;
	}
}
