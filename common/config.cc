#include "common/config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/crypto.h"
#include "common/status_macros.h"

// How the loader works: YAML is parsed into a node tree first, then each section is
// read through a table of known keys (so unknown keys and wrong types are caught
// where they occur, with the full path), `${NAME}` is expanded in every scalar
// after parsing, and finally the values are validated.
//
// Role rules. A key is "used" by a role if that binary reads it (ingress:
// `ingress.*` and `connections[].id`; writer: `writer.*` and `connections`).
//  - An unset `${VAR}` is an error in a used key; elsewhere it expands to "".
//  - Required-ness (a token must be set, a databricks block must exist) is checked
//    only for used keys.
//  - A value that is present is checked for format whatever the role (a typo is a
//    typo), except where it is empty or came from an unset variable in a key the
//    role does not use: the other binary will report it with its own environment.
//
// Secret values (tokens, keys, client secrets, verifiers) never appear in a
// message: messages that quote a value do so only for non-secret keys.

namespace mlc {
namespace {

constexpr int64_t kMaxBodyBytesMin = 256;
constexpr int64_t kMaxBodyBytesMax = int64_t{16} << 20;
constexpr size_t kMinTokenLength = 16;
constexpr int64_t kIntMax = std::numeric_limits<int>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

const char* DefaultGetEnv(const char* name) { return std::getenv(name); }

absl::string_view KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool IsEnvNameChar(char c, bool first) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         (!first && absl::ascii_isdigit(static_cast<unsigned char>(c)));
}

// Reads the YAML tree into Config, one field table per map. Errors are returned
// from the first problem found; reading stops there.
class Reader {
 public:
  // Reads one key's value into its destination; `path` is the full key path.
  using FieldFn = std::function<absl::Status(const YAML::Node& value, const std::string& path)>;
  struct Field {
    const char* name;
    FieldFn read;
  };

  Reader(ConfigRole role, GetEnvFn getenv_fn)
      : role_(role), getenv_(getenv_fn != nullptr ? getenv_fn : &DefaultGetEnv) {}

  // True if the running binary reads the key at `path`.
  bool Uses(const std::string& path) const {
    if (role_ == ConfigRole::kIngress) {
      return absl::StartsWith(path, "ingress.") ||
             (absl::StartsWith(path, "connections[") && absl::EndsWith(path, "].id"));
    }
    return absl::StartsWith(path, "writer.") || absl::StartsWith(path, "connections[");
  }

  // True if the value at `path` should be format-checked: always for used keys;
  // for others, unless it is empty or an unset variable blanked part of it.
  bool ShouldCheck(const std::string& path, bool empty) const {
    if (Uses(path)) return true;
    return !empty && !unresolved_.contains(path);
  }
  bool ShouldCheck(const std::string& path) const { return ShouldCheck(path, false); }

