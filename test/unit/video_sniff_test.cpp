/* video_sniff_test.cpp: vs_sniff_video_type on the magic bytes of MP4, MOV and WebM. */
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

/* The sniffed type of the bytes in s, "NULL" when none. */
std::string
sniff(const std::string &s)
{
	const char *type = vs_sniff_video_type(reinterpret_cast<const unsigned char *>(s.data()), s.size());

	return type ? type : "NULL";
}

/* A box header: 4-byte big-endian size 0x20, then the tag. */
std::string
box(const char *tag)
{
	return std::string("\x00\x00\x00\x20", 4) + tag;
}

}								/* namespace */

// ISO BMFF with a major brand other than "qt  " is MP4.
TEST(VideoSniff, Mp4)
{
	EXPECT_EQ(sniff(box("ftyp") + "isom" + std::string("\x00\x00\x02\x00", 4) + "isomiso2avc1mp41"), "video/mp4");
	EXPECT_EQ(sniff(box("ftyp") + "mp42"), "video/mp4");
	EXPECT_EQ(sniff(box("ftyp") + "M4V "), "video/mp4");
	EXPECT_EQ(sniff(box("ftyp") + "qt"), "NULL");	/* brand cut short: undecided */
	EXPECT_EQ(sniff(box("ftyp")), "NULL");
}

// "ftyp" with brand "qt  ", or an old-style first atom, is QuickTime.
TEST(VideoSniff, QuickTime)
{
	EXPECT_EQ(sniff(box("ftyp") + "qt  " + std::string("\x20\x05\x03\x00", 4) + "qt  "), "video/quicktime");
	for (const char *atom : {"moov", "mdat", "wide", "free"})
		EXPECT_EQ(sniff(std::string("\x00\x00\x00\x08", 4) + atom), "video/quicktime") << atom;
	EXPECT_EQ(sniff(box("skip")), "NULL");
	EXPECT_EQ(sniff(box("ftyq") + "isom"), "NULL");
	EXPECT_EQ(sniff(box("FTYP") + "isom"), "NULL");	/* tags are case-sensitive */
}

// The EBML magic is WebM.
TEST(VideoSniff, WebM)
{
	EXPECT_EQ(sniff(std::string("\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01", 9) + "webm"), "video/webm");
	EXPECT_EQ(sniff(std::string("\x1A\x45\xDF\xA3", 4)), "video/webm");
	EXPECT_EQ(sniff(std::string("\x1A\x45\xDF", 3)), "NULL");
	EXPECT_EQ(sniff(std::string("\x1A\x45\xDF\xA4", 4)), "NULL");
}

// Anything else (images, text, nothing) is not a video type.
TEST(VideoSniff, Unknown)
{
	EXPECT_EQ(sniff("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01"), "NULL");	/* JPEG */
	EXPECT_EQ(sniff("\x89PNG\r\n\x1A\n\x00\x00\x00\x0DIHDR"), "NULL");
	EXPECT_EQ(sniff("<html><body>not found</body></html>"), "NULL");
	EXPECT_EQ(sniff(std::string("RIFF\x00\x00\x00\x00" "AVI ", 12)), "NULL");
	EXPECT_EQ(sniff(""), "NULL");
	EXPECT_EQ(sniff("ftyp"), "NULL");
	EXPECT_EQ(vs_sniff_video_type(nullptr, 100), nullptr);
	const unsigned char mp4[] = {0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm'};

	EXPECT_EQ(vs_sniff_video_type(mp4, 0), nullptr);	/* only len bytes are looked at */
	EXPECT_STREQ(vs_sniff_video_type(mp4, sizeof mp4), "video/mp4");
}
