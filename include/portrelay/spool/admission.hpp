#pragma once
// spool::judge_admission: whether the spool can take a message of N octets now, and if not,
// why. Pure: the caller passes what the queue holds and the free disk space, so every
// limit is unit-tested without a disk. Deciding is separate from refusing: a caller that
// only asks (may I queue instead of relaying?) learns the answer without counting a
// refusal; Spool::refuse() is the one place that counts and logs one.
#include <cstdint>
#include <optional>
#include <string>

#include "portrelay/smtp/reply.hpp"

namespace portrelay::spool {

// What the spool holds now, counting the messages being stored (accepted, not yet durable):
// they take room before they are acknowledged.
struct SpoolLoad {
  std::size_t messages = 0;                // queue/ and failed/, plus those being stored
  std::uint64_t bytes = 0;                 // queue/ files, plus those being stored
  std::optional<std::uint64_t> free_disk;  // nullopt: unknown (statvfs failed): not a reason
  bool stopping = false;                   // shutting down: nothing new is taken
};

struct AdmissionLimits {
  std::size_t max_messages = 0;
  std::uint64_t max_bytes = 0;
  std::uint64_t min_free_disk = 0;  // free space the spool must leave after the message
};

enum class AdmissionVerdict {
  Admitted,
  ShuttingDown,  // 451: not a refusal for lack of room (not counted)
  MaxMessages,   // 452 from here on
  MaxBytes,
  MinFreeDisk,
};

// The first limit that `size` more octets would break, in the order above.
AdmissionVerdict judge_admission(const SpoolLoad& load, const AdmissionLimits& limits,
                                 std::uint64_t size);

// The portrelay_spool_refusals_total reason ("max_messages", ...); nullptr for the
// verdicts that are not counted (Admitted, ShuttingDown).
const char* refusal_reason(AdmissionVerdict verdict);

// The reply a client gets for a verdict other than Admitted: 451 4.3.2 while shutting down,
// 452 4.3.1 for a full spool (RFC 3463: mail system full).
smtp::Reply refusal_reply(AdmissionVerdict verdict, const AdmissionLimits& limits);

}  // namespace portrelay::spool
