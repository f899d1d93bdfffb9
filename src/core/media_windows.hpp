/*
 * media_windows.hpp: the bytes of a media file that a caller holds, as
 * windows (offset, length) of a file of known size, and what to ask for
 * next when a reader wants a byte outside every window (pure: no libav).
 *
 * The Postgres layer reads a source window by window (a large object, a
 * bytea, a URL with range requests) and may raise at any read, so the
 * probe never reads itself: it says which bytes it lacks, the caller
 * fetches them and calls the probe again with one window more.
 */
#ifndef VS_MEDIA_WINDOWS_HPP
#define VS_MEDIA_WINDOWS_HPP

#include <cstddef>
#include <vector>

namespace vibescaling {

/* Smallest window asked for (the first one too: the head of the file). */
constexpr long long kMediaMinNeed = 1024LL * 1024LL;
/* Largest window asked for at once, however long a sequential read runs. */
constexpr long long kMediaMaxNeed = 8LL * 1024LL * 1024LL;
/* Bytes a probe may make its caller hold, all windows together. */
constexpr long long kMediaByteBudget = 32LL * 1024LL * 1024LL;
/* Windows a probe may make its caller fetch (rounds of the loop). */
constexpr int kMediaMaxWindows = 16;

/* Bytes of the file [offset, offset + length) held at data (not owned). */
struct ByteWindow
{
	long long	offset = 0;
	long long	length = 0;
	const unsigned char *data = nullptr;
};

/* A byte range to fetch next. */
struct ByteRange
{
	long long	offset = 0;
	long long	length = 0;
};

/* The windows held of a file of total_size bytes. */
class WindowSet
{
public:
	/*
	 * Checks every window lies inside [0, total_size), has length > 0 and
	 * data; throws std::invalid_argument naming the first that does not.
	 */
	WindowSet(long long total_size, std::vector<ByteWindow> windows);

	/* Size of the whole file. */
	long long	total_size() const noexcept { return total_; }

	/* Bytes held, all windows together (overlaps counted twice: what the caller holds). */
	long long	held_bytes() const noexcept;

	/* Number of windows held. */
	int			count() const noexcept { return static_cast<int>(windows_.size()); }

	/*
	 * Copies up to want bytes starting at pos into out, never past the end
	 * of the window holding pos; returns the count, 0 when no window holds
	 * pos (or pos is outside the file).
	 */
	std::size_t read(long long pos, unsigned char *out, std::size_t want) const noexcept;

	/*
	 * Bytes held without a gap from pos on, at most limit (the head of
	 * the file, for a format probe, is contiguous_from(0, ...)).
	 */
	long long	contiguous_from(long long pos, long long limit) const noexcept;

	/*
	 * What to fetch for a read that found no byte at pos: from pos, at
	 * least kMediaMinNeed, as long as the gapless run of held bytes just
	 * before pos when that is longer (a sequential read asks for twice as
	 * much each time), at most kMediaMaxNeed; never past the file's end or
	 * into the next window held. pos must be inside the file.
	 */
	ByteRange	need_at(long long pos) const noexcept;

private:
	long long	total_;
	std::vector<ByteWindow> windows_;
};

}								/* namespace vibescaling */

#endif
