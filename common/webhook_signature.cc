#include "common/webhook_signature.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"

namespace mlc {
namespace {

constexpr size_t kNpos = std::string_view::npos;

// Hex digit value, or -1. A table keeps the decode loop branch-light.
constexpr std::array<int, 256> MakeHexTable() {
  std::array<int, 256> t{};
  for (auto& v : t) v = -1;
  for (int c = '0'; c <= '9'; ++c) t[c] = c - '0';
  for (int c = 'a'; c <= 'f'; ++c) t[c] = c - 'a' + 10;
  for (int c = 'A'; c <= 'F'; ++c) t[c] = c - 'A' + 10;
  return t;
}
constexpr std::array<int, 256> kHexValue = MakeHexTable();

// Bytes EncodeWebhookForm writes as is (RFC 3986 unreserved, like Python's quote_plus).
constexpr std::array<bool, 256> MakeUnreservedTable() {
  std::array<bool, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  t['-'] = t['.'] = t['_'] = t['~'] = true;
  return t;
}
constexpr std::array<bool, 256> kUnreserved = MakeUnreservedTable();

// JSON escape class of a byte, as CPython's encode_basestring_ascii sees it:
// 0 = copy as is (0x20..0x7e except '"' and '\\'), 'u' = \u00XX, 'n' = non-ASCII
// lead/continuation byte (decode the UTF-8 sequence), otherwise the letter of a
// two-character escape (the escaped character itself for '"' and '\\').
constexpr std::array<char, 256> MakeJsonEscapeTable() {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  t['"'] = '"';
  t['\\'] = '\\';
  t[0x7f] = 'u';  // DEL is ASCII but outside CPython's ' '..'~' safe range.
  for (int c = 0x80; c < 0x100; ++c) t[c] = 'U';
  return t;
}
constexpr std::array<char, 256> kJsonEscape = MakeJsonEscapeTable();

constexpr char kLowerHex[] = "0123456789abcdef";
constexpr char kUpperHex[] = "0123456789ABCDEF";

// Returns the offset of the first byte that does not start a well-formed UTF-8
// sequence (Unicode 15, table 3-7: no overlongs, no surrogates, nothing above
// U+10FFFF, no truncation), or kNpos if `s` is valid.
size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return i;  // continuation byte, C0/C1 overlong lead, or F5..FF
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return i;
    }
    i += len;
  }
  return kNpos;
}

// A field name fit for an error message: at most 64 bytes, printable ASCII only,
// so a hostile body cannot forge log lines or flood them.
std::string SafeName(std::string_view name) {
  constexpr size_t kMaxShown = 64;
  std::string out;
  const size_t shown = name.size() < kMaxShown ? name.size() : kMaxShown;
  out.reserve(shown + 5);
  out.push_back('"');
  for (size_t i = 0; i < shown; ++i) {
    const char c = name[i];
    out.push_back(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '?');
  }
  out.push_back('"');
  if (shown < name.size()) out.append("...");
  return out;
}

// Percent-decodes body[begin, end) into `out` ('+' → space). Fails on a bad escape
// (reporting its offset in the body) or when the result would exceed `max_bytes`.
enum class DecodeResult { kOk, kBadEscape, kTooLong };
DecodeResult Decode(std::string_view body, size_t begin, size_t end, size_t max_bytes,
                    std::string* out, size_t* bad_offset) {
  out->clear();
  // Decoded size is at most the encoded size; reserving that avoids regrowth.
  const size_t cap = end - begin < max_bytes + 1 ? end - begin : max_bytes + 1;
  out->reserve(cap);
  size_t i = begin;
  while (i < end) {
    // Copy the run of bytes that need no decoding in one go.
    size_t j = i;
    while (j < end && body[j] != '%' && body[j] != '+') ++j;
    if (j > i) {
      if (out->size() + (j - i) > max_bytes) return DecodeResult::kTooLong;
      out->append(body.data() + i, j - i);
      i = j;
      if (i == end) break;
    }
    char decoded;
    if (body[i] == '+') {
      decoded = ' ';
      i += 1;
    } else {
      if (end - i < 3) {
        *bad_offset = i;
        return DecodeResult::kBadEscape;
      }
      const int hi = kHexValue[static_cast<unsigned char>(body[i + 1])];
      const int lo = kHexValue[static_cast<unsigned char>(body[i + 2])];
      if (hi < 0 || lo < 0) {
        *bad_offset = i;
        return DecodeResult::kBadEscape;
      }
      decoded = static_cast<char>((hi << 4) | lo);
      i += 3;
    }
    if (out->size() + 1 > max_bytes) return DecodeResult::kTooLong;
    out->push_back(decoded);
  }
  return DecodeResult::kOk;
}

