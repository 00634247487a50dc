// FreshBooks webhook bodies and signatures (FRESHBOOKS.md §1–§2).
//
// A delivery is an application/x-www-form-urlencoded body. FreshBooks does not sign
// the raw body: it signs the decoded fields re-serialised as CPython's
// `json.dumps(dict)` would (body order, `", "` and `": "` separators, every value a
// string, non-ASCII as lowercase `\uXXXX` with surrogate pairs, `/` not escaped),
// with HMAC-SHA256 keyed by the callback's verifier, base64 with padding.
//
// Everything here is a pure function: no I/O, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace mlc {

struct FormLimits {
  size_t max_fields = 32;
  size_t max_key_bytes = 64;      // decoded
  size_t max_value_bytes = 1024;  // decoded
};

using FormFields = std::vector<std::pair<std::string, std::string>>;

// Decodes a form body (`%XX` → byte, `+` → space) keeping body order. Errors
// (InvalidArgument, with a message naming the cause): a bad `%` escape, a key
// repeated, an empty key, a field without '=', decoded bytes that are not valid
// UTF-8 (overlongs, surrogates and code points above U+10FFFF are invalid), more
// than max_fields fields, a key or value over its limit. An empty body yields no
// fields. A trailing '&' is tolerated; "a=1&&b=2" is an error (empty field).
absl::StatusOr<FormFields> ParseWebhookForm(std::string_view body,
                                            const FormLimits& limits = FormLimits());

// The message FreshBooks signs: json.dumps of the fields as an ordered dict.
// Precondition: every key and value is valid UTF-8 (ParseWebhookForm guarantees it).
std::string FreshBooksSignedMessage(const FormFields& fields);

// base64(HMAC-SHA256(key=verifier, message=FreshBooksSignedMessage(fields))).
std::string FreshBooksSignature(std::string_view verifier, const FormFields& fields);

// True if `header_value` (surrounding whitespace ignored) equals the signature
// under `verifier`. The comparison is constant-time in the signature's length.
bool VerifyFreshBooksSignature(std::string_view verifier, const FormFields& fields,
                               std::string_view header_value);

// Encodes fields as a form body the way FreshBooks would send them (for the CLI,
// fakes and tests): unreserved characters as is, space as '+', the rest as %XX.
std::string EncodeWebhookForm(const FormFields& fields);

}  // namespace mlc
