/*
 * transfer_util.cpp: URL checks and redaction, Content-Range parsing.
 */
#include "transfer_util.hpp"

#include "secrets.hpp"
#include "text_util.hpp"

#include <algorithm>
#include <climits>
#include <initializer_list>

namespace vibescaling {

namespace {

/* Query values shorter than this are not credentials; masking them would garble messages. */
constexpr std::size_t kMinQuerySecret = 8;

/* Value of one hex digit, -1 if c is not one. */
int
hex_value(char c) noexcept
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* s with %XX decoded and '+' as a space (form style); invalid escapes stay as they are. */
std::string
percent_decode(const std::string &s)
{
	std::string out;

	out.reserve(s.size());
	for (std::size_t i = 0; i < s.size(); i++)
	{
		if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
			hex_value(s[i + 2]) >= 0)
		{
			out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
			i += 2;
		}
		else if (s[i] == '+')
			out += ' ';
		else
			out += s[i];
	}
	return out;
}

/* Adds s to list unless empty or already there. */
void
add_unique(std::vector<std::string> &list, const std::string &s)
{
	if (!s.empty() && std::find(list.begin(), list.end(), s) == list.end())
		list.push_back(s);
}

/* Skips spaces and tabs in value from *pos. */
void
skip_blanks(const std::string &value, std::size_t *pos) noexcept
{
	while (*pos < value.size() && (value[*pos] == ' ' || value[*pos] == '\t'))
		(*pos)++;
}

/* Reads a non-negative decimal at *pos (no sign, no overflow); false when none. */
bool
read_number(const std::string &value, std::size_t *pos, long long *out) noexcept
{
	std::size_t start = *pos;
	long long	n = 0;

	while (*pos < value.size() && value[*pos] >= '0' && value[*pos] <= '9')
	{
		int			d = value[*pos] - '0';

		if (n > (LLONG_MAX - d) / 10)
			return false;
		n = n * 10 + d;
		(*pos)++;
	}
	*out = n;
	return *pos > start;
}

}								/* namespace */

/* True when s holds a control byte. */
bool
has_control_bytes(const std::string &s) noexcept
{
	for (unsigned char c : s)
		if (c < 0x20 || c == 0x7F)
			return true;
	return false;
}

/* True for an http:// or https:// URL without control bytes. */
bool
is_http_url(const std::string &url) noexcept
{
	if (has_control_bytes(url))
		return false;
	for (const char *scheme : {"http://", "https://"})
	{
		std::size_t n = std::char_traits<char>::length(scheme);

		if (url.size() > n &&
			std::equal(scheme, scheme + n, url.begin(), [](char a, char b) {
				return a == ((b >= 'A' && b <= 'Z') ? static_cast<char>(b - 'A' + 'a') : b);
			}))
			return true;
	}
	return false;
}

/* The query string and long query values of url, raw and decoded. */
std::vector<std::string>
url_secrets(const std::string &url)
{
	std::vector<std::string> out;
	std::size_t q = url.find('?');

	if (q == std::string::npos)
		return out;
	std::size_t end = url.find('#', q);
	std::string query = url.substr(q + 1, end == std::string::npos ? std::string::npos : end - q - 1);

	add_unique(out, query);
	add_unique(out, percent_decode(query));
	std::size_t pos = 0;

	while (pos <= query.size())
	{
		std::size_t amp = query.find('&', pos);
		std::string pair = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
		std::size_t eq = pair.find('=');
		std::string value = eq == std::string::npos ? pair : pair.substr(eq + 1);

		if (value.size() >= kMinQuerySecret)
		{
			add_unique(out, value);
			add_unique(out, percent_decode(value));
		}
		if (amp == std::string::npos)
			break;
		pos = amp + 1;
	}
	return out;
}

/* text with url's secrets masked. */
std::string
redact_url(std::string text, const std::string &url)
{
	return redact_secrets(std::move(text), url_secrets(url));
}

/* url without its userinfo, query string and fragment, for messages. */
std::string
mask_url(const std::string &url)
{
	/* The authority runs from "//" to the first '/', '?' or '#'; "user:pw@" is its start. */
	std::size_t scheme_end = url.find("://");
	std::size_t auth_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
	std::size_t auth_end = url.find_first_of("/?#", auth_start);
	std::size_t query = url.find_first_of("?#", auth_start);
	std::string out = url.substr(0, auth_start);
	std::string authority = url.substr(auth_start, auth_end == std::string::npos ? std::string::npos
									   : auth_end - auth_start);
	std::size_t at = authority.rfind('@');

	out += at == std::string::npos ? authority : authority.substr(at + 1);
	if (auth_end != std::string::npos)
		out += url.substr(auth_end, query == std::string::npos ? std::string::npos : query - auth_end);
	out = utf8_sanitize(out.data(), out.size(), 300, true);
	if (query != std::string::npos && url[query] == '?')
		out += "?\xE2\x80\xA6";
	return out;
}

/* Parses "bytes FIRST-LAST/TOTAL" or "bytes * /TOTAL". */
ContentRange
parse_content_range(const std::string &value) noexcept
{
	ContentRange r;
	std::size_t pos = 0;

	skip_blanks(value, &pos);
	if (value.compare(pos, 5, "bytes") != 0)
		return r;
	pos += 5;
	if (pos >= value.size() || (value[pos] != ' ' && value[pos] != '\t'))
		return r;
	skip_blanks(value, &pos);
	if (pos < value.size() && value[pos] == '*')
	{
		pos++;
		r.unsatisfied = true;
	}
	else
	{
		if (!read_number(value, &pos, &r.first) || pos >= value.size() || value[pos] != '-')
			return r;
		pos++;
		if (!read_number(value, &pos, &r.last) || r.last < r.first)
			return r;
	}
	if (pos >= value.size() || value[pos] != '/')
		return r;
	pos++;
	if (pos < value.size() && value[pos] == '*' && !r.unsatisfied)
	{
		pos++;
		r.total = -1;
	}
	else if (!read_number(value, &pos, &r.total) || (!r.unsatisfied && r.last >= r.total))
		return r;
	skip_blanks(value, &pos);
	if (pos != value.size())
		return r;
	if (r.unsatisfied)
		r.first = r.last = -1;
	r.valid = true;
	return r;
}

/* Parses a Content-Length value; -1 when it is not a plain decimal. */
long long
parse_content_length(const std::string &value) noexcept
{
	std::size_t pos = 0;
	long long	n = -1;

	skip_blanks(value, &pos);
	if (!read_number(value, &pos, &n))
		return -1;
	skip_blanks(value, &pos);
	return pos == value.size() ? n : -1;
}

}								/* namespace vibescaling */
