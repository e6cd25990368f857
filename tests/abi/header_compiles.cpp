// duet/plugin.h and duet/plugin.hpp must compile alone, warning-free, as C++17.
#include <duet/plugin.h>
#include <duet/plugin.hpp>

namespace {
class Nothing : public duet::Plugin {
 public:
  using Plugin::Plugin;
};
}  // namespace

DUET_PLUGIN(nothing, Nothing, "nothing", "0", "compiles", nullptr)

int main() { return duet_plugin_entry_v1()->abi_major == DUET_ABI_MAJOR ? 0 : 1; }
