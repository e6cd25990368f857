// `duetd vapid-key`: prints the Web Push public key, the one duetd gives
// browsers to subscribe with (made on first use, like a first run would).
#pragma once

#include "duet/plugin.h"

namespace duet::ring {

int vapid_key_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept;

}  // namespace duet::ring
