#include "cli/worker_count.hpp"

#include <cerrno>
#include <cstdlib>

#include <unistd.h>
#include <uv.h>

namespace duet {

std::string check_workers_value(const std::string &value) {
  if (value == "auto")
    return {};
  char *end = nullptr;
  errno = 0;
  unsigned long n = value.empty() || value[0] < '0' || value[0] > '9' ? 0 : std::strtoul(value.c_str(), &end, 10);
  if (n < 1 || n > kMaxWorkers || errno != 0 || *end != '\0')
    return "expected a number of workers from 1 to " + std::to_string(kMaxWorkers) + ", or auto (one per CPU), not '" +
           value + "'";
  return {};
}

unsigned workers_wanted(const std::string &value) {
  if (value != "auto")
    return static_cast<unsigned>(std::strtoul(value.c_str(), nullptr, 10));
#if UV_VERSION_HEX >= 0x012c00
  unsigned long n = uv_available_parallelism();  // libuv 1.44: honours CPU affinity
#else
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned long n = online > 0 ? static_cast<unsigned long>(online) : 1;
#endif
  return static_cast<unsigned>(n < 1 ? 1 : n > kMaxWorkers ? kMaxWorkers : n);
}

std::string workers_refusal(unsigned n, int admin_port, const std::string &admin_listen) {
  if (admin_port && admin_port + static_cast<int>(n) - 1 > 65535)
    return "--admin-listen " + admin_listen + ": each of the " + std::to_string(n) +
           " workers serves health and metrics on its own port from this one up, past 65535";
  return {};
}

}  // namespace duet
