#include "portrelay/cli/sendmail_options.hpp"

#include <string_view>

#include "portrelay/submit/address_list.hpp"

namespace portrelay::cli {
namespace {

// Letters that take a value (sendmail 8 and Postfix's sendmail). -b and -q take theirs only
// attached ("-bm", "-q30m"), as both programs document.
constexpr std::string_view kWithValue = "BCFfrhLNOopRVX";
constexpr std::string_view kAttachedOnly = "bq";

void apply_mode(SendmailOptions& options, const std::string& value) {
  const std::string flag = "-b" + value;
  if (value == "m" || value.empty()) {
    options.mode = SendmailOptions::Mode::kDeliver;
  } else if (value == "p") {
    options.mode = SendmailOptions::Mode::kListQueue;
  } else if (value == "i") {
    options.mode = SendmailOptions::Mode::kNoop;
  } else {
    options.mode = SendmailOptions::Mode::kUnsupported;
  }
  options.mode_flag = flag;
}

// -o takes "x" or "x=value" (sendmail 8 also allows "-oxvalue" for one-letter options).
void apply_old_option(SendmailOptions& options, const std::string& value) {
  if (value == "i" || value == "i=true" || value == "iTrue" || value == "itrue") {
    options.lone_dot_ends = false;
  } else if (value == "i=false" || value == "iFalse" || value == "ifalse") {
    options.lone_dot_ends = true;
  } else {
    options.ignored.push_back("-o" + value);  // -oem, -odi, -odb, -oQ..., -oee ...
  }
}

void apply_with_value(SendmailOptions& options, char letter, const std::string& value,
                      std::string& config_from_c) {
  switch (letter) {
    case 'f':
    case 'r':
      options.sender = value;
      options.sender_given = true;
      break;
    case 'F':
      options.full_name = value;
      break;
    case 'C':
      config_from_c = value;
      break;
    case 'B':
      options.body_type = value;
      break;
    case 'o':
      apply_old_option(options, value);
      break;
    case 'O':
      if (value == "IgnoreDots" || value == "IgnoreDots=true" || value == "IgnoreDots=True")
        options.lone_dot_ends = false;
      else
        options.ignored.push_back("-O " + value);
      break;
    default:
      options.ignored.push_back(std::string("-") + letter + " " + value);
  }
}

// CR, LF and NUL have no place in an address or a name; in the envelope they would end the
// MAIL command early and start commands of the caller's choosing (the PHP mail() fifth
// parameter pattern). Refused, not cleaned: a cleaned address is not the one the caller gave.
bool has_line_break_or_nul(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace

SendmailParse parse_sendmail_arguments(const std::vector<std::string>& arguments) {
  SendmailOptions options;
  std::string config_from_long, config_from_c;
  std::size_t i = 0;
  for (; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") {
      ++i;
      break;
    }
    if (argument == "--help") {
      options.help = true;
      continue;
    }
    if (argument == "--config" || argument.starts_with("--config=")) {
      if (argument == "--config") {
        if (i + 1 >= arguments.size()) return {std::nullopt, "--config needs a file name"};
        config_from_long = arguments[++i];
      } else {
        config_from_long = argument.substr(9);
      }
      continue;
    }
    if (argument.size() < 2 || argument[0] != '-') break;  // the recipients start here
    for (std::size_t at = 1; at < argument.size(); ++at) {
      const char letter = argument[at];
      const std::string attached = argument.substr(at + 1);
      if (kAttachedOnly.find(letter) != std::string_view::npos) {
        if (letter == 'b')
          apply_mode(options, attached);
        else
          options.mode = SendmailOptions::Mode::kNoop;  // -q, -q30m: the daemon runs its queue
        if (letter == 'q') options.mode_flag = "-q" + attached;
        break;
      }
      if (kWithValue.find(letter) != std::string_view::npos) {
        std::string value = attached;
        if (value.empty()) {
          if (i + 1 >= arguments.size())
            return {std::nullopt, std::string("option -") + letter + " needs a value"};
          value = arguments[++i];
        }
        if ((letter == 'f' || letter == 'r' || letter == 'F') && has_line_break_or_nul(value))
          return {std::nullopt, std::string("-") + letter + ": the value holds CR, LF or NUL"};
        apply_with_value(options, letter, value, config_from_c);
        break;
      }
      switch (letter) {
        case 't':
          options.recipients_from_headers = true;
          break;
        case 'i':
          options.lone_dot_ends = false;
          break;
        case 'v':
          options.verbose = true;
          break;
        default:
          options.ignored.push_back(std::string("-") + letter);
      }
    }
  }
  for (; i < arguments.size(); ++i) {
    if (has_line_break_or_nul(arguments[i]))
      return {std::nullopt, "recipient argument " + std::to_string(i + 1) + " holds CR, LF or NUL"};
    // One argument may hold several ("a@b, c@d") or a display name ("Ann <a@b>").
    for (auto& address : submit::parse_address_list(arguments[i]))
      options.recipients.push_back(std::move(address));
  }
  options.config_path = !config_from_long.empty() ? config_from_long : config_from_c;
  // "-f <>" and "-f ''" are the null sender (bounces must not bounce).
  if (options.sender == "<>") options.sender.clear();
  if (options.sender.size() >= 2 && options.sender.front() == '<' && options.sender.back() == '>')
    options.sender = options.sender.substr(1, options.sender.size() - 2);
  return {std::move(options), ""};
}

}  // namespace portrelay::cli
