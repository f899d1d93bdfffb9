/* chunk_plan_test.cpp: vs_plan_chunks / vs_chunk_range at every boundary of TikTok's chunk rules. */
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

constexpr long long MB = 1024LL * 1024LL;
constexpr long long GiB = 1024LL * MB;

/* The plan for (size, preferred). */
vs_chunk_plan
plan(long long size, long long preferred = 0)
{
	vs_chunk_plan p;

	std::memset(&p, 0x5A, sizeof p);	/* garbage: the call must fill every field */
	vs_plan_chunks(size, preferred, &p);
	return p;
}

/*
 * Checks every invariant of a valid plan: the ranges tile [0, size) exactly,
 * every chunk but the last is chunk_size, 5 MB <= chunk <= 64 MB when
 * size >= 5 MB, last <= 128 MB, count <= 1000, count = floor(size / chunk).
 */
::testing::AssertionResult
valid_plan(const vs_chunk_plan &p)
{
	if (!p.ok)
		return ::testing::AssertionFailure() << "not ok: " << p.error;
	long long	size = p.video_size;

	if (p.total_chunk_count < 1 || p.total_chunk_count > 1000)
		return ::testing::AssertionFailure() << "count " << p.total_chunk_count;
	if (p.total_chunk_count != size / p.chunk_size)
		return ::testing::AssertionFailure() << "count != floor(size / chunk)";
	if (size < 5 * MB)
	{
		if (p.total_chunk_count != 1 || p.chunk_size != size || p.last_chunk_size != size)
			return ::testing::AssertionFailure() << "under 5 MB must be one whole chunk";
	}
	else if (p.chunk_size < 5 * MB || p.chunk_size > 64 * MB)
		return ::testing::AssertionFailure() << "chunk " << p.chunk_size;
	if (p.chunk_size > size)
		return ::testing::AssertionFailure() << "chunk larger than the video";
	if (p.last_chunk_size > 128 * MB || p.last_chunk_size < p.chunk_size ||
		p.last_chunk_size >= 2 * p.chunk_size)
		return ::testing::AssertionFailure() << "last " << p.last_chunk_size;

	long long	next = 0;

	for (int i = 0; i < p.total_chunk_count; i++)
	{
		long long	first = -1;
		long long	length = -1;

		vs_chunk_range(&p, i, &first, &length);
		if (first != next)
			return ::testing::AssertionFailure() << "chunk " << i << " starts at " << first;
		bool		last = (i == p.total_chunk_count - 1);

		if (length != (last ? p.last_chunk_size : p.chunk_size))
			return ::testing::AssertionFailure() << "chunk " << i << " length " << length;
		next = first + length;
	}
	if (next != size)
		return ::testing::AssertionFailure() << "chunks end at " << next << " not " << size;
	return ::testing::AssertionSuccess();
}

/* Expects a plan of (chunk, count, last) that passes every invariant. */
void
expect_plan(long long size, long long preferred, long long chunk, int count, long long last)
{
	vs_chunk_plan p = plan(size, preferred);

	SCOPED_TRACE("size " + std::to_string(size) + " preferred " + std::to_string(preferred));
	EXPECT_TRUE(valid_plan(p));
	EXPECT_EQ(p.video_size, size);
	EXPECT_EQ(p.chunk_size, chunk);
	EXPECT_EQ(p.total_chunk_count, count);
	EXPECT_EQ(p.last_chunk_size, last);
	EXPECT_STREQ(p.error, "");
}

}								/* namespace */

// Sizes that cannot be uploaded: zero, negative, over 4 GiB.
TEST(ChunkPlan, InvalidSizes)
{
	for (long long size : {0LL, -1LL, -5 * MB, 4 * GiB + 1, 5 * GiB})
	{
		vs_chunk_plan p = plan(size);

		EXPECT_EQ(p.ok, 0) << size;
		EXPECT_EQ(p.video_size, size);
		EXPECT_EQ(p.total_chunk_count, 0);
		EXPECT_EQ(p.chunk_size, 0);
		EXPECT_EQ(p.last_chunk_size, 0);
		EXPECT_STRNE(p.error, "") << size;
		EXPECT_LT(std::strlen(p.error), sizeof p.error);

		long long	first = -1;
		long long	length = -1;

		vs_chunk_range(&p, 0, &first, &length);
		EXPECT_EQ(first, 0);
		EXPECT_EQ(length, 0);
	}
	EXPECT_NE(std::string(plan(0).error).find("positive"), std::string::npos);
	EXPECT_NE(std::string(plan(4 * GiB + 1).error).find("4 GiB"), std::string::npos);
}

