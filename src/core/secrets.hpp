/*
 * secrets.hpp: keeps secrets (client_secret, authorization codes, tokens)
 * out of error messages, which end up in dispatch_logs and SQL errors.
 */
#ifndef VS_SECRETS_HPP
#define VS_SECRETS_HPP

#include <string>
#include <vector>

namespace vibescaling {

/* What a secret is replaced with. */
constexpr const char kSecretMask[] = "***";

/*
 * The secret values of one call: the string options client_secret, code,
 * code_verifier, refresh_token and token, and the bearer token (NULL ok).
 * Empty values are skipped; invalid options JSON yields only the bearer
 * token. Throws only std::bad_alloc.
 */
std::vector<std::string> secret_values(const char *options_json, const char *bearer_token);

/*
 * Replaces every occurrence of each secret in text by "***": the raw bytes,
 * and the forms a server may echo them in (percent-encoded with %20 or '+'
 * for spaces, JSON-escaped, with \u escapes or "\/"). When text was cut
 * short ("..." at the end, see utf8_sanitize), a tail that starts a secret
 * (at least 4 bytes of it) is masked too. Longer secrets go first, so a
 * secret containing another one leaves nothing behind. Throws only
 * std::bad_alloc.
 */
std::string redact_secrets(std::string text, const std::vector<std::string> &secrets);

}								/* namespace vibescaling */

#endif
