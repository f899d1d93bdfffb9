/*
 * media_avio.hpp: a libavformat AVIOContext that reads a file from the
 * windows a caller holds (media_windows.hpp) instead of from a file or a
 * network. A read of a byte no window holds fails and is remembered, so
 * the probe can ask its caller for that byte and run again; nothing is
 * ever read from anywhere else.
 */
#ifndef VS_MEDIA_AVIO_HPP
#define VS_MEDIA_AVIO_HPP

#include "media_windows.hpp"

extern "C" {
#include <libavformat/avio.h>
}

namespace vibescaling {

/* An AVIOContext over a WindowSet, and what its reads ran into. */
class WindowIo
{
public:
	/*
	 * Reads windows (which must outlive this); should_abort (may be null)
	 * is polled by the interrupt callback. Throws std::bad_alloc.
	 */
	WindowIo(const WindowSet &windows, int (*should_abort)(void));
	~WindowIo();
	WindowIo(const WindowIo &) = delete;
	WindowIo &operator=(const WindowIo &) = delete;

	/* The context to hand to an AVFormatContext (owned here). */
	AVIOContext *context() noexcept { return ctx_; }

	/* The interrupt callback to hand to the same AVFormatContext. */
	AVIOInterruptCB interrupt_callback() noexcept { return {on_interrupt, this}; }

	/* True once a read wanted a byte no window holds. */
	bool		missed() const noexcept { return missed_; }

	/* The first byte a read wanted and no window held (when missed()). */
	long long	missed_at() const noexcept { return missed_at_; }

	/* True once should_abort answered nonzero. */
	bool		aborted() const noexcept { return aborted_; }

private:
	static int	on_read(void *opaque, uint8_t *buf, int size);
	static int64_t on_seek(void *opaque, int64_t offset, int whence);
	static int	on_interrupt(void *opaque);

	const WindowSet &windows_;
	int			(*should_abort_) (void);
	AVIOContext *ctx_ = nullptr;
	long long	pos_ = 0;
	bool		missed_ = false;
	long long	missed_at_ = -1;
	bool		aborted_ = false;
};

}								/* namespace vibescaling */

#endif
