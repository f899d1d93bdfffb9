/*
 * json_out.cpp: builds the log and result JSON documents.
 *
 * duration_ms is rounded to microseconds and printed with 15 significant
 * digits (jansson's default 17 prints 12.345 as 12.345000000000001). The
 * "data" object keeps jansson's exact default, so it is spliced in.
 */
#include "json_out.hpp"

#include "json_raii.hpp"

#include <cmath>

namespace vibescaling {

namespace {

/* Flags for the outer documents: compact, ordered, tidy reals. */
constexpr std::size_t kOuterFlags = kDumpFlags | JSON_REAL_PRECISION(15);

/* A JSON string, or JSON null for a NULL pointer. */
JsonPtr
text_or_null(const char *s)
{
	return s ? json_text(s) : json_take(json_null());
}

/* duration_ms rounded to 3 decimals (0 when negative or not finite). */
JsonPtr
duration(double ms)
{
	if (!std::isfinite(ms) || ms < 0)
		ms = 0;
	return json_take(json_real(std::round(ms * 1000.0) / 1000.0));
}

/* The stored data_json as an object ({} when absent, invalid or not an object). */
JsonPtr
data_object(const char *data_json)
{
	if (data_json != nullptr)
	{
		json_error_t err;
		JsonPtr		data(json_loads(data_json, 0, &err));

		if (data && json_is_object(data.get()))
			return data;
	}
	return new_json_object();
}

}								/* namespace */

/* The dispatch_logs object for one call; see the header. */
std::string
dispatch_log_json(const vs_call_result &r, const char *post_id, const char *account_id,
				  const char *trigger, const char *endpoint)
{
	JsonPtr		o = new_json_object();

	json_put_new(o.get(), "post_id", text_or_null(post_id).release());
	json_put_new(o.get(), "tiktok_account_id", text_or_null(account_id).release());
	json_put_new(o.get(), "trigger", text_or_null(trigger).release());
	json_put_new(o.get(), "endpoint", text_or_null(endpoint).release());
	json_put_new(o.get(), "http_status", json_integer(r.http_status));
	json_put_new(o.get(), "outcome", json_string(r.ok ? "success" : "failure"));
	json_put_new(o.get(), "error_code", json_text(r.error_code).release());
	json_put_new(o.get(), "error_message", json_text(r.error_message).release());
	json_put_new(o.get(), "log_id", json_text(r.log_id).release());
	json_put_new(o.get(), "publish_id", json_text(r.publish_id).release());
	json_put_new(o.get(), "duration_ms", duration(r.duration_ms).release());
	json_put_new(o.get(), "outcome_unknown", json_boolean(r.outcome_unknown));
	/* Kept so that the next call waits for it, even if the caller's records roll back. */
	json_put_new(o.get(), "retry_after",
				 r.retry_after_s >= 0 ? json_integer(r.retry_after_s) : json_null());
	return json_dump(o.get(), kOuterFlags);
}

/* The object vibescaling._tiktok_call returns; see the header. */
std::string
result_json(const vs_call_result &r)
{
	JsonPtr		o = new_json_object();

	json_put_new(o.get(), "ok", json_boolean(r.ok));
	json_put_new(o.get(), "http_status", json_integer(r.http_status));
	json_put_new(o.get(), "error_code", json_text(r.error_code).release());
	json_put_new(o.get(), "error_message", json_text(r.error_message).release());
	json_put_new(o.get(), "log_id", json_text(r.log_id).release());
	json_put_new(o.get(), "publish_id", json_text(r.publish_id).release());
	json_put_new(o.get(), "data", json_null());	/* placeholder, spliced below */
	json_put_new(o.get(), "sqlstate", json_text(r.sqlstate).release());
	json_put_new(o.get(), "duration_ms", duration(r.duration_ms).release());
	json_put_new(o.get(), "retryable", json_boolean(r.retryable));
	json_put_new(o.get(), "outcome_unknown", json_boolean(r.outcome_unknown));
	json_put_new(o.get(), "retry_after",
				 r.retry_after_s >= 0 ? json_integer(r.retry_after_s) : json_null());

	std::string outer = json_dump(o.get(), kOuterFlags);
	std::string data = json_dump(data_object(r.data_json).get());

	/* Inside JSON strings a quote is always escaped, so this text only occurs as our key. */
	static const std::string placeholder = "\"data\":null";
	std::size_t pos = outer.find(placeholder);

	outer.replace(pos, placeholder.size(), "\"data\":" + data);
	return outer;
}

}								/* namespace vibescaling */
