// --workers N|auto: the value's check and the number it means. Apart from
// options.cpp, which is CLI11's one (slow to compile) translation unit.
#pragma once

#include <string>

namespace duet {

constexpr unsigned kMaxWorkers = 256;

// Empty when value is "auto" or a whole number from 1 to kMaxWorkers, else
// what is wrong with it.
std::string check_workers_value(const std::string &value);

// The number of workers a checked value asks for: auto is the CPUs this
// process may run on (at most kMaxWorkers).
unsigned workers_wanted(const std::string &value);

// Why n workers cannot share this machine's ports (admin_port:
// --admin-listen's port or 0), or empty when they can. Whether the plugins
// work across workers is for them to say (from their init).
std::string workers_refusal(unsigned n, int admin_port, const std::string &admin_listen);

}  // namespace duet
