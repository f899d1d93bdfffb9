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

}								/* namespace vibescaling */

#endif
