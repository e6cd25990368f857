// The VAPID key of a cluster: a browser subscribes for one public key, so
// every node must sign pushes with the same private key. It is kept in
// Redis (duet:ring:vapid-key, PEM): the first node to start stores its
// own key file's key, and every node then signs with the one in Redis.
// Asked once at start, before duetd's loop runs: a blocking round trip
// with a 2 s timeout.
#pragma once

#include <optional>
#include <string>

#include "common/redis_link.hpp"

namespace duet::ring {

// The cluster's key in PEM; own_pem is stored when there is none yet.
// nullopt, with why, when Redis cannot be asked.
std::optional<std::string> cluster_vapid_key(const duet::cluster::RedisTarget &target, const std::string &own_pem,
                                             std::string &why);

}  // namespace duet::ring
