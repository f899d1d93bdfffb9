/*
 * transfer_util.hpp: helpers shared by the chunk upload and the source
 * download: URL checks, keeping a URL's query string (its credentials) out
 * of messages, and Content-Range parsing.
 */
#ifndef VS_TRANSFER_UTIL_HPP
#define VS_TRANSFER_UTIL_HPP

#include <string>
#include <vector>

namespace vibescaling {

/* True when s holds a byte that cannot appear in an HTTP header or URL (< 0x20, 0x7F). */
bool		has_control_bytes(const std::string &s) noexcept;

/* True for a non-empty "http://" or "https://" URL (scheme case-insensitive) without control bytes. */
bool		is_http_url(const std::string &url) noexcept;

/*
 * The secret parts of a URL: its query string (after '?', up to any '#')
 * and each query value of 8 bytes or more, as written and percent-decoded.
 * Pre-signed and upload URLs carry their credentials there. Throws only
 * std::bad_alloc.
 */
std::vector<std::string> url_secrets(const std::string &url);

/* text with url's secrets (see url_secrets) replaced by "***" (see redact_secrets). */
std::string redact_url(std::string text, const std::string &url);

/*
 * url fit for a message: userinfo dropped, the query string replaced by
 * "?…", the fragment dropped, invalid UTF-8 and control bytes replaced, at
 * most about 300 bytes (see vs_mask_url). Throws only std::bad_alloc.
 */
std::string mask_url(const std::string &url);

/* A parsed "Content-Range: bytes FIRST-LAST/TOTAL" (TOTAL may be "*"), or "bytes * /TOTAL". */
struct ContentRange
{
	bool		valid = false;
	bool		unsatisfied = false;	/* "bytes * /TOTAL": no range, only the total */
	long long	first = -1;
	long long	last = -1;
	long long	total = -1;			/* -1 when "*" */
};

/* Parses a Content-Range header value; valid is false when it is not of those forms. */
ContentRange parse_content_range(const std::string &value) noexcept;

/* Parses a whole decimal Content-Length value (digits only, trimmed); -1 when it is not one. */
long long	parse_content_length(const std::string &value) noexcept;

}								/* namespace vibescaling */

#endif
