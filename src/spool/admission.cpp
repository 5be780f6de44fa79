#include "portrelay/spool/admission.hpp"

namespace portrelay::spool {

AdmissionVerdict judge_admission(const SpoolLoad& load, const AdmissionLimits& limits,
                                 std::uint64_t size) {
  if (load.stopping) return AdmissionVerdict::ShuttingDown;
  if (load.messages >= limits.max_messages) return AdmissionVerdict::MaxMessages;
  if (load.bytes + size > limits.max_bytes) return AdmissionVerdict::MaxBytes;
  if (load.free_disk && *load.free_disk < limits.min_free_disk + size)
    return AdmissionVerdict::MinFreeDisk;
  return AdmissionVerdict::Admitted;
}

const char* refusal_reason(AdmissionVerdict verdict) {
  switch (verdict) {
    case AdmissionVerdict::Admitted:
    case AdmissionVerdict::ShuttingDown:
      return nullptr;
    case AdmissionVerdict::MaxMessages:
      return "max_messages";
    case AdmissionVerdict::MaxBytes:
      return "max_bytes";
    case AdmissionVerdict::MinFreeDisk:
      return "min_free_disk";
  }
  return nullptr;
}

smtp::Reply refusal_reply(AdmissionVerdict verdict, const AdmissionLimits& limits) {
  switch (verdict) {
    case AdmissionVerdict::ShuttingDown:
    case AdmissionVerdict::Admitted:  // not a refusal; answered as the safe one
      return smtp::make_reply(451, "4.3.2", "Shutting down, try again later");
    case AdmissionVerdict::MaxMessages:
      return smtp::make_reply(
          452, "4.3.1",
          "Queue full (" + std::to_string(limits.max_messages) + " messages), try again later");
    case AdmissionVerdict::MaxBytes:
      return smtp::make_reply(452, "4.3.1", "Queue full (size limit), try again later");
    case AdmissionVerdict::MinFreeDisk:
      return smtp::make_reply(452, "4.3.1",
                              "Not enough free disk space for the queue, try again later");
  }
  return smtp::make_reply(451, "4.3.2", "Shutting down, try again later");
}

}  // namespace portrelay::spool
