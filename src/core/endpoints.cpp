/*
 * endpoints.cpp: the table of TikTok endpoints vibescaling calls.
 */
#include "endpoints.hpp"

#include <cstring>

namespace vibescaling {

namespace {

/* One row of the endpoint table. */
struct EndpointRow
{
	vs_endpoint ep;
	const char *name;
	const char *path;
};

/* Every endpoint SQL may name; all are POST with a JSON body. */
const EndpointRow kEndpoints[] = {
	{VS_EP_CREATOR_INFO, "creator_info", "/v2/post/publish/creator_info/query/"},
	{VS_EP_VIDEO_INIT, "video_init", "/v2/post/publish/video/init/"},
	{VS_EP_INBOX_VIDEO_INIT, "inbox_video_init", "/v2/post/publish/inbox/video/init/"},
	{VS_EP_CONTENT_INIT, "content_init", "/v2/post/publish/content/init/"},
	{VS_EP_STATUS_FETCH, "status_fetch", "/v2/post/publish/status/fetch/"},
};

/* The table row for ep, or nullptr. */
const EndpointRow *
find_row(vs_endpoint ep) noexcept
{
	for (const EndpointRow &row : kEndpoints)
		if (row.ep == ep)
			return &row;
	return nullptr;
}

}								/* namespace */

/* The enum for a logical endpoint name (exact, case-sensitive); VS_EP_UNKNOWN otherwise. */
vs_endpoint
endpoint_from_name(const char *name) noexcept
{
	if (name == nullptr)
		return VS_EP_UNKNOWN;
	for (const EndpointRow &row : kEndpoints)
		if (std::strcmp(row.name, name) == 0)
			return row.ep;
	return VS_EP_UNKNOWN;
}

/* The logical name of an endpoint (static), "" for VS_EP_UNKNOWN. */
const char *
endpoint_name(vs_endpoint ep) noexcept
{
	const EndpointRow *row = find_row(ep);

	return row ? row->name : "";
}

/* The TikTok URL path of an endpoint (static), "" for VS_EP_UNKNOWN. */
const char *
endpoint_path(vs_endpoint ep) noexcept
{
	const EndpointRow *row = find_row(ep);

	return row ? row->path : "";
}

/* True for the init endpoints, which create a post (see the header). */
bool
endpoint_creates_post(vs_endpoint ep) noexcept
{
	return ep == VS_EP_VIDEO_INIT || ep == VS_EP_INBOX_VIDEO_INIT || ep == VS_EP_CONTENT_INIT;
}

}								/* namespace vibescaling */
