/*
 * test_support.hpp: small helpers shared by the core's unit tests.
 */
#ifndef VS_TEST_SUPPORT_HPP
#define VS_TEST_SUPPORT_HPP

#include "vs_core.h"

#include <cstring>
#include <string>

/* A vs_call_result freed when the test ends. */
struct ScopedResult
{
	vs_call_result r;

	ScopedResult() { std::memset(&r, 0, sizeof r); }
	~ScopedResult() { vs_call_result_free(&r); }
	ScopedResult(const ScopedResult &) = delete;
	ScopedResult &operator=(const ScopedResult &) = delete;
	vs_call_result *operator->() { return &r; }
};

/* Takes a malloc'd string from the core and frees it. */
inline std::string
take_text(char *p)
{
	std::string s = p ? p : "<NULL>";

	vs_free(p);
	return s;
}

/* Parses (status, body) through the C API into res. */
inline void
parse(ScopedResult &res, long status, const std::string &body)
{
	vs_parse_reply(status, body.data(), body.size(), &res.r);
}

#endif
