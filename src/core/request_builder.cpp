/*
 * request_builder.cpp: turns the flat options object SQL passes into the
 * body of each TikTok endpoint (see docs/tiktok-api.md): JSON for
 * the publish endpoints, an application/x-www-form-urlencoded form for
 * OAuth, nothing for user_info and user_stats (GETs).
 *
 * A JSON null option counts as absent, so SQL can pass NULL for "not set".
 * Output key order is fixed (insertion order) so bodies are stable strings.
 * Error messages name options, never their values (they may be secrets).
 */
#include "request_builder.hpp"

#include <cstring>
#include <new>

#include "endpoints.hpp"
#include "json_raii.hpp"
#include "text_util.hpp"

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
	{
		/* jansson quotes the text "near" the error, which may be part of a secret. */
		std::string what = err.text;
		std::size_t near = what.find(" near ");

		if (near != std::string::npos)
			what.erase(near);
		throw OptionsError("options are not valid JSON: " + what + " (line " +
						   std::to_string(err.line) + ", column " +
						   std::to_string(err.column) + ")");
	}
	if (!json_is_object(root.get()))
		throw OptionsError("options must be a JSON object");
	return root;
}

/* A required integer option, at least min. */
json_t *
req_integer(const Options &o, const char *key, json_int_t min)
{
	json_t	   *v = get(o, key);

	if (v == nullptr || !json_is_integer(v) || json_integer_value(v) < min)
		fail(o, key, min > 0 ? "is required (a positive integer)" :
			 "is required (a non-negative integer)");
	return v;
}

/* An optional integer option, at least min (nullptr when absent). */
json_t *
opt_integer(const Options &o, const char *key, json_int_t min)
{
	json_t	   *v = get(o, key);

	if (v != nullptr && (!json_is_integer(v) || json_integer_value(v) < min))
		fail(o, key, min > 0 ? "must be a positive integer" : "must be a non-negative integer");
	return v;
}

/* An optional boolean option, nullptr when absent (sent only when given). */
json_t *
opt_present_bool(const Options &o, const char *key)
{
	json_t	   *v = get(o, key);

	if (v != nullptr && !json_is_boolean(v))
		fail(o, key, "must be true or false");
	return v;
}

/* True when options ask for FILE_UPLOAD; "source" absent means PULL_FROM_URL. */
bool
file_upload_source(const Options &o)
{
	json_t	   *source = opt_string(o, "source");

	if (source == nullptr)
		return false;
	std::string s = json_string_value(source);

	if (s == "FILE_UPLOAD")
		return true;
	if (s != "PULL_FROM_URL")
		fail(o, "source", "must be \"PULL_FROM_URL\" or \"FILE_UPLOAD\"");
	return false;
}

/*
 * The source_info of a video init: {"source":"PULL_FROM_URL","video_url":...}
 * (TikTok fetches the video itself), or with "source":"FILE_UPLOAD"
 * {"source","video_size","chunk_size","total_chunk_count"} (we PUT the
 * chunks to the upload_url of the reply). The three sizes must be
 * consistent (total_chunk_count = floor(video_size / chunk_size), see
 * vs_plan_chunks) or TikTok refuses the init.
 */
