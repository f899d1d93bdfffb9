/*
 * media_probe.cpp: one probe round with libavformat over held windows
 * (see media_probe.hpp).
 *
 * The steps, each of which may end the round asking for more bytes:
 *   1. the head of the file (kMediaHeadBytes, or the whole of a smaller
 *      file) names the container with libavformat's own probe, the one
 *      ffprobe uses; a weak guess (garbage bytes) names nothing;
 *   2. containers TikTok could accept (MP4/MOV, WebM and Matroska, JPEG,
 *      WebP) are opened with that demuxer forced and on a whitelist, with
 *      nested opens refused; any other container is answered by name only
 *      (its demuxer never runs on these bytes);
 *   3. avformat_find_stream_info, bounded by probesize/analyzeduration,
 *      fills codec, frame rate and picture size the headers leave out;
 *   4. the facts come from the main video stream.
 *
 * libavformat's limits: at most kMaxStreams streams; decoders used by
 * find_stream_info run single-threaded (libavformat forces it) and only
 * those on kDecoders (the codecs whose parameters are worth decoding a
 * frame for, and the common audio ones, whose parameters otherwise keep
 * find_stream_info reading up to probesize).
 */
#include "media_probe.hpp"

#include "media_avio.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
}

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace vibescaling {

namespace {

/* Streams a file may have (libavformat's max_streams). */
constexpr int kMaxStreams = 16;

/* What find_stream_info may read of a video: a few seconds are enough for its frame rate. */
constexpr int64_t kVideoProbeSize = 8LL * 1024 * 1024;
constexpr int64_t kVideoAnalyzeMicroseconds = 3LL * AV_TIME_BASE;

/* A photo's packet is its whole picture: the budget bounds it. */
constexpr int64_t kPhotoProbeSize = kMediaByteBudget;

/*
 * Largest picture a decoder may allocate while find_stream_info decodes a
 * frame (libavcodec's max_pixels): 40 megapixels, some 160 MB for a
 * lossless WebP. JPEG is exempt: libavcodec reads its size from the frame
 * header without decoding the picture (skip_frame), and cameras make
 * larger JPEGs. A bigger WebP gets no picture size.
 */
constexpr int64_t kDecodeMaxPixels = 40LL * 1000 * 1000;

/* Demuxers that may run on the bytes (libavformat's format_whitelist). */
constexpr char kDemuxers[] = "mov,matroska,jpeg_pipe,webp_pipe";

/* Decoders find_stream_info may open (libavformat's codec_whitelist). */
constexpr char kDecoders[] =
	"h264,hevc,vp8,vp9,av1,libdav1d,mjpeg,webp,"
	"aac,mp3float,mp3,opus,vorbis,ac3,eac3,flac,alac,pcm_s16le,pcm_s16be,pcm_s24le,pcm_f32le";

/* WebM's codecs: a Matroska file with nothing else counts as WebM. */
const AVCodecID kWebmCodecs[] = {
	AV_CODEC_ID_VP8, AV_CODEC_ID_VP9, AV_CODEC_ID_AV1, AV_CODEC_ID_VORBIS, AV_CODEC_ID_OPUS,
	AV_CODEC_ID_WEBVTT,
};

/* The container families this probe opens. */
enum class Family
{
	kMov,						/* MP4 and QuickTime */
	kMatroska,					/* Matroska and WebM */
	kJpeg,
	kWebp,
	kOther						/* named only */
};

/* Drops a libav log line: nothing may reach the server's stderr. */
void
drop_log_line(void *, int, const char *, va_list)
{
}

/* Silences libav's logging, once per process (a function-local static: thread-safe, cannot throw). */
void
silence_libav() noexcept
{
	static const bool silenced = [] {
		av_log_set_level(AV_LOG_QUIET);
		av_log_set_callback(drop_log_line);
		return true;
	}();

	(void) silenced;
}

/* libav's text for an error number. */
std::string
av_error_text(int err)
{
	char		buf[AV_ERROR_MAX_STRING_SIZE] = {0};

	av_strerror(err, buf, sizeof buf);
	return buf;
}

/* A round that needs the bytes at pos: the next window, or "incomplete" when the budget is spent. */
ProbeOutcome
need_bytes(const WindowSet &windows, long long pos, MediaFacts facts)
{
	ProbeOutcome out;
	long long	room = kMediaByteBudget - windows.held_bytes();
	ByteRange	need = windows.need_at(pos);

	if (windows.count() >= kMediaMaxWindows || room <= 0 || need.length <= 0)
	{
		facts.status = MediaStatus::kIncomplete;
		facts.message = "its format could not be read from the " + std::to_string(windows.held_bytes()) +
			" bytes the probe may fetch (at most " + std::to_string(kMediaMaxWindows) +
			" reads of " + std::to_string(kMediaByteBudget) + " bytes in all)";
		out.facts = std::move(facts);
		return out;
	}
	need.length = std::min(need.length, room);
	out.step = ProbeStep::kNeedBytes;
	out.need = need;
	return out;
}

/* The family of a demuxer. */
Family
family_of(const AVInputFormat *fmt)
{
	if (av_match_name("mov", fmt->name))
		return Family::kMov;
	if (av_match_name("matroska", fmt->name))
		return Family::kMatroska;
	if (av_match_name("jpeg_pipe", fmt->name))
		return Family::kJpeg;
	if (av_match_name("webp_pipe", fmt->name))
		return Family::kWebp;
	return Family::kOther;
}

/* How a message names a family. */
const char *
family_title(Family family)
{
	switch (family)
	{
		case Family::kMov:
			return "MP4/MOV";
		case Family::kMatroska:
			return "WebM/Matroska";
		case Family::kJpeg:
			return "JPEG";
		case Family::kWebp:
			return "WebP";
		case Family::kOther:
			break;
	}
	return "media";
}

/* A demuxer's short name: its first name, without "_pipe" (png_pipe is "png"). */
std::string
short_name(const AVInputFormat *fmt)
{
	std::string name = fmt->name;
	std::size_t comma = name.find(',');

	if (comma != std::string::npos)
		name.resize(comma);
	if (name.size() > 5 && name.compare(name.size() - 5, 5, "_pipe") == 0)
		name.resize(name.size() - 5);
	return name;
}

/*
 * The demuxer libavformat's probe picks for the first head_len bytes (held
 * without a gap), or null for a guess weaker than AVPROBE_SCORE_RETRY
 * (what libavformat itself wants before it stops reading more).
 */
const AVInputFormat *
guess_format(const WindowSet &windows, long long head_len)
{
	std::vector<unsigned char> head(static_cast<std::size_t>(head_len) + AVPROBE_PADDING_SIZE, 0);
	long long	got = 0;

	while (got < head_len)
	{
		std::size_t n = windows.read(got, head.data() + got, static_cast<std::size_t>(head_len - got));

		if (n == 0)
			break;
		got += static_cast<long long>(n);
	}

	AVProbeData probe;
	int			score = 0;

	std::memset(&probe, 0, sizeof probe);
	probe.filename = "";
	probe.buf = head.data();
	probe.buf_size = static_cast<int>(got);

	const AVInputFormat *fmt = av_probe_input_format3(&probe, 1, &score);

	return (fmt != nullptr && score >= AVPROBE_SCORE_RETRY) ? fmt : nullptr;
}

/* Refuses every nested open (HLS playlists, QuickTime references, ...): only the windows are read. */
int
refuse_nested_open(AVFormatContext *, AVIOContext **, const char *, int, AVDictionary **)
{
	return AVERROR(EPERM);
}

/* An AVFormatContext closed (or freed) on scope exit. */
struct FormatContext
{
	AVFormatContext *ctx = nullptr;

	FormatContext() = default;
	FormatContext(const FormatContext &) = delete;
	FormatContext &operator=(const FormatContext &) = delete;
	~FormatContext() { avformat_close_input(&ctx); }
};

/* An AVDictionary freed on scope exit. */
struct Dictionary
{
	AVDictionary *dict = nullptr;

	Dictionary() = default;
	Dictionary(const Dictionary &) = delete;
	Dictionary &operator=(const Dictionary &) = delete;
	~Dictionary() { av_dict_free(&dict); }
};

/* The main video stream: the first default one that is no cover picture, else the first such. */
const AVStream *
main_video_stream(const AVFormatContext *ctx)
{
	const AVStream *first = nullptr;

	for (unsigned i = 0; i < ctx->nb_streams; i++)
	{
		const AVStream *st = ctx->streams[i];

		if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO ||
			(st->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0)
			continue;
		if ((st->disposition & AV_DISPOSITION_DEFAULT) != 0)
			return st;
		if (first == nullptr)
			first = st;
	}
	return first;
}

/* "mov" or "mp4": QuickTime by its ftyp major brand "qt  ", or by having no ftyp at all. */
std::string
mov_container(const AVFormatContext *ctx)
{
	const AVDictionaryEntry *brand = av_dict_get(ctx->metadata, "major_brand", nullptr, 0);

	if (brand == nullptr || std::strncmp(brand->value, "qt", 2) == 0)
		return "mov";
	return "mp4";
}

/*
 * "webm" or "matroska": libavformat does not tell the EBML DocType, so a
 * Matroska file counts as WebM when every stream holds one of WebM's
 * codecs (VP8, VP9, AV1, Vorbis, Opus, WebVTT), which is what a WebM
 * player must decode.
 */
std::string
matroska_container(const AVFormatContext *ctx)
{
	for (unsigned i = 0; i < ctx->nb_streams; i++)
	{
		bool		webm = false;

		for (AVCodecID id : kWebmCodecs)
			webm = webm || ctx->streams[i]->codecpar->codec_id == id;
		if (!webm)
			return "matroska";
	}
	return "webm";
}

/* The container's name for facts. */
std::string
container_name(Family family, const AVFormatContext *ctx)
{
	switch (family)
	{
		case Family::kMov:
			return mov_container(ctx);
		case Family::kMatroska:
			return matroska_container(ctx);
		case Family::kJpeg:
			return "jpeg";
		case Family::kWebp:
			return "webp";
		case Family::kOther:
			break;
	}
	return short_name(ctx->iformat);
}

/*
 * True when an index entry of any stream lies past the end of the file:
 * a truncated file whose header survived (an MP4 with its moov first).
 */
bool
index_past_end(const AVFormatContext *ctx, long long total)
{
	for (unsigned i = 0; i < ctx->nb_streams; i++)
	{
		AVStream   *st = ctx->streams[i];
		int			n = avformat_index_get_entries_count(st);

		for (int k = 0; k < n; k++)
		{
			const AVIndexEntry *e = avformat_index_get_entry(st, k);

			if (e != nullptr && e->pos + e->size > total)
				return true;
		}
	}
	return false;
}

/* Average frames per second of st: avg_frame_rate, else r_frame_rate; -1 when neither is known. */
double
frames_per_second(const AVStream *st)
{
	AVRational	rate = st->avg_frame_rate;

	if (rate.num <= 0 || rate.den <= 0)
		rate = st->r_frame_rate;
	if (rate.num <= 0 || rate.den <= 0)
		return -1;
	return av_q2d(rate);
}

/* Duration in milliseconds: the file's, else the stream's; -1 when unknown. */
long long
duration_ms(const AVFormatContext *ctx, const AVStream *st)
{
	if (ctx->duration != AV_NOPTS_VALUE && ctx->duration > 0)
		return static_cast<long long>(std::llround(static_cast<double>(ctx->duration) * 1000.0 / AV_TIME_BASE));
	if (st != nullptr && st->duration != AV_NOPTS_VALUE && st->duration > 0)
		return static_cast<long long>(std::llround(static_cast<double>(st->duration) * av_q2d(st->time_base) * 1000.0));
	return -1;
}

/* The facts of an opened and analysed file. */
void
fill_facts(Family family, const AVFormatContext *ctx, long long total, MediaFacts *facts)
{
	const AVStream *st = main_video_stream(ctx);
	bool		photo = family == Family::kJpeg || family == Family::kWebp;

	facts->status = MediaStatus::kReadable;
	facts->container = container_name(family, ctx);
	if (index_past_end(ctx, total))
	{
		facts->status = MediaStatus::kUnreadable;
		facts->message = "the file is truncated: its index places media data past its last byte (" +
			std::to_string(total) + ")";
		return;
	}
	if (st == nullptr)
		return;
	facts->video_codec = avcodec_get_name(st->codecpar->codec_id);
	facts->width = std::max(0, st->codecpar->width);
	facts->height = std::max(0, st->codecpar->height);
	if (!photo)
	{
		facts->fps = frames_per_second(st);
		facts->duration_ms = duration_ms(ctx, st);
	}
	else if (facts->width == 0 || facts->height == 0)
	{
		/* A photo is its picture: without a size it is no photo TikTok can take. */
		facts->status = MediaStatus::kUnreadable;
		facts->message = family == Family::kWebp
			? "its picture size could not be read (a damaged WebP, or one over " +
			std::to_string(kDecodeMaxPixels / 1000000) + " megapixels, which is not decoded)"
			: "its picture size could not be read (a damaged JPEG)";
	}
}

/* The outcome of a libav call that failed or ran into a missing byte or a cancel. */
bool
interrupted(const WindowIo &io, const WindowSet &windows, const MediaFacts &facts, ProbeOutcome *out)
{
	if (io.aborted())
	{
		out->step = ProbeStep::kAborted;
		return true;
	}
	if (io.missed())
	{
		*out = need_bytes(windows, io.missed_at(), facts);
		return true;
	}
	return false;
}

/* Opens the file with the demuxer fmt, analyses its streams and fills the facts. */
ProbeOutcome
open_and_read(const WindowSet &windows, MediaKind kind, const AVInputFormat *fmt, Family family,
			  int (*should_abort)(void), MediaFacts facts)
{
	ProbeOutcome out;
	WindowIo	io(windows, should_abort);
	FormatContext format;
	Dictionary	options;

	format.ctx = avformat_alloc_context();
	if (format.ctx == nullptr)
		throw std::bad_alloc();
	format.ctx->pb = io.context();
	format.ctx->flags |= AVFMT_FLAG_CUSTOM_IO;
	format.ctx->interrupt_callback = io.interrupt_callback();
	format.ctx->io_open = refuse_nested_open;
	format.ctx->max_streams = kMaxStreams;
	/* A photo's packet is its whole picture (libavformat's image parsers read to the end of the file). */
	format.ctx->probesize = (kind == MediaKind::kPhoto || family == Family::kJpeg || family == Family::kWebp)
		? kPhotoProbeSize : kVideoProbeSize;
	format.ctx->max_analyze_duration = kVideoAnalyzeMicroseconds;
	if (av_dict_set(&options.dict, "format_whitelist", kDemuxers, 0) < 0 ||
		av_dict_set(&options.dict, "codec_whitelist", kDecoders, 0) < 0)
		throw std::bad_alloc();

	/* On failure avformat_open_input frees the context and nulls the pointer. */
	int			err = avformat_open_input(&format.ctx, "", fmt, &options.dict);

	if (interrupted(io, windows, facts, &out))
		return out;
	if (err < 0)
	{
		facts.message = std::string("it looks like ") + family_title(family) +
			" but libavformat cannot read it (" + av_error_text(err) +
			"; a truncated or damaged file, e.g. an MP4 without its moov atom)";
		out.facts = std::move(facts);
		return out;
	}

	/* One options dictionary per stream, for the decoders find_stream_info opens. */
	std::vector<Dictionary> stream_options(format.ctx->nb_streams);
	std::vector<AVDictionary *> option_list(format.ctx->nb_streams + 1, nullptr);

	for (unsigned i = 0; i < format.ctx->nb_streams; i++)
	{
		if (family != Family::kJpeg &&
			av_dict_set_int(&stream_options[i].dict, "max_pixels", kDecodeMaxPixels, 0) < 0)
			throw std::bad_alloc();
		option_list[i] = stream_options[i].dict;
	}
	err = avformat_find_stream_info(format.ctx, option_list.data());
	/* The decoders may have replaced the dictionaries: free what the list now holds. */
	for (unsigned i = 0; i < format.ctx->nb_streams && i < stream_options.size(); i++)
		stream_options[i].dict = option_list[i];
	if (interrupted(io, windows, facts, &out))
		return out;
	if (err < 0)
	{
		facts.message = std::string("it looks like ") + family_title(family) +
			" but libavformat cannot read its streams (" + av_error_text(err) + ")";
		out.facts = std::move(facts);
		return out;
	}
	fill_facts(family, format.ctx, windows.total_size(), &facts);
	out.facts = std::move(facts);
	return out;
}

}								/* namespace */

/* One probe round (see media_probe.hpp). */
ProbeOutcome
probe_media(const WindowSet &windows, MediaKind kind, int (*should_abort)(void))
{
	ProbeOutcome out;
	MediaFacts	facts;
	long long	total = windows.total_size();
	long long	head_len = std::min(total, kMediaHeadBytes);

	silence_libav();
	facts.size_bytes = total;
	facts.bytes_read = windows.held_bytes();
	if (total == 0)
	{
		facts.message = "the file is empty";
		out.facts = std::move(facts);
		return out;
	}
	if (should_abort != nullptr && should_abort() != 0)
	{
		out.step = ProbeStep::kAborted;
		return out;
	}

	long long	held_head = windows.contiguous_from(0, head_len);

	if (held_head < head_len)
		return need_bytes(windows, held_head, std::move(facts));

	const AVInputFormat *fmt = guess_format(windows, head_len);

	if (fmt == nullptr)
	{
		facts.message = "its first bytes are no video or photo format libavformat recognises";
		out.facts = std::move(facts);
		return out;
	}

	Family		family = family_of(fmt);

	if (family == Family::kOther)
	{
		facts.status = MediaStatus::kReadable;
		facts.container = short_name(fmt);
		out.facts = std::move(facts);
		return out;
	}
	return open_and_read(windows, kind, fmt, family, should_abort, std::move(facts));
}

}								/* namespace vibescaling */
