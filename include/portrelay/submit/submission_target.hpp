#pragma once
// Where `portrelay sendmail` submits: the local daemon's listener, from its config file.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace portrelay::submit {

struct SubmissionTarget {
  std::string host = "127.0.0.1";  // numeric; a wildcard listener is reached on loopback
  std::uint16_t port = 2525;
  // Qualifies bare addresses: the first line of /etc/mailname, else server.hostname, else
  // this machine's name.
  std::string domain;
  std::string configured_domain;  // [rewrite] mail_domain, when written (it wins)
  std::uint64_t max_message_size = 25ull << 20;
  // Where a message goes when the daemon cannot be reached (spool/maildrop.hpp): the
  // spool's, or "" when the configuration keeps no spool to pick it up into.
  std::string maildrop = "/var/spool/portrelay/maildrop";
  // Set when the file could not be read for lack of permission and the defaults above stand
  // in for it (said in every error message, since the daemon may listen elsewhere).
  std::string fallback_note;
};

// The file exists but cannot serve (syntax error, no usable listener): "file: what".
struct SubmissionTargetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads only what a submission needs from the config at `path`: the first address in
// [server] listen that does not require AUTH, server.hostname, server.max_message_size. Not a
// full validation: the daemon's password, TLS and users files are typically unreadable to the
// users that run sendmail (cron jobs, the web server), and they do not matter here. A file
// the caller may not read (0640 root:portrelay) gives the defaults with `fallback_note` set.
SubmissionTarget find_submission_target(const std::string& path,
                                        const std::string& mailname_path = "/etc/mailname");

}  // namespace portrelay::submit