JsonPtr
video_source(const Options &o)
{
	JsonPtr		source = new_json_object();

	if (!file_upload_source(o))
	{
		json_put_new(source.get(), "source", json_string("PULL_FROM_URL"));
		json_put(source.get(), "video_url", req_string(o, "video_url"));
		return source;
	}

	json_t	   *video_size = req_integer(o, "video_size", 1);
	json_t	   *chunk_size = req_integer(o, "chunk_size", 1);
	json_t	   *total_chunk_count = req_integer(o, "total_chunk_count", 1);
	json_int_t	size = json_integer_value(video_size);
	json_int_t	chunk = json_integer_value(chunk_size);

	if (chunk > size)
		fail(o, "chunk_size", "must not exceed video_size");
	if (json_integer_value(total_chunk_count) != size / chunk)
		fail(o, "total_chunk_count", "must be floor(video_size / chunk_size)");
	json_put_new(source.get(), "source", json_string("FILE_UPLOAD"));
	json_put(source.get(), "video_size", video_size);
	json_put(source.get(), "chunk_size", chunk_size);
	json_put(source.get(), "total_chunk_count", total_chunk_count);
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

	/* Sent only when given: TikTok's defaults apply otherwise. */
	json_t	   *cover_ms = opt_integer(o, "video_cover_timestamp_ms", 0);
	json_t	   *is_aigc = opt_present_bool(o, "is_aigc");

	if (cover_ms != nullptr)
		json_put(post_info.get(), "video_cover_timestamp_ms", cover_ms);
	if (is_aigc != nullptr)
		json_put(post_info.get(), "is_aigc", is_aigc);
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

/*
 * Body of video/list: {"max_count": 1..20 (default 20), "cursor"} (cursor:
 * TikTok's, from the previous page, an epoch in milliseconds).
 */
JsonPtr
video_list_body(const Options &o)
{
	JsonPtr		body = new_json_object();
	json_t	   *max_count = opt_integer(o, "max_count", 1);
	json_t	   *cursor = opt_integer(o, "cursor", 0);

	if (max_count != nullptr && json_integer_value(max_count) > 20)
		fail(o, "max_count", "must be at most 20 (TikTok's page size)");
	if (max_count != nullptr)
		json_put(body.get(), "max_count", max_count);
	else
		json_put_new(body.get(), "max_count", json_integer(20));
	if (cursor != nullptr)
		json_put(body.get(), "cursor", cursor);
	return body;
}

/*
 * Body of video/query: {"filters": {"video_ids": [...]}} from options'
 * "video_ids", 1 to 20 ids, each a string of digits (19-digit ids must not
 * pass through a double).
 */
JsonPtr
video_query_body(const Options &o)
{
	json_t	   *ids = get(o, "video_ids");
	JsonPtr		list = json_take(json_array());
	JsonPtr		filters = new_json_object();
	JsonPtr		body = new_json_object();
	size_t		i;
	json_t	   *id;

	if (!json_is_array(ids) || json_array_size(ids) < 1 || json_array_size(ids) > 20)
		fail(o, "video_ids", "must be an array of 1 to 20 video ids");
	json_array_foreach(ids, i, id)
	{
		const char *text = json_string_value(id);

		if (text == nullptr || *text == '\0' || std::strlen(text) > 20 ||
			std::strspn(text, "0123456789") != std::strlen(text))
			fail(o, "video_ids", "must hold video ids as strings of digits");
		if (json_array_append(list.get(), id) != 0)
			throw std::bad_alloc();
	}
	json_put(filters.get(), "video_ids", list.get());
	json_put(body.get(), "filters", filters.get());
	return body;
}

/* An application/x-www-form-urlencoded body built field by field, in order. */
class FormBody
{
public:
	/* Appends key=value, the value percent-encoded (RFC 3986). */
	void add(const char *key, const json_t *string_value)
	{
		if (!text_.empty())
			text_ += '&';
		text_ += key;
		text_ += '=';
		text_ += percent_encode(std::string(json_string_value(string_value),
											json_string_length(string_value)));
	}

	const std::string &text() const { return text_; }

private:
	std::string text_;
};

/* Body of oauth/token: the code exchange or the refresh, by grant_type. */
std::string
oauth_token_body(const Options &o)
{
	json_t	   *client_key = req_string(o, "client_key");
	json_t	   *client_secret = req_string(o, "client_secret");
	json_t	   *grant_type = req_string(o, "grant_type");
	std::string grant = json_string_value(grant_type);
	FormBody	form;

	form.add("client_key", client_key);
	form.add("client_secret", client_secret);
	if (grant == "authorization_code")
	{
		json_t	   *code = req_string(o, "code");
		json_t	   *redirect_uri = req_string(o, "redirect_uri");
		json_t	   *code_verifier = opt_string(o, "code_verifier");

		form.add("code", code);
		form.add("grant_type", grant_type);
		form.add("redirect_uri", redirect_uri);
		/* PKCE (desktop/mobile flows): sent only when the caller has one. */
		if (code_verifier != nullptr && json_string_length(code_verifier) > 0)
			form.add("code_verifier", code_verifier);
	}
	else if (grant == "refresh_token")
	{
		json_t	   *refresh_token = req_string(o, "refresh_token");

		form.add("grant_type", grant_type);
		form.add("refresh_token", refresh_token);
	}
	else
		fail(o, "grant_type", "must be \"authorization_code\" or \"refresh_token\"");
	return form.text();
}

/* Body of oauth/revoke: the token to revoke. */
std::string
oauth_revoke_body(const Options &o)
{
	json_t	   *client_key = req_string(o, "client_key");
	json_t	   *client_secret = req_string(o, "client_secret");
	json_t	   *token = req_string(o, "token");
	FormBody	form;

	form.add("client_key", client_key);
	form.add("client_secret", client_secret);
	form.add("token", token);
	return form.text();
}

}								/* namespace */

/* The body for ep built from options_json; see the header. */
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
		case VS_EP_OAUTH_TOKEN:
			return oauth_token_body(o);
		case VS_EP_OAUTH_REVOKE:
			return oauth_revoke_body(o);
		case VS_EP_VIDEO_LIST:
			body = video_list_body(o);
			break;
		case VS_EP_VIDEO_QUERY:
			body = video_query_body(o);
			break;
		case VS_EP_USER_INFO:
		case VS_EP_USER_STATS:
			return std::string();	/* a GET: the fields are in the path's query */
		default:
			throw OptionsError("unknown endpoint");
	}
	return json_dump(body.get());
}

}								/* namespace vibescaling */
