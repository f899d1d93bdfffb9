/*
 * media_probe_test.cpp: the media checks end to end through vs_media.h,
 * on files ffmpeg makes at test time: the probe loop (as the Postgres
 * layer runs it) gives the facts, vs_media_judge the verdict.
 */
#include "media_support.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

/* Skips a test that needs media when the ffmpeg program is missing. */
#define REQUIRE_FFMPEG() \
	do { \
		if (!ffmpeg_available()) \
			GTEST_SKIP() << "the ffmpeg program is not installed (scripts/install-deps.sh installs it)"; \
	} while (0)

/* ffmpeg arguments for a test pattern of w x h at rate fps for seconds. */
std::string
pattern(int w, int h, const std::string &rate, const std::string &seconds)
{
	return "-f lavfi -i testsrc=size=" + std::to_string(w) + "x" + std::to_string(h) + ":rate=" + rate +
		" -t " + seconds;
}

/* H.264 (libx264) options. */
const std::string kH264 = " -c:v libx264 -preset ultrafast -pix_fmt yuv420p";

/* A still picture of w x h. */
std::string
still(int w, int h)
{
	return "-f lavfi -i testsrc=size=" + std::to_string(w) + "x" + std::to_string(h) + " -frames:v 1";
}

/* Probes the file made by ffmpeg with args as kind. */
ProbeRun
probe_made(const std::string &name, const std::string &args, vs_media_kind kind = VS_MEDIA_VIDEO)
{
	std::string path = make_media(name, args);

	return path.empty() ? ProbeRun() : probe_bytes(read_bytes(path), kind);
}

/* The verdict's code for a probe run ("ok" when none). */
std::string
code_of(const ProbeRun &run, vs_media_kind kind = VS_MEDIA_VIDEO, long long max_duration_sec = 60)
{
	EXPECT_EQ(run.step, VS_MEDIA_DONE) << run.error;
	return judge(run.facts_json, kind, max_duration_sec).code;
}

/* Number of calls of should_abort so far, and the call from which it answers 1. */
int			abort_calls = 0;
int			abort_from = 0;

/* Answers 1 from call abort_from on. */
int
abort_after(void)
{
	return ++abort_calls >= abort_from ? 1 : 0;
}

}								/* namespace */

// A good 1 s 720x1280 30 fps H.264 MP4: every fact, and accepted.
TEST(MediaProbe, Mp4H264IsAccepted)
{
	REQUIRE_FFMPEG();
	ProbeRun	run = probe_made("good.mp4", pattern(720, 1280, "30", "1") + kH264);

	ASSERT_EQ(run.step, VS_MEDIA_DONE) << run.error;
	EXPECT_STREQ(run.facts.status, "readable");
	EXPECT_STREQ(run.facts.container, "mp4");
	EXPECT_STREQ(run.facts.video_codec, "h264");
	EXPECT_EQ(run.facts.width, 720);
	EXPECT_EQ(run.facts.height, 1280);
	EXPECT_DOUBLE_EQ(run.facts.fps, 30.0);
	EXPECT_NEAR(run.facts.duration_ms, 1000, 50);
	EXPECT_EQ(run.rounds, 2);	/* the whole small file at once, then the facts */
	EXPECT_EQ(run.fetched, run.facts.size_bytes);
	EXPECT_EQ(run.facts.bytes_read, run.facts.size_bytes);
	EXPECT_NE(run.facts_json.find("\"container\":\"mp4\""), std::string::npos) << run.facts_json;
	EXPECT_EQ(code_of(run), "ok");
	EXPECT_EQ(judge(run.facts_json, VS_MEDIA_VIDEO, -1).code, "ok");
}

