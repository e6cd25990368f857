// `duetd token`, the auth plugin's command (see duet_plugin_command_t).
#pragma once

#include "duet/plugin.h"

namespace duet::auth {

int token_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept;

}  // namespace duet::auth
