/*
 * chunk_plan.hpp: how a FILE_UPLOAD video is cut into TikTok's chunks
 * (pure arithmetic, see "FILE_UPLOAD chunks" in docs/tiktok-api.md).
 */
#ifndef VS_CHUNK_PLAN_HPP
#define VS_CHUNK_PLAN_HPP

#include "vs_core.h"

namespace vibescaling {

constexpr long long kMiB = 1024LL * 1024LL;
constexpr long long kMinChunkSize = 5 * kMiB;	/* below this size: one chunk */
constexpr long long kDefaultChunkSize = 10 * kMiB;	/* preferred_chunk_size <= 0 */
constexpr long long kMaxChunkSize = 64 * kMiB;
constexpr long long kMaxLastChunkSize = 128 * kMiB;
constexpr long long kMaxVideoSize = 4LL * 1024LL * kMiB;	/* 4 GiB */
constexpr int kMaxChunkCount = 1000;

/* The plan for a video of video_size bytes (see vs_plan_chunks in vs_core.h). */
vs_chunk_plan plan_chunks(long long video_size, long long preferred_chunk_size) noexcept;

/*
 * First byte and length of chunk index (0-based) of plan; false (and 0, 0)
 * when the plan is not ok or index is out of range.
 */
bool		chunk_range(const vs_chunk_plan &plan, int index, long long *first,
						long long *length) noexcept;

}								/* namespace vibescaling */

#endif
