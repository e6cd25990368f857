// The bundled plugins' declarations for the command line (shorthand flags,
// commands), read from their descriptors before parsing: linked-in
// plugins in a static build, dlopened modules otherwise (only their entry
// function runs, never init). Modules stay loaded while this object lives,
// so a command's run function can be called.
#pragma once

#include <vector>

#include "cli/options.hpp"

typedef struct duet_plugin_peek duet_plugin_peek_t;

namespace duet {

class BundledPlugins {
public:
  BundledPlugins();
  ~BundledPlugins();
  BundledPlugins(const BundledPlugins &) = delete;
  BundledPlugins &operator=(const BundledPlugins &) = delete;

  const PluginDeclarations &declarations() const { return declarations_; }

private:
  void read(const duet_plugin_t *desc);
  std::vector<duet_plugin_peek_t *> peeks_;
  PluginDeclarations declarations_;
};

}  // namespace duet
