/*
 * chunk_upload.hpp: one FILE_UPLOAD chunk PUT to TikTok's upload_url.
 */
#ifndef VS_CHUNK_UPLOAD_HPP
#define VS_CHUNK_UPLOAD_HPP

#include "call_outcome.hpp"
#include "vs_core.h"

#include <cstddef>
#include <string>

namespace vibescaling {

/*
 * PUTs chunk->data (not copied) to chunk->upload_url and reads the reply
 * (see vs_put_chunk). Bad arguments come back as "invalid_param" with
 * http_status 0, before anything is sent. The upload URL's query string
 * never appears in error_message. Sets *perform_started once the request
 * may leave the process. Throws std::bad_alloc.
 */
CallOutcome put_chunk(const vs_http_options *opt, const vs_chunk_put *chunk,
					  bool *perform_started);

/*
 * The outcome of a chunk PUT that got an HTTP reply: status, body, and the
 * reply's Content-Range ("" when absent); not yet redacted. Throws
 * std::bad_alloc.
 */
CallOutcome chunk_put_reply(long http_status, const std::string &body,
							const std::string &content_range);

/* The error_code for a chunk PUT answered with http_status (not 201/206). */
const char *chunk_put_error_code(long http_status) noexcept;

}								/* namespace vibescaling */

#endif
