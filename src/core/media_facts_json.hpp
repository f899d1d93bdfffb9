/*
 * media_facts_json.hpp: media facts as the JSON object SQL holds
 * (vibescaling._media_facts returns it, _media_verdict takes it back):
 *   {"status": "readable" | "unreadable" | "incomplete",
 *    "message": why not readable, or null,
 *    "container": "mp4" | "mov" | "webm" | "matroska" | "jpeg" | "webp" | "png" | ... | null,
 *    "video_codec": "h264" | "hevc" | "vp8" | "vp9" | ... | null,
 *    "duration_ms": integer | null, "fps": number (3 decimals) | null,
 *    "width": integer | null, "height": integer | null,
 *    "size_bytes": integer, "bytes_read": integer}
 * null stands for unknown (or none: no video stream, a photo's duration).
 */
#ifndef VS_MEDIA_FACTS_JSON_HPP
#define VS_MEDIA_FACTS_JSON_HPP

#include "media_facts.hpp"

#include <string>

namespace vibescaling {

/* The JSON object of facts (compact, keys in the order above). Throws std::bad_alloc. */
std::string facts_to_json(const MediaFacts &facts);

/*
 * Facts from such an object: "status" and "size_bytes" are required, the
 * rest may be null or absent (unknown), other keys are ignored. false with
 * *error naming the bad key when the text is no such object. Throws
 * std::bad_alloc.
 */
bool		facts_from_json(const char *json, MediaFacts *facts, std::string *error);

}								/* namespace vibescaling */

#endif
