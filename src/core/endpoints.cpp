/*
 * endpoints.cpp: the table of TikTok endpoints vibescaling calls.
 */
#include "endpoints.hpp"

#include <cstring>

namespace vibescaling {

namespace {

/* Every endpoint SQL may name. */
const EndpointInfo kEndpoints[] = {
	{VS_EP_CREATOR_INFO, "creator_info", "/v2/post/publish/creator_info/query/",
	 HttpMethod::kPost, BodyFormat::kJson, true, ReplyFormat::kEnvelope},
	{VS_EP_VIDEO_INIT, "video_init", "/v2/post/publish/video/init/",
	 HttpMethod::kPost, BodyFormat::kJson, true, ReplyFormat::kEnvelope},
	{VS_EP_INBOX_VIDEO_INIT, "inbox_video_init", "/v2/post/publish/inbox/video/init/",
	 HttpMethod::kPost, BodyFormat::kJson, true, ReplyFormat::kEnvelope},
	{VS_EP_CONTENT_INIT, "content_init", "/v2/post/publish/content/init/",
	 HttpMethod::kPost, BodyFormat::kJson, true, ReplyFormat::kEnvelope},
	{VS_EP_STATUS_FETCH, "status_fetch", "/v2/post/publish/status/fetch/",
	 HttpMethod::kPost, BodyFormat::kJson, true, ReplyFormat::kEnvelope},
	{VS_EP_OAUTH_TOKEN, "oauth_token", "/v2/oauth/token/",
	 HttpMethod::kPost, BodyFormat::kForm, false, ReplyFormat::kOAuthToken},
	{VS_EP_OAUTH_REVOKE, "oauth_revoke", "/v2/oauth/revoke/",
	 HttpMethod::kPost, BodyFormat::kForm, false, ReplyFormat::kOAuthRevoke},
	{VS_EP_USER_INFO, "user_info", "/v2/user/info/?fields=open_id,union_id,avatar_url,display_name",
	 HttpMethod::kGet, BodyFormat::kNone, true, ReplyFormat::kEnvelope},
	/*
	 * The Display API (scope video.list). cover_image_url is never asked
	 * for: TikTok's cover URLs expire, so nothing may keep one.
	 */
	{VS_EP_VIDEO_LIST, "video_list",
	 "/v2/video/list/?fields=id,create_time,title,video_description,duration,share_url",
	 HttpMethod::kPost, BodyFormat::kJson, true, ReplyFormat::kEnvelope},
	{VS_EP_VIDEO_QUERY, "video_query",
	 "/v2/video/query/?fields=id,create_time,duration,view_count,like_count,comment_count,share_count",
	 HttpMethod::kPost, BodyFormat::kJson, true, ReplyFormat::kEnvelope},
	/* The creator's counts (scope user.info.stats). */
	{VS_EP_USER_STATS, "user_stats",
	 "/v2/user/info/?fields=open_id,follower_count,following_count,likes_count,video_count",
	 HttpMethod::kGet, BodyFormat::kNone, true, ReplyFormat::kEnvelope},
};

}								/* namespace */

/* The table row of ep, or nullptr. */
const EndpointInfo *
endpoint_info(vs_endpoint ep) noexcept
{
	for (const EndpointInfo &row : kEndpoints)
		if (row.ep == ep)
			return &row;
	return nullptr;
}

/* The enum for a logical endpoint name (exact, case-sensitive); VS_EP_UNKNOWN otherwise. */
vs_endpoint
endpoint_from_name(const char *name) noexcept
{
	if (name == nullptr)
		return VS_EP_UNKNOWN;
	for (const EndpointInfo &row : kEndpoints)
		if (std::strcmp(row.name, name) == 0)
			return row.ep;
	return VS_EP_UNKNOWN;
}

/* The logical name of an endpoint (static), "" for VS_EP_UNKNOWN. */
const char *
endpoint_name(vs_endpoint ep) noexcept
{
	const EndpointInfo *row = endpoint_info(ep);

	return row ? row->name : "";
}

/* The TikTok URL path of an endpoint (static), "" for VS_EP_UNKNOWN. */
const char *
endpoint_path(vs_endpoint ep) noexcept
{
	const EndpointInfo *row = endpoint_info(ep);

	return row ? row->path : "";
}

/* True for the init endpoints, which create a post (see the header). */
bool
endpoint_creates_post(vs_endpoint ep) noexcept
{
	return ep == VS_EP_VIDEO_INIT || ep == VS_EP_INBOX_VIDEO_INIT || ep == VS_EP_CONTENT_INIT;
}

}								/* namespace vibescaling */
