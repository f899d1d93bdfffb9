/*
 * secrets.cpp: secret collection and redaction for error messages.
 */
#include "secrets.hpp"

#include "json_raii.hpp"
#include "text_util.hpp"

#include <algorithm>

namespace vibescaling {

namespace {

/* Options whose values are secrets (see vs_core.h). */
const char *const kSecretOptions[] = {
	"client_secret", "code", "code_verifier", "refresh_token", "token",
};

/* A tail this long that starts a secret is masked in a truncated message. */
constexpr std::size_t kMinSecretPrefix = 4;

/* Adds s to forms unless empty or already there. */
void
add_form(std::vector<std::string> &forms, const std::string &s)
{
	if (!s.empty() && std::find(forms.begin(), forms.end(), s) == forms.end())
		forms.push_back(s);
}

/* s as the inside of a JSON string with the given json_dumps flags, "" when not UTF-8. */
std::string
json_escaped(const std::string &s, std::size_t flags)
{
	json_t	   *raw = json_stringn(s.data(), s.size());

	if (raw == nullptr)
		return std::string();	/* invalid UTF-8: no JSON encoder would emit it */
	JsonPtr		str(raw);
	std::string quoted = json_dump(str.get(), flags | JSON_ENCODE_ANY);

	return quoted.size() >= 2 ? quoted.substr(1, quoted.size() - 2) : std::string();
}

/* s with the hex digits of its \uXXXX escapes in lower case (jansson writes upper, Python lower). */
std::string
lower_unicode_escapes(std::string s)
{
	std::size_t i = 0;

	while (i < s.size())
	{
		if (s[i] != '\\')
		{
			i++;
			continue;
		}
		if (i + 6 <= s.size() && s[i + 1] == 'u')
		{
			for (std::size_t k = i + 2; k < i + 6; k++)
				if (s[k] >= 'A' && s[k] <= 'F')
					s[k] = static_cast<char>(s[k] - 'A' + 'a');
			i += 6;
		}
		else
			i += 2;				/* an escaped character: "\\u" is not a \u escape */
	}
	return s;
}

/* Every way secret may appear in a message. */
void
add_forms_of(std::vector<std::string> &forms, const std::string &secret)
{
	std::string pct = percent_encode(secret);
	std::string plus;

	add_form(forms, secret);
	add_form(forms, pct);
	/* HTML-form style: space as '+' */
	for (std::size_t i = 0; i < pct.size(); i++)
	{
		if (pct.compare(i, 3, "%20") == 0)
		{
			plus += '+';
			i += 2;
		}
		else
			plus += pct[i];
	}
	add_form(forms, plus);
	add_form(forms, json_escaped(secret, 0));
	add_form(forms, json_escaped(secret, JSON_ESCAPE_SLASH));
	for (std::size_t flags : {JSON_ENSURE_ASCII, JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH})
	{
		std::string ascii = json_escaped(secret, flags);

		add_form(forms, ascii);
		add_form(forms, lower_unicode_escapes(ascii));
	}
}

/* Replaces every occurrence of needle in text by the mask. */
void
mask_all(std::string &text, const std::string &needle)
{
	static const std::string mask = kSecretMask;
	std::size_t pos = 0;

	while ((pos = text.find(needle, pos)) != std::string::npos)
	{
		text.replace(pos, needle.size(), mask);
		pos += mask.size();
	}
}

/* In text cut short ("..." at end), masks a tail that is the start of needle. */
void
mask_cut_tail(std::string &text, const std::string &needle)
{
	static const std::string ellipsis = "...";

	if (text.size() < ellipsis.size() ||
		text.compare(text.size() - ellipsis.size(), ellipsis.size(), ellipsis) != 0)
		return;
	std::size_t end = text.size() - ellipsis.size();
	std::size_t longest = std::min(end, needle.size() - 1);

	for (std::size_t k = longest; k >= kMinSecretPrefix; k--)
		if (text.compare(end - k, k, needle, 0, k) == 0)
		{
			text.replace(end - k, k, kSecretMask);
			return;
		}
}

}								/* namespace */

/* The secret values of one call; see the header. */
std::vector<std::string>
secret_values(const char *options_json, const char *bearer_token)
{
	std::vector<std::string> out;

	if (bearer_token != nullptr && *bearer_token != '\0')
		out.emplace_back(bearer_token);
	if (options_json == nullptr || *options_json == '\0')
		return out;

	json_error_t err;
	JsonPtr		root(json_loads(options_json, 0, &err));

	if (!root || !json_is_object(root.get()))
		return out;
	for (const char *key : kSecretOptions)
	{
		const json_t *v = json_object_get(root.get(), key);

		if (json_is_string(v) && json_string_length(v) > 0)
		{
			std::string value(json_string_value(v), json_string_length(v));

			if (std::find(out.begin(), out.end(), value) == out.end())
				out.push_back(std::move(value));
		}
	}
	return out;
}

/* Replaces the secrets in text by "***"; see the header. */
std::string
redact_secrets(std::string text, const std::vector<std::string> &secrets)
{
	std::vector<std::string> forms;

	for (const std::string &secret : secrets)
		if (!secret.empty())
			add_forms_of(forms, secret);
	/* Longest first: a secret inside another must not leave the rest of the longer one. */
	std::stable_sort(forms.begin(), forms.end(),
					 [](const std::string &a, const std::string &b) { return a.size() > b.size(); });
	for (const std::string &form : forms)
		mask_all(text, form);
	for (const std::string &form : forms)
		mask_cut_tail(text, form);
	return text;
}

}								/* namespace vibescaling */
