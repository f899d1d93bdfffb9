/*
 * media_avio.cpp: the read, seek and interrupt callbacks of an AVIOContext
 * over held windows (see media_avio.hpp).
 *
 * After the first read of a missing byte every later read fails too and
 * the interrupt callback answers "stop": whatever a demuxer makes of a
 * failed read (some take it for the end of the file and go on), the probe
 * discards that run and asks for the byte instead, so its facts are the
 * ones the whole file gives.
 */
#include "media_avio.hpp"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/mem.h>
}

#include <cstdio>
#include <new>

namespace vibescaling {

namespace {

/* libavformat's buffer: reads larger than this are split by it. */
constexpr int kIoBufferSize = 64 * 1024;

}								/* namespace */

/* Allocates the context and its buffer. */
WindowIo::WindowIo(const WindowSet &windows, int (*should_abort)(void))
	: windows_(windows), should_abort_(should_abort)
{
	unsigned char *buffer = static_cast<unsigned char *>(av_malloc(kIoBufferSize));

	if (buffer == nullptr)
		throw std::bad_alloc();
	ctx_ = avio_alloc_context(buffer, kIoBufferSize, 0, this, on_read, nullptr, on_seek);
	if (ctx_ == nullptr)
	{
		av_free(buffer);
		throw std::bad_alloc();
	}
}

/* Frees the context and whatever buffer libavformat left in it (it may replace ours). */
WindowIo::~WindowIo()
{
	if (ctx_ != nullptr)
		av_freep(&ctx_->buffer);
	avio_context_free(&ctx_);
}

/* Copies bytes at the current position from a window; a missing byte stops the probe. */
int
WindowIo::on_read(void *opaque, uint8_t *buf, int size)
{
	WindowIo   *io = static_cast<WindowIo *>(opaque);

	if (io->missed_ || io->aborted_)
		return AVERROR_EXIT;
	if (io->pos_ >= io->windows_.total_size())
		return AVERROR_EOF;
	if (size <= 0)
		return 0;

	std::size_t n = io->windows_.read(io->pos_, buf, static_cast<std::size_t>(size));

	if (n == 0)
	{
		io->missed_ = true;
		io->missed_at_ = io->pos_;
		return AVERROR_EXIT;
	}
	io->pos_ += static_cast<long long>(n);
	return static_cast<int>(n);
}

/* Moves the position anywhere inside the file (reads there may miss); AVSEEK_SIZE is its size. */
int64_t
WindowIo::on_seek(void *opaque, int64_t offset, int whence)
{
	WindowIo   *io = static_cast<WindowIo *>(opaque);
	long long	total = io->windows_.total_size();
	long long	target;

	whence &= ~AVSEEK_FORCE;
	if (whence == AVSEEK_SIZE)
		return total;
	if (whence == SEEK_SET)
		target = offset;
	else if (whence == SEEK_CUR)
		target = io->pos_ + offset;
	else if (whence == SEEK_END)
		target = total + offset;
	else
		return AVERROR(EINVAL);
	if (target < 0 || target > total)
		return AVERROR(EINVAL);
	io->pos_ = target;
	return target;
}

/* Nonzero stops libavformat: after a missing byte, or when the caller cancels. */
int
WindowIo::on_interrupt(void *opaque)
{
	WindowIo   *io = static_cast<WindowIo *>(opaque);

	if (io->missed_ || io->aborted_)
		return 1;
	if (io->should_abort_ != nullptr && io->should_abort_() != 0)
		io->aborted_ = true;
	return io->aborted_ ? 1 : 0;
}

}								/* namespace vibescaling */
