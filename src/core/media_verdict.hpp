/*
 * media_verdict.hpp: TikTok's media limits, applied to probed facts, so
 * that a video or photo TikTok would refuse after the upload is refused
 * before anything is sent (pure: no libav, no I/O).
 *
 * The limits (docs/tiktok-api.md, "Media limits"; TikTok's Media Transfer
 * Guide). Video: MP4, MOV or WebM holding H.264, H.265, VP8 or VP9; 23 to
 * 60 fps; 360 to 4096 px on each side; at most the creator's
 * max_video_post_duration_sec; at most 4 GiB. Photo: JPEG or WebP; at most
 * 1080p, i.e. fits 1080 x 1920 either way up (short side <= 1080 px, long
 * side <= 1920 px); at most 20 MiB.
 */
#ifndef VS_MEDIA_VERDICT_HPP
#define VS_MEDIA_VERDICT_HPP

#include "media_facts.hpp"

#include <string>

namespace vibescaling {

constexpr double kVideoMinFps = 23.0;
constexpr double kVideoMaxFps = 60.0;
constexpr int kVideoMinSide = 360;
constexpr int kVideoMaxSide = 4096;
constexpr long long kPhotoMaxBytes = 20LL * 1024 * 1024;	/* 20 MiB, MB as in chunk_plan.hpp */
constexpr int kPhotoMaxShortSide = 1080;
constexpr int kPhotoMaxLongSide = 1920;

/* TikTok's fail_reason names, and ours for a size over the limit. */
constexpr char kFileFormatCheckFailed[] = "file_format_check_failed";
constexpr char kDurationCheckFailed[] = "duration_check_failed";
constexpr char kFrameRateCheckFailed[] = "frame_rate_check_failed";
constexpr char kPictureSizeCheckFailed[] = "picture_size_check_failed";
constexpr char kSizeCheckFailed[] = "size_check_failed";

/* The first rule the facts break: a code and a sentence; code "" when none. */
struct MediaVerdict
{
	std::string code;
	std::string message;

	bool		ok() const noexcept { return code.empty(); }
};

/*
 * The first rule facts break, checked in this order: size, format
 * (readable, container, a video stream, codec, a known picture size),
 * picture size, frame rate (videos), duration (videos, only when
 * max_duration_sec >= 0; a negative value means the creator's maximum is
 * unknown and the check is skipped). A frame rate is compared rounded to
 * hundredths (59.94 and 23.976 pass; 60.004 is 60). Throws std::bad_alloc.
 */
MediaVerdict judge_media(const MediaFacts &facts, MediaKind kind, long long max_duration_sec);

}								/* namespace vibescaling */

#endif