// 24 and 60 fps pass; 90 fps is TikTok's frame_rate_check_failed.
TEST(MediaProbe, FrameRates)
{
	REQUIRE_FFMPEG();
	ProbeRun	fps24 = probe_made("fps24.mp4", pattern(360, 640, "24", "1") + kH264);
	ProbeRun	fps60 = probe_made("fps60.mp4", pattern(360, 640, "60", "1") + kH264);
	ProbeRun	fps90 = probe_made("fps90.mp4", pattern(360, 640, "90", "1") + kH264);

	EXPECT_DOUBLE_EQ(fps24.facts.fps, 24.0);
	EXPECT_EQ(code_of(fps24), "ok");
	EXPECT_DOUBLE_EQ(fps60.facts.fps, 60.0);
	EXPECT_EQ(code_of(fps60), "ok");
	EXPECT_DOUBLE_EQ(fps90.facts.fps, 90.0);
	EXPECT_EQ(code_of(fps90), "frame_rate_check_failed");
	EXPECT_EQ(judge(fps90.facts_json, VS_MEDIA_VIDEO, 60).message,
			  "the video runs at 90 fps; TikTok accepts 23 to 60 fps");
}

// 200 px is too small, 1080x1920 fits, 5000 px is too large.
TEST(MediaProbe, PictureSizes)
{
	REQUIRE_FFMPEG();
	ProbeRun	tiny = probe_made("tiny.mp4", pattern(200, 356, "30", "1") + kH264);
	ProbeRun	full = probe_made("full.mp4", pattern(1080, 1920, "30", "0.5") + kH264);
	ProbeRun	huge = probe_made("huge.mp4", pattern(5000, 2816, "30", "0.1") + kH264);

	EXPECT_EQ(tiny.facts.width, 200);
	EXPECT_EQ(code_of(tiny), "picture_size_check_failed");
	EXPECT_EQ(judge(tiny.facts_json, VS_MEDIA_VIDEO, 60).message,
			  "the video is 200x356 px; TikTok accepts 360 to 4096 px a side");
	EXPECT_EQ(full.facts.width, 1080);
	EXPECT_EQ(full.facts.height, 1920);
	EXPECT_EQ(code_of(full), "ok");
	EXPECT_EQ(huge.facts.width, 5000);
	EXPECT_EQ(code_of(huge), "picture_size_check_failed");
}

// Longer than the creator's maximum is TikTok's duration_check_failed; an unknown maximum skips it.
TEST(MediaProbe, DurationOverTheMaximum)
{
	REQUIRE_FFMPEG();
	ProbeRun	run = probe_made("three_seconds.mp4", pattern(360, 640, "30", "3") + kH264);

	EXPECT_NEAR(run.facts.duration_ms, 3000, 50);
	EXPECT_EQ(code_of(run, VS_MEDIA_VIDEO, 2), "duration_check_failed");
	EXPECT_EQ(judge(run.facts_json, VS_MEDIA_VIDEO, 2).message,
			  "the video runs 3 s; this creator may post at most 2 s");
	EXPECT_EQ(code_of(run, VS_MEDIA_VIDEO, 3), "ok");
	EXPECT_EQ(code_of(run, VS_MEDIA_VIDEO, -1), "ok");
}

// QuickTime (ftyp "qt  ") is mov, VP9 in WebM is webm, H.265 in MP4 is hevc: all accepted.
TEST(MediaProbe, MovWebmAndHevcAreAccepted)
{
	REQUIRE_FFMPEG();
	ProbeRun	mov = probe_made("good.mov", pattern(720, 1280, "30", "1") + kH264);
	ProbeRun	webm = probe_made("good.webm", pattern(640, 360, "30", "1") +
								  " -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 300k");
	ProbeRun	vp8 = probe_made("vp8.webm", pattern(640, 360, "30", "1") +
								 " -c:v libvpx -deadline realtime -cpu-used 8 -b:v 300k");
	ProbeRun	hevc = probe_made("hevc.mp4", pattern(640, 360, "30", "1") +
								  " -c:v libx265 -preset ultrafast -x265-params log-level=error -tag:v hvc1");

	EXPECT_STREQ(mov.facts.container, "mov");
	EXPECT_STREQ(mov.facts.video_codec, "h264");
	EXPECT_EQ(code_of(mov), "ok");
	EXPECT_STREQ(webm.facts.container, "webm");
	EXPECT_STREQ(webm.facts.video_codec, "vp9");
	EXPECT_EQ(webm.facts.width, 640);
	EXPECT_NEAR(webm.facts.fps, 30.0, 0.01);
	EXPECT_NEAR(webm.facts.duration_ms, 1000, 50);
	EXPECT_EQ(code_of(webm), "ok");
	EXPECT_STREQ(vp8.facts.video_codec, "vp8");
	EXPECT_EQ(code_of(vp8), "ok");
	EXPECT_STREQ(hevc.facts.container, "mp4");
	EXPECT_STREQ(hevc.facts.video_codec, "hevc");
	EXPECT_EQ(code_of(hevc), "ok");
}

