#include "cli/send_webhook.h"

#include <httplib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/webhook_signature.h"

namespace mlc::cli {

const char kSendWebhookUsage[] =
    R"(usage: mlc send-webhook --url URL [--verifier-file FILE] [--dry-run] [name=value ...]

Signs a FreshBooks webhook the way FreshBooks does (HMAC-SHA256 over the fields
re-serialised as JSON, keyed by the callback verifier) and POSTs it as
application/x-www-form-urlencoded. Fields are sent in the order given; defaults
fill in name=invoice.create object_id=1 account_id=ABC123 business_id=1
identity_id=1 user_id=1 when not given.

  --url URL             e.g. http://127.0.0.1:8080/webhooks/freshbooks/local
  --verifier-file FILE  file holding the signing key; otherwise $MLC_VERIFIER
  --dry-run             print the body and signature header, send nothing
  --timeout SECONDS     default 15

Exit status: 0 when the answer is 2xx, 1 otherwise, 2 for usage errors.
)";

namespace {

int Usage(const CliEnv& env, const std::string& error) {
  *env.err << "mlc: " << error << "\n\n" << kSendWebhookUsage;
  return 2;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  return true;
}

}  // namespace

int SendWebhook(const std::vector<std::string>& args, const CliEnv& env) {
  std::string url, verifier_file;
  bool dry_run = false;
  int timeout = 15;
  mlc::FormFields fields;
  const size_t argc = args.size();
  for (size_t i = 0; i < argc; ++i) {
    const std::string& a = args[i];
    if (a == "--url" && i + 1 < argc) {
      url = args[++i];
    } else if (a == "--verifier-file" && i + 1 < argc) {
      verifier_file = args[++i];
    } else if (a == "--dry-run") {
      dry_run = true;
    } else if (a == "--timeout" && i + 1 < argc) {
      timeout = std::atoi(args[++i].c_str());
    } else if (a == "--help" || a == "-h") {
      *env.out << kSendWebhookUsage;
      return 0;
    } else if (absl::StrContains(a, '=') && !absl::StartsWith(a, "--")) {
      const size_t eq = a.find('=');
      fields.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    } else {
      return Usage(env, "unknown argument: " + a);
    }
  }
  if (url.empty()) return Usage(env, "--url is required");
  std::string verifier;
  if (!verifier_file.empty()) {
    if (!ReadFile(verifier_file, &verifier)) {
      *env.err << "mlc: cannot read --verifier-file " << verifier_file << "\n";
      return 2;
    }
  } else if (std::optional<std::string> v = env.getenv("MLC_VERIFIER"); v.has_value()) {
    verifier = *v;
  }
  if (verifier.empty()) return Usage(env, "no verifier: use --verifier-file or set MLC_VERIFIER");

  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"name", "invoice.create"}, {"object_id", "1"},   {"account_id", "ABC123"},
      {"business_id", "1"},       {"identity_id", "1"}, {"user_id", "1"}};
  for (const auto& [k, v] : defaults) {
    bool present = false;
    for (const auto& f : fields) present = present || f.first == k;
    if (!present) fields.emplace_back(k, v);
  }
  const std::string body = mlc::EncodeWebhookForm(fields);
  const std::string signature = mlc::FreshBooksSignature(verifier, fields);
  if (dry_run) {
    *env.out << "POST " << url
             << "\nContent-Type: application/x-www-form-urlencoded\n"
                "X-FreshBooks-Hmac-SHA256: "
             << signature << "\n\n"
             << body << "\n";
    return 0;
  }

  // Split scheme://host[:port] from the path.
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return Usage(env, "--url must start with http:// or https://");
  }
  const size_t path_start = url.find('/', scheme_end + 3);
  const std::string origin = url.substr(0, path_start);
  const std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
  httplib::Client client(origin);
  client.set_connection_timeout(timeout, 0);
  client.set_read_timeout(timeout, 0);
  client.set_write_timeout(timeout, 0);
  client.set_tcp_nodelay(true);
  httplib::Headers headers = {{"X-FreshBooks-Hmac-SHA256", signature}};
  auto res = client.Post(path, headers, body, "application/x-www-form-urlencoded");
  if (!res) {
    *env.err << "mlc: POST " << url << " failed: " << httplib::to_string(res.error()) << "\n";
    return 1;
  }
  *env.out << res->status << " " << res->body << "\n";
  return res->status >= 200 && res->status < 300 ? 0 : 1;
}

}  // namespace mlc::cli
