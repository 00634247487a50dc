// The translation of `mlc`'s delivery filter flags into a DeliveryFilter and back
// into the flags of a hint, and the small formatters the new commands use.
#include "cli/delivery_filter.h"

#include <google/protobuf/util/message_differencer.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "cli/flags.h"
#include "cli/table.h"

namespace mlc::cli {
namespace {

// 2025-11-26T12:00:00Z plus a fraction, as a clock reads.
const absl::Time kNow = absl::FromUnixSeconds(1764158400) + absl::Milliseconds(730);

ParsedFlags Parse(const std::vector<std::string>& args) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(args, DeliveryFilterFlags());
  EXPECT_TRUE(flags.ok()) << flags.status();
  return flags.ok() ? *flags : ParsedFlags();
}

absl::StatusOr<mlconnector::v1::DeliveryFilter> Filter(const std::vector<std::string>& args) {
  return DeliveryFilterFromFlags(Parse(args), kNow);
}

TEST(ParseAgeTest, AcceptsUnitsAndSums) {
  EXPECT_EQ(*ParseAge("45s"), absl::Seconds(45));
  EXPECT_EQ(*ParseAge("30m"), absl::Minutes(30));
  EXPECT_EQ(*ParseAge("2h"), absl::Hours(2));
  EXPECT_EQ(*ParseAge("7d"), absl::Hours(7 * 24));
  EXPECT_EQ(*ParseAge("2w"), absl::Hours(14 * 24));
  EXPECT_EQ(*ParseAge("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseAge("1d12h"), absl::Hours(36));
}

TEST(ParseAgeTest, RejectsEverythingElse) {
  for (const char* bad :
       {"", "2", "h", "2x", "-2h", "2h-", "1.5h", "0s", "0h0m", " 2h", "2H", "9999999999d"}) {
    EXPECT_FALSE(ParseAge(bad).ok()) << bad;
  }
}

TEST(ParseTimeBoundTest, AgesCountBackFromNowInWholeSeconds) {
  absl::StatusOr<absl::Time> t = ParseTimeBound("since", "2h", kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, absl::FromUnixSeconds(1764158400) - absl::Hours(2));
}

TEST(ParseTimeBoundTest, AcceptsRfc3339AndDates) {
  EXPECT_EQ(*ParseTimeBound("since", "2025-11-26T10:00:00Z", kNow),
            absl::FromUnixSeconds(1764151200));
  EXPECT_EQ(*ParseTimeBound("since", "2025-11-26T11:00:00+01:00", kNow),
            absl::FromUnixSeconds(1764151200));
  EXPECT_EQ(*ParseTimeBound("until", "2025-11-26T10:00:00.25Z", kNow),
            absl::FromUnixSeconds(1764151200) + absl::Milliseconds(250));
  EXPECT_EQ(*ParseTimeBound("until", "2025-11-26", kNow), absl::FromUnixSeconds(1764115200));
}

TEST(ParseTimeBoundTest, ErrorsNameTheFlagAndTheForms) {
  absl::StatusOr<absl::Time> t = ParseTimeBound("until", "yesterday", kNow);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(t.status().message(), "--until wants an age back from now"))
      << t.status();
  EXPECT_TRUE(absl::StrContains(t.status().message(), "RFC 3339")) << t.status();
  EXPECT_TRUE(absl::StrContains(t.status().message(), "\"yesterday\"")) << t.status();
  EXPECT_FALSE(ParseTimeBound("since", "2025-13-01", kNow).ok());
  EXPECT_FALSE(ParseTimeBound("since", "2025-11-26T10:00:00", kNow).ok());  // no zone
}

TEST(DeliveryFilterTest, NoFlagsIsAnEmptyFilter) {
  const ParsedFlags none = Parse({});
  EXPECT_FALSE(HasDeliveryFilterFlags(none));
  absl::StatusOr<mlconnector::v1::DeliveryFilter> f = DeliveryFilterFromFlags(none, kNow);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->ByteSizeLong(), 0u);
  EXPECT_TRUE(DeliveryFilterArgs(*f).empty());
}

TEST(DeliveryFilterTest, EveryFlagLandsInItsField) {
  const ParsedFlags flags =
      Parse({"--connection", "acme", "--event", "bill_vendor.update", "--object", "42", "--status",
             "dead", "--status", "pending, written,dead", "--since", "7d", "--until", "30m",
             "--error", "type conflict"});
  EXPECT_TRUE(HasDeliveryFilterFlags(flags));
  absl::StatusOr<mlconnector::v1::DeliveryFilter> f = DeliveryFilterFromFlags(flags, kNow);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->connection_id(), "acme");
  EXPECT_EQ(f->event_type(), "bill_vendor.update");
  EXPECT_EQ(f->object_id(), "42");
  EXPECT_EQ(std::vector<std::string>(f->statuses().begin(), f->statuses().end()),
            (std::vector<std::string>{"dead", "pending", "written"}));  // once each, in order
  EXPECT_EQ(f->received_after().seconds(), 1764158400 - 7 * 86400);
  EXPECT_EQ(f->received_after().nanos(), 0);
  EXPECT_EQ(f->received_before().seconds(), 1764158400 - 1800);
  EXPECT_EQ(f->error_contains(), "type conflict");
}

