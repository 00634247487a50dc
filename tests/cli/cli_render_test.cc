// The human renderings of the journal and health answers (cli/commands.h), against
// a fixed `now`: the edge cases the end-to-end tests in mlc_cli_test.cc leave out.
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/delivery_filter.h"

namespace mlc::cli {
namespace {

namespace v1 = ::mlconnector::v1;

const absl::Time kNow = absl::FromUnixSeconds(1764158400);  // 2025-11-26 12:00 UTC

TEST(RenderDeliveriesTest, EmptyPageStillOffersTheNextOne) {
  v1::ListDeliveriesResponse r;
  EXPECT_EQ(RenderDeliveries(r, kNow, "mlc deliveries --status dead"), "no deliveries match\n");
  r.set_next_page_token("a b");
  EXPECT_EQ(RenderDeliveries(r, kNow, ""),
            "no deliveries match\nmore: mlc deliveries --page-token 'a b'\n");
}

TEST(RenderDeliveriesTest, UnsetTimesAndMissingFieldsShowADash) {
  v1::ListDeliveriesResponse r;
  v1::Delivery* d = r.add_deliveries();
  d->set_delivery_id("d_1");
  d->set_connection_id("acme");
  d->set_status("pending");
  d->set_attempts(2);
  d->set_last_error("line one\n\tline two");
  EXPECT_EQ(
      RenderDeliveries(r, kNow, ""),
      "DELIVERY  CONNECTION  EVENT  OBJECT  STATUS   ATTEMPTS  RECEIVED  ERROR\n"
      "d_1       acme        -      -       pending         2  -         line one line two\n");
}

TEST(RenderDeliveryTest, PendingHandshakeWithoutPayloadOrAttempts) {
  v1::GetDeliveryResponse r;
  v1::Delivery* d = r.mutable_delivery();
  d->set_delivery_id("d_2");
  d->set_connection_id("acme");
  d->set_kind("handshake");
  d->set_status("pending");
  *d->mutable_received_at() = ToTimestamp(kNow - absl::Minutes(2));
  *d->mutable_next_attempt_at() = ToTimestamp(kNow + absl::Minutes(5));
  EXPECT_EQ(RenderDelivery(r, kNow),
            "delivery      d_2\n"
            "connection    acme\n"
            "kind          handshake\n"
            "event         -\n"
            "object        -\n"
            "account       -\n"
            "business      -\n"
            "identity      -\n"
            "user          -\n"
            "status        pending\n"
            "attempts      0 failed\n"
            "replays       0\n"
            "received      2025-11-26 11:58 UTC (2m ago)\n"
            "journaled     -\n"
            "next attempt  2025-11-26 12:05 UTC (in 5m)\n"
            "\n"
            "payload: none stored (a handshake's verifier is never stored)\n"
            "\n"
            "attempts: none recorded\n");
}

TEST(RenderDeliveryTest, PayloadThatIsNotPairsIsShownRaw) {
  v1::GetDeliveryResponse r;
  r.mutable_delivery()->set_delivery_id("d_3");
  r.mutable_delivery()->set_payload("{\"name\":\n\"x\"}");
  EXPECT_TRUE(absl::StrContains(RenderDelivery(r, kNow),
                                "\npayload (not a list of [name, value] pairs):\n"
                                "  {\"name\":\\n\"x\"}\n"))
      << RenderDelivery(r, kNow);
  r.mutable_delivery()->set_payload(R"([["object_id", 42], ["flag", null], ["bell", "a\u0007b"]])");
  EXPECT_TRUE(absl::StrContains(RenderDelivery(r, kNow),
                                "\npayload:\n  object_id = 42\n  flag = null\n  bell = a\\x07b\n"))
      << RenderDelivery(r, kNow);
}

TEST(RenderReplayTest, DryRunWithSkippedAndTruncation) {
  v1::ReplayResponse r;
  r.set_dry_run(true);
  r.set_matched(3);
  r.set_truncated(true);
  for (const char* id : {"d_1", "d_2", "d_3"}) r.add_delivery_ids(id);
  r.add_skipped("d_2: a handshake is not replayable");
  EXPECT_EQ(RenderReplay(r),
            "dry run: nothing was changed.\n"
            "matched 3 deliveries; 2 would be replayed, 1 skipped.\n"
            "ids:\n"
            "  d_1\n"
            "  d_2\n"
            "  d_3\n"
            "skipped (not replayable):\n"
            "  d_2: a handshake is not replayable\n"
            "truncated: more deliveries match than --limit (default 1000); a real run would "
            "replay only these. Raise --limit (at most 100000) or narrow the filter.\n"
            "Run the same command without --dry-run to replay them.\n");
}

TEST(RenderReplayTest, NothingMatched) {
  v1::ReplayResponse r;
  EXPECT_EQ(RenderReplay(r), "matched 0 deliveries; replayed 0.\n");
  r.set_dry_run(true);
  EXPECT_EQ(RenderReplay(r),
            "dry run: nothing was changed.\nmatched 0 deliveries; 0 would be "
            "replayed.\n");
  r.set_matched(1);
  r.add_delivery_ids("d_1");
  EXPECT_TRUE(absl::EndsWith(RenderReplay(r), "without --dry-run to replay it.\n"))
      << RenderReplay(r);
}

TEST(RenderDeadLettersTest, NoneAndUngroupedAndSeveralConnections) {
  v1::GetStatsResponse stats;
  const v1::ListDeliveriesResponse none;
  EXPECT_EQ(RenderDeadLetters(stats, none, kNow), "no dead letters\n");

  v1::ConnectionStats* acme = stats.add_connections();
  acme->set_connection_id("acme");
  acme->set_dead(1);
  v1::ConnectionStats* globex = stats.add_connections();
  globex->set_connection_id("globex corp");
  globex->set_dead(1);
  EXPECT_EQ(RenderDeadLetters(stats, none, kNow),
            "2 dead letters\n"
            "\nReplay them once the cause is fixed (--error TEXT picks one reason, --dry-run "
            "shows what would be replayed):\n"
            "  mlc replay --status dead --connection acme\n"
            "  mlc replay --status dead --connection 'globex corp'\n");
}

TEST(RenderStatsTest, NoConnectionsNoRetentionNeverCompacted) {
  v1::GetStatsResponse r;
  r.set_journal_bytes(4096);
  EXPECT_EQ(RenderStats(r, kNow),
            "no connections\n"
            "\n"
            "journal size     4.0 KiB\n"
            "audit retention  off (kept forever)\n"
            "last compaction  never\n");
}

TEST(RenderCheckTest, MultiLineFixesAreIndentedAndOkStepsHaveNone) {
  v1::CheckConnectionResponse r;
  r.set_connection_id("acme");
  v1::CheckStep* ok = r.add_steps();
  ok->set_system("writer");
  ok->set_name("credentials");
  ok->set_status("ok");
  ok->set_fix("never shown");
  v1::CheckStep* bad = r.add_steps();
  bad->set_system("databricks");
  bad->set_name("table freshbooks_invoices");
  bad->set_status("failed");
  bad->set_detail("permission denied:\nMODIFY on finance.freshbooks");
  bad->set_fix("GRANT MODIFY ON SCHEMA finance.freshbooks\nTO the service principal\n");
  EXPECT_EQ(RenderCheck(r),
            "SYSTEM      STEP                       STATUS  DETAIL\n"
            "writer      credentials                ok\n"
            "databricks  table freshbooks_invoices  failed  permission denied: MODIFY on "
            "finance.freshbooks\n"
            "\n"
            "to fix:\n"
            "  databricks table freshbooks_invoices (failed): GRANT MODIFY ON SCHEMA "
            "finance.freshbooks\n"
            "    TO the service principal\n"
            "\n"
            "connection acme: FAILED (2 steps: 1 ok, 1 failed)\n");
  EXPECT_EQ(RenderCheck(v1::CheckConnectionResponse()),
            "no steps reported\n\ncheck: FAILED (0 steps)\n");
}

}  // namespace
}  // namespace mlc::cli
