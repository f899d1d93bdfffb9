/*
 * c_result.hpp: ownership of the malloc'd strings crossing the C boundary.
 *
 * Strings are strdup'd. When even that fails, a static fallback string is
 * used instead, so fields are never NULL; vs_free / vs_call_result_free
 * recognize those and do not free them.
 */
#ifndef VS_C_RESULT_HPP
#define VS_C_RESULT_HPP

#include "call_outcome.hpp"
#include "vs_core.h"

namespace vibescaling {

/* True for the static fallback strings, which must never be passed to free(). */
bool is_static_text(const void *p) noexcept;

/* A malloc'd copy of s (NULL counts as ""), or the static "out of memory" text. */
char	   *dup_text(const char *s) noexcept;

/* Fills *out from o, deriving sqlstate and retryable; never throws. */
void		fill_c_result(const CallOutcome &o, vs_call_result *out) noexcept;

/*
 * Fills *out with a failure raised inside the core (error_code e.g.
 * "out_of_memory"); never throws. outcome_unknown says whether the request
 * may already have reached TikTok.
 */
void		fill_c_failure(vs_call_result *out, const char *error_code,
						   const char *message, bool outcome_unknown) noexcept;

/* Fills *out with an out-of-memory failure made only of static strings (no malloc). */
void		fill_c_static_oom(vs_call_result *out, bool outcome_unknown) noexcept;

/* Frees the strings in *r (skipping static fallbacks) and NULLs them. */
void		free_c_result(vs_call_result *r) noexcept;

}								/* namespace vibescaling */

#endif
