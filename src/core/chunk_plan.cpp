/*
 * chunk_plan.cpp: TikTok's FILE_UPLOAD chunk rules. Under 5 MB a video is
 * one chunk; otherwise every chunk is chunk_size bytes (5 MB to 64 MB)
 * except the last, which also takes the remainder (so it is chunk_size to
 * 2 * chunk_size - 1 bytes, at most 128 MB); total_chunk_count =
 * floor(video_size / chunk_size), at most 1000; video at most 4 GiB.
 */
#include "chunk_plan.hpp"

#include <cstdio>
#include <cstring>

namespace vibescaling {

namespace {

/* A failed plan with the given reason. */
vs_chunk_plan
failed(long long video_size, const char *why) noexcept
{
	vs_chunk_plan plan;

	std::memset(&plan, 0, sizeof plan);
	plan.ok = 0;
	plan.video_size = video_size;
	std::snprintf(plan.error, sizeof plan.error, "%s", why);
	return plan;
}

/* a / b rounded up (a >= 0, b > 0). */
long long
ceil_div(long long a, long long b) noexcept
{
	return a / b + (a % b != 0 ? 1 : 0);
}

}								/* namespace */

/* The chunk plan for a video; see vs_plan_chunks. */
vs_chunk_plan
plan_chunks(long long video_size, long long preferred_chunk_size) noexcept
{
	if (video_size <= 0)
		return failed(video_size, "video_size must be positive");
	if (video_size > kMaxVideoSize)
		return failed(video_size, "video_size exceeds TikTok's 4 GiB limit (4294967296 bytes)");

	long long	chunk;

	if (video_size < kMinChunkSize)
		chunk = video_size;		/* one chunk of the whole video */
	else
	{
		chunk = preferred_chunk_size > 0 ? preferred_chunk_size : kDefaultChunkSize;
		if (chunk < kMinChunkSize)
			chunk = kMinChunkSize;
		if (chunk > kMaxChunkSize)
			chunk = kMaxChunkSize;
		if (chunk > video_size)
			chunk = video_size;
		/* Too many chunks: the smallest chunk size that fits in 1000 (with 5 MB chunks
		 * a 4 GiB video has 819, so this cannot fire today; kept for safety). */
		if (video_size / chunk > kMaxChunkCount)
			chunk = ceil_div(video_size, kMaxChunkCount);
	}

	long long	count = video_size / chunk;
	long long	last = video_size - (count - 1) * chunk;

	if (count < 1 || count > kMaxChunkCount || chunk > kMaxChunkSize ||
		last > kMaxLastChunkSize || last < chunk)
		return failed(video_size, "no chunk size satisfies TikTok's chunk rules for this video_size");

	vs_chunk_plan plan;

	std::memset(&plan, 0, sizeof plan);
	plan.ok = 1;
	plan.video_size = video_size;
	plan.chunk_size = chunk;
	plan.last_chunk_size = last;
	plan.total_chunk_count = static_cast<int>(count);
	return plan;
}

/* First byte and length of one chunk of a valid plan. */
bool
chunk_range(const vs_chunk_plan &plan, int index, long long *first, long long *length) noexcept
{
	long long	f = 0;
	long long	n = 0;
	bool		valid = plan.ok && plan.total_chunk_count >= 1 && plan.chunk_size > 0 &&
		index >= 0 && index < plan.total_chunk_count;

	if (valid)
	{
		f = static_cast<long long>(index) * plan.chunk_size;
		n = (index == plan.total_chunk_count - 1) ? plan.last_chunk_size : plan.chunk_size;
	}
	if (first != nullptr)
		*first = f;
	if (length != nullptr)
		*length = n;
	return valid;
}

}								/* namespace vibescaling */
