#include "cli/args.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "modernbert/error.h"

namespace modernbert::cli {

ArgParser::ArgParser(std::string command, std::string usage, std::string description)
    : command_(std::move(command)), usage_(std::move(usage)), description_(std::move(description)) {}

void ArgParser::option(const std::string& name, const std::string& metavar, const std::string& help,
                       std::optional<std::string> default_value) {
  specs_.push_back({name, metavar, help, false, std::move(default_value)});
}

void ArgParser::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, "", help, true, std::nullopt});
}

void ArgParser::positional(const std::string& metavar, const std::string& help) {
  positional_ = {metavar, help};
}

const ArgParser::Spec* ArgParser::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

bool ArgParser::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(help_text().c_str(), stdout);
      return false;
    }
    if (a == "--") {
      for (++i; i < argc; ++i) positionals_.push_back(argv[i]);
      break;
    }
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), value;
      bool has_inline = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline = true;
      }
      const Spec* s = find(name);
      if (!s) throw Error(command_ + ": unknown flag --" + name + " (see 'modernbert " + command_ + " --help')");
      if (values_.count(name)) throw Error(command_ + ": flag --" + name + " given twice");
      if (s->is_switch) {
        if (has_inline) throw Error(command_ + ": flag --" + name + " takes no value");
        values_[name] = std::string(1, '1');  // (not = "1": GCC 12 -Wrestrict false positive, PR105329)
      } else {
        if (!has_inline) {
          if (i + 1 >= argc) throw Error(command_ + ": flag --" + name + " needs a value (" + s->metavar + ")");
          value = argv[++i];
        }
        values_[name] = value;
      }
      continue;
    }
    if (!positional_) throw Error(command_ + ": unexpected argument '" + a + "' (see 'modernbert " + command_ + " --help')");
    positionals_.push_back(a);
  }
  for (const auto& s : specs_)
    if (!values_.count(s.name) && s.default_value) values_[s.name] = *s.default_value;
  return true;
}

bool ArgParser::has(const std::string& name) const { return values_.count(name) > 0; }

std::string ArgParser::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error(command_ + ": missing required flag --" + name);
  return it->second;
}

std::string ArgParser::require(const std::string& name) const { return get(name); }

std::string ArgParser::get_or(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

long long ArgParser::get_int(const std::string& name) const {
  std::string v = get(name);
  char* end = nullptr;
  long long r = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end) throw Error(command_ + ": --" + name + " expects an integer, got '" + v + "'");
  return r;
}

long long ArgParser::get_int_or(const std::string& name, long long fallback) const {
  return has(name) ? get_int(name) : fallback;
}

double ArgParser::get_double(const std::string& name) const {
  std::string v = get(name);
  char* end = nullptr;
  double r = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) throw Error(command_ + ": --" + name + " expects a number, got '" + v + "'");
  return r;
}

double ArgParser::get_double_or(const std::string& name, double fallback) const {
  return has(name) ? get_double(name) : fallback;
}

std::string ArgParser::help_text() const {
  std::ostringstream o;
  o << "usage: modernbert " << command_ << " " << usage_ << "\n\n" << description_ << "\n";
  if (positional_) o << "\npositional:\n  " << positional_->first << "\n      " << positional_->second << "\n";
  o << "\nflags:\n";
  for (const auto& s : specs_) {
    o << "  --" << s.name;
    if (!s.is_switch) o << " " << s.metavar;
    o << "\n      " << s.help;
    if (s.default_value) o << " (default: " << *s.default_value << ")";
    o << "\n";
  }
  o << "  --help\n      show this help and exit\n";
  return o.str();
}

std::vector<std::string> split_commas(const std::string& s, bool keep_empty) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    const size_t end = comma == std::string::npos ? s.size() : comma;
    if (keep_empty || end > start) out.push_back(s.substr(start, end - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace modernbert::cli
