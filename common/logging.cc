#include "common/logging.h"

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mlc::log {
namespace {

// The process-wide sink. Lines are pre-rendered JSON, so spdlog only adds the
// newline ("%v") and serialises concurrent writers; filtering happens here.
struct State {
  absl::Mutex mu;
  std::string service ABSL_GUARDED_BY(mu);
  std::shared_ptr<spdlog::logger> logger;  // set once, never replaced
};

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

std::shared_ptr<spdlog::logger> MakeLogger() {
  try {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    // Not registered with spdlog's global registry: a second logger of the same
    // name (tests, a library that also uses spdlog) must not throw.
    auto logger = std::make_shared<spdlog::logger>("mlc", std::move(sink));
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::trace);
    logger->flush_on(spdlog::level::warn);
    return logger;
  } catch (...) {
    return nullptr;
  }
}

State& GetState() {
  static State* const state = [] {
    auto* s = new State();
    s->logger = MakeLogger();
    return s;
  }();
  return *state;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "error";
}

spdlog::level::level_enum SpdlogLevel(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::err;
}

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0 if it is not one.
size_t Utf8SequenceLength(std::string_view s) {
  const auto byte = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  size_t len = 0;
  unsigned char lo = 0x80;  // allowed range of the second byte
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  if (byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return len;
}

// Appends `s` as a quoted JSON string. Control characters are escaped; bytes
// that are not valid UTF-8 become U+FFFD so the line is always valid JSON.
void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s.substr(i));
      if (len == 0) {
        out->append("\xEF\xBF\xBD");
        ++i;
      } else {
        out->append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

// Level from Init, unless MLC_LOG_LEVEL overrides it for this process.
Level EffectiveLevel(Level requested) {
  const char* env = std::getenv("MLC_LOG_LEVEL");
  if (env != nullptr && *env != '\0') return ParseLevel(env);
  return requested;
}

}  // namespace

Field::Field(std::string_view key, int64_t value)
    : key_(key), value_(std::to_string(value)), is_number_(true) {}

Field::Field(std::string_view key, uint64_t value)
    : key_(key), value_(std::to_string(value)), is_number_(true) {}

Field::Field(std::string_view key, double value) : key_(key), is_number_(true) {
  // JSON has no NaN or infinities; spell them as strings so the line stays valid.
  if (std::isnan(value)) {
    value_ = "NaN";
    is_number_ = false;
  } else if (std::isinf(value)) {
    value_ = value > 0 ? "Infinity" : "-Infinity";
    is_number_ = false;
  } else {
    char buf[64];
    const auto result = std::to_chars(buf, buf + sizeof(buf), value);
    value_.assign(buf, result.ptr);
  }
}

// Rendered unquoted, like numbers: `true` / `false` are JSON literals.
Field::Field(std::string_view key, bool value)
    : key_(key), value_(value ? "true" : "false"), is_number_(true) {}

void Init(std::string_view service, Level level) {
  State& state = GetState();
  {
    absl::MutexLock lock(&state.mu);
    state.service = std::string(service);
  }
  g_min_level.store(static_cast<int>(EffectiveLevel(level)), std::memory_order_relaxed);
}

Level ParseLevel(std::string_view s) {
  // Debian's Abseil is built without std::string_view aliasing, so absl's string
  // helpers do not accept std::string_view; lower-case by hand.
  std::string lower(s);
  for (char& c : lower) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (lower == "debug") return Level::kDebug;
  if (lower == "warn" || lower == "warning") return Level::kWarn;
  if (lower == "error") return Level::kError;
  return Level::kInfo;
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

std::string Format(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  try {
    State& state = GetState();
    std::string service;
    {
      absl::ReaderMutexLock lock(&state.mu);
      service = state.service;
    }
    std::string out;
    out.reserve(96 + msg.size() + 32 * fields.size());
    absl::StrAppend(&out, "{\"ts\":\"",
                    absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
                    "\",\"level\":\"", LevelName(level), "\",\"service\":");
    AppendJsonString(&out, service);
    out.append(",\"msg\":");
    AppendJsonString(&out, msg);
    for (const Field& field : fields) {
      out.push_back(',');
      AppendJsonString(&out, field.key());
      out.push_back(':');
      if (field.is_number()) {
        out.append(field.value());
      } else {
        AppendJsonString(&out, field.value());
      }
    }
    out.push_back('}');
    return out;
  } catch (...) {
    return std::string();  // only allocation can fail; logging must not throw
  }
}

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  try {
    const std::string line = Format(level, msg, fields);
    if (line.empty()) return;
    const std::shared_ptr<spdlog::logger>& logger = GetState().logger;
    if (logger == nullptr) return;
    logger->log(SpdlogLevel(level), spdlog::string_view_t(line.data(), line.size()));
  } catch (...) {
    // Never let logging take the process down.
  }
}

}  // namespace mlc::log