// Appends `s` JSON-quoted the way CPython's json.dumps (ensure_ascii=True) does.
void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  auto append_u = [out](uint32_t unit) {
    char buf[6] = {'\\',
                   'u',
                   kLowerHex[(unit >> 12) & 0xf],
                   kLowerHex[(unit >> 8) & 0xf],
                   kLowerHex[(unit >> 4) & 0xf],
                   kLowerHex[unit & 0xf]};
    out->append(buf, sizeof(buf));
  };
  while (i < n) {
    size_t j = i;
    while (j < n && kJsonEscape[p[j]] == 0) ++j;
    if (j > i) {
      out->append(s.data() + i, j - i);
      i = j;
      if (i == n) break;
    }
    const unsigned char c = p[i];
    const char kind = kJsonEscape[c];
    if (kind == 'u') {
      append_u(c);
      ++i;
    } else if (kind == 'U') {
      // Precondition: valid UTF-8, so the lead byte gives the length.
      uint32_t cp;
      size_t len;
      if (c < 0xe0) {
        cp = c & 0x1fu;
        len = 2;
      } else if (c < 0xf0) {
        cp = c & 0x0fu;
        len = 3;
      } else {
        cp = c & 0x07u;
        len = 4;
      }
      if (n - i < len) len = n - i;  // defensive: never read past the end
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3fu);
      i += len;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        append_u(0xd800 + (cp >> 10));
        append_u(0xdc00 + (cp & 0x3ff));
      } else {
        append_u(cp);
      }
    } else {
      const char buf[2] = {'\\', kind};
      out->append(buf, 2);
      ++i;
    }
  }
  out->push_back('"');
}

void AppendFormEncoded(std::string_view s, std::string* out) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (kUnreserved[c]) {
      out->push_back(ch);
    } else if (ch == ' ') {
      out->push_back('+');
    } else {
      const char buf[3] = {'%', kUpperHex[c >> 4], kUpperHex[c & 0xf]};
      out->append(buf, 3);
    }
  }
}

}  // namespace

