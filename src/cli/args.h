// A small declarative flag parser: every flag is declared with its help text, so
// `modernbert SUBCOMMAND --help` always lists every flag the command reads.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modernbert::cli {

class ArgParser {
 public:
  ArgParser(std::string command, std::string usage, std::string description);

  // A flag that takes a value (--name VALUE or --name=VALUE). `metavar` names the value in help.
  void option(const std::string& name, const std::string& metavar, const std::string& help,
              std::optional<std::string> default_value = std::nullopt);
  // A boolean switch (--name).
  void flag(const std::string& name, const std::string& help);
  // Allow bare positional arguments (e.g. TEXT... for fill-mask).
  void positional(const std::string& metavar, const std::string& help);

  // Parses argv[1..]. Returns false if --help was printed (caller returns 0). Throws
  // modernbert::Error naming the flag on unknown flags, missing values or duplicates.
  bool parse(int argc, char** argv);

  bool has(const std::string& name) const;  // option given (or has a default) / switch set
  std::string get(const std::string& name) const;  // throws if absent
  std::string get_or(const std::string& name, const std::string& fallback) const;
  long long get_int(const std::string& name) const;
  long long get_int_or(const std::string& name, long long fallback) const;
  double get_double(const std::string& name) const;
  double get_double_or(const std::string& name, double fallback) const;
  // Throws an error naming the flag if it was not given and has no default.
  std::string require(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

  std::string help_text() const;

 private:
  struct Spec {
    std::string name, metavar, help;
    bool is_switch = false;
    std::optional<std::string> default_value;
  };
  std::string command_, usage_, description_;
  std::vector<Spec> specs_;
  std::optional<std::pair<std::string, std::string>> positional_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positionals_;
  const Spec* find(const std::string& name) const;
};

// The items of a comma-separated flag value ("a,b,c"), in order. Empty items ("a,,b", a trailing
// comma) are dropped, or kept as "" with keep_empty (for a caller that refuses them by name).
std::vector<std::string> split_commas(const std::string& s, bool keep_empty = false);

}  // namespace modernbert::cli