  // Visits every key of the map `node` (null means "empty map"). Unknown and
  // duplicate keys are errors.
  absl::Status ReadMap(const YAML::Node& node, const std::string& path,
                       const std::vector<Field>& fields) {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": expected a map, got ", KindName(node)));
    }
    absl::flat_hash_set<std::string> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(
            path.empty() ? "config" : path, ": keys must be strings, got ", KindName(kv.first)));
      }
      const std::string& key = kv.first.Scalar();
      const std::string key_path = path.empty() ? key : absl::StrCat(path, ".", key);
      const Field* field = nullptr;
      for (const Field& f : fields) {
        if (key == f.name) field = &f;
      }
      if (field == nullptr) {
        std::vector<std::string> known;
        known.reserve(fields.size());
        for (const Field& f : fields) known.emplace_back(f.name);
        return absl::InvalidArgumentError(
            absl::StrCat(key_path, ": unknown key (known: ", absl::StrJoin(known, ", "), ")"));
      }
      if (!seen.insert(key).second) {
        return absl::InvalidArgumentError(absl::StrCat(key_path, ": duplicate key"));
      }
      MLC_RETURN_IF_ERROR(field->read(kv.second, key_path));
    }
    return absl::OkStatus();
  }

  // A string value; null keeps the default.
  FieldFn String(std::string* out) {
    return [this, out](const YAML::Node& node, const std::string& path) -> absl::Status {
      if (node.IsNull()) return absl::OkStatus();
      MLC_ASSIGN_OR_RETURN(*out, Scalar(node, path, "a string"));
      return absl::OkStatus();
    };
  }

  // An integer in [min, max]; null keeps the default. So does a value blanked by
  // an unset variable in a key the role does not use.
  template <typename T>
  FieldFn Int(T* out, int64_t min, int64_t max) {
    return [this, out, min, max](const YAML::Node& node, const std::string& path) -> absl::Status {
      if (node.IsNull()) return absl::OkStatus();
      MLC_ASSIGN_OR_RETURN(std::string text, Scalar(node, path, "an integer"));
      if (unresolved_.contains(path)) return absl::OkStatus();
      int64_t value = 0;
      if (!absl::SimpleAtoi(text, &value)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": expected an integer, got \"", text, "\""));
      }
      if (value < min || value > max) {
        return absl::InvalidArgumentError(
            max == kInt64Max || max == kIntMax
                ? absl::StrCat(path, ": must be at least ", min, ", got ", value)
                : absl::StrCat(path, ": must be between ", min, " and ", max, ", got ", value));
      }
      *out = static_cast<T>(value);
      return absl::OkStatus();
    };
  }

  // A list of strings; null means empty.
  FieldFn StringList(std::vector<std::string>* out) {
    return [this, out](const YAML::Node& node, const std::string& path) -> absl::Status {
      out->clear();
      if (node.IsNull()) return absl::OkStatus();
      if (!node.IsSequence()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": expected a list of strings, got ", KindName(node)));
      }
      for (size_t i = 0; i < node.size(); ++i) {
        MLC_ASSIGN_OR_RETURN(std::string item,
                             Scalar(node[i], absl::StrCat(path, "[", i, "]"), "a string"));
        out->push_back(std::move(item));
      }
      return absl::OkStatus();
    };
  }

 private:
  // The scalar at `path` with `${NAME}` expanded. Never quotes the value: it may
  // be a secret.
  absl::StatusOr<std::string> Scalar(const YAML::Node& node, const std::string& path,
                                     absl::string_view expected) {
    if (!node.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": expected ", expected, ", got ", KindName(node)));
    }
    return Expand(node.Scalar(), path);
  }

  absl::StatusOr<std::string> Expand(const std::string& text, const std::string& path) {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
      const size_t start = text.find("${", i);
      if (start == std::string::npos) {
        out.append(text, i, std::string::npos);
        break;
      }
      out.append(text, i, start - i);
      const size_t end = text.find('}', start + 2);
      if (end == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": unterminated \"${\" (write ${NAME})"));
      }
      const std::string name = text.substr(start + 2, end - start - 2);
      bool valid = !name.empty();
      for (size_t k = 0; valid && k < name.size(); ++k) valid = IsEnvNameChar(name[k], k == 0);
      if (!valid) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": invalid variable reference (write ${NAME}, NAME = [A-Za-z_][A-Za-z0-9_]*)"));
      }
      const char* value = getenv_(name.c_str());
      if (value != nullptr) {
        out.append(value);
      } else if (Uses(path)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": environment variable ", name, " is not set"));
      } else {
        unresolved_.insert(path);
      }
      i = end + 1;
    }
    return out;
  }

  ConfigRole role_;
  GetEnvFn getenv_;
  // Paths whose value referenced an unset variable (only in keys the role does not use).
  absl::flat_hash_set<std::string> unresolved_;
};

// ---------------------------------------------------------------------------
// Reading.

absl::Status ReadBatch(Reader& r, const YAML::Node& node, const std::string& path, BatchConfig* b) {
  return r.ReadMap(node, path,
                   {{"max_rows", r.Int(&b->max_rows, 1, 100000)},
                    {"max_delay_ms", r.Int(&b->max_delay_ms, 0, 600000)}});
}

absl::Status ReadRetry(Reader& r, const YAML::Node& node, const std::string& path, RetryConfig* c) {
  return r.ReadMap(node, path,
                   {{"initial_ms", r.Int(&c->initial_ms, 1, kInt64Max)},
                    {"max_ms", r.Int(&c->max_ms, 1, kInt64Max)},
                    {"max_age_hours", r.Int(&c->max_age_hours, 1, kInt64Max)}});
}

