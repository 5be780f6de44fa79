// judge_admission and its replies: each limit, its boundary, and the order they are
// checked in, with the exact reply a client gets.
#include <gtest/gtest.h>

#include "portrelay/spool/admission.hpp"

namespace portrelay::spool {
namespace {

AdmissionLimits limits() { return AdmissionLimits{10, 1000, 100}; }

SpoolLoad load(std::size_t messages, std::uint64_t bytes,
               std::optional<std::uint64_t> free_disk = 1'000'000) {
  return SpoolLoad{messages, bytes, free_disk, false};
}

TEST(SpoolAdmission, RoomForTheMessageIsAdmitted) {
  EXPECT_EQ(judge_admission(load(9, 500), limits(), 500), AdmissionVerdict::Admitted);
  EXPECT_EQ(judge_admission(load(0, 0), limits(), 0), AdmissionVerdict::Admitted);
}

TEST(SpoolAdmission, MaxMessagesCountsThoseBeingStored) {
  // The caller adds the messages being stored to the load: the tenth is refused.
  EXPECT_EQ(judge_admission(load(10, 0), limits(), 0), AdmissionVerdict::MaxMessages);
}

TEST(SpoolAdmission, MaxBytesIsTheLoadPlusTheMessage) {
  EXPECT_EQ(judge_admission(load(1, 600), limits(), 400), AdmissionVerdict::Admitted);
  EXPECT_EQ(judge_admission(load(1, 600), limits(), 401), AdmissionVerdict::MaxBytes);
}

TEST(SpoolAdmission, MinFreeDiskLeavesTheMarginAfterTheMessage) {
  EXPECT_EQ(judge_admission(load(1, 0, 150), limits(), 50), AdmissionVerdict::Admitted);
  EXPECT_EQ(judge_admission(load(1, 0, 150), limits(), 51), AdmissionVerdict::MinFreeDisk);
  // Unknown free space (statvfs failed) is no reason to refuse.
  EXPECT_EQ(judge_admission(load(1, 0, std::nullopt), limits(), 51), AdmissionVerdict::Admitted);
}

TEST(SpoolAdmission, ShuttingDownComesFirstThenTheLimitsInOrder) {
  SpoolLoad everything_full{10, 2000, 0, true};
  EXPECT_EQ(judge_admission(everything_full, limits(), 1), AdmissionVerdict::ShuttingDown);
  everything_full.stopping = false;
  EXPECT_EQ(judge_admission(everything_full, limits(), 1), AdmissionVerdict::MaxMessages);
  everything_full.messages = 0;
  EXPECT_EQ(judge_admission(everything_full, limits(), 1), AdmissionVerdict::MaxBytes);
}

TEST(SpoolAdmission, OnlyRefusalsForLackOfRoomHaveAReason) {
  EXPECT_EQ(refusal_reason(AdmissionVerdict::Admitted), nullptr);
  EXPECT_EQ(refusal_reason(AdmissionVerdict::ShuttingDown), nullptr);
  EXPECT_STREQ(refusal_reason(AdmissionVerdict::MaxMessages), "max_messages");
  EXPECT_STREQ(refusal_reason(AdmissionVerdict::MaxBytes), "max_bytes");
  EXPECT_STREQ(refusal_reason(AdmissionVerdict::MinFreeDisk), "min_free_disk");
}

TEST(SpoolAdmission, RefusalReplies) {
  EXPECT_EQ(refusal_reply(AdmissionVerdict::ShuttingDown, limits()).summary(),
            "451 4.3.2 Shutting down, try again later");
  EXPECT_EQ(refusal_reply(AdmissionVerdict::MaxMessages, limits()).summary(),
            "452 4.3.1 Queue full (10 messages), try again later");
  EXPECT_EQ(refusal_reply(AdmissionVerdict::MaxBytes, limits()).summary(),
            "452 4.3.1 Queue full (size limit), try again later");
  EXPECT_EQ(refusal_reply(AdmissionVerdict::MinFreeDisk, limits()).summary(),
            "452 4.3.1 Not enough free disk space for the queue, try again later");
}

}  // namespace
}  // namespace portrelay::spool
