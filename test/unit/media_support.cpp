/* media_support.cpp: media made with ffmpeg at test time, and the probe loop (see media_support.hpp). */
#include "media_support.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <unistd.h>

#ifndef VS_TEST_MEDIA_DIR
#define VS_TEST_MEDIA_DIR "media-fixtures"
#endif

/* True when the ffmpeg program runs. */
bool
ffmpeg_available()
{
	static const bool available = std::system("ffmpeg -hide_banner -version >/dev/null 2>&1") == 0;

	return available;
}

/* The path of a file made by ffmpeg with args (made once, kept in the build tree). */
std::string
make_media(const std::string &name, const std::string &args)
{
	namespace fs = std::filesystem;
	std::size_t dot = name.rfind('.');
	std::string stem = name.substr(0, dot);
	std::string ext = dot == std::string::npos ? "" : name.substr(dot);
	fs::path	dir = VS_TEST_MEDIA_DIR;
	fs::path	path = dir / (stem + "-" + std::to_string(std::hash<std::string> {}(args)) + ext);

	if (fs::exists(path))
		return path.string();
	fs::create_directories(dir);

	/* A temporary name in the same directory, with the extension ffmpeg picks the muxer by. */
	fs::path	tmp = dir / (stem + ".tmp" + std::to_string(getpid()) + ext);
	std::string cmd = "ffmpeg -hide_banner -loglevel error -nostdin -y " + args + " '" + tmp.string() + "'";

	if (std::system(cmd.c_str()) != 0)
	{
		ADD_FAILURE() << "ffmpeg failed: " << cmd;
		return "";
	}
	fs::rename(tmp, path);
	return path.string();
}

/* The bytes of a file. */
std::vector<char>
read_bytes(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);

	return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/* The probe loop of vs_media.h over data. */
ProbeRun
probe_bytes(const std::vector<char> &data, vs_media_kind kind, int (*should_abort)(void))
{
	ProbeRun	run;
	std::vector<vs_media_window> windows;
	long long	size = static_cast<long long>(data.size());

	for (int round = 0; round <= VS_MEDIA_MAX_WINDOWS; round++)
	{
		vs_media_probe_result r;

		vs_media_probe(size, kind, windows.data(), static_cast<int>(windows.size()), should_abort, &r);
		run.rounds++;
		run.step = r.step;
		if (r.step != VS_MEDIA_NEED_BYTES)
		{
			if (r.step == VS_MEDIA_DONE)
			{
				run.facts_json = r.facts_json;
				run.facts = r.facts;
			}
			if (r.error != nullptr)
				run.error = r.error;
			vs_media_probe_result_free(&r);
			return run;
		}
		EXPECT_GE(r.need_offset, 0);
		EXPECT_GT(r.need_length, 0);
		EXPECT_LE(r.need_offset + r.need_length, size);
		for (const vs_media_window &w : windows)
			EXPECT_TRUE(r.need_offset + r.need_length <= w.offset || r.need_offset >= w.offset + w.length)
				<< "need [" << r.need_offset << ", +" << r.need_length << ") overlaps a window held";
		run.needs.emplace_back(r.need_offset, r.need_length);
		run.fetched += r.need_length;
		windows.push_back(vs_media_window{r.need_offset, r.need_length, data.data() + r.need_offset});
		vs_media_probe_result_free(&r);
	}
	ADD_FAILURE() << "the probe loop did not end";
	return run;
}

/* The verdict for facts JSON. */
VerdictText
judge(const std::string &facts_json, vs_media_kind kind, long long max_duration_sec)
{
	vs_media_verdict v;

	vs_media_judge(facts_json.c_str(), kind, max_duration_sec, &v);
	EXPECT_TRUE(v.valid) << v.error;
	return VerdictText{v.code[0] != '\0' ? v.code : "ok", v.message};
}