absl::Status ReadTlsServer(Reader& r, const YAML::Node& node, const std::string& path,
                           TlsServerConfig* c) {
  return r.ReadMap(node, path,
                   {{"cert_file", r.String(&c->cert_file)},
                    {"key_file", r.String(&c->key_file)},
                    {"client_ca_file", r.String(&c->client_ca_file)},
                    {"reload_seconds", r.Int(&c->reload_seconds, 1, 86400)}});
}

absl::Status ReadTlsClient(Reader& r, const YAML::Node& node, const std::string& path,
                           TlsClientConfig* c) {
  return r.ReadMap(node, path,
                   {{"ca_file", r.String(&c->ca_file)},
                    {"cert_file", r.String(&c->cert_file)},
                    {"key_file", r.String(&c->key_file)},
                    {"server_name", r.String(&c->server_name)},
                    {"reload_seconds", r.Int(&c->reload_seconds, 1, 86400)}});
}

absl::Status ReadIngress(Reader& r, const YAML::Node& node, IngressConfig* c) {
  using Node = YAML::Node;
  return r.ReadMap(
      node, "ingress",
      {{"listen", r.String(&c->listen)},
       {"writer", r.String(&c->writer)},
       {"internal_token", r.String(&c->internal_token)},
       {"max_body_bytes", r.Int(&c->max_body_bytes, kMaxBodyBytesMin, kMaxBodyBytesMax)},
       {"writer_tls", [&r, c](const Node& n, const std::string& p) {
          return ReadTlsClient(r, n, p, &c->writer_tls);
        }}});
}

absl::Status ReadWriter(Reader& r, const YAML::Node& node, WriterConfig* c) {
  using Node = YAML::Node;
  return r.ReadMap(
      node, "writer",
      {{"listen", r.String(&c->listen)},
       {"metrics_listen", r.String(&c->metrics_listen)},
       {"data_dir", r.String(&c->data_dir)},
       {"master_key", r.String(&c->master_key)},
       {"internal_token", r.String(&c->internal_token)},
       {"admin_token", r.String(&c->admin_token)},
       {"sink", r.String(&c->sink)},
       {"batch",
        [&r, c](const Node& n, const std::string& p) { return ReadBatch(r, n, p, &c->batch); }},
       {"retry",
        [&r, c](const Node& n, const std::string& p) { return ReadRetry(r, n, p, &c->retry); }},
       {"audit_retention_days", r.Int(&c->audit_retention_days, 0, 36500)},
       {"tls",
        [&r, c](const Node& n, const std::string& p) { return ReadTlsServer(r, n, p, &c->tls); }}});
}

absl::Status ReadFreshBooks(Reader& r, const YAML::Node& node, const std::string& path,
                            FreshBooksConfig* c) {
  return r.ReadMap(node, path,
                   {{"client_id", r.String(&c->client_id)},
                    {"client_secret", r.String(&c->client_secret)},
                    {"redirect_uri", r.String(&c->redirect_uri)},
                    {"webhook_url", r.String(&c->webhook_url)},
                    {"account_id", r.String(&c->account_id)},
                    {"events", r.StringList(&c->events)},
                    {"verifiers", r.StringList(&c->verifiers)},
                    {"api_url", r.String(&c->api_url)},
                    {"auth_url", r.String(&c->auth_url)},
                    {"sync_interval_minutes", r.Int(&c->sync_interval_minutes, 0, kIntMax)},
                    {"requests_per_second", r.Int(&c->requests_per_second, 1, 1000)}});
}

absl::Status ReadDatabricks(Reader& r, const YAML::Node& node, const std::string& path,
                            std::optional<DatabricksConfig>* out) {
  if (node.IsNull()) return absl::OkStatus();  // `databricks:` with nothing = absent
  DatabricksConfig c;
  MLC_RETURN_IF_ERROR(r.ReadMap(node, path,
                                {{"host", r.String(&c.host)},
                                 {"client_id", r.String(&c.client_id)},
                                 {"client_secret", r.String(&c.client_secret)},
                                 {"warehouse_id", r.String(&c.warehouse_id)},
                                 {"catalog", r.String(&c.catalog)},
                                 {"schema", r.String(&c.schema)}}));
  *out = std::move(c);
  return absl::OkStatus();
}

