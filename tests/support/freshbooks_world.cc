#include "tests/support/freshbooks_world.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/http_client.h"
#include "tests/fakes/freshbooks_samples.h"

namespace mlc::testing {

nlohmann::json NewSample(const std::string& entity, std::mt19937_64& rng) {
  nlohmann::json o = SampleObject(entity, 0, absl::Now(), rng);
  o.erase(SampleIdField(entity));
  return o;
}

FreshBooksWorld::FreshBooksWorld(FreshBooksWorldOptions options) {
  const int fb_port = PickFreePort();
  options.services.freshbooks_url = absl::StrCat("http://127.0.0.1:", fb_port);
  options.services.freshbooks_client_id = options.freshbooks.client_id;
  options.services.freshbooks_client_secret = options.freshbooks.client_secret;
  // Tests create objects in bursts; don't let the polite default budget set their pace.
  if (options.services.freshbooks_requests_per_second == 0) {
    options.services.freshbooks_requests_per_second = 50;
  }
  services_ = std::make_unique<Services>(options.services);
  options.freshbooks.listen = absl::StrCat("127.0.0.1:", fb_port);
  options.freshbooks.redirect_uri = services_->redirect_uri();
  // FreshBooks retries for minutes; the fake's default schedule is much shorter
  // than ingress's key refresh window, which a delivery right after a webhook's
  // verification can fall into.
  options.freshbooks.webhook_initial_backoff =
      std::max(options.freshbooks.webhook_initial_backoff, absl::Milliseconds(250));
  options.freshbooks.webhook_max_attempts = std::max(options.freshbooks.webhook_max_attempts, 6);
  fb_ = std::make_unique<FakeFreshBooks>(options.freshbooks);
  absl::Status s = fb_->Start();
  if (!s.ok()) throw std::runtime_error("fake FreshBooks: " + s.ToString());
}

FreshBooksWorld::~FreshBooksWorld() {
  services_.reset();  // stop the services before the fake they talk to
  fb_.reset();
}

int FreshBooksWorld::Authorize(std::string* page) {
  std::string out;
  const int rc = services_->RunCli(
      {"--json", "authorize", "--connection", services_->options().connection_id}, &out);
  if (rc != 0) throw std::runtime_error("mlc authorize failed: " + out);
  const size_t open = out.find('{');
  const size_t close = out.rfind('}');
  nlohmann::json j = nlohmann::json::parse(out.substr(open, close - open + 1), nullptr, false);
  if (!j.is_object() || !j.contains("authorization_url")) {
    throw std::runtime_error("mlc authorize printed no authorization_url: " + out);
  }
  std::string url = j["authorization_url"].get<std::string>();
  // Follow redirects like a browser (the fake's authorize page -> ingress).
  HttplibClient http;
  for (int hop = 0; hop < 5; ++hop) {
    HttpRequest req;
    req.url = url;
    absl::StatusOr<HttpResponse> r = http.Send(req);
    if (!r.ok()) throw std::runtime_error("GET " + url + ": " + r.status().ToString());
    std::optional<std::string> location = r->Header("Location");
    if (r->status / 100 == 3 && location.has_value()) {
      url = *location;
      continue;
    }
    if (page != nullptr) *page = r->body;
    return r->status;
  }
  throw std::runtime_error("too many redirects");
}

bool FreshBooksWorld::RegisterWebhooks(std::string* output) {
  std::string out;
  const int rc = services_->RunCli(
      {"register-webhooks", "--connection", services_->options().connection_id, "--wait", "20"},
      &out);
  if (output != nullptr) *output = out;
  return rc == 0;
}

void FreshBooksWorld::StartAuthorized() {
  services_->StartAll();
  std::string page;
  const int status = Authorize(&page);
  if (status != 200) {
    throw std::runtime_error(absl::StrCat("authorization answered ", status, ": ", page,
                                          "\nwriter log:\n", services_->WriterLog()));
  }
  std::string out;
  if (!RegisterWebhooks(&out)) {
    throw std::runtime_error("register-webhooks failed: " + out + "\nwriter log:\n" +
                             services_->WriterLog());
  }
}

std::string FreshBooksWorld::Lakehouse(const std::string& sql) {
  try {
    return services_->Query("lakehouse.db", sql);
  } catch (const std::exception&) {
    return "";  // e.g. table not created yet
  }
}

bool FreshBooksWorld::WaitLakehouse(const std::string& sql, const std::string& want,
                                    std::chrono::milliseconds timeout) {
  return WaitFor([&] { return Lakehouse(sql) == want; }, timeout);
}

}  // namespace mlc::testing
