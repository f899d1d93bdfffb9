/*
 * media_verdict.cpp: TikTok's media rules over probed facts (see
 * media_verdict.hpp). Messages say in words what the file is and what
 * TikTok takes, for a post's last_error and an operator.
 */
#include "media_verdict.hpp"

#include "chunk_plan.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <utility>

namespace vibescaling {

namespace {

/* A number with at most `decimals` decimals, trailing zeros dropped: 29.97, 90, 1.5. */
std::string
decimal(double value, int decimals)
{
	char		buf[64];

	std::snprintf(buf, sizeof buf, "%.*f", decimals, value);

	std::string s = buf;

	if (s.find('.') != std::string::npos)
	{
		s.erase(s.find_last_not_of('0') + 1);
		if (s.back() == '.')
			s.pop_back();
	}
	return s;
}

/* A byte count in MiB or GiB, and exactly: "4.5 GiB (4831838208 bytes)". */
std::string
bytes_text(long long bytes)
{
	double		mib = static_cast<double>(bytes) / kMiB;
	std::string rounded = mib >= 1024 ? decimal(mib / 1024, 1) + " GiB" : decimal(mib, 1) + " MiB";

	return rounded + " (" + std::to_string(bytes) + " bytes)";
}

/* A container's name in words. */
std::string
container_words(const std::string &container)
{
	static const std::pair<const char *, const char *> kNames[] = {
		{"mp4", "MP4"}, {"mov", "MOV"}, {"webm", "WebM"}, {"matroska", "Matroska (MKV)"},
		{"jpeg", "JPEG"}, {"webp", "WebP"}, {"png", "PNG"},
	};

	for (const auto &[name, words] : kNames)
		if (container == name)
			return words;

	std::string upper = container;

	std::transform(upper.begin(), upper.end(), upper.begin(),
				   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
	return upper;
}

/* A video codec's name in words. */
std::string
codec_words(const std::string &codec)
{
	static const std::pair<const char *, const char *> kNames[] = {
		{"h264", "H.264"}, {"hevc", "H.265 (HEVC)"}, {"vp8", "VP8"}, {"vp9", "VP9"},
		{"av1", "AV1"}, {"mpeg4", "MPEG-4 Part 2"}, {"mjpeg", "Motion JPEG"},
	};

	for (const auto &[name, words] : kNames)
		if (codec == name)
			return words;
	return codec;
}

/* True when value is one of names. */
bool
one_of(const std::string &value, std::initializer_list<const char *> names)
{
	for (const char *name : names)
		if (value == name)
			return true;
	return false;
}

/* A verdict. */
MediaVerdict
refuse(const char *code, std::string message)
{
	return MediaVerdict{code, std::move(message)};
}

/* "720x1280 px". */
std::string
dimensions(const MediaFacts &facts)
{
	return std::to_string(facts.width) + "x" + std::to_string(facts.height) + " px";
}

/* The rules every file shares: size, then readable. what is "video" or "photo". */
bool
judge_common(const MediaFacts &facts, const char *what, long long max_bytes,
			 const std::string &max_words, MediaVerdict *verdict)
{
	if (facts.size_bytes > max_bytes)
	{
		*verdict = refuse(kSizeCheckFailed, std::string("the ") + what + " is " + bytes_text(facts.size_bytes) +
						  "; TikTok accepts at most " + max_words);
		return true;
	}
	if (facts.status != MediaStatus::kReadable)
	{
		*verdict = refuse(kFileFormatCheckFailed, std::string("the ") + what + " cannot be read: " +
						  (facts.message.empty() ? std::string("no reason given") : facts.message));
		return true;
	}
	if (facts.container.empty())
	{
		*verdict = refuse(kFileFormatCheckFailed, std::string("the ") + what + "'s format is unknown");
		return true;
	}
	return false;
}

/* A video's verdict. */
MediaVerdict
judge_video(const MediaFacts &facts, long long max_duration_sec)
{
	MediaVerdict verdict;

	if (judge_common(facts, "video", kMaxVideoSize, "4 GiB (" + std::to_string(kMaxVideoSize) + " bytes)",
					 &verdict))
		return verdict;
	if (!one_of(facts.container, {"mp4", "mov", "webm"}))
		return refuse(kFileFormatCheckFailed, "the video is " + container_words(facts.container) +
					  "; TikTok accepts MP4, MOV or WebM");
	if (facts.video_codec.empty())
		return refuse(kFileFormatCheckFailed, "the file has no video stream");
	if (!one_of(facts.video_codec, {"h264", "hevc", "vp8", "vp9"}))
		return refuse(kFileFormatCheckFailed, "the video is encoded as " + codec_words(facts.video_codec) +
					  "; TikTok accepts H.264, H.265, VP8 or VP9");
	if (facts.width <= 0 || facts.height <= 0)
		return refuse(kFileFormatCheckFailed, "the video's picture size cannot be read");
	if (std::min(facts.width, facts.height) < kVideoMinSide || std::max(facts.width, facts.height) > kVideoMaxSide)
		return refuse(kPictureSizeCheckFailed, "the video is " + dimensions(facts) + "; TikTok accepts " +
					  std::to_string(kVideoMinSide) + " to " + std::to_string(kVideoMaxSide) + " px a side");

	std::string range = decimal(kVideoMinFps, 0) + " to " + decimal(kVideoMaxFps, 0) + " fps";

	if (facts.fps <= 0)
		return refuse(kFrameRateCheckFailed, "the video's frame rate cannot be read; TikTok accepts " + range);

	double		fps = std::round(facts.fps * 100) / 100;

	if (fps < kVideoMinFps || fps > kVideoMaxFps)
		return refuse(kFrameRateCheckFailed, "the video runs at " + decimal(fps, 2) + " fps; TikTok accepts " + range);
	if (max_duration_sec >= 0)
	{
		std::string limit = "this creator may post at most " + std::to_string(max_duration_sec) + " s";

		if (facts.duration_ms < 0)
			return refuse(kDurationCheckFailed, "the video's duration cannot be read; " + limit);
		if (facts.duration_ms > max_duration_sec * 1000)
			return refuse(kDurationCheckFailed, "the video runs " + decimal(facts.duration_ms / 1000.0, 2) +
						  " s; " + limit);
	}
	return verdict;
}

/* A photo's verdict. */
MediaVerdict
judge_photo(const MediaFacts &facts)
{
	MediaVerdict verdict;

	if (judge_common(facts, "photo", kPhotoMaxBytes,
					 "20 MiB (" + std::to_string(kPhotoMaxBytes) + " bytes) a photo", &verdict))
		return verdict;
	if (!one_of(facts.container, {"jpeg", "webp"}))
		return refuse(kFileFormatCheckFailed, "the photo is " + container_words(facts.container) +
					  "; TikTok accepts JPEG or WebP");
	if (facts.width <= 0 || facts.height <= 0)
		return refuse(kFileFormatCheckFailed, "the photo's picture size cannot be read");
	if (std::min(facts.width, facts.height) > kPhotoMaxShortSide ||
		std::max(facts.width, facts.height) > kPhotoMaxLongSide)
		return refuse(kPictureSizeCheckFailed, "the photo is " + dimensions(facts) +
					  "; TikTok accepts at most 1080p: " + std::to_string(kPhotoMaxShortSide) +
					  " px on the short side and " + std::to_string(kPhotoMaxLongSide) + " px on the long side");
	return verdict;
}

}								/* namespace */

/* The first rule facts break (see media_verdict.hpp). */
MediaVerdict
judge_media(const MediaFacts &facts, MediaKind kind, long long max_duration_sec)
{
	return kind == MediaKind::kPhoto ? judge_photo(facts) : judge_video(facts, max_duration_sec);
}

}								/* namespace vibescaling */