absl::Status ReadConnections(Reader& r, const YAML::Node& node,
                             std::vector<ConnectionConfig>* out) {
  using Node = YAML::Node;
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsSequence()) {
    return absl::InvalidArgumentError(
        absl::StrCat("connections: expected a list of connections, got ", KindName(node)));
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = absl::StrCat("connections[", i, "]");
    if (node[i].IsNull()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": is empty; expected a map with an id"));
    }
    ConnectionConfig c;
    MLC_RETURN_IF_ERROR(r.ReadMap(node[i], path,
                                  {{"id", r.String(&c.id)},
                                   {"freshbooks",
                                    [&r, &c](const Node& n, const std::string& p) {
                                      return ReadFreshBooks(r, n, p, &c.freshbooks);
                                    }},
                                   {"databricks", [&r, &c](const Node& n, const std::string& p) {
                                      return ReadDatabricks(r, n, p, &c.databricks);
                                    }}}));
    out->push_back(std::move(c));
  }
  return absl::OkStatus();
}

absl::Status ReadConfig(Reader& r, const YAML::Node& root, Config* config) {
  using Node = YAML::Node;
  return r.ReadMap(
      root, "",
      {{"ingress",
        [&r, config](const Node& n, const std::string&) {
          return ReadIngress(r, n, &config->ingress);
        }},
       {"writer", [&r, config](const Node& n,
                               const std::string&) { return ReadWriter(r, n, &config->writer); }},
       {"connections", [&r, config](const Node& n, const std::string&) {
          return ReadConnections(r, n, &config->connections);
        }}});
}

// ---------------------------------------------------------------------------
// Validation.

absl::Status CheckListen(const Reader& r, const std::string& path, const std::string& value,
                         bool allow_port_zero) {
  if (!r.ShouldCheck(path, value.empty())) return absl::OkStatus();
  std::string host;
  int port = 0;
  MLC_RETURN_IF_ERROR(ParseHostPort(path, value, &host, &port));
  if (port == 0 && !allow_port_zero) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " \"", value, "\": port must be between 1 and 65535"));
  }
  return absl::OkStatus();
}

// Tokens: never quoted. `required` applies only when the role uses the key.
absl::Status CheckToken(const Reader& r, const std::string& path, const std::string& value,
                        bool required) {
  const std::string how = "generate one with `openssl rand -hex 24`";
  if (value.empty()) {
    if (required && r.Uses(path)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": is empty; ", how));
    }
    return absl::OkStatus();
  }
  if (!r.ShouldCheck(path)) return absl::OkStatus();
  if (value.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": is ", value.size(), " characters, needs at least ", kMinTokenLength, "; ", how));
  }
  return absl::OkStatus();
}

absl::Status CheckMasterKey(const Reader& r, const std::string& path, const std::string& value) {
  if (value.empty() || !r.ShouldCheck(path)) return absl::OkStatus();
  const std::string how =
      "must be standard base64 of exactly 32 bytes; generate one with `openssl rand -base64 32`";
  absl::StatusOr<std::string> key = Base64Decode(value);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is not valid base64 (", key.status().message(), "); ", how));
  }
  if (key->size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": decodes to ", key->size(), " bytes; ", how));
  }
  return absl::OkStatus();
}

bool IsLoopbackHost(std::string host) {
  host = absl::AsciiStrToLower(host);
  if (host == "localhost" || host == "[::1]") return true;
  if (!absl::StartsWith(host, "127.")) return false;
  // Dotted quad 127.a.b.c.
  int parts = 0;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string::npos) dot = host.size();
    const std::string part = host.substr(start, dot - start);
    int n = 0;
    if (part.empty() || part.size() > 3 || !absl::SimpleAtoi(part, &n) || n > 255) return false;
    for (char ch : part) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(ch))) return false;
    }
    ++parts;
    start = dot + 1;
  }
  return parts == 4;
}

