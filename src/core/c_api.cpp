/*
 * c_api.cpp: the extern "C" wall between the C++ core and its C callers
 * (the Postgres layer). Every function catches everything: no exception,
 * std::bad_alloc included, may unwind into C frames (Postgres would be left
 * in an undefined state).
 */
#include "vs_core.h"

#include "address_policy.hpp"
#include "c_result.hpp"
#include "call.hpp"
#include "call_many.hpp"
#include "chunk_plan.hpp"
#include "chunk_upload.hpp"
#include "curl_transfer.hpp"
#include "endpoints.hpp"
#include "error_map.hpp"
#include "json_out.hpp"
#include "multi_transport.hpp"
#include "range_fetch.hpp"
#include "reply_parser.hpp"
#include "request_builder.hpp"
#include "transfer_util.hpp"
#include "video_sniff.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <vector>

using namespace vibescaling;

namespace {

/* Stores a malloc'd copy of message in *error when the caller asked for it. */
void
set_error(char **error, const char *message) noexcept
{
	if (error != nullptr)
		*error = dup_text(message);
}

/* A malloc'd copy of s, or NULL when memory runs out. */
char *
dup_or_null(const std::string &s) noexcept
{
	char	   *p = static_cast<char *>(std::malloc(s.size() + 1));

	if (p != nullptr)
		std::memcpy(p, s.c_str(), s.size() + 1);
	return p;
}

/*
 * Runs an operation producing a CallOutcome into *out, turning every
 * exception into a failed result (oom_message when memory runs out).
 */
template <typename Operation>
void
fill_guarded(vs_call_result *out, const char *oom_message, Operation operation) noexcept
{
	bool		started = false;

	try
	{
		fill_c_result(operation(&started), out);
		return;
	}
	catch (const std::bad_alloc &)
	{
		fill_c_failure(out, "out_of_memory", oom_message, started);
	}
	catch (const std::exception &e)
	{
		fill_c_failure(out, "core_error", e.what(), started);
	}
	catch (...)
	{
		fill_c_failure(out, "core_error", "vibescaling: unexpected failure during the transfer",
					   started);
	}
}

/* Fills results[0..n) with the same core failure (started[i]: call i may have been sent). */
void
fill_all_failed(int n, vs_call_result *results, const bool *started, const char *code,
				const char *message) noexcept
{
	for (int i = 0; i < n; i++)
		fill_c_failure(&results[i], code, message, started[i]);
}

}								/* namespace */

