/*
 * media_windows.cpp: looking bytes up in the windows a caller holds, and
 * sizing the next window to ask for (see media_windows.hpp).
 *
 * Windows are few (kMediaMaxWindows), so every lookup is a linear scan.
 */
#include "media_windows.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vibescaling {

namespace {

/* One past the last byte of w. */
long long
end_of(const ByteWindow &w) noexcept
{
	return w.offset + w.length;
}

}								/* namespace */

/* Keeps the windows after checking each lies inside the file. */
WindowSet::WindowSet(long long total_size, std::vector<ByteWindow> windows)
	: total_(total_size), windows_(std::move(windows))
{
	if (total_ < 0)
		throw std::invalid_argument("the file size must not be negative");
	for (std::size_t i = 0; i < windows_.size(); i++)
	{
		const ByteWindow &w = windows_[i];

		if (w.data == nullptr || w.offset < 0 || w.length <= 0 || w.offset >= total_ ||
			w.length > total_ - w.offset)
			throw std::invalid_argument("window " + std::to_string(i) + " (offset " +
										std::to_string(w.offset) + ", length " +
										std::to_string(w.length) + ") is not inside the file of " +
										std::to_string(total_) + " bytes or has no data");
	}
}

/* Bytes held, all windows together. */
long long
WindowSet::held_bytes() const noexcept
{
	long long	sum = 0;

	for (const ByteWindow &w : windows_)
		sum += w.length;
	return sum;
}

/* Copies bytes at pos from the window that holds the most of them. */
std::size_t
WindowSet::read(long long pos, unsigned char *out, std::size_t want) const noexcept
{
	const ByteWindow *best = nullptr;

	/* Of the windows holding pos, the one reaching furthest: fewer short reads. */
	for (const ByteWindow &w : windows_)
		if (pos >= w.offset && pos < end_of(w) && (best == nullptr || end_of(w) > end_of(*best)))
			best = &w;
	if (best == nullptr || want == 0)
		return 0;

	long long	n = std::min(static_cast<long long>(want), end_of(*best) - pos);

	std::memcpy(out, best->data + (pos - best->offset), static_cast<std::size_t>(n));
	return static_cast<std::size_t>(n);
}

/* Gapless bytes held from pos on, at most limit. */
long long
WindowSet::contiguous_from(long long pos, long long limit) const noexcept
{
	long long	at = pos;
	bool		grew = true;

	/* Each pass extends the run by a window that starts inside it. */
	while (grew && at - pos < limit)
	{
		grew = false;
		for (const ByteWindow &w : windows_)
			if (w.offset <= at && end_of(w) > at)
			{
				at = end_of(w);
				grew = true;
			}
	}
	return std::min(at - pos, limit);
}

/* The window to fetch for a read that found nothing at pos. */
ByteRange
WindowSet::need_at(long long pos) const noexcept
{
	ByteRange	need;
	long long	run_start = pos;
	bool		grew = true;

	/* The gapless run of held bytes that ends exactly at pos: a sequential read. */
	while (grew)
	{
		grew = false;
		for (const ByteWindow &w : windows_)
			if (w.offset < run_start && end_of(w) >= run_start)
			{
				run_start = w.offset;
				grew = true;
			}
	}

	long long	length = std::clamp(pos - run_start, kMediaMinNeed, kMediaMaxNeed);
	long long	stop = std::min(total_, pos + length);

	/* Bytes already held after pos are not fetched twice. */
	for (const ByteWindow &w : windows_)
		if (w.offset > pos && w.offset < stop)
			stop = w.offset;
	need.offset = pos;
	need.length = std::max(0LL, stop - pos);
	return need;
}

}								/* namespace vibescaling */
