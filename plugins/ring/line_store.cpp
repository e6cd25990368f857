#include "line_store.hpp"

#include "context.hpp"

namespace duet::ring {

template <class T, class Work> void SqliteLines::answer(const Then<T> &then, Work work) {
  Answer<T> a;
  try {
    a.value = work();
  } catch (const StoreError &e) {
    log_failure_(e.what());
    a.failure = kStoreFailed;
  }
  then(std::move(a));  // outside the try: what then throws is not the store's
}

void SqliteLines::create_line(const std::string &id, const std::string &name, const Device &device,
                              const std::string &secret_hash, std::int64_t max_lines, Then<std::optional<Line>> then) {
  answer(then, [&]() -> std::optional<Line> {
    if (store_.line_count() >= max_lines)
      return std::nullopt;
    return store_.create_line(id, name, device, secret_hash, now_ms());
  });
}

void SqliteLines::device(const std::string &device_id, Then<std::optional<DeviceRecord>> then) {
  answer(then, [&] { return store_.device(device_id); });
}

void SqliteLines::line(LineKey key, Then<std::optional<Line>> then) {
  answer(then, [&] { return store_.line(key); });
}

void SqliteLines::line_by_id(const std::string &id, Then<std::optional<Line>> then) {
  answer(then, [&] { return store_.line_by_id(id); });
}

void SqliteLines::state(LineKey key, Then<std::optional<LineState>> then) {
  answer(then, [&]() -> std::optional<LineState> {
    std::optional<Line> line = store_.line(key);
    if (!line)
      return std::nullopt;
    return LineState{*line, store_.devices(key), store_.missed(key, kMissedKept)};
  });
}

void SqliteLines::rename(LineKey key, const std::string &name, Done then) {
  answer(then, [&] {
    store_.rename(key, name);
    return true;
  });
}

void SqliteLines::relink(LineKey key, const std::string &new_id, Done then) {
  answer(then, [&] {
    store_.relink(key, new_id);
    return true;
  });
}

void SqliteLines::add_invite(LineKey key, const std::string &code_hash, std::int64_t life_ms, Done then) {
  answer(then, [&] {
    const std::int64_t now = now_ms();
    store_.add_invite(key, code_hash, now, now + life_ms);
    return true;
  });
}

void SqliteLines::join(const std::string &code_hash, const Device &device, const std::string &secret_hash,
                       std::size_t max_devices, Then<Joined> then) {
  answer(then, [&]() -> Joined {
    const std::int64_t now = now_ms();
    const std::optional<LineKey> line = store_.invite_line(code_hash, now);
    if (!line)
      return {JoinResult::code_invalid, 0};
    if (store_.devices(*line).size() >= max_devices)
      return {JoinResult::line_full, *line};
    store_.take_invite(code_hash, now);
    store_.add_device(*line, device, secret_hash, now);
    return {JoinResult::joined, *line};
  });
}

void SqliteLines::remove_device(LineKey key, const std::string &device_id, Then<Removal> then) {
  answer(then, [&]() -> Removal {
    if (!store_.remove_device(key, device_id))
      return {};
    return {true, !store_.line(key)};
  });
}

void SqliteLines::add_missed(LineKey key, const std::string &caller, std::int64_t at_ms, Done then) {
  answer(then, [&] {
    store_.add_missed(key, caller, at_ms);
    return true;
  });
}

void SqliteLines::set_subscription(const Subscription &sub, Done then) {
  answer(then, [&] {
    store_.set_subscription(sub, now_ms());
    return true;
  });
}

void SqliteLines::remove_subscription(const std::string &device, const std::string &endpoint, Done then) {
  answer(then, [&] { return store_.remove_subscription(device, endpoint); });
}

void SqliteLines::subscriptions(LineKey key, Then<std::vector<Subscription>> then) {
  answer(then, [&] { return store_.subscriptions(key); });
}

}  // namespace duet::ring
