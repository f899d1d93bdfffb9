/*
 * media_c_api.cpp: the extern "C" wall of the media checks (vs_media.h).
 * Every function catches everything: no exception may unwind into the
 * Postgres layer's C frames.
 */
#include "vs_media.h"

#include "c_result.hpp"
#include "media_facts_json.hpp"
#include "media_probe.hpp"
#include "media_verdict.hpp"
#include "range_fetch.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

using namespace vibescaling;

static_assert(VS_MEDIA_MAX_WINDOWS == kMediaMaxWindows, "vs_media.h and media_windows.hpp disagree");
static_assert(VS_MEDIA_BYTE_BUDGET == kMediaByteBudget, "vs_media.h and media_windows.hpp disagree");

namespace {

/* Copies s into a fixed array, cut to fit (never mid-way through a UTF-8 sequence). */
template <std::size_t N>
void
copy_text(char (&dest)[N], const std::string &s) noexcept
{
	std::size_t n = std::min(s.size(), N - 1);

	/* Back off over continuation bytes so a cut leaves valid UTF-8. */
	if (n < s.size())
		while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
			n--;
	std::memcpy(dest, s.data(), n);
	dest[n] = '\0';
}

/* The C facts from the core's. */
void
fill_c_facts(const MediaFacts &f, vs_media_facts *out) noexcept
{
	copy_text(out->status, media_status_name(f.status));
	copy_text(out->message, f.message);
	copy_text(out->container, f.container);
	copy_text(out->video_codec, f.video_codec);
	out->duration_ms = f.duration_ms;
	out->fps = f.fps;
	out->width = f.width;
	out->height = f.height;
	out->size_bytes = f.size_bytes;
	out->bytes_read = f.bytes_read;
}

/* Empties *out: unknown facts, no strings. */
void
reset_result(vs_media_probe_result *out) noexcept
{
	std::memset(out, 0, sizeof *out);
	out->facts.duration_ms = -1;
	out->facts.fps = -1;
}

/* Fills *out as failed with message. */
void
fail(vs_media_probe_result *out, const char *message) noexcept
{
	vs_media_probe_result_free(out);
	reset_result(out);
	out->step = VS_MEDIA_FAILED;
	out->error = dup_text(message);
}

/* One probe round; throws what the core throws. */
void
probe_round(long long total_size, vs_media_kind kind, const vs_media_window *windows, int n_windows,
			int (*should_abort)(void), vs_media_probe_result *out)
{
	std::vector<ByteWindow> held;

	for (int i = 0; i < n_windows; i++)
	{
		ByteWindow	w;

		w.offset = windows[i].offset;
		w.length = windows[i].length;
		w.data = reinterpret_cast<const unsigned char *>(windows[i].data);
		held.push_back(w);
	}

	WindowSet	set(total_size, std::move(held));
	ProbeOutcome o = probe_media(set, kind == VS_MEDIA_PHOTO ? MediaKind::kPhoto : MediaKind::kVideo,
								 should_abort);

	switch (o.step)
	{
		case ProbeStep::kNeedBytes:
			out->step = VS_MEDIA_NEED_BYTES;
			out->need_offset = o.need.offset;
			out->need_length = o.need.length;
			break;
		case ProbeStep::kAborted:
			out->step = VS_MEDIA_ABORTED;
			break;
		case ProbeStep::kDone:
			{
				std::string json = facts_to_json(o.facts);

				out->facts_json = static_cast<char *>(std::malloc(json.size() + 1));
				if (out->facts_json == nullptr)
					throw std::bad_alloc();
				std::memcpy(out->facts_json, json.c_str(), json.size() + 1);
				fill_c_facts(o.facts, &out->facts);
				out->step = VS_MEDIA_DONE;
				break;
			}
	}
}

}								/* namespace */

extern "C" {

/* Sets *kind from "video" or "photo"; 0 for any other name. */
int
vs_media_kind_from_name(const char *name, vs_media_kind *kind)
{
	if (name == nullptr || kind == nullptr)
		return 0;
	if (std::strcmp(name, "video") == 0)
		*kind = VS_MEDIA_VIDEO;
	else if (std::strcmp(name, "photo") == 0)
		*kind = VS_MEDIA_PHOTO;
	else
		return 0;
	return 1;
}

/* One probe round over the windows read so far (see vs_media.h). */
void
vs_media_probe(long long total_size, vs_media_kind kind, const vs_media_window *windows,
			   int n_windows, int (*should_abort)(void), vs_media_probe_result *out)
{
	if (out == nullptr)
		return;
	reset_result(out);
	if (n_windows < 0 || (n_windows > 0 && windows == nullptr))
	{
		fail(out, "n_windows must be >= 0, and windows given when it is > 0");
		return;
	}
	try
	{
		probe_round(total_size, kind, windows, n_windows, should_abort, out);
	}
	catch (const std::bad_alloc &)
	{
		fail(out, "vibescaling: out of memory while probing the media");
	}
	catch (const std::exception &e)
	{
		fail(out, e.what());
	}
	catch (...)
	{
		fail(out, "vibescaling: unexpected failure while probing the media");
	}
}

/* Frees the strings inside *r. */
void
vs_media_probe_result_free(vs_media_probe_result *r)
{
	if (r == nullptr)
		return;
	std::free(r->facts_json);
	if (!is_static_text(r->error))
		std::free(r->error);
	r->facts_json = nullptr;
	r->error = nullptr;
}

/* The first limit the facts break (see vs_media.h). */
void
vs_media_judge(const char *facts_json, vs_media_kind kind, long long max_duration_sec,
			   vs_media_verdict *out)
{
	if (out == nullptr)
		return;
	std::memset(out, 0, sizeof *out);
	try
	{
		MediaFacts	facts;
		std::string error;

		if (!facts_from_json(facts_json, &facts, &error))
		{
			copy_text(out->error, error);
			return;
		}

		MediaVerdict v = judge_media(facts, kind == VS_MEDIA_PHOTO ? MediaKind::kPhoto : MediaKind::kVideo,
									 max_duration_sec);

		copy_text(out->code, v.code);
		copy_text(out->message, v.message);
		out->valid = 1;
	}
	catch (...)
	{
		std::memset(out, 0, sizeof *out);
		copy_text(out->error, "vibescaling: out of memory while judging the media");
	}
}

/* vs_probe_source without the video requirement (see vs_media.h). */
void
vs_probe_media_source(const vs_http_options *opt, const char *url, vs_call_result *out)
{
	bool		started = false;

	if (out == nullptr)
		return;
	try
	{
		fill_c_result(probe_source(opt, url, &started, false), out);
	}
	catch (const std::bad_alloc &)
	{
		fill_c_failure(out, "out_of_memory", "vibescaling: out of memory during the source probe", started);
	}
	catch (const std::exception &e)
	{
		fill_c_failure(out, "core_error", e.what(), started);
	}
	catch (...)
	{
		fill_c_failure(out, "core_error", "vibescaling: unexpected failure during the source probe", started);
	}
}

}								/* extern "C" */
