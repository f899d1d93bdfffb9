/*
 * media_facts_json.cpp: media facts to and from their JSON object (see
 * media_facts_json.hpp), with jansson.
 */
#include "media_facts_json.hpp"

#include "json_raii.hpp"

#include <climits>
#include <cmath>

namespace vibescaling {

namespace {

/* A string, or null for "". */
JsonPtr
text_or_null(const std::string &s)
{
	return s.empty() ? json_take(json_null()) : json_text(s.c_str());
}

/* An integer, or null when below min_known. */
JsonPtr
integer_or_null(long long value, long long min_known)
{
	return json_take(value < min_known ? json_null() : json_integer(value));
}

/* The member key of object as text ("" when null or absent); false when of another type. */
bool
read_text(const json_t *object, const char *key, std::string *out, std::string *error)
{
	const json_t *v = json_object_get(object, key);

	if (v == nullptr || json_is_null(v))
		return true;
	if (!json_is_string(v))
	{
		*error = std::string("\"") + key + "\" must be a string or null";
		return false;
	}
	out->assign(json_string_value(v), json_string_length(v));
	return true;
}

/* The member key as an integer in [min, max] (unchanged when null or absent); false otherwise. */
bool
read_integer(const json_t *object, const char *key, long long min, long long max, long long *out,
			 std::string *error)
{
	const json_t *v = json_object_get(object, key);

	if (v == nullptr || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
	{
		*error = std::string("\"") + key + "\" must be an integer from " + std::to_string(min) + " to " +
			std::to_string(max) + ", or null";
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

}								/* namespace */

/* The JSON object of facts. */
std::string
facts_to_json(const MediaFacts &facts)
{
	JsonPtr		o = new_json_object();

	json_put(o.get(), "status", json_text(media_status_name(facts.status)).get());
	json_put(o.get(), "message", text_or_null(facts.message).get());
	json_put(o.get(), "container", text_or_null(facts.container).get());
	json_put(o.get(), "video_codec", text_or_null(facts.video_codec).get());
	json_put(o.get(), "duration_ms", integer_or_null(facts.duration_ms, 0).get());
	json_put_new(o.get(), "fps", facts.fps > 0 ? json_real(std::round(facts.fps * 1000) / 1000) : json_null());
	json_put(o.get(), "width", integer_or_null(facts.width, 1).get());
	json_put(o.get(), "height", integer_or_null(facts.height, 1).get());
	json_put_new(o.get(), "size_bytes", json_integer(facts.size_bytes));
	json_put_new(o.get(), "bytes_read", json_integer(facts.bytes_read));
	/* Ten significant digits: 29.97 stays 29.97 (the default 17 would print 29.969999999999999). */
	return json_dump(o.get(), kDumpFlags | JSON_REAL_PRECISION(10));
}

/* Facts from their JSON object. */
bool
facts_from_json(const char *json, MediaFacts *facts, std::string *error)
{
	json_error_t err;
	JsonPtr		root(json_loads(json != nullptr ? json : "", 0, &err));
	MediaFacts	f;
	std::string status;
	long long	width = 0;
	long long	height = 0;
	long long	size = -1;

	if (!root || !json_is_object(root.get()))
	{
		*error = "the facts must be a JSON object";
		return false;
	}

	const json_t *o = root.get();
	const json_t *fps = json_object_get(o, "fps");

	if (!read_text(o, "status", &status, error) || !read_text(o, "message", &f.message, error) ||
		!read_text(o, "container", &f.container, error) ||
		!read_text(o, "video_codec", &f.video_codec, error) ||
		!read_integer(o, "duration_ms", 0, LLONG_MAX, &f.duration_ms, error) ||
		!read_integer(o, "width", 0, INT_MAX, &width, error) ||
		!read_integer(o, "height", 0, INT_MAX, &height, error) ||
		!read_integer(o, "size_bytes", 0, LLONG_MAX, &size, error) ||
		!read_integer(o, "bytes_read", 0, LLONG_MAX, &f.bytes_read, error))
		return false;
	if (!media_status_from_name(status, &f.status))
	{
		*error = "\"status\" must be \"readable\", \"unreadable\" or \"incomplete\"";
		return false;
	}
	if (size < 0)
	{
		*error = "\"size_bytes\" is required";
		return false;
	}
	if (fps != nullptr && !json_is_null(fps))
	{
		if (!json_is_number(fps) || json_number_value(fps) <= 0 || !std::isfinite(json_number_value(fps)))
		{
			*error = "\"fps\" must be a positive number or null";
			return false;
		}
		f.fps = json_number_value(fps);
	}
	f.width = static_cast<int>(width);
	f.height = static_cast<int>(height);
	f.size_bytes = size;
	*facts = std::move(f);
	return true;
}

}								/* namespace vibescaling */
