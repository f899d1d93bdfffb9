/*
 * request_builder.hpp: TikTok request bodies (JSON or form) from SQL's flat
 * options object.
 */
#ifndef VS_REQUEST_BUILDER_HPP
#define VS_REQUEST_BUILDER_HPP

#include "vs_core.h"

#include <stdexcept>
#include <string>

namespace vibescaling {

/* A missing or ill-typed option; what() is the message for the user. */
class OptionsError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/*
 * The body for ep built from options_json (NULL counts as "{}"): compact
 * JSON for the publish endpoints, a percent-encoded form for oauth_token and
 * oauth_revoke (fields in the order vs_core.h documents), "" for user_info.
 * Throws OptionsError for bad options or an unknown endpoint (its message
 * names the option, never a value), std::bad_alloc when memory runs out.
 */
std::string build_request_body(vs_endpoint ep, const char *options_json);

}								/* namespace vibescaling */

#endif
