/*
 * text_util.cpp: UTF-8 repair and truncation, secret redaction,
 * percent-encoding.
 */
#include "text_util.hpp"

namespace vibescaling {

namespace {

/* True for a UTF-8 continuation byte within [lo, hi]. */
bool
in_range(unsigned char b, unsigned char lo, unsigned char hi) noexcept
{
	return b >= lo && b <= hi;
}

/* U+FFFD REPLACEMENT CHARACTER, UTF-8 encoded. */
const char kReplacement[] = "\xEF\xBF\xBD";

}								/* namespace */

/* Length of the valid UTF-8 sequence starting at p (n bytes available), 0 if invalid. */
std::size_t
utf8_sequence_length(const unsigned char *p, std::size_t n) noexcept
{
	if (n == 0)
		return 0;
	unsigned char b0 = p[0];

	if (b0 < 0x80)
		return 1;
	/* Strict RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF. */
	if (in_range(b0, 0xC2, 0xDF))
		return (n >= 2 && in_range(p[1], 0x80, 0xBF)) ? 2 : 0;
	if (in_range(b0, 0xE0, 0xEF))
	{
		if (n < 3)
			return 0;
		unsigned char lo = (b0 == 0xE0) ? 0xA0 : 0x80;
		unsigned char hi = (b0 == 0xED) ? 0x9F : 0xBF;

		return (in_range(p[1], lo, hi) && in_range(p[2], 0x80, 0xBF)) ? 3 : 0;
	}
	if (in_range(b0, 0xF0, 0xF4))
	{
		if (n < 4)
			return 0;
		unsigned char lo = (b0 == 0xF0) ? 0x90 : 0x80;
		unsigned char hi = (b0 == 0xF4) ? 0x8F : 0xBF;

		return (in_range(p[1], lo, hi) && in_range(p[2], 0x80, 0xBF) &&
				in_range(p[3], 0x80, 0xBF)) ? 4 : 0;
	}
	return 0;
}

/* Copies at most max_bytes of (p, n) as valid, NUL-free UTF-8; see the header. */
std::string
utf8_sanitize(const char *p, std::size_t n, std::size_t max_bytes, bool flatten_controls)
{
	std::string out;
	const unsigned char *u = reinterpret_cast<const unsigned char *>(p);
	std::size_t i = 0;

	if (p == nullptr)
		return out;
	while (i < n)
	{
		std::size_t len = utf8_sequence_length(u + i, n - i);
		const char *piece = p + i;
		std::size_t piece_len = len;

		if (len == 0 || u[i] == 0)
		{
			/* Postgres text cannot hold NUL or invalid UTF-8. */
			piece = kReplacement;
			piece_len = sizeof(kReplacement) - 1;
			len = 1;
		}
		else if (len == 1 && flatten_controls && (u[i] < 0x20 || u[i] == 0x7F))
		{
			piece = " ";
			piece_len = 1;
		}
		if (max_bytes != std::string::npos && out.size() + piece_len > max_bytes)
			break;
		out.append(piece, piece_len);
		i += len;
	}
	if (i < n)
		out += "...";
	return out;
}

/* Replaces every occurrence of secret in text by "[redacted]" (no-op for an empty secret). */
std::string
redact(std::string text, const std::string &secret)
{
	if (secret.empty())
		return text;
	static const std::string mask = "[redacted]";
	std::size_t pos = 0;

	while ((pos = text.find(secret, pos)) != std::string::npos)
	{
		text.replace(pos, secret.size(), mask);
		pos += mask.size();
	}
	return text;
}

/* RFC 3986 percent-encoding; see the header. */
std::string
percent_encode(const std::string &value)
{
	static const char kHex[] = "0123456789ABCDEF";
	std::string out;

	out.reserve(value.size() * 3);
	for (unsigned char c : value)
	{
		bool		unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';

		if (unreserved)
			out += static_cast<char>(c);
		else
		{
			out += '%';
			out += kHex[c >> 4];
			out += kHex[c & 0x0F];
		}
	}
	return out;
}

}								/* namespace vibescaling */
