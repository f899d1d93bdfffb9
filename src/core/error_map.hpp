/*
 * error_map.hpp: TikTok / transport error codes -> SQLSTATE and retryability.
 */
#ifndef VS_ERROR_MAP_HPP
#define VS_ERROR_MAP_HPP

namespace vibescaling {

/* The SQLSTATE (static 5-char string) for an error code and HTTP status. */
const char *sqlstate_for(const char *error_code, long http_status) noexcept;

/* True when a failure with this code / HTTP status may succeed if retried later. */
bool is_retryable(const char *error_code, long http_status) noexcept;

/*
 * True for TikTok's codes that say it refused a request and did nothing
 * (the 4xx-class codes of the publish endpoints: invalid_param(s),
 * access_token_invalid, scope_not_authorized, spam_risk_*, ...). Only such
 * a code proves that an init created no post.
 */
bool is_refusal_code(const char *error_code) noexcept;

}								/* namespace vibescaling */

#endif
