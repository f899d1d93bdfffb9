/*
 * reply_parser.hpp: TikTok reply (HTTP status + body) -> CallOutcome.
 */
#ifndef VS_REPLY_PARSER_HPP
#define VS_REPLY_PARSER_HPP

#include "call_outcome.hpp"
#include "vs_core.h"

#include <cstddef>

namespace vibescaling {

/*
 * Parses the {"data":{..},"error":{"code","message","log_id"}} envelope,
 * or OAuth's flat {"error":"..","error_description":".."}. Anything else
 * yields error_code "bad_response". Throws only std::bad_alloc.
 */
CallOutcome parse_reply(long http_status, const char *body, std::size_t body_len);

/*
 * Parses the reply of endpoint ep (see vs_parse_endpoint_reply in
 * vs_core.h): the envelope for the publish endpoints and user_info, the
 * flat OAuth shapes for oauth_token and oauth_revoke. An unknown endpoint
 * is parsed as an envelope. Throws only std::bad_alloc.
 */
CallOutcome parse_endpoint_reply(vs_endpoint ep, long http_status, const char *body,
								 std::size_t body_len);

/*
 * True only when a reply proves that TikTok refused the request and did
 * nothing: an HTTP 2xx or 4xx whose body is valid UTF-8 JSON, an object
 * {"data": {..}, "error": {"code": "<refusal>", ..}} ("data" an object,
 * null or absent) where the code is one of is_refusal_code's. Anything else (no body, HTML, an array, wrong
 * types, an unknown code, any 5xx, ...) proves nothing. Throws only
 * std::bad_alloc.
 */
bool		proves_refusal(long http_status, const char *body, std::size_t body_len);

}								/* namespace vibescaling */

#endif
