// A FreshBooks world for integration tests: the fake FreshBooks plus both real
// binaries configured for OAuth against it (SQLite sink by default), and the
// steps an operator takes - authorize through the browser redirect, register
// webhooks - done the way a user does them (mlc, then HTTP redirects).
#pragma once

#include <memory>
#include <random>
#include <string>

#include "tests/fakes/fake_freshbooks.h"
#include "tests/support/services.h"

namespace mlc::testing {

// A new sample object of `entity` for FakeFreshBooks::Create (which assigns the id).
nlohmann::json NewSample(const std::string& entity, std::mt19937_64& rng);

struct FreshBooksWorldOptions {
  ServicesOptions services;            // freshbooks_url is filled in
  FakeFreshBooks::Options freshbooks;  // listen, client id/secret, redirect_uri filled in
};

class FreshBooksWorld {
 public:
  explicit FreshBooksWorld(FreshBooksWorldOptions options = {});
  ~FreshBooksWorld();

  FakeFreshBooks& fb() { return *fb_; }
  Services& services() { return *services_; }

  // `mlc authorize`, then follows the URL like a browser: the fake's authorize
  // page redirects to ingress's callback, which completes it. Returns the
  // callback page's HTTP status and body.
  int Authorize(std::string* page = nullptr);
  // `mlc register-webhooks --wait`; true when every callback is verified.
  bool RegisterWebhooks(std::string* output = nullptr);
  // Both of the above (asserting they work) after StartAll.
  void StartAuthorized();
  // Waits until `sql` (on lakehouse.db) yields `want`.
  bool WaitLakehouse(const std::string& sql, const std::string& want,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string Lakehouse(const std::string& sql);

 private:
  std::unique_ptr<Services> services_;
  std::unique_ptr<FakeFreshBooks> fb_;
};

}  // namespace mlc::testing
