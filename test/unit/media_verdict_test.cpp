/* media_verdict_test.cpp: TikTok's media limits on hand-made facts, at their edges and in their order. */
#include "media_verdict.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace vibescaling;

namespace {

/* A video TikTok accepts: 1 s of 720x1280 H.264 at 30 fps in MP4. */
MediaFacts
good_video()
{
	MediaFacts	f;

	f.status = MediaStatus::kReadable;
	f.container = "mp4";
	f.video_codec = "h264";
	f.duration_ms = 1000;
	f.fps = 30;
	f.width = 720;
	f.height = 1280;
	f.size_bytes = 20000;
	return f;
}

/* A photo TikTok accepts: 1080x1920 JPEG. */
MediaFacts
good_photo()
{
	MediaFacts	f;

	f.status = MediaStatus::kReadable;
	f.container = "jpeg";
	f.video_codec = "mjpeg";
	f.width = 1080;
	f.height = 1920;
	f.size_bytes = 80000;
	return f;
}

/* The verdict's code for a video, "ok" when none. */
std::string
video_code(const MediaFacts &f, long long max_duration_sec = 60)
{
	MediaVerdict v = judge_media(f, MediaKind::kVideo, max_duration_sec);

	return v.ok() ? "ok" : v.code;
}

/* The verdict's code for a photo, "ok" when none. */
std::string
photo_code(const MediaFacts &f)
{
	MediaVerdict v = judge_media(f, MediaKind::kPhoto, -1);

	return v.ok() ? "ok" : v.code;
}

}								/* namespace */

// The good video passes, with or without a known maximum duration.
TEST(MediaVerdict, GoodVideoPasses)
{
	EXPECT_EQ(video_code(good_video()), "ok");
	EXPECT_EQ(video_code(good_video(), -1), "ok");
	EXPECT_TRUE(judge_media(good_video(), MediaKind::kVideo, 60).message.empty());
}

// MP4, MOV and WebM with H.264, H.265, VP8 or VP9 pass; anything else is a format failure.
TEST(MediaVerdict, VideoFormats)
{
	for (const char *container : {"mp4", "mov", "webm"})
		for (const char *codec : {"h264", "hevc", "vp8", "vp9"})
		{
			MediaFacts	f = good_video();

			f.container = container;
			f.video_codec = codec;
			EXPECT_EQ(video_code(f), "ok") << container << "/" << codec;
		}

	MediaFacts	f = good_video();

	f.container = "matroska";
	EXPECT_EQ(video_code(f), kFileFormatCheckFailed);
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message, "the video is Matroska (MKV); TikTok accepts MP4, MOV or WebM");
	f.container = "avi";
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message, "the video is AVI; TikTok accepts MP4, MOV or WebM");
	f = good_video();
	f.video_codec = "mpeg4";
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message,
			  "the video is encoded as MPEG-4 Part 2; TikTok accepts H.264, H.265, VP8 or VP9");
	f.video_codec = "";
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message, "the file has no video stream");
	f = good_video();
	f.status = MediaStatus::kUnreadable;
	f.message = "its first bytes are no video or photo format libavformat recognises";
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message,
			  "the video cannot be read: its first bytes are no video or photo format libavformat recognises");
	f.status = MediaStatus::kIncomplete;
	EXPECT_EQ(video_code(f), kFileFormatCheckFailed);
	f = good_video();
	f.width = 0;
	EXPECT_EQ(video_code(f), kFileFormatCheckFailed);
}

// 360 to 4096 px on each side.
TEST(MediaVerdict, VideoPictureSize)
{
	MediaFacts	f = good_video();

	f.width = 360;
	f.height = 4096;
	EXPECT_EQ(video_code(f), "ok");
	f.width = 359;
	EXPECT_EQ(video_code(f), kPictureSizeCheckFailed);
	f.width = 4096;
	f.height = 4097;
	EXPECT_EQ(video_code(f), kPictureSizeCheckFailed);
	f.width = 200;
	f.height = 356;
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message,
			  "the video is 200x356 px; TikTok accepts 360 to 4096 px a side");
}

// 23 to 60 fps, compared in hundredths.
TEST(MediaVerdict, VideoFrameRate)
{
	MediaFacts	f = good_video();

	for (double fps : {23.0, 23.976, 24.0, 29.97, 59.94, 60.0, 60.004, 22.996})
	{
		f.fps = fps;
		EXPECT_EQ(video_code(f), "ok") << fps;
	}
	for (double fps : {22.99, 60.01, 90.0, 15.0})
	{
		f.fps = fps;
		EXPECT_EQ(video_code(f), kFrameRateCheckFailed) << fps;
	}
	f.fps = 90;
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message, "the video runs at 90 fps; TikTok accepts 23 to 60 fps");
	f.fps = 120.5;
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message, "the video runs at 120.5 fps; TikTok accepts 23 to 60 fps");
	f.fps = -1;
	EXPECT_EQ(video_code(f), kFrameRateCheckFailed);
}

