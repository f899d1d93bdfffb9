/*
 * call.hpp: one TikTok call end to end (body, transport, reply parsing).
 */
#ifndef VS_CALL_HPP
#define VS_CALL_HPP

#include "call_outcome.hpp"
#include "vs_core.h"

namespace vibescaling {

/*
 * Builds the body for ep, sends it (method, content type and bearer as the
 * endpoint table says), parses the reply, and replaces the call's secrets
 * (see secret_values) in error_message by "***". Problems found
 * before sending (bad options, unknown endpoint, no base_url, bad token)
 * come back as error_code "invalid_param" with http_status 0. Sets
 * *perform_started once the request may leave the process, so a caller
 * catching an exception knows whether the outcome is unknown. Throws
 * std::bad_alloc (and, on bugs, other std::exception).
 */
CallOutcome perform_call(const vs_http_options *opt, vs_endpoint ep,
						 const char *access_token, const char *options_json,
						 bool *perform_started);

}								/* namespace vibescaling */

#endif
