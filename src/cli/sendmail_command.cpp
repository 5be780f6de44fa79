// `portrelay sendmail` / `mailq`: the sendmail(8) interface that cron, PHP's mail(), mail(1),
// logwatch, unattended-upgrades, smartd and mdadm call, submitting to the local daemon.
#include <pwd.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "portrelay/cli/commands.hpp"
#include "portrelay/cli/config_path.hpp"
#include "portrelay/cli/sendmail_options.hpp"
#include "portrelay/smtp/command.hpp"
#include "portrelay/spool/maildrop.hpp"
#include "portrelay/submit/address_list.hpp"
#include "portrelay/submit/message.hpp"
#include "portrelay/submit/smtp_submission.hpp"
#include "portrelay/submit/submission_target.hpp"

namespace portrelay::cli {
namespace {

constexpr const char* kSendmailUsage =
    "Usage: portrelay sendmail [options] [recipient...]   (also as a link named sendmail)\n"
    "Reads a message on stdin and submits it to the local portrelay daemon (its first\n"
    "[server] listen address without AUTH), like sendmail(8). Exit 0 means the daemon took\n"
    "it (an upstream accepted it, or it is queued), or, when no daemon answers and the\n"
    "configuration keeps a spool, that it is stored in the spool's maildrop for the daemon\n"
    "to send when it starts.\n"
    "  -t             recipients also from To:, Cc:, Bcc: (Bcc: is removed)\n"
    "  -f ADDR, -r ADDR  envelope sender (default: your login @ the first line of\n"
    "                 /etc/mailname, else server.hostname)\n"
    "  -F NAME        full name for the From: field added when there is none\n"
    "  -i, -oi        a line with only '.' does not end the message\n"
    "  -v             show the SMTP dialogue on stderr\n"
    "  -C FILE, --config FILE  config file (default: $PORTRELAY_CONFIG, else\n"
    "                 /etc/portrelay/portrelay.toml)\n"
    "  -bp            list the queue (as mailq); -bm deliver (the default)\n"
    "Other sendmail options (-oem, -odi, -odb, -B8BITMIME, -N, -R, -V, -X, ...) are accepted.\n"
    "Exit status (sysexits.h): 0 sent, 64 usage, 65 message refused (5xx), 67 recipient\n"
    "refused (5xx), 75 relay busy (4xx), or unreachable with no maildrop: try again,\n"
    "78 config unusable.\n";

struct Identity {
  std::string login;
  std::string full_name;  // first field of the GECOS entry
};

Identity invoking_user() {
  Identity identity{"uid" + std::to_string(::getuid()), ""};
  if (const passwd* entry = ::getpwuid(::getuid())) {
    identity.login = entry->pw_name;
    if (entry->pw_gecos != nullptr) {
      std::string gecos = entry->pw_gecos;
      identity.full_name = gecos.substr(0, gecos.find(','));
    }
  }
  return identity;
}

void report(const std::string& text) { std::cerr << "sendmail: " << text << "\n"; }

int submission_failed(const std::string& what, const submit::SubmissionTarget& target, int status) {
  std::string text = what;
  if (!target.fallback_note.empty()) text += " (" + target.fallback_note + ")";
  report(text);
  return status;
}

// No daemon took the message (stopped, restarting, not configured yet): store it in the
// maildrop, where the daemon picks it up when it starts, as Postfix's postdrop does. Cron and
// the tools that call sendmail do not retry, so an exit 75 here would lose their mail. If the
// connection broke after the whole message was sent, the daemon may have it already: a
// duplicate is preferred to a loss.
int drop_or_fail(const submit::SubmissionRequest& request, const submit::SubmissionTarget& target,
                 const std::string& why, bool verbose) {
  if (target.maildrop.empty())
    return submission_failed("not sent, try again later: " + why +
                                 " (is 'portrelay run' running? this configuration keeps no "
                                 "spool, so there is no maildrop)",
                             target, EX_TEMPFAIL);
  spool::DroppedMessage dropped{request.sender, request.recipients, request.eight_bit,
                                request.content};
  auto stored = spool::drop_message(target.maildrop, dropped);
  if (!stored)
    return submission_failed(
        "not sent, try again later: " + why + "; and not stored: " + stored.error().message, target,
        EX_TEMPFAIL);
  if (verbose)
    report(why + "; stored in the maildrop as " + target.maildrop + "/" + *stored +
           " for the daemon to send when it starts");
  return EX_OK;
}

}  // namespace

int mailq() {
  // The spool's listing when the configuration keeps one; passthrough alone keeps none,
  // and neither does a machine with no configuration at all.
  QueueOptions options;
  options.config_path = resolve_config_path("");
  options.action = "list";
  try {
    if (config::load_config_file(options.config_path).relay.uses_spool()) return queue(options);
  } catch (const std::exception& error) {
    struct stat info {};
    const bool absent = ::stat(options.config_path.c_str(), &info) != 0 && errno == ENOENT;
    if (!absent) {
      // A configuration this user may not read may name a spool with mail in it: "empty"
      // would be a guess.
      if (::access(options.config_path.c_str(), R_OK) != 0 && errno == EACCES) {
        std::cerr << "mailq: cannot read the configuration " << options.config_path << ": "
                  << std::strerror(EACCES) << "; run as root or as the spool owner\n";
        return EX_NOPERM;
      }
      std::cerr << "mailq: " << error.what() << "\n";
      return EX_CONFIG;
    }
  }
  std::cout << "Mail queue is empty (portrelay relays each message while its sender waits; "
               "this configuration keeps no queue)\n";
  return EX_OK;
}

int sendmail(const std::vector<std::string>& arguments) {
  auto parsed = parse_sendmail_arguments(arguments);
  if (!parsed.options) {
    report(parsed.error + " (usage: 'portrelay sendmail --help')");
    return EX_USAGE;
  }
  const SendmailOptions& options = *parsed.options;
  if (options.help) {
    std::cout << kSendmailUsage;
    return EX_OK;
  }
  switch (options.mode) {
    case SendmailOptions::Mode::kListQueue:
      return mailq();
    case SendmailOptions::Mode::kNoop:
      if (options.verbose)
        report(options.mode_flag +
               ": nothing to do; the daemon runs its queue when it keeps one ('portrelay "
               "queue retry --all' makes every message due now); there are no aliases");
      return EX_OK;
    case SendmailOptions::Mode::kUnsupported:
      report(options.mode_flag +
             " is not supported: portrelay's sendmail takes a message on "
             "stdin; the daemon is 'portrelay run'");
      return EX_USAGE;
    case SendmailOptions::Mode::kDeliver:
      break;
  }
  if (options.verbose)
    for (const auto& ignored : options.ignored) report("ignoring " + ignored);

  submit::SubmissionTarget target;
  const std::string config_path = resolve_config_path(options.config_path);
  try {
    target = submit::find_submission_target(config_path);
  } catch (const submit::SubmissionTargetError& error) {
    report(error.what());
    return EX_CONFIG;
  }

  const auto read = submit::read_message(std::cin, options.lone_dot_ends, target.max_message_size);
  if (read.too_big) {
    report("message larger than server.max_message_size (" +
           std::to_string(target.max_message_size) + " octets); not sent");
    return EX_DATAERR;
  }
  if (std::cin.bad()) {
    report("error reading the message from stdin; not sent");
    return EX_IOERR;
  }
  auto message = submit::Message::parse(read.content);

  std::vector<std::string> recipients = options.recipients;
  if (options.recipients_from_headers) {
    for (const char* field : {"To", "Cc", "Bcc"})
      for (const auto& value : message.field_values(field))
        for (auto& address : submit::parse_address_list(value)) recipients.push_back(address);
  }
  message.remove_fields("Bcc");  // blind copies stay blind whatever the options
  for (auto& recipient : recipients) recipient = submit::qualify_address(recipient, target.domain);
  std::vector<std::string> unique;
  for (const auto& recipient : recipients)
    if (std::find(unique.begin(), unique.end(), recipient) == unique.end())
      unique.push_back(recipient);
  if (unique.empty()) {
    report("no recipients: give them as arguments, or -t with To:, Cc: or Bcc: fields");
    return EX_USAGE;
  }

  const Identity user = invoking_user();
  const std::string own_address = submit::qualify_address(user.login, target.domain);
  const std::string sender =
      options.sender_given ? submit::qualify_address(options.sender, target.domain) : own_address;
  if (!message.has_field("From")) {
    const std::string name = !options.full_name.empty() ? options.full_name : user.full_name;
    message.add_field("From", submit::format_mailbox(name, sender.empty() ? own_address : sender));
  }
  if (!message.has_field("Date")) message.add_field("Date", submit::format_date_now());
  if (!message.has_field("Message-ID"))
    message.add_field("Message-ID", submit::make_message_id(target.domain));

  // The same syntax the daemon's SMTP server demands: an address it would refuse (control
  // characters, angle brackets that end the path early, over 256 octets) is a usage error
  // here, not a message lost in transit.
  // The path must be exactly the address: "a@x> SIZE=1" would parse, with a parameter.
  auto exactly = [](const Result<smtp::PathArgument>& path, const std::string& address) {
    return path && path->parameters.empty() && path->address == address;
  };
  if (!exactly(smtp::parse_mail_from("FROM:<" + sender + ">"), sender)) {
    report("invalid sender address '" + sender + "' (usage: 'portrelay sendmail --help')");
    return EX_USAGE;
  }
  for (const auto& recipient : unique)
    if (!exactly(smtp::parse_rcpt_to("TO:<" + recipient + ">"), recipient)) {
      report("invalid recipient address '" + recipient + "'");
      return EX_USAGE;
    }

  submit::SubmissionRequest request;
  request.host = target.host;
  request.port = target.port;
  request.helo_name = target.domain;
  request.sender = sender;
  request.recipients = unique;
  request.content = message.render();
  request.eight_bit = read.eight_bit || options.body_type == "8BITMIME";
  std::function<void(const std::string&)> trace;
  if (options.verbose) trace = [](const std::string& line) { std::cerr << line << "\n"; };
  const auto result = submit::submit_message(request, trace);

  using Outcome = submit::SubmissionResult::Outcome;
  const std::string relay = "portrelay at " + target.host + ":" + std::to_string(target.port);
  for (const auto& refused : result.refused_recipients) report("recipient refused: " + refused);
  switch (result.outcome) {
    case Outcome::kDelivered:
      if (options.verbose) report("sent: " + result.detail);
      return result.refused_recipients.empty() ? EX_OK : EX_NOUSER;
    case Outcome::kNoRecipients:
      return submission_failed("not sent: " + result.detail, target, EX_NOUSER);
    case Outcome::kUnreachable:
      return drop_or_fail(request, target, "cannot submit to " + relay + ": " + result.detail,
                          options.verbose);
    case Outcome::kTransient:
      return submission_failed("not sent, try again later: " + result.detail, target, EX_TEMPFAIL);
    case Outcome::kRejected:
      return submission_failed("not sent: " + result.detail, target, EX_DATAERR);
  }
  return EX_SOFTWARE;
}

}  // namespace portrelay::cli
