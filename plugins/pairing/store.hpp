// Where the pairing plugin keeps who is registered and paired: the seam
// between the plugin (messages in, events out) and the places. The plugin
// picks one store in its init and talks to nothing else:
// - LocalStore (local_store.hpp): this process's PairingState;
// - the cluster's store (cluster/cluster_store.hpp, --cluster): the same
//   rules on places shared by every duetd on one Redis.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pairing_state.hpp"

namespace duet {
class Host;
}

namespace duet::pairing {

// What a store asks of this duetd: the rules' actions on its own
// connections, and one more for an open whose answer comes after
// on_message returned (in a cluster the rule runs once the places are in).
class LocalActions : public Actions {
public:
  // Tell conn that its message was refused, as duetd tells a rejected one.
  virtual void rejected(ConnId conn, const char *code, const char *message) = 0;
};

// The rules' settings, from the plugin's options.
struct StoreConfig {
  Takeover takeover = Takeover::kReplace;
  std::size_t max_id_bytes = 256;
  std::chrono::milliseconds grace{0};  // resume-grace; 0: no resuming
};

class PairingStore {
public:
  virtual ~PairingStore() = default;

  // {"open":…} from conn (PairingState::open). A store that decides later
  // answers ok now and, for a refusal, calls LocalActions::rejected then.
  virtual Outcome open(ConnId conn, std::string_view local, std::string_view remote,
                       std::optional<std::string_view> resume) = 0;
  // sdp or ice from conn: json, whole, to its partner (PairingState::relay);
  // when the partner cannot be reached, conn is told.
  virtual Outcome relay(ConnId conn, PairingState::Kind kind, std::string_view remote, std::string_view json) = 0;
  // conn is gone (PairingState::closed).
  virtual void closed(ConnId conn, const char *reason) = 0;
  // The resume grace of id (LocalActions::start_grace) is over.
  virtual void expire(const std::string &id) = 0;
  // Pairs with a side here, held places included.
  virtual std::size_t pairs() const = 0;
  // true: pairs() is cheap, read it after every change; false: it walks
  // every place, read it on a timer.
  virtual bool pairs_cheap() const = 0;
};

// --cluster URL: the store shared through Redis (cluster/cluster_store.cpp,
// built only with hiredis). Reads --cluster and --cluster-password-file;
// throws OptionError for a bad one.
std::unique_ptr<PairingStore> make_cluster_store(const duet::Host &host, const StoreConfig &config,
                                                 LocalActions &local);

}  // namespace duet::pairing