TEST(DeliveryFilterTest, BadValuesAreErrorsNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--connection", ""}, "--connection needs a value"},
      {{"--object", ""}, "--object needs a value"},
      {{"--error", ""}, "--error needs a value"},
      {{"--event", "Invoice"}, "--event wants an object (invoice) or an event"},
      {{"--event", "invoice.create.now"}, "--event wants"},
      {{"--event", "invoice."}, "--event wants"},
      {{"--status", "deadish"}, "--status wants one of pending, written, dead, handshake"},
      {{"--status", ""}, "--status needs a value"},
      {{"--since", "soon"}, "--since wants"},
      {{"--since", "1h", "--until", "2h"}, "--since (2025-11-26T11:00:00+00:00) must be before"},
      {{"--since", "2025-11-26T10:00:00Z", "--until", "2025-11-26T10:00:00Z"}, "must be before"},
  };
  for (const auto& [args, want] : cases) {
    absl::StatusOr<mlconnector::v1::DeliveryFilter> f = Filter(args);
    ASSERT_FALSE(f.ok()) << args[0];
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(f.status().message(), want)) << f.status() << "\nwant: " << want;
  }
}

TEST(DeliveryFilterTest, ArgsSelectTheSameFilterAgain) {
  absl::StatusOr<mlconnector::v1::DeliveryFilter> f =
      Filter({"--connection", "acme", "--event", "invoice", "--status", "dead,pending", "--since",
              "2h", "--until", "2025-11-26T11:59:30.5Z", "--error", "it's HTTP 500"});
  ASSERT_TRUE(f.ok()) << f.status();
  const std::vector<std::string> args = DeliveryFilterArgs(*f);
  EXPECT_EQ(args, (std::vector<std::string>{
                      "--connection", "acme", "--event", "invoice", "--status", "dead", "--status",
                      "pending", "--since", "2025-11-26T10:00:00+00:00", "--until",
                      "2025-11-26T11:59:30.5+00:00", "--error", R"('it'\''s HTTP 500')"}));
  // Unquoted (as a shell would), they parse into the very same filter, even a
  // minute later.
  std::vector<std::string> unquoted = args;
  unquoted.back() = "it's HTTP 500";
  absl::StatusOr<ParsedFlags> again = ParseFlags(unquoted, DeliveryFilterFlags());
  ASSERT_TRUE(again.ok()) << again.status();
  absl::StatusOr<mlconnector::v1::DeliveryFilter> g =
      DeliveryFilterFromFlags(*again, kNow + absl::Minutes(1));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*f, *g))
      << f->DebugString() << "\nvs\n"
      << g->DebugString();
}

TEST(ShellQuoteTest, QuotesOnlyWhatAShellWouldChange) {
  EXPECT_EQ(ShellQuote("acme"), "acme");
  EXPECT_EQ(ShellQuote("d_019ab-2.x:y/z=1@2%+,"), "d_019ab-2.x:y/z=1@2%+,");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("HTTP 500"), "'HTTP 500'");
  EXPECT_EQ(ShellQuote("$HOME"), "'$HOME'");
  EXPECT_EQ(ShellQuote("a'b"), R"('a'\''b')");
  EXPECT_EQ(ShellQuote("*"), "'*'");
}

TEST(TimestampTest, RoundTripsAndTellsUnsetApart) {
  const absl::Time t = absl::FromUnixSeconds(1764158400) + absl::Nanoseconds(123456789);
  const google::protobuf::Timestamp ts = ToTimestamp(t);
  EXPECT_EQ(ts.seconds(), 1764158400);
  EXPECT_EQ(ts.nanos(), 123456789);
  EXPECT_EQ(FromTimestamp(ts), t);
  EXPECT_TRUE(IsSet(ts));
  EXPECT_FALSE(IsSet(google::protobuf::Timestamp()));
}

TEST(FormatTest, BytesMillisAgoAndTruncate) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(12897484), "12.3 MiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3.0 GiB");
  EXPECT_EQ(FormatMillis(0.44), "0.4ms");
  EXPECT_EQ(FormatMillis(85), "85ms");
  EXPECT_EQ(FormatMillis(1234.5), "1.2s");
  EXPECT_EQ(FormatMillis(125000), "2m05s");
  EXPECT_EQ(FormatMillis(-1), "0.0ms");
  EXPECT_EQ(FormatAgo(kNow - absl::Minutes(3), kNow), "3m ago");
  EXPECT_EQ(FormatAgo(kNow + absl::Hours(2), kNow), "in 2h");
  EXPECT_EQ(Truncate("short", 10), "short");
  EXPECT_EQ(Truncate("0123456789", 10), "0123456789");
  EXPECT_EQ(Truncate("0123456789x", 10), "0123456...");
  // Code points, never a split one: 11 of them, cut to 7 + "...".
  EXPECT_EQ(Truncate("Ünïcödé ßtr", 10), "Ünïcödé...");
}

}  // namespace
}  // namespace mlc::cli