// Under 5 MB: one chunk of the whole video, whatever the preference.
TEST(ChunkPlan, UnderFiveMegabytes)
{
	expect_plan(1, 0, 1, 1, 1);
	expect_plan(1000, 0, 1000, 1, 1000);
	expect_plan(5 * MB - 1, 0, 5 * MB - 1, 1, 5 * MB - 1);
	expect_plan(5 * MB - 1, 64 * MB, 5 * MB - 1, 1, 5 * MB - 1);
	expect_plan(5 * MB - 1, 1, 5 * MB - 1, 1, 5 * MB - 1);
}

// From 5 MB up to the default 10 MB chunk: one chunk (the chunk never exceeds the size).
TEST(ChunkPlan, FiveToTenMegabytes)
{
	expect_plan(5 * MB, 0, 5 * MB, 1, 5 * MB);
	expect_plan(5 * MB + 1, 0, 5 * MB + 1, 1, 5 * MB + 1);
	expect_plan(10 * MB - 1, 0, 10 * MB - 1, 1, 10 * MB - 1);
	expect_plan(10 * MB, 0, 10 * MB, 1, 10 * MB);
	expect_plan(10 * MB + 1, 0, 10 * MB, 1, 10 * MB + 1);
	/* a 5 MB preference cuts 10 MB + 1 into two */
	expect_plan(10 * MB + 1, 5 * MB, 5 * MB, 2, 5 * MB + 1);
	expect_plan(10 * MB - 1, 5 * MB, 5 * MB, 1, 10 * MB - 1);
}

// Around 64 MB and 128 MB, default and maximal chunk sizes.
TEST(ChunkPlan, LargerVideos)
{
	expect_plan(64 * MB, 0, 10 * MB, 6, 14 * MB);
	expect_plan(64 * MB, 64 * MB, 64 * MB, 1, 64 * MB);
	expect_plan(64 * MB + 1, 0, 10 * MB, 6, 14 * MB + 1);
	expect_plan(64 * MB + 1, 64 * MB, 64 * MB, 1, 64 * MB + 1);
	expect_plan(128 * MB, 0, 10 * MB, 12, 18 * MB);
	expect_plan(128 * MB, 64 * MB, 64 * MB, 2, 64 * MB);
	expect_plan(128 * MB - 1, 64 * MB, 64 * MB, 1, 128 * MB - 1);	/* the largest single chunk */
	expect_plan(128 * MB + 1, 64 * MB, 64 * MB, 2, 64 * MB + 1);
	expect_plan(128 * MB + 1, 0, 10 * MB, 12, 18 * MB + 1);
	expect_plan(1 * GiB, 0, 10 * MB, 102, 1 * GiB - 101 * 10 * MB);
	expect_plan(1 * GiB, 64 * MB, 64 * MB, 16, 64 * MB);
	expect_plan(4 * GiB, 0, 10 * MB, 409, 4 * GiB - 408 * 10 * MB);
	expect_plan(4 * GiB, 64 * MB, 64 * MB, 64, 64 * MB);
	expect_plan(4 * GiB - 1, 64 * MB, 64 * MB, 63, 128 * MB - 1);
}

