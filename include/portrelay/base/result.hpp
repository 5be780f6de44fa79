#pragma once
// Failures are values. A Result<T> holds either the value a parser or an I/O completion
// produced, or the error that prevented it, in the spirit of LevelDB's Status: the caller
// must look before using the value, and the error says what went wrong in words fit for a
// log line or an SMTP reply text (never a secret).
//
// The rule (docs/ARCHITECTURE.md): code that runs on the event loop (parsers, protocol
// state machines, I/O completions) reports failures as values: Result<T>, or a variant
// such as relay::UpstreamResponse. Only start-up code (loading the config, building TLS
// contexts, binding listeners) throws, and the command line turns that into a message and
// an exit status.
#include <string>
#include <utility>
#include <variant>

namespace portrelay {

// What kind of failure an Error is, for code that must act on it: an I/O error says nothing
// about a file's content (leave it, try again), corruption does (set it aside). Decisions
// are made on the code, never on the message's words. Unspecified is the default, so every
// Error{"text"} written before codes existed still means what it meant.
enum class ErrorCode {
  Unspecified,
  IoError,           // EIO and any other failure of the system call itself
  Corruption,        // the bytes were read but are not what they must be
  NotFound,          // ENOENT
  AlreadyExists,     // EEXIST
  NoSpace,           // ENOSPC, EDQUOT
  PermissionDenied,  // EACCES, EPERM
  TooManyFiles,      // EMFILE, ENFILE
  Refused,           // a name that is not what it must be (symbolic link, FIFO, directory)
  InvalidArgument,
  ShuttingDown,
};

const char* to_string(ErrorCode code);
// The code for an errno value (IoError for those without one of their own).
ErrorCode error_code_from_errno(int error);

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::Unspecified;
};

template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // Only when ok().
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // Only when !ok().
  const E& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, E> state_;
};

}  // namespace portrelay
