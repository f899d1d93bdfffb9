/*
 * request_builder.cpp: turns the flat options object SQL passes into the
 * JSON body of each TikTok endpoint (see /work/shared/tiktok-api.md).
 *
 * A JSON null option counts as absent, so SQL can pass NULL for "not set".
 * Output key order is fixed (insertion order) so bodies are stable strings.
 */
#include "request_builder.hpp"

#include "endpoints.hpp"
#include "json_raii.hpp"

namespace vibescaling {

namespace {

/* The options object, with the endpoint name for error messages. */
struct Options
{
	json_t	   *obj;
	const char *endpoint;
};

/* The option's value, or nullptr when absent or JSON null. */
json_t *
get(const Options &o, const char *key)
{
	json_t	   *v = json_object_get(o.obj, key);

	return (v != nullptr && !json_is_null(v)) ? v : nullptr;
}

/* Throws OptionsError with a message naming the option and endpoint. */
[[noreturn]] void
fail(const Options &o, const char *key, const char *what)
{
	throw OptionsError(std::string("option \"") + key + "\" " + what +
					   " for " + o.endpoint);
}

/* An optional string option (nullptr when absent). */
json_t *
opt_string(const Options &o, const char *key)
{
	json_t	   *v = get(o, key);

	if (v != nullptr && !json_is_string(v))
		fail(o, key, "must be a string");
	return v;
}

/* A required, non-empty string option. */
json_t *
req_string(const Options &o, const char *key)
{
	json_t	   *v = opt_string(o, key);

	if (v == nullptr || json_string_length(v) == 0)
		fail(o, key, "is required (a non-empty string)");
	return v;
}

/* A boolean option, false when absent (TikTok: interaction toggles start unchecked). */
json_t *
opt_bool(const Options &o, const char *key)
{
	json_t	   *v = get(o, key);

	if (v == nullptr)
		return json_false();	/* a singleton: no reference to drop */
	if (!json_is_boolean(v))
		fail(o, key, "must be true or false");
	return v;
}

/* Parses options_json; it must be an object. */
JsonPtr
parse_options(const char *options_json)
{
	if (options_json == nullptr || *options_json == '\0')
		return new_json_object();
	json_error_t err;
	JsonPtr		root(json_loads(options_json, 0, &err));

	if (!root)
		throw OptionsError(std::string("options are not valid JSON: ") + err.text);
	if (!json_is_object(root.get()))
		throw OptionsError("options must be a JSON object");
	return root;
}

/* {"source":"PULL_FROM_URL","video_url":...}: TikTok fetches the video itself. */
JsonPtr
video_source(const Options &o)
{
	JsonPtr		source = new_json_object();

	json_put_new(source.get(), "source", json_string("PULL_FROM_URL"));
	json_put(source.get(), "video_url", req_string(o, "video_url"));
	return source;
}

/* Body of video/init (Direct Post of a video). */
JsonPtr
video_init_body(const Options &o)
{
	JsonPtr		body = new_json_object();
	JsonPtr		post_info = new_json_object();
	json_t	   *caption = opt_string(o, "caption");

	if (caption != nullptr)
		json_put(post_info.get(), "title", caption);
	json_put(post_info.get(), "privacy_level", req_string(o, "privacy_level"));
	for (const char *key : {"disable_duet", "disable_comment", "disable_stitch",
							"brand_content_toggle", "brand_organic_toggle"})
		json_put(post_info.get(), key, opt_bool(o, key));
	json_put(body.get(), "post_info", post_info.get());
	json_put(body.get(), "source_info", video_source(o).get());
	return body;
}

/* Body of inbox/video/init: source only (whether it takes a title is undocumented). */
JsonPtr
inbox_video_init_body(const Options &o)
{
	JsonPtr		body = new_json_object();

	json_put(body.get(), "source_info", video_source(o).get());
	return body;
}

/* Body of content/init (photo post, direct or to the inbox). */
JsonPtr
content_init_body(const Options &o)
{
	json_t	   *mode = opt_string(o, "mode");
	bool		direct = true;

	if (mode != nullptr)
	{
		std::string m = json_string_value(mode);

		if (m == "inbox")
			direct = false;
		else if (m != "direct")
			fail(o, "mode", "must be \"direct\" or \"inbox\"");
	}

	json_t	   *photos = get(o, "photo_urls");

	if (photos == nullptr || !json_is_array(photos) || json_array_size(photos) == 0)
		fail(o, "photo_urls", "must be a non-empty array of strings");
	for (std::size_t i = 0; i < json_array_size(photos); i++)
		if (!json_is_string(json_array_get(photos, i)))
			fail(o, "photo_urls", "must be a non-empty array of strings");

	json_int_t	cover = 0;
	json_t	   *cover_v = get(o, "photo_cover_index");

	if (cover_v != nullptr)
	{
		if (!json_is_integer(cover_v) || json_integer_value(cover_v) < 0)
			fail(o, "photo_cover_index", "must be a non-negative integer");
		cover = json_integer_value(cover_v);
	}

	JsonPtr		post_info = new_json_object();
	json_t	   *title = opt_string(o, "title");
	json_t	   *caption = opt_string(o, "caption");

	if (title != nullptr)
		json_put(post_info.get(), "title", title);
	if (caption != nullptr)
		json_put(post_info.get(), "description", caption);
	if (direct)
	{
		/* MEDIA_UPLOAD: the creator picks privacy and toggles in the app. */
		json_put(post_info.get(), "privacy_level", req_string(o, "privacy_level"));
		json_put(post_info.get(), "disable_comment", opt_bool(o, "disable_comment"));
		json_put(post_info.get(), "auto_add_music", json_true());
		json_put(post_info.get(), "brand_content_toggle", opt_bool(o, "brand_content_toggle"));
		json_put(post_info.get(), "brand_organic_toggle", opt_bool(o, "brand_organic_toggle"));
	}

	JsonPtr		source = new_json_object();

	json_put_new(source.get(), "source", json_string("PULL_FROM_URL"));
	json_put_new(source.get(), "photo_cover_index", json_integer(cover));
	json_put(source.get(), "photo_images", photos);

	JsonPtr		body = new_json_object();

	json_put(body.get(), "post_info", post_info.get());
	json_put(body.get(), "source_info", source.get());
	json_put_new(body.get(), "post_mode", json_string(direct ? "DIRECT_POST" : "MEDIA_UPLOAD"));
	json_put_new(body.get(), "media_type", json_string("PHOTO"));
	return body;
}

/* Body of status/fetch. */
JsonPtr
status_fetch_body(const Options &o)
{
	JsonPtr		body = new_json_object();

	json_put(body.get(), "publish_id", req_string(o, "publish_id"));
	return body;
}

}								/* namespace */

/* The compact JSON body for ep built from options_json; see the header. */
std::string
build_request_body(vs_endpoint ep, const char *options_json)
{
	if (ep == VS_EP_UNKNOWN || *endpoint_name(ep) == '\0')
		throw OptionsError("unknown endpoint");

	JsonPtr		root = parse_options(options_json);
	Options		o{root.get(), endpoint_name(ep)};
	JsonPtr		body;

	switch (ep)
	{
		case VS_EP_CREATOR_INFO:
			body = new_json_object();	/* creator_info takes an empty object */
			break;
		case VS_EP_VIDEO_INIT:
			body = video_init_body(o);
			break;
		case VS_EP_INBOX_VIDEO_INIT:
			body = inbox_video_init_body(o);
			break;
		case VS_EP_CONTENT_INIT:
			body = content_init_body(o);
			break;
		case VS_EP_STATUS_FETCH:
			body = status_fetch_body(o);
			break;
		default:
			throw OptionsError("unknown endpoint");
	}
	return json_dump(body.get());
}

}								/* namespace vibescaling */
