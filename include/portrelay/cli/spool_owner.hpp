#pragma once
// `portrelay queue` and `mailq` run by root on a spool another user owns act as that user.
//
// Whoever owns the spool controls every name in it: root reading or changing files there
// could be led to files that are not the spool's. So root first becomes the owner (its
// supplementary groups, then its primary group, then its uid; each step checked, and the
// way back to root checked closed), and only then touches a file.
#include <sys/types.h>

#include "portrelay/base/result.hpp"

namespace portrelay::cli {

// Becomes `uid`: its groups and primary gid from the password database, else `fallback_gid`
// (the spool directory's group) alone. Error text says which step failed and why.
Result<bool> become_spool_owner(uid_t uid, gid_t fallback_gid);

}  // namespace portrelay::cli