// Matroska (MKV), AVI, a refused codec, no video stream: TikTok's file_format_check_failed.
TEST(MediaProbe, RefusedContainersAndCodecs)
{
	REQUIRE_FFMPEG();
	ProbeRun	mkv = probe_made("mpeg4.mkv", pattern(640, 360, "30", "1") + " -c:v mpeg4");
	ProbeRun	avi = probe_made("mpeg4.avi", pattern(640, 360, "30", "1") + " -c:v mpeg4");
	ProbeRun	mjpeg = probe_made("mjpeg.mp4", pattern(640, 360, "30", "1") + " -c:v mjpeg");
	ProbeRun	audio = probe_made("audio.mp4", "-f lavfi -i sine=frequency=440 -t 1 -c:a aac");

	EXPECT_STREQ(mkv.facts.container, "matroska");
	EXPECT_STREQ(mkv.facts.video_codec, "mpeg4");
	EXPECT_EQ(code_of(mkv), "file_format_check_failed");
	EXPECT_EQ(judge(mkv.facts_json, VS_MEDIA_VIDEO, 60).message,
			  "the video is Matroska (MKV); TikTok accepts MP4, MOV or WebM");
	EXPECT_STREQ(avi.facts.container, "avi");
	EXPECT_EQ(judge(avi.facts_json, VS_MEDIA_VIDEO, 60).message, "the video is AVI; TikTok accepts MP4, MOV or WebM");
	EXPECT_STREQ(mjpeg.facts.container, "mp4");
	EXPECT_EQ(judge(mjpeg.facts_json, VS_MEDIA_VIDEO, 60).message,
			  "the video is encoded as Motion JPEG; TikTok accepts H.264, H.265, VP8 or VP9");
	EXPECT_STREQ(audio.facts.video_codec, "");
	EXPECT_EQ(judge(audio.facts_json, VS_MEDIA_VIDEO, 60).message, "the file has no video stream");
}

// A Matroska file holding only WebM's codecs counts as WebM (libavformat does not tell the DocType).
TEST(MediaProbe, MatroskaWithWebmCodecsIsWebm)
{
	REQUIRE_FFMPEG();
	ProbeRun	run = probe_made("vp9.mkv", pattern(640, 360, "30", "1") +
								 " -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 300k");

	EXPECT_STREQ(run.facts.container, "webm");
	EXPECT_EQ(code_of(run), "ok");
}

// Garbage, an empty file, a text playlist: unreadable or named only, and refused.
TEST(MediaProbe, GarbageIsRefused)
{
	std::vector<char> garbage(300000);
	unsigned	seed = 12345;

	for (char &c : garbage)
	{
		seed = seed * 1103515245 + 12345;
		c = static_cast<char>(seed >> 16);
	}

	ProbeRun	run = probe_bytes(garbage, VS_MEDIA_VIDEO);

	EXPECT_STREQ(run.facts.status, "unreadable");
	EXPECT_STREQ(run.facts.container, "");
	EXPECT_EQ(code_of(run), "file_format_check_failed");
	EXPECT_EQ(judge(run.facts_json, VS_MEDIA_VIDEO, 60).message,
			  "the video cannot be read: its first bytes are no video or photo format libavformat recognises");

	ProbeRun	empty = probe_bytes({}, VS_MEDIA_VIDEO);

	EXPECT_EQ(empty.rounds, 1);
	EXPECT_STREQ(empty.facts.message, "the file is empty");
	EXPECT_EQ(code_of(empty), "file_format_check_failed");

	/* A playlist naming other files: its demuxer never runs, nothing is opened. */
	std::string m3u8 = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n#EXT-X-ENDLIST\n";
	ProbeRun	hls = probe_bytes(std::vector<char>(m3u8.begin(), m3u8.end()), VS_MEDIA_VIDEO);

	EXPECT_STREQ(hls.facts.container, "hls");
	EXPECT_EQ(code_of(hls), "file_format_check_failed");
}

