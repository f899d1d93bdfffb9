/*
 * media_probe.hpp: the facts of a video or photo (container, codec,
 * duration, frame rate, picture size) read by Debian's FFmpeg libraries
 * (libavformat, libavcodec) from the byte windows a caller holds.
 *
 * The probe is stateless: called with the windows held so far, it either
 * answers the facts, or says which bytes it lacks (the caller fetches them
 * and calls again with one window more), or gives up when the byte budget
 * or window count runs out (status "incomplete"). It never reads anything
 * itself: no file, no network, no nested URL a playlist or reference atom
 * would name.
 */
#ifndef VS_MEDIA_PROBE_HPP
#define VS_MEDIA_PROBE_HPP

#include "media_facts.hpp"
#include "media_windows.hpp"

namespace vibescaling {

/* What a probe round ended with. */
enum class ProbeStep
{
	kDone,						/* facts holds the answer (readable or not) */
	kNeedBytes,					/* fetch need, then probe again */
	kAborted					/* should_abort answered nonzero */
};

/* A probe round's result. */
struct ProbeOutcome
{
	ProbeStep	step = ProbeStep::kDone;
	MediaFacts	facts;			/* kDone */
	ByteRange	need;			/* kNeedBytes: never empty, inside the file, within budget */
};

/* Bytes from the start of the file the format is named from. */
constexpr long long kMediaHeadBytes = 1024LL * 1024LL;

/*
 * One probe round over the windows held (see the file comment). The
 * container is named from the head of the file (libavformat's probe);
 * only MP4/MOV, Matroska/WebM, JPEG and WebP are then opened, other
 * formats are answered by name alone. kind chooses how much libavformat
 * may read to analyse the streams (a photo's whole picture; a few seconds
 * of a video). should_abort (may be null) is polled while libavformat
 * works. Throws std::bad_alloc.
 */
ProbeOutcome probe_media(const WindowSet &windows, MediaKind kind, int (*should_abort)(void));

}								/* namespace vibescaling */

#endif
