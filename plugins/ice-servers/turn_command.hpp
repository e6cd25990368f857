// `duetd turn-credentials`, the ice-servers plugin's command (see duet_plugin_command_t).
#pragma once

#include "duet/plugin.h"

namespace duet::ice {

int turn_credentials_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept;

}  // namespace duet::ice
