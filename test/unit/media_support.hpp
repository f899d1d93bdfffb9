/*
 * media_support.hpp: media files made at test time with the ffmpeg
 * program (lavfi test sources: no input files), and the probe loop the
 * Postgres layer runs, over a file's bytes in memory.
 */
#ifndef VS_MEDIA_SUPPORT_HPP
#define VS_MEDIA_SUPPORT_HPP

#include "vs_media.h"

#include <string>
#include <vector>

/* True when the ffmpeg program runs (tests that need media skip without it). */
bool		ffmpeg_available();

/*
 * The path of a file made by `ffmpeg <args> <path>`, name ending in the
 * container's extension. Files are kept in the build tree under a name
 * that includes a hash of the command, so each is made once for all the
 * test processes, and written to a temporary name then renamed (ctest may
 * run tests at once). Fails the test (and returns "") when ffmpeg fails.
 */
std::string make_media(const std::string &name, const std::string &args);

/* The bytes of a file. */
std::vector<char> read_bytes(const std::string &path);

/* What the probe loop gave. */
struct ProbeRun
{
	vs_media_step step = VS_MEDIA_FAILED;	/* of the last round */
	std::string facts_json;		/* VS_MEDIA_DONE */
	vs_media_facts facts = {};	/* VS_MEDIA_DONE */
	std::string error;			/* VS_MEDIA_FAILED */
	int			rounds = 0;		/* probe calls made */
	long long	fetched = 0;	/* bytes of every window read */
	std::vector<std::pair<long long, long long>> needs;	/* every window asked for */
};

/*
 * Runs the loop of vs_media.h over data as the Postgres layer does: no
 * window at first, then each window asked for, copied from data (every
 * need must lie inside the file and hold no byte already read, else the
 * test fails). At most VS_MEDIA_MAX_WINDOWS + 1 rounds.
 */
ProbeRun	probe_bytes(const std::vector<char> &data, vs_media_kind kind,
						int (*should_abort)(void) = nullptr);

/* The verdict's code ("ok" when none) and message for facts JSON. */
struct VerdictText
{
	std::string code;
	std::string message;
};
VerdictText judge(const std::string &facts_json, vs_media_kind kind, long long max_duration_sec);

#endif
