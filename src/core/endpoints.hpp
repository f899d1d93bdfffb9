/*
 * endpoints.hpp: logical endpoint names <-> vs_endpoint <-> URL paths.
 */
#ifndef VS_ENDPOINTS_HPP
#define VS_ENDPOINTS_HPP

#include "vs_core.h"

namespace vibescaling {

/* The enum for a logical endpoint name (exact, case-sensitive); VS_EP_UNKNOWN otherwise. */
vs_endpoint endpoint_from_name(const char *name) noexcept;

/* The logical name of an endpoint (static), "" for VS_EP_UNKNOWN. */
const char *endpoint_name(vs_endpoint ep) noexcept;

/* The TikTok URL path of an endpoint (static), "" for VS_EP_UNKNOWN. */
const char *endpoint_path(vs_endpoint ep) noexcept;

/*
 * True for the init endpoints: each call creates a post on TikTok, and
 * TikTok has no idempotency key, so such a request must never be sent twice.
 */
bool endpoint_creates_post(vs_endpoint ep) noexcept;

}								/* namespace vibescaling */

#endif
