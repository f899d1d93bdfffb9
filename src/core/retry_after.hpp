/*
 * retry_after.hpp: the value of an HTTP Retry-After reply header
 * (RFC 9110 section 10.2.3) as seconds to wait.
 */
#ifndef VS_RETRY_AFTER_HPP
#define VS_RETRY_AFTER_HPP

#include <ctime>
#include <string>

namespace vibescaling {

/* Longest wait reported (about 68 years): larger values are capped to this. */
constexpr long kMaxRetryAfterSeconds = 2147483647L;

/*
 * Seconds to wait before retrying, from a Retry-After value (surrounding
 * spaces and tabs ignored):
 *   - delta-seconds (1*DIGIT): that number, capped at kMaxRetryAfterSeconds;
 *   - an HTTP-date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), or the
 *     obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 *     ("Sun Nov  6 08:49:37 1994") forms recipients must accept: seconds
 *     from now until then, 0 when it is already past (never negative),
 *     capped likewise;
 *   - anything else (empty, signed, fractional, trailing junk, an invalid
 *     date): -1, as if there were no header.
 * now is the current time (std::time(nullptr) in vs_call; a parameter for
 * tests). Never throws.
 */
long		retry_after_seconds(const std::string &value, std::time_t now) noexcept;

}								/* namespace vibescaling */

#endif
