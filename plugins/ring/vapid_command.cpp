#include "vapid_command.hpp"

#include <string>

#include "duet/command.hpp"
#include "push_crypto.hpp"

namespace duet::ring {

namespace {

const char kUsage[] = "Usage: duetd vapid-key [--state-dir DIR | --key FILE]\n"
                      "Prints the Web Push (VAPID) public key in base64url, then exits. The key is made on\n"
                      "first use and kept; pushes to every subscription need it, so back it up.\n"
                      "  --state-dir DIR  duetd's state folder (default: as duetd's --state-dir)\n"
                      "  --key FILE       the key file itself (default: DIR/vapid.pem; --ring-vapid-key)\n";

const duet::CommandOption kOptions[] = {{"--state-dir", ""}, {"--key", ""}};

int vapid_key_body(const duet::CommandArgs &args, const duet::CommandIo &io) {
  std::string path = args.value("--key");
  if (path.empty()) {
    const std::string dir = args.value("--state-dir").empty() ? duet::default_state_dir() : args.value("--state-dir");
    path = dir + "/vapid.pem";
  }
  try {
    io.print(VapidKey::load_or_create(path).public_key() + "\n");
  } catch (const CryptoError &e) {
    throw duet::EnvironmentError(e.what());
  }
  return 0;
}

const duet::CommandSpec kSpec = {"vapid-key", kUsage, kOptions, sizeof kOptions / sizeof kOptions[0], &vapid_key_body};

}  // namespace

int vapid_key_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept {
  return duet::run_command(kSpec, argc, argv, write, out, err);
}

}  // namespace duet::ring
