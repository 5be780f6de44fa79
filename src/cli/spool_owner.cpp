#include "portrelay/cli/spool_owner.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace portrelay::cli {
namespace {

Error failed(const std::string& what) { return Error{what + ": " + std::strerror(errno)}; }

}  // namespace

Result<bool> become_spool_owner(uid_t uid, gid_t fallback_gid) {
  gid_t gid = fallback_gid;
  std::string name;
  if (const passwd* entry = ::getpwuid(uid)) {
    gid = entry->pw_gid;
    name = entry->pw_name;
  }
  // Groups first: setgroups and setgid need root, which setuid gives up.
  if (!name.empty() ? ::initgroups(name.c_str(), gid) != 0 : ::setgroups(1, &gid) != 0)
    return failed("cannot set the supplementary groups of uid " + std::to_string(uid));
  if (::setgid(gid) != 0) return failed("cannot change to gid " + std::to_string(gid));
  if (::setuid(uid) != 0) return failed("cannot change to uid " + std::to_string(uid));
  if (::getuid() != uid || ::geteuid() != uid || ::getgid() != gid || ::getegid() != gid)
    return Error{"the change to uid " + std::to_string(uid) + " did not take"};
  if (uid != 0 && ::setuid(0) == 0) return Error{"uid 0 is still reachable after the change"};
  return true;
}

}  // namespace portrelay::cli
