/*
 * json_raii.cpp: jansson helpers that throw std::bad_alloc instead of
 * returning NULL.
 */
#include "json_raii.hpp"

#include "text_util.hpp"

#include <new>

namespace vibescaling {

/* Takes ownership of a new reference; throws std::bad_alloc when it is NULL. */
JsonPtr
json_take(json_t *fresh)
{
	if (fresh == nullptr)
		throw std::bad_alloc();
	return JsonPtr(fresh);
}

/* A new empty JSON object, made without naming json_object() (see the header). */
JsonPtr
new_json_object()
{
	return json_take(json_pack("{}"));
}

/* Stores a new reference under key (stolen even on failure); throws std::bad_alloc on failure. */
void
json_put_new(json_t *object, const char *key, json_t *fresh)
{
	/* json_object_set_new consumes fresh whatever happens, NULL included. */
	if (json_object_set_new(object, key, fresh) != 0)
		throw std::bad_alloc();
}

/* Stores a borrowed reference under key (adds a reference); throws std::bad_alloc on failure. */
void
json_put(json_t *object, const char *key, json_t *borrowed)
{
	if (json_object_set(object, key, borrowed) != 0)
		throw std::bad_alloc();
}

/* A jansson string from arbitrary bytes, invalid UTF-8 replaced by U+FFFD. */
JsonPtr
json_text(const char *s)
{
	if (s == nullptr)
		s = "";
	/* json_string refuses invalid UTF-8; caller-supplied text may contain it. */
	std::string clean = utf8_sanitize(s, std::char_traits<char>::length(s),
									  std::string::npos, false);
	return json_take(json_stringn(clean.data(), clean.size()));
}

/* Serializes a value with the given json_dumps flags; throws std::bad_alloc on failure. */
std::string
json_dump(const json_t *value, std::size_t flags)
{
	MallocText text(json_dumps(value, flags));
	if (!text)
		throw std::bad_alloc();
	return std::string(text.get());
}

}								/* namespace vibescaling */