// An MP4 with its moov atom at the end (ffmpeg's default): the head, then the tail, never the middle.
TEST(MediaProbe, MoovAtTheEndIsReadFromTheTail)
{
	REQUIRE_FFMPEG();
	std::string args = "-f lavfi -i testsrc2=size=1080x1920:rate=30 -t 3 -c:v libx264 -preset ultrafast "
		"-pix_fmt yuv420p -b:v 12M";
	ProbeRun	end = probe_made("moov_end.mp4", args);
	ProbeRun	start = probe_made("moov_start.mp4", args + " -movflags +faststart");

	ASSERT_EQ(end.step, VS_MEDIA_DONE) << end.error;
	ASSERT_GT(end.facts.size_bytes, 3 * 1024 * 1024);
	EXPECT_STREQ(end.facts.status, "readable") << end.facts.message;
	EXPECT_EQ(end.facts.width, 1080);
	EXPECT_NEAR(end.facts.duration_ms, 3000, 50);
	EXPECT_EQ(code_of(end), "ok");
	ASSERT_GE(end.needs.size(), 2u);
	EXPECT_EQ(end.needs[0], std::make_pair(0LL, 1024LL * 1024));
	EXPECT_GT(end.needs[1].first, end.facts.size_bytes / 2);	/* the moov, at the tail */
	EXPECT_LT(end.fetched, end.facts.size_bytes / 2);
	EXPECT_EQ(end.facts.bytes_read, end.fetched);

	EXPECT_EQ(code_of(start), "ok");
	EXPECT_EQ(start.rounds, 2);	/* the moov is in the first MiB */
}

// A truncated MP4 is unreadable: without its moov, or with an index past its end.
TEST(MediaProbe, TruncatedMp4IsRefused)
{
	REQUIRE_FFMPEG();
	std::string args = "-f lavfi -i testsrc2=size=1080x1920:rate=30 -t 3 -c:v libx264 -preset ultrafast "
		"-pix_fmt yuv420p -b:v 12M";
	std::vector<char> end = read_bytes(make_media("moov_end.mp4", args));
	std::vector<char> start = read_bytes(make_media("moov_start.mp4", args + " -movflags +faststart"));

	ASSERT_FALSE(end.empty());
	end.resize(end.size() * 6 / 10);
	start.resize(start.size() * 6 / 10);

	ProbeRun	no_moov = probe_bytes(end, VS_MEDIA_VIDEO);
	ProbeRun	cut = probe_bytes(start, VS_MEDIA_VIDEO);

	EXPECT_STREQ(no_moov.facts.status, "unreadable");
	EXPECT_EQ(code_of(no_moov), "file_format_check_failed");
	EXPECT_STREQ(cut.facts.status, "unreadable");
	EXPECT_NE(std::string(cut.facts.message).find("truncated"), std::string::npos) << cut.facts.message;
	EXPECT_EQ(code_of(cut), "file_format_check_failed");
}

