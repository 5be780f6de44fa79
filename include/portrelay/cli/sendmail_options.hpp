#pragma once
// The sendmail(8) command line as cron, PHP, mail(1), logwatch and friends use it.
#include <optional>
#include <string>
#include <vector>

namespace portrelay::cli {

struct SendmailOptions {
  enum class Mode {
    kDeliver,     // -bm (the default): a message on stdin
    kListQueue,   // -bp, or invoked as mailq
    kNoop,        // -bi (newaliases), -q (queue run): no aliases; the daemon runs its queue
    kUnsupported  // -bd, -bD, -bs, -bt, -bv, -bh, -bH: say so, exit EX_USAGE
  };
  Mode mode = Mode::kDeliver;
  std::string mode_flag;                 // "-bs" etc., for the message
  std::string config_path;               // --config FILE, else -C FILE ("" if neither)
  std::string sender;                    // -f / -r
  bool sender_given = false;             // "-f <>" (null sender) is given and empty
  std::string full_name;                 // -F
  bool recipients_from_headers = false;  // -t
  bool lone_dot_ends = true;             // cleared by -i, -oi, -oi=true
  bool verbose = false;                  // -v
  std::string body_type;                 // -B 8BITMIME / 7BIT
  std::vector<std::string> recipients;   // arguments after the options
  std::vector<std::string> ignored;      // accepted, meaningless here (for -v output)
  bool help = false;                     // --help
};

struct SendmailParse {
  std::optional<SendmailOptions> options;
  std::string error;  // when options is nullopt: a usage error (EX_USAGE)
};

// getopt-style: flags may be grouped ("-ti"); an option's value may be attached ("-fuser",
// "-oi", "-FCronDaemon") or the next argument ("-f user"); "--" ends the options. Options
// that mean nothing for a relay without a queue (-o*, -O, -N, -R, -V, -X, -L, -h, -p, -U,
// -G, -A, -m, -n, -e, -c, -x, -I) are accepted and ignored, and so is any other letter, with a
// note: refusing a message because of an unfamiliar flag loses it. Only a missing value
// (-f at the end) is an error.
SendmailParse parse_sendmail_arguments(const std::vector<std::string>& arguments);

}  // namespace portrelay::cli