absl::Status CheckUrl(const Reader& r, const std::string& path, const std::string& url) {
  if (url.empty() || !r.ShouldCheck(path)) return absl::OkStatus();
  const std::string lower = absl::AsciiStrToLower(url);
  const bool https = absl::StartsWith(lower, "https://");
  const bool http = absl::StartsWith(lower, "http://");
  const std::string quoted = absl::StrCat(path, " \"", url, "\": ");
  if (!https && !http) {
    return absl::InvalidArgumentError(
        absl::StrCat(quoted,
                     "must be an https:// URL (http:// only for loopback hosts: localhost, "
                     "127.x.x.x, [::1])"));
  }
  std::string authority = url.substr(https ? 8 : 7);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string::npos) {
    authority = authority.substr(at + 1);
  }
  std::string host;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close != std::string::npos) host = authority.substr(0, close + 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  if (host.empty()) return absl::InvalidArgumentError(absl::StrCat(quoted, "has no host"));
  if (http && !IsLoopbackHost(host)) {
    return absl::InvalidArgumentError(
        absl::StrCat(quoted,
                     "https:// is required (http:// is accepted only for loopback hosts: "
                     "localhost, 127.x.x.x, [::1])"));
  }
  return absl::OkStatus();
}

bool IsConnectionId(const std::string& id) {
  if (id.empty() || id.size() > 63) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    const bool alnum = absl::ascii_isdigit(c) || (c >= 'a' && c <= 'z');
    if (!alnum && (i == 0 || (c != '_' && c != '-'))) return false;
  }
  return true;
}

bool IsLowerIdentifier(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const bool ok = (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsEventName(const std::string& event) {
  const std::vector<std::string>& objects = AllFreshBooksEventObjects();
  auto is_object = [&objects](absl::string_view name) {
    for (const std::string& o : objects) {
      if (o == name) return true;
    }
    return false;
  };
  const size_t dot = event.find('.');
  if (dot == std::string::npos) return is_object(event);
  const absl::string_view object = absl::string_view(event).substr(0, dot);
  const absl::string_view action = absl::string_view(event).substr(dot + 1);
  if (!is_object(object)) return false;
  if (action == "create" || action == "update" || action == "delete") return true;
  return action == "sendByEmail" && (object == "invoice" || object == "estimate");
}

absl::Status ValidateTlsServer(const Reader& r, const std::string& path, const TlsServerConfig& c) {
  if (!r.Uses(path)) return absl::OkStatus();
  if (c.cert_file.empty() != c.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": set both cert_file and key_file (or neither, for plaintext)"));
  }
  if (!c.client_ca_file.empty() && c.cert_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".client_ca_file: mutual TLS needs the server's own cert_file and key_file too"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTlsClient(const Reader& r, const std::string& path, const TlsClientConfig& c) {
  if (!r.Uses(path)) return absl::OkStatus();
  if (c.cert_file.empty() != c.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": set both cert_file and key_file for a client certificate (or neither)"));
  }
  if (c.ca_file.empty() && (!c.cert_file.empty() || !c.server_name.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".ca_file: is empty; TLS to the writer needs the CA that signed its certificate"));
  }
  return absl::OkStatus();
}

absl::Status ValidateIngress(const Reader& r, const IngressConfig& c) {
  MLC_RETURN_IF_ERROR(CheckListen(r, "ingress.listen", c.listen, /*allow_port_zero=*/true));
  MLC_RETURN_IF_ERROR(CheckListen(r, "ingress.writer", c.writer, /*allow_port_zero=*/false));
  MLC_RETURN_IF_ERROR(CheckToken(r, "ingress.internal_token", c.internal_token, true));
  MLC_RETURN_IF_ERROR(ValidateTlsClient(r, "ingress.writer_tls", c.writer_tls));
  return absl::OkStatus();
}