// Preferred sizes outside 5..64 MB are clamped; 0 and negative mean 10 MB.
TEST(ChunkPlan, PreferredClamped)
{
	expect_plan(100 * MB, 1, 5 * MB, 20, 5 * MB);
	expect_plan(100 * MB, 5 * MB - 1, 5 * MB, 20, 5 * MB);
	expect_plan(100 * MB, 5 * MB, 5 * MB, 20, 5 * MB);
	expect_plan(100 * MB, 64 * MB, 64 * MB, 1, 100 * MB);
	expect_plan(200 * MB, 64 * MB + 1, 64 * MB, 3, 72 * MB);
	expect_plan(200 * MB, 1 * GiB, 64 * MB, 3, 72 * MB);
	expect_plan(200 * MB, 0, 10 * MB, 20, 10 * MB);
	expect_plan(200 * MB, -1, 10 * MB, 20, 10 * MB);
	expect_plan(200 * MB, 7 * MB + 3, 7 * MB + 3, 28, 200 * MB - 27 * (7 * MB + 3));
}

// A preference that would need more than 1000 chunks is raised: never more than 1000.
TEST(ChunkPlan, AtMostThousandChunks)
{
	/* 1 MB chunks would be 4096 (and 3 MB ones 1365): clamped to 5 MB, 819 chunks. */
	expect_plan(4 * GiB, 1 * MB, 5 * MB, 819, 4 * GiB - 818 * 5 * MB);
	expect_plan(4 * GiB, 3 * MB, 5 * MB, 819, 4 * GiB - 818 * 5 * MB);
	/* 5 MB chunks of the largest video: the most chunks there can be. */
	expect_plan(4 * GiB, 5 * MB, 5 * MB, 819, 4 * GiB - 818 * 5 * MB);
	expect_plan(3 * GiB, 1, 5 * MB, 614, 3 * GiB - 613 * 5 * MB);
}

// Every plan over a sweep of sizes and preferences keeps every invariant.
TEST(ChunkPlan, InvariantsSweep)
{
	const long long sizes[] = {
		1, 2, 5 * MB - 1, 5 * MB, 5 * MB + 1, 10 * MB - 1, 10 * MB, 10 * MB + 1,
		15 * MB + 7, 64 * MB - 1, 64 * MB, 64 * MB + 1, 100 * MB + 3, 128 * MB - 1,
		128 * MB, 128 * MB + 1, 500 * MB + 12345, 1 * GiB - 1, 1 * GiB, 1 * GiB + 1,
		3 * GiB + 777, 4 * GiB - 1, 4 * GiB,
	};
	const long long preferred[] = {
		-10, 0, 1, 5 * MB - 1, 5 * MB, 5 * MB + 1, 8 * MB, 10 * MB, 33 * MB + 5,
		64 * MB - 1, 64 * MB, 64 * MB + 1, 4 * GiB,
	};

	for (long long size : sizes)
		for (long long pref : preferred)
			EXPECT_TRUE(valid_plan(plan(size, pref))) << "size " << size << " preferred " << pref;
	for (long long size = 5 * MB - 3; size <= 5 * MB + 3; size++)
		EXPECT_TRUE(valid_plan(plan(size, 0))) << size;
}

// vs_chunk_range: out-of-range indexes, NULL plan and NULL outputs are safe.
TEST(ChunkPlan, RangeEdges)
{
	vs_chunk_plan p = plan(25 * MB + 5, 10 * MB);
	long long	first = -1;
	long long	length = -1;

	ASSERT_EQ(p.ok, 1);
	ASSERT_EQ(p.total_chunk_count, 2);
	vs_chunk_range(&p, 0, &first, &length);
	EXPECT_EQ(first, 0);
	EXPECT_EQ(length, 10 * MB);
	vs_chunk_range(&p, 1, &first, &length);
	EXPECT_EQ(first, 10 * MB);
	EXPECT_EQ(length, 15 * MB + 5);
	for (int bad : {-1, 2, 1000})
	{
		first = length = -1;
		vs_chunk_range(&p, bad, &first, &length);
		EXPECT_EQ(first, 0) << bad;
		EXPECT_EQ(length, 0) << bad;
	}
	first = length = -1;
	vs_chunk_range(nullptr, 0, &first, &length);
	EXPECT_EQ(first, 0);
	EXPECT_EQ(length, 0);
	vs_chunk_range(&p, 0, nullptr, nullptr);	/* no crash */
	vs_plan_chunks(10, 0, nullptr);				/* no crash */
}
