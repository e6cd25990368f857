// "duetd admin list|close|drain" (admin_command.cpp): the one command of the
// core itself; the others come from the bundled plugins.
#pragma once

#include "duet/plugin.h"

namespace duet {

int admin_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept;

}  // namespace duet
