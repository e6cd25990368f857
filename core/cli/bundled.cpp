#include "cli/bundled.hpp"

#include <iostream>

#include "plugin_module.h"

namespace duet {

BundledPlugins::BundledPlugins() {
  for (const std::string &name : bundled_plugins()) {
    char err[512] = "";
    duet_plugin_peek_t *peek = nullptr;
    // A bundled plugin that cannot be read offers no flags; loading it
    // later fails with the same sentence, in its proper place.
    if (duet__plugin_module_peek(name.c_str(), &peek, err, sizeof err) != 0)
      continue;
    peeks_.push_back(peek);
    read(duet__plugin_module_peek_descriptor(peek));
  }
}

BundledPlugins::~BundledPlugins() {
  for (duet_plugin_peek_t *peek : peeks_)
    duet__plugin_module_peek_close(peek);
}

void BundledPlugins::read(const duet_plugin_t *desc) {
  duet_plugin_option_t o;
  for (std::size_t i = 0; duet__plugin_module_option(desc, i, &o); i++)
    if (o.flag && *o.flag)
      declarations_.flags.push_back(
          {desc->name, o.key, o.flag, o.help ? o.help : "", o.value_name ? o.value_name : "", o.flags});
  for (std::size_t i = 0; const duet_plugin_command_t *c = duet__plugin_module_command(desc, i); i++)
    declarations_.commands.push_back({desc->name, c->name, c->help ? c->help : "", c->run});
}

}  // namespace duet
