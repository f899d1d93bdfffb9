/* media_windows_test.cpp: the windows a probe reads from, and the size of the next one it asks for. */
#include "media_windows.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

using namespace vibescaling;

namespace {

constexpr long long kMiB = 1024LL * 1024LL;

/* A window over bytes (which must outlive it). */
ByteWindow
window(long long offset, const std::vector<unsigned char> &bytes)
{
	ByteWindow	w;

	w.offset = offset;
	w.length = static_cast<long long>(bytes.size());
	w.data = bytes.data();
	return w;
}

}								/* namespace */

// A read copies from the window holding the position, never past its end.
TEST(MediaWindows, ReadsInsideWindowsOnly)
{
	std::vector<unsigned char> a = {1, 2, 3, 4};
	std::vector<unsigned char> b = {9, 8};
	WindowSet	set(100, {window(10, a), window(50, b)});
	unsigned char out[8] = {0};

	EXPECT_EQ(set.read(11, out, sizeof out), 3u);	/* cut at the window's end */
	EXPECT_EQ(out[0], 2);
	EXPECT_EQ(out[2], 4);
	EXPECT_EQ(set.read(14, out, sizeof out), 0u);	/* just past it */
	EXPECT_EQ(set.read(9, out, sizeof out), 0u);
	EXPECT_EQ(set.read(51, out, 1), 1u);
	EXPECT_EQ(out[0], 8);
	EXPECT_EQ(set.held_bytes(), 6);
	EXPECT_EQ(set.count(), 2);
}

// Of overlapping windows, the one reaching furthest serves the read.
TEST(MediaWindows, OverlapReadsTheLongerWindow)
{
	std::vector<unsigned char> a(10, 1);
	std::vector<unsigned char> b(20, 2);
	WindowSet	set(100, {window(0, a), window(5, b)});
	unsigned char out[32] = {0};

	EXPECT_EQ(set.read(6, out, sizeof out), 19u);
	EXPECT_EQ(out[0], 2);
	EXPECT_EQ(set.contiguous_from(0, 1000), 25);
	EXPECT_EQ(set.contiguous_from(0, 12), 12);
	EXPECT_EQ(set.contiguous_from(30, 10), 0);
}

// Windows outside the file, empty or without data are refused.
TEST(MediaWindows, BadWindowsAreRefused)
{
	std::vector<unsigned char> a(10, 0);

	EXPECT_THROW(WindowSet(5, {window(0, a)}), std::invalid_argument);	/* longer than the file */
	EXPECT_THROW(WindowSet(100, {window(-1, a)}), std::invalid_argument);
	EXPECT_THROW(WindowSet(100, {window(100, a)}), std::invalid_argument);

	ByteWindow	no_data = window(0, a);

	no_data.data = nullptr;
	EXPECT_THROW(WindowSet(100, {no_data}), std::invalid_argument);

	ByteWindow	empty = window(0, a);

	empty.length = 0;
	EXPECT_THROW(WindowSet(100, {empty}), std::invalid_argument);
	EXPECT_THROW(WindowSet(-1, {}), std::invalid_argument);
	EXPECT_NO_THROW(WindowSet(0, {}));
}

// The first need is 1 MiB, or the whole of a smaller file.
TEST(MediaWindows, FirstNeedIsOneMiB)
{
	WindowSet	big(100 * kMiB, {});
	WindowSet	small(1000, {});

	EXPECT_EQ(big.need_at(0).offset, 0);
	EXPECT_EQ(big.need_at(0).length, kMiB);
	EXPECT_EQ(small.need_at(0).length, 1000);
	EXPECT_EQ(big.need_at(100 * kMiB - 10).length, 10);	/* clamped to the file's end */
}

// A sequential read asks for as much as it already read without a gap, up to 8 MiB.
TEST(MediaWindows, SequentialNeedsDouble)
{
	std::vector<unsigned char> one(static_cast<std::size_t>(kMiB), 0);
	std::vector<unsigned char> three(static_cast<std::size_t>(3 * kMiB), 0);
	std::vector<unsigned char> ten(static_cast<std::size_t>(10 * kMiB), 0);

	EXPECT_EQ(WindowSet(100 * kMiB, {window(0, one)}).need_at(kMiB).length, kMiB);
	EXPECT_EQ(WindowSet(100 * kMiB, {window(0, one), window(kMiB, three)}).need_at(4 * kMiB).length, 4 * kMiB);
	EXPECT_EQ(WindowSet(100 * kMiB, {window(0, ten)}).need_at(10 * kMiB).length, 8 * kMiB);
	/* A gap before the need: a fresh 1 MiB. */
	EXPECT_EQ(WindowSet(100 * kMiB, {window(0, three)}).need_at(5 * kMiB).length, kMiB);
}

// A need stops where a held window starts: bytes are never fetched twice.
TEST(MediaWindows, NeedStopsAtTheNextWindow)
{
	std::vector<unsigned char> a(100, 0);
	WindowSet	set(10 * kMiB, {window(5000, a)});
	ByteRange	need = set.need_at(1000);

	EXPECT_EQ(need.offset, 1000);
	EXPECT_EQ(need.length, 4000);
}