// JPEG and WebP within 1080p pass; larger, or PNG, are refused.
TEST(MediaProbe, Photos)
{
	REQUIRE_FFMPEG();
	ProbeRun	portrait = probe_made("portrait.jpg", still(1080, 1920), VS_MEDIA_PHOTO);
	ProbeRun	landscape = probe_made("landscape.jpg", still(1920, 1080), VS_MEDIA_PHOTO);
	ProbeRun	big = probe_made("big.jpg", still(2000, 3000), VS_MEDIA_PHOTO);
	ProbeRun	webp = probe_made("photo.webp", still(1080, 1350), VS_MEDIA_PHOTO);
	ProbeRun	big_webp = probe_made("big.webp", still(1200, 2000), VS_MEDIA_PHOTO);
	ProbeRun	png = probe_made("photo.png", still(1080, 1920), VS_MEDIA_PHOTO);

	EXPECT_STREQ(portrait.facts.container, "jpeg");
	EXPECT_EQ(portrait.facts.width, 1080);
	EXPECT_EQ(portrait.facts.height, 1920);
	EXPECT_EQ(portrait.facts.duration_ms, -1);
	EXPECT_NE(portrait.facts_json.find("\"fps\":null"), std::string::npos) << portrait.facts_json;
	EXPECT_EQ(code_of(portrait, VS_MEDIA_PHOTO), "ok");
	EXPECT_EQ(code_of(landscape, VS_MEDIA_PHOTO), "ok");
	EXPECT_EQ(code_of(big, VS_MEDIA_PHOTO), "picture_size_check_failed");
	EXPECT_STREQ(webp.facts.container, "webp");
	EXPECT_EQ(webp.facts.height, 1350);
	EXPECT_EQ(code_of(webp, VS_MEDIA_PHOTO), "ok");
	EXPECT_EQ(code_of(big_webp, VS_MEDIA_PHOTO), "picture_size_check_failed");
	EXPECT_STREQ(png.facts.container, "png");
	EXPECT_EQ(judge(png.facts_json, VS_MEDIA_PHOTO, -1).message, "the photo is PNG; TikTok accepts JPEG or WebP");

	/* A video is no photo. */
	ProbeRun	video = probe_made("good.mp4", pattern(720, 1280, "30", "1") + kH264, VS_MEDIA_PHOTO);

	EXPECT_EQ(code_of(video, VS_MEDIA_PHOTO), "file_format_check_failed");
}

// A photo over 20 MiB is refused for its size; a cut WebP for its unreadable picture.
TEST(MediaProbe, PhotoSizeAndDamage)
{
	REQUIRE_FFMPEG();
	std::vector<char> jpeg = read_bytes(make_media("portrait.jpg", still(1080, 1920)));
	std::vector<char> webp = read_bytes(make_media("photo.webp", still(1080, 1350)));

	ASSERT_FALSE(jpeg.empty());
	jpeg.resize(21 * 1024 * 1024, 0);	/* trailing bytes after the picture */

	ProbeRun	padded = probe_bytes(jpeg, VS_MEDIA_PHOTO);

	EXPECT_EQ(padded.facts.size_bytes, 21 * 1024 * 1024);
	EXPECT_EQ(code_of(padded, VS_MEDIA_PHOTO), "size_check_failed");
	EXPECT_EQ(judge(padded.facts_json, VS_MEDIA_PHOTO, -1).message,
			  "the photo is 21 MiB (22020096 bytes); TikTok accepts at most 20 MiB (20971520 bytes) a photo");

	webp.resize(webp.size() / 3);

	ProbeRun	cut = probe_bytes(webp, VS_MEDIA_PHOTO);

	EXPECT_STREQ(cut.facts.status, "unreadable");
	EXPECT_EQ(code_of(cut, VS_MEDIA_PHOTO), "file_format_check_failed");
}

// should_abort stops a round, before libavformat or while it works.
TEST(MediaProbe, AbortStopsTheProbe)
{
	REQUIRE_FFMPEG();
	std::vector<char> data = read_bytes(make_media("good.mp4", pattern(720, 1280, "30", "1") + kH264));

	abort_calls = 0;
	abort_from = 1;
	EXPECT_EQ(probe_bytes(data, VS_MEDIA_VIDEO, abort_after).step, VS_MEDIA_ABORTED);
	EXPECT_EQ(abort_calls, 1);

	/* Call 1: round 1's start; call 2: round 2's start; then libavformat's interrupt checks. */
	abort_calls = 0;
	abort_from = 3;

	ProbeRun	run = probe_bytes(data, VS_MEDIA_VIDEO, abort_after);

	EXPECT_EQ(run.step, VS_MEDIA_ABORTED);
	EXPECT_EQ(run.rounds, 2);
	EXPECT_GE(abort_calls, 3);
}

