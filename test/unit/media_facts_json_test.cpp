/* media_facts_json_test.cpp: media facts to JSON and back, and what is refused on the way back. */
#include "media_facts_json.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace vibescaling;

// Readable facts: every field, unknowns as null.
TEST(MediaFactsJson, WritesEveryField)
{
	MediaFacts	f;

	f.status = MediaStatus::kReadable;
	f.container = "mp4";
	f.video_codec = "h264";
	f.duration_ms = 1000;
	f.fps = 30000.0 / 1001;
	f.width = 720;
	f.height = 1280;
	f.size_bytes = 17567;
	f.bytes_read = 17567;
	EXPECT_EQ(facts_to_json(f),
			  "{\"status\":\"readable\",\"message\":null,\"container\":\"mp4\",\"video_codec\":\"h264\","
			  "\"duration_ms\":1000,\"fps\":29.97,\"width\":720,\"height\":1280,\"size_bytes\":17567,"
			  "\"bytes_read\":17567}");

	MediaFacts	none;

	none.message = "the file is empty";
	EXPECT_EQ(facts_to_json(none),
			  "{\"status\":\"unreadable\",\"message\":\"the file is empty\",\"container\":null,"
			  "\"video_codec\":null,\"duration_ms\":null,\"fps\":null,\"width\":null,\"height\":null,"
			  "\"size_bytes\":0,\"bytes_read\":0}");
}

// What is written reads back the same.
TEST(MediaFactsJson, RoundTrips)
{
	MediaFacts	f;
	MediaFacts	back;
	std::string error;

	f.status = MediaStatus::kIncomplete;
	f.message = "budget \"spent\" é";
	f.container = "webm";
	f.video_codec = "vp9";
	f.duration_ms = 10008;
	f.fps = 25;
	f.width = 640;
	f.height = 360;
	f.size_bytes = 4202015;
	f.bytes_read = 1048576;
	ASSERT_TRUE(facts_from_json(facts_to_json(f).c_str(), &back, &error)) << error;
	EXPECT_EQ(facts_to_json(back), facts_to_json(f));

	MediaFacts	empty;

	ASSERT_TRUE(facts_from_json("{\"status\":\"readable\",\"size_bytes\":5}", &back, &error));
	EXPECT_EQ(back.duration_ms, -1);
	EXPECT_EQ(back.fps, -1);
	EXPECT_EQ(back.width, 0);
	EXPECT_EQ(back.container, "");
}

// Anything but a facts object is refused with the key at fault.
TEST(MediaFactsJson, RefusesWhatIsNoFacts)
{
	MediaFacts	f;
	std::string error;

	EXPECT_FALSE(facts_from_json("[]", &f, &error));
	EXPECT_FALSE(facts_from_json("not json", &f, &error));
	EXPECT_FALSE(facts_from_json(nullptr, &f, &error));
	EXPECT_FALSE(facts_from_json("{\"size_bytes\":5}", &f, &error));
	EXPECT_NE(error.find("status"), std::string::npos);
	EXPECT_FALSE(facts_from_json("{\"status\":\"fine\",\"size_bytes\":5}", &f, &error));
	EXPECT_FALSE(facts_from_json("{\"status\":\"readable\"}", &f, &error));
	EXPECT_NE(error.find("size_bytes"), std::string::npos);
	EXPECT_FALSE(facts_from_json("{\"status\":\"readable\",\"size_bytes\":-1}", &f, &error));
	EXPECT_FALSE(facts_from_json("{\"status\":\"readable\",\"size_bytes\":5,\"width\":\"720\"}", &f, &error));
	EXPECT_NE(error.find("width"), std::string::npos);
	EXPECT_FALSE(facts_from_json("{\"status\":\"readable\",\"size_bytes\":5,\"width\":3000000000}", &f, &error));
	EXPECT_FALSE(facts_from_json("{\"status\":\"readable\",\"size_bytes\":5,\"fps\":-3}", &f, &error));
	EXPECT_FALSE(facts_from_json("{\"status\":\"readable\",\"size_bytes\":5,\"container\":7}", &f, &error));
}
