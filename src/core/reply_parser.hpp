/*
 * reply_parser.hpp: TikTok reply (HTTP status + body) -> CallOutcome.
 */
#ifndef VS_REPLY_PARSER_HPP
#define VS_REPLY_PARSER_HPP

#include "call_outcome.hpp"

#include <cstddef>

namespace vibescaling {

/*
 * Parses the {"data":{..},"error":{"code","message","log_id"}} envelope,
 * or OAuth's flat {"error":"..","error_description":".."}. Anything else
 * yields error_code "bad_response". Throws only std::bad_alloc.
 */
CallOutcome parse_reply(long http_status, const char *body, std::size_t body_len);

}								/* namespace vibescaling */

#endif
