// dsn_inputs: what a bounce says about a settled message, field by field, and the status
// each recipient ends up with once build_bounce has read its diagnostic.
#include "portrelay/spool/dsn_inputs.hpp"

#include <gtest/gtest.h>

namespace portrelay::spool {
namespace {

using namespace std::chrono_literals;

Envelope envelope() {
  Envelope e;
  e.id = "018C2F0A1B2C3D4E5";
  e.arrival_ms = 1'700'000'000'000;
  e.sender = "a@example.test";
  e.recipients = {"b@example.test", "c@example.test", "d@example.test"};
  return e;
}

Settlement settlement(std::vector<std::size_t> bounced, bool expired,
                      std::vector<std::string> replies) {
  Settlement s;
  for (auto& reply : replies) s.state.recipients.push_back({RecipientStatus::Bounced, reply});
  s.bounced = std::move(bounced);
  s.expired = expired;
  s.finished = true;
  return s;
}

DsnContext context() { return DsnContext{"relay.example.test", 1'700'000'100'000, 120h}; }

TEST(DsnInputs, RefusedRecipientsCarryTheirReplyAndNoStatusOfTheirOwn) {
  auto input = dsn_inputs(context(), envelope(),
                          settlement({0, 2}, false, {"550 5.1.1 unknown", "250 ok", "554 no"}),
                          "Subject: hi\r\n");
  EXPECT_EQ(input.reporting_mta, "relay.example.test");
  EXPECT_EQ(input.queue_id, "018C2F0A1B2C3D4E5");
  EXPECT_EQ(input.original_sender, "a@example.test");
  EXPECT_EQ(input.arrival_ms, 1'700'000'000'000);
  EXPECT_EQ(input.now_ms, 1'700'000'100'000);
  EXPECT_EQ(input.reason, "was refused by the upstream server");
  EXPECT_EQ(input.original_headers, "Subject: hi\r\n");
  ASSERT_EQ(input.recipients.size(), 2u);
  EXPECT_EQ(input.recipients[0].address, "b@example.test");
  EXPECT_EQ(input.recipients[0].action, "failed");
  EXPECT_EQ(input.recipients[0].diagnostic, "550 5.1.1 unknown");
  EXPECT_EQ(input.recipients[0].status, "");
  EXPECT_EQ(input.recipients[0].remote_mta, "");
  EXPECT_EQ(input.recipients[1].address, "d@example.test");
  EXPECT_EQ(input.recipients[1].diagnostic, "554 no");
  EXPECT_EQ(input.recipients[1].status, "");
}

TEST(DsnInputs, ExpiredRecipientsAre447AndTheReasonNamesTheLifetime) {
  auto input = dsn_inputs(context(), envelope(),
                          settlement({1}, true, {"250 ok", "451 4.7.1 later", "250 ok"}), "");
  EXPECT_EQ(input.reason, "could not be delivered within 432000s");
  ASSERT_EQ(input.recipients.size(), 1u);
  EXPECT_EQ(input.recipients[0].address, "c@example.test");
  EXPECT_EQ(input.recipients[0].status, "4.4.7");
  EXPECT_EQ(input.recipients[0].diagnostic, "451 4.7.1 later");
}

TEST(DsnInputs, RemoteMtaIsTheHostOfTheEndpointThatAnswered) {
  Settlement s = settlement({0, 1}, false, {"550 5.1.1 unknown", "554 no", "250 ok"});
  s.remote_mta = {"smtp.example.test:587", "", "other.example.test:25"};
  DsnContext with_hosts = context();
  with_hosts.remote_host = [](const std::string& label) {
    return label.substr(0, label.find(':'));
  };
  auto input = dsn_inputs(with_hosts, envelope(), s, "");
  ASSERT_EQ(input.recipients.size(), 2u);
  EXPECT_EQ(input.recipients[0].remote_mta, "smtp.example.test");
  EXPECT_EQ(input.recipients[1].remote_mta, "");  // nobody answered for it
  // Without a mapper, the label itself.
  EXPECT_EQ(dsn_inputs(context(), envelope(), s, "").recipients[0].remote_mta,
            "smtp.example.test:587");
}

// The statuses a sender reads: the enhanced code of the reply when it has a valid one of
// its class, else the reply's class, else 5.0.0; 4.4.7 for an expiry.
TEST(DsnInputs, StatusesInTheBuiltBounce) {
  auto refused =
      dsn_inputs(context(), envelope(),
                 settlement({0, 1, 2}, false,
                            {"550 5.1.1 unknown", "550-5.7.1 policy", "bounced by the operator"}),
                 "");
  const std::string text = build_bounce(refused);
  const auto first = text.find("Status: 5.1.1");
  const auto second = text.find("Status: 5.7.1", first);
  const auto third = text.find("Status: 5.0.0", second);
  EXPECT_NE(first, std::string::npos) << text;
  EXPECT_NE(second, std::string::npos) << text;
  EXPECT_NE(third, std::string::npos) << text;

  auto expired =
      dsn_inputs(context(), envelope(), settlement({0}, true, {"550 5.1.1 unknown"}), "");
  EXPECT_NE(build_bounce(expired).find("Status: 4.4.7"), std::string::npos);
}

}  // namespace
}  // namespace portrelay::spool