// At most the creator's maximum; unknown maximum skips the check.
TEST(MediaVerdict, VideoDuration)
{
	MediaFacts	f = good_video();

	f.duration_ms = 60000;
	EXPECT_EQ(video_code(f, 60), "ok");
	f.duration_ms = 60001;
	EXPECT_EQ(video_code(f, 60), kDurationCheckFailed);
	f.duration_ms = 75300;
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message,
			  "the video runs 75.3 s; this creator may post at most 60 s");
	EXPECT_EQ(video_code(f, -1), "ok");
	f.duration_ms = -1;
	EXPECT_EQ(video_code(f, 60), kDurationCheckFailed);
	EXPECT_EQ(video_code(f, -1), "ok");
}

// At most 4 GiB, checked first: even an unreadable file over it is refused for its size.
TEST(MediaVerdict, VideoSizeFirst)
{
	MediaFacts	f = good_video();

	f.size_bytes = 4LL * 1024 * 1024 * 1024;
	EXPECT_EQ(video_code(f), "ok");
	f.size_bytes += 1;
	f.status = MediaStatus::kUnreadable;
	f.fps = 90;
	EXPECT_EQ(video_code(f), kSizeCheckFailed);
	EXPECT_EQ(judge_media(f, MediaKind::kVideo, 60).message,
			  "the video is 4 GiB (4294967297 bytes); TikTok accepts at most 4 GiB (4294967296 bytes)");
}

// The order: format before picture size before frame rate before duration.
TEST(MediaVerdict, FirstRuleBrokenWins)
{
	MediaFacts	f = good_video();

	f.container = "avi";
	f.width = 100;
	f.fps = 90;
	f.duration_ms = 999999;
	EXPECT_EQ(video_code(f, 10), kFileFormatCheckFailed);
	f.container = "mp4";
	EXPECT_EQ(video_code(f, 10), kPictureSizeCheckFailed);
	f.width = 720;
	EXPECT_EQ(video_code(f, 10), kFrameRateCheckFailed);
	f.fps = 30;
	EXPECT_EQ(video_code(f, 10), kDurationCheckFailed);
}

// JPEG or WebP, fitting 1080x1920 either way up.
TEST(MediaVerdict, PhotoRules)
{
	MediaFacts	f = good_photo();

	EXPECT_EQ(photo_code(f), "ok");
	f.width = 1920;
	f.height = 1080;
	EXPECT_EQ(photo_code(f), "ok");
	f.width = 1080;
	f.height = 1080;
	EXPECT_EQ(photo_code(f), "ok");
	f.width = 200;
	f.height = 100;
	EXPECT_EQ(photo_code(f), "ok");	/* TikTok sets no minimum for photos */
	f.width = 1081;
	f.height = 1920;
	EXPECT_EQ(photo_code(f), kPictureSizeCheckFailed);
	f.width = 1080;
	f.height = 1921;
	EXPECT_EQ(photo_code(f), kPictureSizeCheckFailed);
	f.width = 2000;
	f.height = 3000;
	EXPECT_EQ(judge_media(f, MediaKind::kPhoto, -1).message,
			  "the photo is 2000x3000 px; TikTok accepts at most 1080p: 1080 px on the short side and 1920 px on the long side");

	f = good_photo();
	f.container = "webp";
	EXPECT_EQ(photo_code(f), "ok");
	f.container = "png";
	EXPECT_EQ(judge_media(f, MediaKind::kPhoto, -1).message, "the photo is PNG; TikTok accepts JPEG or WebP");
	f.container = "mp4";
	EXPECT_EQ(photo_code(f), kFileFormatCheckFailed);

	f = good_photo();
	f.size_bytes = 20LL * 1024 * 1024;
	EXPECT_EQ(photo_code(f), "ok");
	f.size_bytes += 1;
	EXPECT_EQ(photo_code(f), kSizeCheckFailed);
	EXPECT_EQ(judge_media(f, MediaKind::kPhoto, -1).message,
			  "the photo is 20 MiB (20971521 bytes); TikTok accepts at most 20 MiB (20971520 bytes) a photo");
}
