/*
 * range_fetch.hpp: reading a video source at an http(s) URL by byte
 * ranges, for FILE_UPLOAD of a video TikTok cannot pull itself.
 */
#ifndef VS_RANGE_FETCH_HPP
#define VS_RANGE_FETCH_HPP

#include "call_outcome.hpp"
#include "vs_core.h"

namespace vibescaling {

/* Redirects followed when downloading a source. */
constexpr long kSourceMaxRedirects = 5;

/*
 * Size and type of the source at url (see vs_probe_source). The URL's
 * query string never appears in error_message. With require_video false
 * any first bytes are accepted (vs_probe_media_source: photos, and videos
 * whose container the media probe names). Throws std::bad_alloc.
 */
CallOutcome probe_source(const vs_http_options *opt, const char *url, bool *perform_started,
						 bool require_video = true);

/*
 * Bytes [first, first + length) of the source at url into buffer (see
 * vs_fetch_range); *received (may be null) is the number of bytes stored.
 * Throws std::bad_alloc.
 */
CallOutcome fetch_range(const vs_http_options *opt, const char *url, long long first,
						long long length, char *buffer, long long *received,
						bool *perform_started);

}								/* namespace vibescaling */

#endif
