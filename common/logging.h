// Structured logs: one JSON object per line on stderr, written through spdlog
// (async-safe, thread-safe). Every line has `ts` (RFC 3339 UTC, microseconds),
// `level`, `service`, `msg`, then the given fields in order. Callers pass ids
// (connection, delivery_id, statement_id), never secrets: there is no redaction
// pass, so a secret handed to a log call would be printed.
//
// The level comes from Init (or MLC_LOG_LEVEL=debug|info|warn|error).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace mlc::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// A key and a value already rendered as a JSON value's *content*: strings are
// escaped and quoted by the logger, numbers are printed as numbers.
class Field {
 public:
  Field(std::string_view key, std::string_view value)
      : key_(key), value_(value), is_number_(false) {}
  Field(std::string_view key, const char* value)
      : key_(key), value_(value == nullptr ? "" : value), is_number_(false) {}
  Field(std::string_view key, const std::string& value)
      : key_(key), value_(value), is_number_(false) {}
  Field(std::string_view key, int64_t value);
  Field(std::string_view key, int value) : Field(key, static_cast<int64_t>(value)) {}
  Field(std::string_view key, uint64_t value);
  Field(std::string_view key, double value);
  Field(std::string_view key, bool value);

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  bool is_number() const { return is_number_; }

 private:
  std::string key_;
  std::string value_;
  bool is_number_;
};

// Sets the service name and the minimum level. Safe to call again (tests).
void Init(std::string_view service, Level level = Level::kInfo);
// Parses "debug|info|warn|error"; anything else yields kInfo.
Level ParseLevel(std::string_view s);
bool Enabled(Level level);

// Renders a line without writing it (tests and the writer use this).
std::string Format(Level level, std::string_view msg, std::initializer_list<Field> fields);

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields);
inline void Debug(std::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, msg, fields);
}
inline void Info(std::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, msg, fields);
}
inline void Warn(std::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, msg, fields);
}
inline void Error(std::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, msg, fields);
}

}  // namespace mlc::log
