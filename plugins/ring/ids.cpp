#include "ids.hpp"

#include <array>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace duet::ring {

namespace {

// The web client's list (web/names.js): 256 words, one random byte each.
const std::array<const char *, 256> kWords = {
    "acorn",   "acre",   "amber",  "anchor",  "apple",   "arch",    "arrow",   "aspen",  "atlas",  "aurora", "autumn",
    "badge",   "bagel",  "bamboo", "banjo",   "barley",  "basil",   "basin",   "bay",    "beach",  "beacon", "bean",
    "bear",    "berry",  "birch",  "bison",   "bloom",   "blue",    "boat",    "bolt",   "bonsai", "brave",  "breeze",
    "brick",   "brook",  "bubble", "cabin",   "cactus",  "cake",    "camel",   "candle", "canoe",  "canyon", "cape",
    "carrot",  "castle", "cedar",  "cello",   "chalk",   "cherry",  "cider",   "clay",   "cliff",  "cloud",  "clover",
    "coast",   "cobalt", "cobra",  "cocoa",   "comet",   "coral",   "cosmic",  "cosmos", "cotton", "cove",   "crane",
    "creek",   "crisp",  "crow",   "cube",    "daisy",   "dawn",    "delta",   "desert", "dew",    "dingo",  "dolphin",
    "dove",    "dragon", "drum",   "dune",    "dusk",    "eagle",   "echo",    "ember",  "fable",  "falcon", "fern",
    "fiddle",  "field",  "fig",    "finch",   "fjord",   "flame",   "flint",   "flute",  "fog",    "forest", "fox",
    "frost",   "gale",   "garden", "gecko",   "giant",   "ginger",  "glade",   "glen",   "glow",   "goose",  "granite",
    "grape",   "gravel", "grove",  "gull",    "harbor",  "hare",    "hazel",   "heron",  "hill",   "honey",  "horizon",
    "iris",    "island", "ivory",  "jade",    "jasmine", "jelly",   "kayak",   "kelp",   "kettle", "kite",   "kiwi",
    "koala",   "lagoon", "lake",   "lantern", "lark",    "lava",    "lemon",   "lemur",  "lilac",  "lily",   "lime",
    "linen",   "loom",   "lotus",  "lunar",   "lynx",    "mango",   "maple",   "marble", "meadow", "melon",  "mint",
    "misty",   "mocha",  "moon",   "moss",    "moth",    "nectar",  "nest",    "nimbus", "noble",  "north",  "nova",
    "nutmeg",  "oak",    "oasis",  "ocean",   "olive",   "onyx",    "orbit",   "orca",   "orchid", "otter",  "owl",
    "palm",    "panda",  "paper",  "parrot",  "peach",   "pearl",   "pebble",  "pecan",  "pepper", "pine",   "pixel",
    "plaza",   "plum",   "polar",  "pony",    "poppy",   "prairie", "puffin",  "puma",   "quail",  "quartz", "quiet",
    "rabbit",  "rain",   "raven",  "reed",    "reef",    "ridge",   "river",   "robin",  "rocket", "rose",   "ruby",
    "saffron", "sage",   "sail",   "salmon",  "sand",    "satin",   "seal",    "shell",  "sierra", "silver", "sky",
    "sloth",   "snow",   "solar",  "sparrow", "spice",   "sprout",  "spruce",  "squid",  "star",   "stone",  "storm",
    "sugar",   "summit", "sun",    "swan",    "tango",   "thistle", "thunder", "tiger",  "topaz",  "trout",  "tulip",
    "tundra",  "turtle", "velvet", "violet",  "waffle",  "walnut",  "wave",    "willow", "wind",   "wren",   "yak",
    "zebra",   "zest",   "zinc",
};

// Crockford's base32, lowercase: no i, l, o or u to misread.
constexpr char kCodeChars[] = "0123456789abcdefghjkmnpqrstvwxyz";

// Words, then a code: "amber-fox-river-k7m2q": 8 bits a word, 5 a character.
std::string readable(std::size_t words, std::size_t chars) {
  const std::string bytes = random_bytes(words + chars);
  std::string out;
  for (std::size_t i = 0; i < words; i++)
    out += std::string(kWords[static_cast<unsigned char>(bytes[i])]) + "-";
  for (std::size_t i = 0; i < chars; i++)
    out += kCodeChars[static_cast<unsigned char>(bytes[words + i]) & 31];
  return out;
}

}  // namespace

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char *>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("the random number generator failed");
  return out;
}

std::string random_hex(std::size_t bytes) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (const char c : random_bytes(bytes)) {
    const auto b = static_cast<unsigned char>(c);
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::string new_line_id() { return readable(4, 7); }

std::string new_invite_code() { return readable(3, 4); }

std::string sha256(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  return {reinterpret_cast<const char *>(digest), len};
}

bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace duet::ring
