/*
 * json_raii.hpp: RAII ownership for jansson values and malloc'd text.
 *
 * jansson reports allocation failure by returning NULL; these helpers turn
 * that into std::bad_alloc so the C API wall can report it uniformly.
 */
#ifndef VS_JSON_RAII_HPP
#define VS_JSON_RAII_HPP

#include <jansson.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>

namespace vibescaling {

/* Deleter dropping one jansson reference. */
struct JsonDecref
{
	void operator()(json_t *j) const noexcept { json_decref(j); }
};

/* An owned jansson reference. */
using JsonPtr = std::unique_ptr<json_t, JsonDecref>;

/* Deleter for memory obtained from malloc (json_dumps, strdup). */
struct FreeDeleter
{
	void operator()(void *p) const noexcept { std::free(p); }
};

/* An owned malloc'd C string. */
using MallocText = std::unique_ptr<char, FreeDeleter>;

/* Compact, insertion-ordered output: stable strings tests can compare. */
constexpr std::size_t kDumpFlags = JSON_COMPACT | JSON_PRESERVE_ORDER;

/* Takes ownership of a new reference; throws std::bad_alloc when it is NULL. */
JsonPtr json_take(json_t *fresh);

/*
 * A new empty JSON object. Never call jansson's json_object() directly: the
 * postgres executable exports a function of the same name, and inside the
 * extension the dynamic linker binds that name to PostgreSQL's (a crash).
 * json_pack makes the object inside libjansson, where the call is internal.
 * The Makefile's check-jansson-symbols target enforces this.
 */
JsonPtr new_json_object();

/* Stores a new reference under key (stolen even on failure); throws std::bad_alloc on failure. */
void json_put_new(json_t *object, const char *key, json_t *fresh);

/* Stores a borrowed reference under key (adds a reference); throws std::bad_alloc on failure. */
void json_put(json_t *object, const char *key, json_t *borrowed);

/* A jansson string from arbitrary bytes, invalid UTF-8 replaced by U+FFFD. */
JsonPtr json_text(const char *s);

/* Serializes a value with the given json_dumps flags; throws std::bad_alloc on failure. */
std::string json_dump(const json_t *value, std::size_t flags = kDumpFlags);

}								/* namespace vibescaling */

#endif
