/*
 * media_facts.hpp: what a probe learnt of a video or photo, the one shape
 * the probe fills, the verdict judges and JSON carries through SQL.
 */
#ifndef VS_MEDIA_FACTS_HPP
#define VS_MEDIA_FACTS_HPP

#include <string>

namespace vibescaling {

/* What the media is meant to be posted as (TikTok's limits differ). */
enum class MediaKind
{
	kVideo,
	kPhoto
};

/* Whether the facts could be read. */
enum class MediaStatus
{
	kReadable,					/* the fields below hold what the file says */
	kUnreadable,				/* no format recognised, or libavformat failed on it */
	kIncomplete					/* the byte budget ran out before the facts were read */
};

/*
 * The facts. Unknown numbers are -1 (duration_ms, fps) or 0 (width,
 * height); unknown names are "".
 */
struct MediaFacts
{
	MediaStatus status = MediaStatus::kUnreadable;
	std::string message;		/* why not readable; "" when readable */
	std::string container;		/* mp4 | mov | webm | matroska | jpeg | webp | png | another
								 * libavformat demuxer's name (avi, mpegts, ...) */
	std::string video_codec;	/* libavcodec's name: h264 | hevc | vp8 | vp9 | av1 |
								 * mjpeg | webp | mpeg4 | ...; "" without a video stream */
	long long	duration_ms = -1;	/* videos only */
	double		fps = -1;		/* videos only: average frames per second */
	int			width = 0;		/* pixels, as coded (rotation ignored: TikTok's
								 * limits are the same for both sides) */
	int			height = 0;
	long long	size_bytes = 0; /* the whole file */
	long long	bytes_read = 0; /* what the caller had fetched for the probe */
};

/* "video" / "photo". */
const char *media_kind_name(MediaKind kind) noexcept;

/* "readable" / "unreadable" / "incomplete". */
const char *media_status_name(MediaStatus status) noexcept;

/* The status named name; false when name is none of them. */
bool		media_status_from_name(const std::string &name, MediaStatus *status) noexcept;

}								/* namespace vibescaling */

#endif
