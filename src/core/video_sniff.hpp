/*
 * video_sniff.hpp: the video Content-Type from a file's first bytes (pure).
 */
#ifndef VS_VIDEO_SNIFF_HPP
#define VS_VIDEO_SNIFF_HPP

#include <cstddef>

namespace vibescaling {

/* "video/mp4", "video/quicktime", "video/webm" or nullptr (see vs_sniff_video_type). */
const char *sniff_video_type(const unsigned char *head, std::size_t len) noexcept;

}								/* namespace vibescaling */

#endif
