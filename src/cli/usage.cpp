#include "portrelay/cli/usage.hpp"

#include <iostream>
#include <string>

namespace portrelay::cli {
namespace {

// "portrelay check" for an error inside `check`, "portrelay" before any subcommand.
std::string command_name(CLI::App& app) {
  std::string name = app.get_name();
  CLI::App* current = &app;
  while (true) {
    auto parsed = current->get_subcommands();
    if (parsed.empty()) break;
    current = parsed.front();
    name += " " + current->get_name();
  }
  return name;
}

}  // namespace

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& error) {
    // --help, --help-all and --version arrive as "errors" whose exit code is 0.
    if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(error);
    const std::string name = command_name(app);
    std::string problem = error.what();
    // CLI11 reports an unknown word where a subcommand belongs as "A subcommand is required";
    // say which word it was.
    if (name == app.get_name() && !app.remaining().empty()) {
      const std::string word = app.remaining().front();
      problem = (word.starts_with('-') ? "unknown option '" : "unknown command '") + word + "'";
    }
    std::cerr << name << ": " << problem << " (usage: '" << name << " --help')\n";
    return kExitUsage;
  }
}

}  // namespace portrelay::cli
