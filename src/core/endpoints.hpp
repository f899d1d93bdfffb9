/*
 * endpoints.hpp: logical endpoint names <-> vs_endpoint <-> URL paths, and
 * how each endpoint is called (method, body format, auth, reply shape).
 */
#ifndef VS_ENDPOINTS_HPP
#define VS_ENDPOINTS_HPP

#include "vs_core.h"

namespace vibescaling {

/* The HTTP method of an endpoint. */
enum class HttpMethod
{
	kPost,
	kGet,
};

/* What an endpoint's request body is. */
enum class BodyFormat
{
	kJson,						/* application/json; charset=UTF-8 */
	kForm,						/* application/x-www-form-urlencoded */
	kNone,						/* a GET: no body */
};

/* What an endpoint's reply looks like. */
enum class ReplyFormat
{
	kEnvelope,					/* {"data": {..}, "error": {"code", "message", "log_id"}} */
	kOAuthToken,				/* flat {"access_token", ...} or {"error", "error_description"} */
	kOAuthRevoke,				/* empty body on success, flat error otherwise */
};

/* How one endpoint is called. */
struct EndpointInfo
{
	vs_endpoint ep;
	const char *name;			/* the logical name SQL passes */
	const char *path;			/* the URL path, query string included */
	HttpMethod	method;
	BodyFormat	body;
	bool		bearer;			/* sends "Authorization: Bearer <access_token>" */
	ReplyFormat reply;
};

/* The table row of ep, or nullptr for VS_EP_UNKNOWN and values out of range. */
const EndpointInfo *endpoint_info(vs_endpoint ep) noexcept;

/* The enum for a logical endpoint name (exact, case-sensitive); VS_EP_UNKNOWN otherwise. */
vs_endpoint endpoint_from_name(const char *name) noexcept;

/* The logical name of an endpoint (static), "" for VS_EP_UNKNOWN. */
const char *endpoint_name(vs_endpoint ep) noexcept;

/* The TikTok URL path of an endpoint (static, with its query string), "" for VS_EP_UNKNOWN. */
const char *endpoint_path(vs_endpoint ep) noexcept;

/*
 * True for the init endpoints: each call creates a post on TikTok, and
 * TikTok has no idempotency key, so such a request must never be sent twice.
 */
bool endpoint_creates_post(vs_endpoint ep) noexcept;

}								/* namespace vibescaling */

#endif