absl::StatusOr<FormFields> ParseWebhookForm(std::string_view body, const FormLimits& limits) {
  FormFields fields;
  if (body.empty()) return fields;

  // Reserving the final count up front keeps the strings in place, so the
  // duplicate-key set below may hold views into them.
  size_t expected = 1;
  for (const char c : body) expected += c == '&' ? 1 : 0;
  if (body.back() == '&') --expected;
  fields.reserve(expected < limits.max_fields ? expected : limits.max_fields);

  // Few fields: a linear scan beats hashing. Many (only with raised limits): a set.
  constexpr size_t kLinearScanMax = 16;
  absl::flat_hash_set<std::string_view> seen;

  std::string key;
  std::string value;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t number = fields.size() + 1;
    if (fields.size() >= limits.max_fields) {
      return absl::InvalidArgumentError(absl::StrCat("more than ", limits.max_fields, " fields"));
    }
    size_t end = body.find('&', pos);
    if (end == kNpos) end = body.size();
    if (end == pos) {
      return absl::InvalidArgumentError(absl::StrCat("field ", number, " is empty"));
    }
    const std::string_view raw(body.data() + pos, end - pos);
    const size_t eq = raw.find('=');
    if (eq == kNpos) {
      return absl::InvalidArgumentError(absl::StrCat("field ", number, ": missing '='"));
    }
    if (eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("field ", number, ": empty key"));
    }

    size_t bad = 0;
    switch (Decode(body, pos, pos + eq, limits.max_key_bytes, &key, &bad)) {
      case DecodeResult::kOk:
        break;
      case DecodeResult::kBadEscape:
        return absl::InvalidArgumentError(absl::StrCat("invalid percent-escape at byte ", bad));
      case DecodeResult::kTooLong:
        return absl::InvalidArgumentError(
            absl::StrCat("field ", number, ": key longer than ", limits.max_key_bytes, " bytes"));
    }
    if (const size_t at = FindInvalidUtf8(key); at != kNpos) {
      return absl::InvalidArgumentError(
          absl::StrCat("field ", number, ": invalid UTF-8 in key at byte ", at));
    }
    switch (Decode(body, pos + eq + 1, end, limits.max_value_bytes, &value, &bad)) {
      case DecodeResult::kOk:
        break;
      case DecodeResult::kBadEscape:
        return absl::InvalidArgumentError(absl::StrCat("invalid percent-escape at byte ", bad));
      case DecodeResult::kTooLong:
        return absl::InvalidArgumentError(absl::StrCat(
            "field ", SafeName(key), ": value longer than ", limits.max_value_bytes, " bytes"));
    }
    if (const size_t at = FindInvalidUtf8(value); at != kNpos) {
      return absl::InvalidArgumentError(
          absl::StrCat("field ", SafeName(key), ": invalid UTF-8 in value at byte ", at));
    }

    bool repeated = false;
    if (fields.size() < kLinearScanMax) {
      for (const auto& field : fields) {
        if (field.first == key) {
          repeated = true;
          break;
        }
      }
    } else {
      if (seen.empty()) {
        for (const auto& field : fields) seen.insert(field.first);
      }
      repeated = seen.contains(key);
    }
    if (repeated) {
      return absl::InvalidArgumentError(absl::StrCat("field ", SafeName(key), " repeated"));
    }

    fields.emplace_back(std::move(key), std::move(value));
    if (!seen.empty()) seen.insert(fields.back().first);
    key.clear();
    value.clear();
    pos = end + 1;  // past '&'; a trailing '&' ends the loop
  }
  return fields;
}

std::string FreshBooksSignedMessage(const FormFields& fields) {
  if (fields.empty()) return "{}";
  // Exact for plain ASCII fields (the usual delivery); escapes grow it at most once.
  size_t size = 2;
  for (const auto& [k, v] : fields) size += k.size() + v.size() + 8;
  std::string out;
  out.reserve(size + size / 4);
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : fields) {
    if (!first) out.append(", ");
    first = false;
    AppendJsonString(k, &out);
    out.append(": ");
    AppendJsonString(v, &out);
  }
  out.push_back('}');
  return out;
}

std::string FreshBooksSignature(std::string_view verifier, const FormFields& fields) {
  return Base64Encode(HmacSha256(verifier, FreshBooksSignedMessage(fields)));
}

bool VerifyFreshBooksSignature(std::string_view verifier, const FormFields& fields,
                               std::string_view header_value) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
  };
  while (!header_value.empty() && is_space(header_value.front())) header_value.remove_prefix(1);
  while (!header_value.empty() && is_space(header_value.back())) header_value.remove_suffix(1);
  if (header_value.empty()) return false;
  return ConstantTimeEquals(FreshBooksSignature(verifier, fields), header_value);
}

std::string EncodeWebhookForm(const FormFields& fields) {
  size_t size = 0;
  for (const auto& [k, v] : fields) size += k.size() + v.size() + 2;
  std::string out;
  out.reserve(size + size / 2);
  bool first = true;
  for (const auto& [k, v] : fields) {
    if (!first) out.push_back('&');
    first = false;
    AppendFormEncoded(k, &out);
    out.push_back('=');
    AppendFormEncoded(v, &out);
  }
  return out;
}

}  // namespace mlc
