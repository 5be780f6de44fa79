#pragma once
// Status: the outcome of an operation that produces no value (a write, a sync, a rename),
// after LevelDB's Status: ok, or an Error with its code. It replaces Result<bool>, where
// the bool meant nothing.
#include <utility>

#include "portrelay/base/result.hpp"

namespace portrelay {

class [[nodiscard]] Status {
 public:
  Status() = default;                                            // ok
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit, as Result
  static Status ok_status() { return Status(); }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  // Only when !ok().
  const Error& error() const { return error_; }
  ErrorCode code() const { return ok_ ? ErrorCode::Unspecified : error_.code; }

 private:
  Error error_;
  bool ok_ = true;
};

// An Error for the failed system call described by `what`: "what: strerror(error)", coded
// from the errno value.
Error os_error(const std::string& what, int error);

}  // namespace portrelay
