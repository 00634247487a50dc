// The FreshBooks side of the writer's in-process tests (connections, hydrator,
// connection check): the fake FreshBooks on loopback, the writer's real
// encrypted CredentialStore, connection "acme" configured for OAuth against the
// fake, and the authorization an operator completes through ingress's callback,
// done in process. Header-only like test_deliveries.h: mlc_testing does not
// link the writer library, the tests that use this do.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/http_client.h"
#include "tests/fakes/fake_freshbooks.h"
#include "tests/support/test_util.h"
#include "writer/credential_store.h"
#include "writer/freshbooks_connections.h"

namespace mlc::testing {

// Where FreshBooks would send the browser back to; never dialled by these tests.
inline constexpr char kTestRedirectUri[] = "http://127.0.0.1:9/oauth/freshbooks/callback";

class FreshBooksOAuthTest : public ::testing::Test {
 protected:
  // Starts the fake FreshBooks with `options` (its redirect URI becomes
  // kTestRedirectUri) and opens the credential store in dir_.
  void StartFreshBooks(FakeFreshBooks::Options options = {}) {
    options.redirect_uri = kTestRedirectUri;
    fb_ = std::make_unique<FakeFreshBooks>(options);
    ASSERT_TRUE(fb_->Start().ok());
    auto store = writer::CredentialStore::Open(dir_.File("credentials.db"), std::string(32, 'k'));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Connection "acme" with OAuth against the fake: client id and secret,
  // redirect URI, API and authorization URLs. Nothing else is set.
  ConnectionConfig OAuthConnection() const {
    ConnectionConfig c;
    c.id = "acme";
    c.freshbooks.client_id = fb_->options().client_id;
    c.freshbooks.client_secret = fb_->options().client_secret;
    c.freshbooks.redirect_uri = kTestRedirectUri;
    c.freshbooks.api_url = fb_->url();
    c.freshbooks.auth_url = fb_->url();
    return c;
  }

  // The `state` of a fresh authorization URL for "acme" (which must point at
  // the fake's authorize page).
  std::string StartState(writer::FreshBooksConnections* conns) {
    auto r = conns->StartAuthorization("acme");
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    const std::string& url = r->first;
    EXPECT_EQ(url.rfind(fb_->url() + "/oauth/authorize?", 0), 0u) << url;
    for (absl::string_view part : absl::StrSplit(url.substr(url.find('?') + 1), '&')) {
      if (absl::StartsWith(part, "state=")) return std::string(part.substr(6));
    }
    ADD_FAILURE() << "no state in " << url;
    return "";
  }

  // Authorizes "acme" the way ingress's OAuth callback does, with a code the
  // fake issued for a fresh state.
  void Authorize(writer::FreshBooksConnections* conns) {
    auto r = conns->CompleteAuthorization(fb_->IssueAuthorizationCode(), StartState(conns), "", "");
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // Declared before the fake and the store so that it outlives both.
  FakeClock clock_{absl::Now()};
  TempDir dir_;
  std::unique_ptr<FakeFreshBooks> fb_;
  std::unique_ptr<writer::CredentialStore> store_;
  HttplibClient http_;
};

}  // namespace mlc::testing