// Past 16 windows or 32 MiB held, the probe stops asking: "incomplete", refused.
TEST(MediaProbe, BudgetEndsTheLoop)
{
	std::vector<char> zeros(40 * 1024 * 1024, 0);
	std::vector<vs_media_window> sixteen;
	vs_media_probe_result r;

	/* Sixteen windows, none of them the head the probe wants first. */
	for (int i = 0; i < VS_MEDIA_MAX_WINDOWS; i++)
		sixteen.push_back(vs_media_window{2 * 1024 * 1024 + i * 4096LL, 100, zeros.data()});
	vs_media_probe(static_cast<long long>(zeros.size()), VS_MEDIA_VIDEO, sixteen.data(),
				   static_cast<int>(sixteen.size()), nullptr, &r);
	ASSERT_EQ(r.step, VS_MEDIA_DONE);
	EXPECT_STREQ(r.facts.status, "incomplete");
	EXPECT_EQ(judge(r.facts_json, VS_MEDIA_VIDEO, 60).code, "file_format_check_failed");
	vs_media_probe_result_free(&r);

	/* 32 MiB held, still not the head. */
	std::vector<vs_media_window> two = {{1024 * 1024, 16 * 1024 * 1024, zeros.data()},
										{17 * 1024 * 1024, 16 * 1024 * 1024, zeros.data()}};

	vs_media_probe(static_cast<long long>(zeros.size()), VS_MEDIA_VIDEO, two.data(), 2, nullptr, &r);
	ASSERT_EQ(r.step, VS_MEDIA_DONE);
	EXPECT_STREQ(r.facts.status, "incomplete");
	EXPECT_NE(std::string(r.facts.message).find("33554432"), std::string::npos) << r.facts.message;
	vs_media_probe_result_free(&r);

	/* Near the budget, a need is cut to what is left. */
	std::vector<vs_media_window> almost = {{1024 * 1024, 32 * 1024 * 1024 - 10, zeros.data()}};

	vs_media_probe(static_cast<long long>(zeros.size()), VS_MEDIA_VIDEO, almost.data(), 1, nullptr, &r);
	ASSERT_EQ(r.step, VS_MEDIA_NEED_BYTES);
	EXPECT_EQ(r.need_offset, 0);
	EXPECT_EQ(r.need_length, 10);
	vs_media_probe_result_free(&r);
}

// Bad arguments fail the call, with a reason; unknown kinds are refused by name.
TEST(MediaProbe, BadArgumentsFail)
{
	std::vector<char> bytes(100, 0);
	vs_media_window outside = {50, 100, bytes.data()};
	vs_media_probe_result r;
	vs_media_kind kind;

	vs_media_probe(100, VS_MEDIA_VIDEO, &outside, 1, nullptr, &r);
	EXPECT_EQ(r.step, VS_MEDIA_FAILED);
	ASSERT_NE(r.error, nullptr);
	EXPECT_NE(std::string(r.error).find("window 0"), std::string::npos) << r.error;
	EXPECT_EQ(r.facts_json, nullptr);
	vs_media_probe_result_free(&r);

	vs_media_probe(100, VS_MEDIA_VIDEO, nullptr, 1, nullptr, &r);
	EXPECT_EQ(r.step, VS_MEDIA_FAILED);
	vs_media_probe_result_free(&r);

	EXPECT_EQ(vs_media_kind_from_name("photo", &kind), 1);
	EXPECT_EQ(kind, VS_MEDIA_PHOTO);
	EXPECT_EQ(vs_media_kind_from_name("video", &kind), 1);
	EXPECT_EQ(kind, VS_MEDIA_VIDEO);
	EXPECT_EQ(vs_media_kind_from_name("Video", &kind), 0);
	EXPECT_EQ(vs_media_kind_from_name(nullptr, &kind), 0);

	vs_media_verdict v;

	vs_media_judge("{\"status\":1}", VS_MEDIA_VIDEO, 60, &v);
	EXPECT_EQ(v.valid, 0);
	EXPECT_NE(std::string(v.error).find("status"), std::string::npos) << v.error;
}