extern "C" {

/* Maps a logical endpoint name to its enum; VS_EP_UNKNOWN when unknown. */
vs_endpoint
vs_endpoint_from_name(const char *name)
{
	return endpoint_from_name(name);
}

/* The URL path of an endpoint (static string, user_info's with its query), "" for VS_EP_UNKNOWN. */
const char *
vs_endpoint_path(vs_endpoint ep)
{
	return endpoint_path(ep);
}

/* The request body for ep, or NULL with *error set. */
char *
vs_build_request_body(vs_endpoint ep, const char *options_json, char **error)
{
	if (error != nullptr)
		*error = nullptr;
	try
	{
		char	   *body = dup_or_null(build_request_body(ep, options_json));

		if (body == nullptr)
			set_error(error, "out of memory");
		return body;
	}
	catch (const std::bad_alloc &)
	{
		set_error(error, "out of memory");
	}
	catch (const std::exception &e)
	{
		/* OptionsError lands here too: its message names the option. */
		set_error(error, e.what());
	}
	catch (...)
	{
		set_error(error, "unexpected failure while building the request body");
	}
	return nullptr;
}

/* One call to TikTok; always fills *out. */
void
vs_call(const vs_http_options *opt, vs_endpoint ep, const char *access_token,
		const char *options_json, vs_call_result *out)
{
	if (out == nullptr)
		return;
	bool		started = false;

	try
	{
		fill_c_result(perform_call(opt, ep, access_token, options_json, &started), out);
		return;
	}
	catch (const std::bad_alloc &)
	{
		fill_c_failure(out, "out_of_memory", "vibescaling: out of memory during the call",
					   started);
	}
	catch (const std::exception &e)
	{
		fill_c_failure(out, "core_error", e.what(), started);
	}
	catch (...)
	{
		fill_c_failure(out, "core_error", "vibescaling: unexpected failure during the call",
					   started);
	}
}

/* Many calls to TikTok at once over kept-alive connections; fills all n results. */
void
vs_call_many(const vs_http_options *opt, int max_concurrent, int n, const vs_call_spec *specs,
			 vs_call_result *results)
{
	if (n <= 0 || specs == nullptr || results == nullptr)
		return;

	/* Allocated outside the try: a failure report must know which calls may have been sent. */
	std::unique_ptr<bool[]> started(new (std::nothrow) bool[static_cast<std::size_t>(n)]());

	if (!started)
	{
		/* Nothing was sent: every call fails before it starts. */
		for (int i = 0; i < n; i++)
			fill_c_failure(&results[i], "out_of_memory",
						   "vibescaling: out of memory before the calls", false);
		return;
	}
	try
	{
		std::vector<CallOutcome> outcomes =
			perform_call_many(opt, max_concurrent, n, specs, started.get());

		for (int i = 0; i < n; i++)
			fill_c_result(outcomes[static_cast<std::size_t>(i)], &results[i]);
		return;
	}
	catch (const std::bad_alloc &)
	{
		fill_all_failed(n, results, started.get(), "out_of_memory",
						"vibescaling: out of memory during the calls");
	}
	catch (const std::exception &e)
	{
		fill_all_failed(n, results, started.get(), "core_error", e.what());
	}
	catch (...)
	{
		fill_all_failed(n, results, started.get(), "core_error",
						"vibescaling: unexpected failure during the calls");
	}
}

/* The connection pool's counters (vs_call_many and vs_call) since the process started. */
void
vs_get_pool_stats(vs_pool_stats *out)
{
	if (out == nullptr)
		return;
	PoolStats	s = pool_stats();

	out->transfers = s.transfers;
	out->connections_opened = s.connections_opened;
	out->connections_reused = s.connections_reused;
}

/* Parses a raw HTTP reply into *out; duration_ms is 0. */
void
vs_parse_reply(long http_status, const char *body, size_t body_len, vs_call_result *out)
{
	if (out == nullptr)
		return;
	try
	{
		fill_c_result(parse_reply(http_status, body, body_len), out);
		return;
	}
	catch (const std::bad_alloc &)
	{
		fill_c_failure(out, "out_of_memory", "vibescaling: out of memory parsing the reply",
					   false);
	}
	catch (const std::exception &e)
	{
		fill_c_failure(out, "core_error", e.what(), false);
	}
	catch (...)
	{
		fill_c_failure(out, "core_error", "vibescaling: unexpected failure parsing the reply",
					   false);
	}
	out->http_status = http_status;
}

/* Parses a raw HTTP reply of endpoint ep into *out; duration_ms is 0. */
void
vs_parse_endpoint_reply(vs_endpoint ep, long http_status, const char *body, size_t body_len,
						vs_call_result *out)
{
	if (out == nullptr)
		return;
	try
	{
		fill_c_result(parse_endpoint_reply(ep, http_status, body, body_len), out);
		return;
	}
	catch (const std::bad_alloc &)
	{
		fill_c_failure(out, "out_of_memory", "vibescaling: out of memory parsing the reply",
					   false);
	}
	catch (const std::exception &e)
	{
		fill_c_failure(out, "core_error", e.what(), false);
	}
	catch (...)
	{
		fill_c_failure(out, "core_error", "vibescaling: unexpected failure parsing the reply",
					   false);
	}
	out->http_status = http_status;
}

/* 1 for the init endpoints, which create a post on TikTok. */
int
vs_endpoint_creates_post(vs_endpoint ep)
{
	return endpoint_creates_post(ep) ? 1 : 0;
}

/* SQLSTATE for an error code and HTTP status (static string). */
const char *
vs_sqlstate_for(const char *error_code, long http_status)
{
	return sqlstate_for(error_code, http_status);
}

/* 1 when a failure with this code / HTTP status may be retried later. */
int
vs_is_retryable(const char *error_code, long http_status)
{
	return is_retryable(error_code, http_status) ? 1 : 0;
}

/* The dispatch_logs JSON for one call (malloc'd), NULL when memory runs out. */
char *
vs_dispatch_log_json(const vs_call_result *r, const char *post_id, const char *account_id,
					 const char *trigger, const char *endpoint)
{
	if (r == nullptr)
		return nullptr;
	try
	{
		return dup_or_null(dispatch_log_json(*r, post_id, account_id, trigger, endpoint));
	}
	catch (...)
	{
		return nullptr;
	}
}

/* The JSON SQL receives for one call (malloc'd), NULL when memory runs out. */
char *
vs_result_json(const vs_call_result *r)
{
	if (r == nullptr)
		return nullptr;
	try
	{
		return dup_or_null(result_json(*r));
	}
	catch (...)
	{
		return nullptr;
	}
}

/* Plans the FILE_UPLOAD chunks of a video. */
void
vs_plan_chunks(long long video_size, long long preferred_chunk_size, vs_chunk_plan *out)
{
	if (out != nullptr)
		*out = plan_chunks(video_size, preferred_chunk_size);
}

/* First byte and length of one chunk of a valid plan (0, 0 otherwise). */
void
vs_chunk_range(const vs_chunk_plan *plan, int index, long long *first, long long *length)
{
	if (plan == nullptr)
	{
		if (first != nullptr)
			*first = 0;
		if (length != nullptr)
			*length = 0;
		return;
	}
	chunk_range(*plan, index, first, length);
}

/* PUTs one chunk to TikTok's upload_url; always fills *out. */
void
vs_put_chunk(const vs_http_options *opt, const vs_chunk_put *chunk, vs_call_result *out)
{
	if (out == nullptr)
		return;
	fill_guarded(out, "vibescaling: out of memory during the chunk upload", [&](bool *started) {
		return put_chunk(opt, chunk, started);
	});
}

/* Size and type of a video source; always fills *out. */
void
vs_probe_source(const vs_http_options *opt, const char *url, vs_call_result *out)
{
	if (out == nullptr)
		return;
	fill_guarded(out, "vibescaling: out of memory during the source probe", [&](bool *started) {
		return probe_source(opt, url, started);
	});
}

/* One byte range of a video source into buffer; always fills *out. */
void
vs_fetch_range(const vs_http_options *opt, const char *url, long long first, long long length,
			   char *buffer, long long *received, vs_call_result *out)
{
	if (received != nullptr)
		*received = 0;
	if (out == nullptr)
		return;
	fill_guarded(out, "vibescaling: out of memory during the source download", [&](bool *started) {
		return fetch_range(opt, url, first, length, buffer, received, started);
	});
}

/* The video Content-Type from a file's first bytes, or NULL. */
const char *
vs_sniff_video_type(const unsigned char *head, size_t len)
{
	return sniff_video_type(head, len);
}

/* 1 when list is a valid source_allowed_networks list, else 0 with the reason in error. */
int
vs_check_network_list(const char *list, char *error, size_t error_size)
{
	std::string why;
	bool		valid = false;

	try
	{
		std::vector<IpNetwork> nets;

		valid = parse_network_list(list, &nets, &why);
	}
	catch (...)
	{
		why = "out of memory while checking the list of networks";
	}
	if (error != nullptr && error_size > 0)
	{
		std::size_t n = valid ? 0 : std::min(why.size(), error_size - 1);

		std::memcpy(error, why.data(), n);
		error[n] = '\0';
	}
	return valid ? 1 : 0;
}

/* A malloc'd copy of url without userinfo, query string or fragment; NULL when memory runs out. */
char *
vs_mask_url(const char *url)
{
	try
	{
		return dup_or_null(url != nullptr ? mask_url(url) : std::string());
	}
	catch (...)
	{
		return nullptr;
	}
}

/* Frees the strings inside *r (not r itself); safe to call twice. */
void
vs_call_result_free(vs_call_result *r)
{
	if (r != nullptr)
		free_c_result(r);
}

/* Frees a string the core returned (static fallbacks are left alone). */
void
vs_free(void *p)
{
	if (p != nullptr && !is_static_text(p))
		std::free(p);
}

}								/* extern "C" */