absl::Status ValidateWriter(const Reader& r, const WriterConfig& c) {
  MLC_RETURN_IF_ERROR(CheckListen(r, "writer.listen", c.listen, /*allow_port_zero=*/true));
  MLC_RETURN_IF_ERROR(
      CheckListen(r, "writer.metrics_listen", c.metrics_listen, /*allow_port_zero=*/true));
  if (c.data_dir.empty() && r.Uses("writer.data_dir")) {
    return absl::InvalidArgumentError(
        "writer.data_dir: is empty; set a directory for the journal and audit trail");
  }
  MLC_RETURN_IF_ERROR(CheckMasterKey(r, "writer.master_key", c.master_key));
  MLC_RETURN_IF_ERROR(CheckToken(r, "writer.internal_token", c.internal_token, true));
  MLC_RETURN_IF_ERROR(CheckToken(r, "writer.admin_token", c.admin_token, false));
  if (r.ShouldCheck("writer.sink", c.sink.empty()) && c.sink != "sqlite" &&
      c.sink != "databricks") {
    return absl::InvalidArgumentError(
        absl::StrCat("writer.sink \"", c.sink, "\": must be \"sqlite\" or \"databricks\""));
  }
  if (c.retry.max_ms < c.retry.initial_ms && r.ShouldCheck("writer.retry.max_ms")) {
    return absl::InvalidArgumentError(absl::StrCat("writer.retry.max_ms: is ", c.retry.max_ms,
                                                   ", must be at least writer.retry.initial_ms (",
                                                   c.retry.initial_ms, ")"));
  }
  MLC_RETURN_IF_ERROR(ValidateTlsServer(r, "writer.tls", c.tls));
  return absl::OkStatus();
}

