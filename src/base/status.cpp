#include "portrelay/base/status.hpp"

#include <cerrno>
#include <cstring>

namespace portrelay {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::Unspecified:
      return "error";
    case ErrorCode::IoError:
      return "io_error";
    case ErrorCode::Corruption:
      return "corruption";
    case ErrorCode::NotFound:
      return "not_found";
    case ErrorCode::AlreadyExists:
      return "already_exists";
    case ErrorCode::NoSpace:
      return "no_space";
    case ErrorCode::PermissionDenied:
      return "permission_denied";
    case ErrorCode::TooManyFiles:
      return "too_many_files";
    case ErrorCode::Refused:
      return "refused";
    case ErrorCode::InvalidArgument:
      return "invalid_argument";
    case ErrorCode::ShuttingDown:
      return "shutting_down";
  }
  return "error";
}

ErrorCode error_code_from_errno(int error) {
  switch (error) {
    case ENOENT:
      return ErrorCode::NotFound;
    case EEXIST:
      return ErrorCode::AlreadyExists;
    case ENOSPC:
    case EDQUOT:
      return ErrorCode::NoSpace;
    case EACCES:
    case EPERM:
      return ErrorCode::PermissionDenied;
    case EMFILE:
    case ENFILE:
      return ErrorCode::TooManyFiles;
    case ELOOP:
    case ENOTDIR:
    case EISDIR:
      return ErrorCode::Refused;
    case EINVAL:
    case ENAMETOOLONG:
      return ErrorCode::InvalidArgument;
    default:
      return ErrorCode::IoError;
  }
}

Error os_error(const std::string& what, int error) {
  return Error{what + ": " + std::strerror(error), error_code_from_errno(error)};
}

}  // namespace portrelay
