/*
 * media_facts.cpp: the names of media kinds and statuses (see
 * media_facts.hpp), as SQL and JSON spell them.
 */
#include "media_facts.hpp"

namespace vibescaling {

/* "video" / "photo". */
const char *
media_kind_name(MediaKind kind) noexcept
{
	return kind == MediaKind::kPhoto ? "photo" : "video";
}

/* "readable" / "unreadable" / "incomplete". */
const char *
media_status_name(MediaStatus status) noexcept
{
	switch (status)
	{
		case MediaStatus::kReadable:
			return "readable";
		case MediaStatus::kIncomplete:
			return "incomplete";
		case MediaStatus::kUnreadable:
			break;
	}
	return "unreadable";
}

/* The status named name; false when name is none of them. */
bool
media_status_from_name(const std::string &name, MediaStatus *status) noexcept
{
	for (MediaStatus s : {MediaStatus::kReadable, MediaStatus::kUnreadable, MediaStatus::kIncomplete})
		if (name == media_status_name(s))
		{
			*status = s;
			return true;
		}
	return false;
}

}								/* namespace vibescaling */
