/*
 * video_sniff.cpp: recognizes the three containers TikTok's FILE_UPLOAD
 * takes by their magic bytes:
 *   - ISO BMFF (MP4): a box header (4-byte size, "ftyp") at offset 0 whose
 *     major brand (offset 8) is not "qt  ";
 *   - QuickTime: "ftyp" with major brand "qt  ", or an old-style file
 *     starting with a "moov", "mdat", "wide" or "free" atom;
 *   - WebM: the EBML magic 1A 45 DF A3.
 */
#include "video_sniff.hpp"

#include <cstring>
#include <initializer_list>

namespace vibescaling {

namespace {

/* True when the 4 bytes at p equal tag. */
bool
tag_is(const unsigned char *p, const char *tag) noexcept
{
	return std::memcmp(p, tag, 4) == 0;
}

}								/* namespace */

/* The video type of a file starting with head[0..len), or nullptr. */
const char *
sniff_video_type(const unsigned char *head, std::size_t len) noexcept
{
	static const unsigned char kEbml[4] = {0x1A, 0x45, 0xDF, 0xA3};

	if (head == nullptr)
		return nullptr;
	if (len >= 4 && std::memcmp(head, kEbml, 4) == 0)
		return "video/webm";
	if (len < 8)
		return nullptr;
	if (tag_is(head + 4, "ftyp"))
	{
		if (len < 12)
			return nullptr;		/* no major brand to tell MP4 from QuickTime */
		return tag_is(head + 8, "qt  ") ? "video/quicktime" : "video/mp4";
	}
	for (const char *atom : {"moov", "mdat", "wide", "free"})
		if (tag_is(head + 4, atom))
			return "video/quicktime";
	return nullptr;
}

}								/* namespace vibescaling */