absl::Status ValidateFreshBooks(const Reader& r, const std::string& path,
                                const FreshBooksConfig& c) {
  MLC_RETURN_IF_ERROR(CheckUrl(r, path + ".redirect_uri", c.redirect_uri));
  MLC_RETURN_IF_ERROR(CheckUrl(r, path + ".webhook_url", c.webhook_url));
  MLC_RETURN_IF_ERROR(CheckUrl(r, path + ".api_url", c.api_url));
  MLC_RETURN_IF_ERROR(CheckUrl(r, path + ".auth_url", c.auth_url));
  for (size_t i = 0; i < c.events.size(); ++i) {
    const std::string item = absl::StrCat(path, ".events[", i, "]");
    if (!r.ShouldCheck(item, c.events[i].empty()) || IsEventName(c.events[i])) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        item, " \"", c.events[i], "\": unknown event; use an object name (",
        absl::StrJoin(AllFreshBooksEventObjects(), ", "),
        ") or <object>.create|update|delete, or invoice.sendByEmail / estimate.sendByEmail"));
  }
  for (size_t i = 0; i < c.verifiers.size(); ++i) {
    const std::string item = absl::StrCat(path, ".verifiers[", i, "]");
    if (c.verifiers[i].empty() && r.Uses(item)) {
      return absl::InvalidArgumentError(absl::StrCat(
          item, ": is empty; an empty signing key would accept forged webhooks, remove it"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDatabricks(const Reader& r, const std::string& path, const DatabricksConfig& c,
                                bool required) {
  const std::pair<const char*, const std::string*> fields[] = {{"host", &c.host},
                                                               {"client_id", &c.client_id},
                                                               {"client_secret", &c.client_secret},
                                                               {"warehouse_id", &c.warehouse_id},
                                                               {"catalog", &c.catalog},
                                                               {"schema", &c.schema}};
  if (required) {
    for (const auto& [name, value] : fields) {
      if (value->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".", name, ": is empty (required with writer.sink \"databricks\")"));
      }
    }
  }
  MLC_RETURN_IF_ERROR(CheckUrl(r, path + ".host", c.host));
  for (const auto& [name, value] :
       {std::pair<const char*, const std::string*>{"catalog", &c.catalog}, {"schema", &c.schema}}) {
    const std::string key = absl::StrCat(path, ".", name);
    if (r.ShouldCheck(key, value->empty()) && !value->empty() && !IsLowerIdentifier(*value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          key, " \"", *value, "\": must match [a-z_][a-z0-9_]* (a lowercase Unity Catalog name)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateConnections(const Reader& r, ConfigRole role, const std::string& sink,
                                 std::vector<ConnectionConfig>* connections) {
  absl::flat_hash_map<std::string, size_t> ids;
  const bool databricks_required = role == ConfigRole::kWriter && sink == "databricks";
  for (size_t i = 0; i < connections->size(); ++i) {
    ConnectionConfig& c = (*connections)[i];
    const std::string path = absl::StrCat("connections[", i, "]");
    if (!IsConnectionId(c.id)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".id \"", c.id,
                       "\": must match [a-z0-9][a-z0-9_-]{0,62} (it appears in the webhook URL)"));
    }
    if (auto [it, inserted] = ids.emplace(c.id, i); !inserted) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".id \"", c.id,
                                                     "\": duplicate of connections[", it->second,
                                                     "].id; connection ids must be unique"));
    }
    MLC_RETURN_IF_ERROR(ValidateFreshBooks(r, path + ".freshbooks", c.freshbooks));
    if (c.freshbooks.events.empty()) c.freshbooks.events = AllFreshBooksEventObjects();
    if (c.databricks.has_value()) {
      MLC_RETURN_IF_ERROR(
          ValidateDatabricks(r, path + ".databricks", *c.databricks, databricks_required));
    } else if (databricks_required) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          ".databricks: is missing (required with writer.sink \"databricks\"; give host, "
          "client_id, client_secret, warehouse_id, catalog, schema)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& AllFreshBooksEventObjects() {
  static const auto* const kObjects =
      new std::vector<std::string>{"bill",     "bill_vendor", "category", "client", "credit_note",
                                   "estimate", "expense",     "invoice",  "item",   "payment",
                                   "project",  "recurring",   "service",  "tax",    "time_entry"};
  return *kObjects;
}

absl::Status ParseHostPort(const std::string& key, const std::string& value, std::string* host,
                           int* port) {
  const std::string prefix = absl::StrCat(key, " \"", value, "\": ");
  const std::string form = "expected host:port or [ipv6]:port, e.g. 0.0.0.0:8080";
  std::string h;
  std::string p;
  if (absl::StartsWith(value, "[")) {
    const size_t close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat(prefix, form));
    }
    h = value.substr(1, close - 1);
    p = value.substr(close + 2);
  } else {
    const size_t colon = value.rfind(':');
    if (colon == std::string::npos) return absl::InvalidArgumentError(absl::StrCat(prefix, form));
    h = value.substr(0, colon);
    p = value.substr(colon + 1);
    if (absl::StrContains(h, ':')) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "IPv6 addresses need brackets, e.g. [::1]:8080"));
    }
  }
  if (h.empty()) return absl::InvalidArgumentError(absl::StrCat(prefix, "host is empty; ", form));
  for (char c : h) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '/' || c == '[' || c == ']') {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "invalid host; ", form));
    }
  }
  int n = 0;
  bool digits = !p.empty() && p.size() <= 5;
  for (char c : p) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
  if (!digits || !absl::SimpleAtoi(p, &n) || n > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix,
                     "port must be a number between 1 and 65535 (0 = any, for listen "
                     "addresses)"));
  }
  *host = std::move(h);
  *port = n;
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, ConfigRole role,
                                   GetEnvFn getenv_fn) {
  const std::string expected = "expected a map with keys ingress, writer, connections";
  Config config;
  Reader reader(role, getenv_fn);
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    if (root.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat("config is empty; ", expected));
    }
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config top level is ", KindName(root), "; ", expected));
    }
    MLC_RETURN_IF_ERROR(ReadConfig(reader, root, &config));
  } catch (const YAML::Exception& e) {
    // ParserException and friends carry a position; the message is yaml-cpp's own
    // text and does not echo the input.
    if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat("invalid YAML: ", e.msg));
    return absl::InvalidArgumentError(absl::StrCat("invalid YAML at line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("reading config: ", e.what()));
  }
  MLC_RETURN_IF_ERROR(ValidateIngress(reader, config.ingress));
  MLC_RETURN_IF_ERROR(ValidateWriter(reader, config.writer));
  MLC_RETURN_IF_ERROR(ValidateConnections(reader, role, config.writer.sink, &config.connections));
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path, ConfigRole role,
                                      GetEnvFn getenv_fn) {
  const std::string prefix = absl::StrCat("config file ", path, ": ");
  std::string text;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n > 0) {
        text.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno != EINTR) {
        err = errno;
        break;
      }
    }
    ::close(fd);
  }
  if (err != 0) {
    return absl::ErrnoToStatus(err, absl::StrCat(prefix, "cannot read"));
  }
  absl::StatusOr<Config> config = ParseConfig(text, role, getenv_fn);
  if (!config.ok()) {
    return absl::Status(config.status().code(), absl::StrCat(prefix, config.status().message()));
  }
  return config;
}

}  // namespace mlc
