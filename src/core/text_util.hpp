/*
 * text_util.hpp: byte-level text helpers (UTF-8 repair, truncation,
 * secret redaction, percent-encoding) for messages that end up in Postgres
 * text columns and for form bodies.
 */
#ifndef VS_TEXT_UTIL_HPP
#define VS_TEXT_UTIL_HPP

#include <cstddef>
#include <string>

namespace vibescaling {

/* Length of the valid UTF-8 sequence starting at p (n bytes available), 0 if invalid. */
std::size_t utf8_sequence_length(const unsigned char *p, std::size_t n) noexcept;

/*
 * Copies at most max_bytes of output from (p, n) as valid UTF-8: invalid
 * bytes and NULs become U+FFFD; with flatten_controls, other control
 * characters become spaces (one-line messages). "..." is appended when the
 * input did not fit.
 */
std::string utf8_sanitize(const char *p, std::size_t n, std::size_t max_bytes,
						  bool flatten_controls);

/* Replaces every occurrence of secret in text by "[redacted]" (no-op for an empty secret). */
std::string redact(std::string text, const std::string &secret);

/*
 * RFC 3986 percent-encoding of arbitrary bytes, for URL query and
 * application/x-www-form-urlencoded values: A-Z a-z 0-9 - . _ ~ pass, every
 * other byte becomes %XX (upper-case hex), so ' ' is %20, '+' is %2B and
 * UTF-8 sequences are encoded byte by byte.
 */
std::string percent_encode(const std::string &value);

}								/* namespace vibescaling */

#endif
