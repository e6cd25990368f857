// The metrics registry (core/metrics.c) and the admin answers built on it
// (core/admin_http.c): what units and plugins register, the exact text
// /metrics renders (Prometheus 0.0.4), and /healthz's JSON.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>

extern "C" {
#include "admin_http.h"
#include "metrics.h"
}

namespace {

struct Registry {
  duet_metrics_t m{};
  ~Registry() { duet__metrics_destroy(&m); }
  std::string render() const {
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    REQUIRE(f != nullptr);
    duet__metrics_render(&m, f);
    REQUIRE(fclose(f) == 0);
    std::string text(buf, len);
    free(buf);
    return text;
  }
};

// A unit's context, as the read callbacks see it.
struct Unit {
  uint64_t counter = 0;
  int64_t gauge = 0;
  double seconds = 0;
  duet_label_counts_t codes{};
};

void put_counter(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, nullptr, static_cast<int64_t>(static_cast<const Unit *>(data)->counter));
}
void put_gauge(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, nullptr, static_cast<const Unit *>(data)->gauge);
}
void put_seconds(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put_seconds(out, nullptr, static_cast<const Unit *>(data)->seconds);
}
void put_codes(const void *data, duet_metrics_out_t *out) {
  duet__label_counts_put(&static_cast<const Unit *>(data)->codes, out);
}
void put_nothing(const void *, duet_metrics_out_t *) {}

const duet_series_t unit_series[] = {
    {"things_total", "Things done.", DUET_METRIC_COUNTER, nullptr, put_counter},
    {"things_now", "Things open now.", DUET_METRIC_GAUGE, nullptr, put_gauge},
    {"age_seconds", "Seconds since the unit started.", DUET_METRIC_GAUGE, nullptr, put_seconds},
    {"refusals_total", "Refusals, by code.", DUET_METRIC_COUNTER, "code", put_codes},
};

}  // namespace

TEST_CASE("a unit's series render with HELP, TYPE and the values read at render time") {
  Registry r;
  Unit u;
  REQUIRE(duet__metrics_add_series(&r.m, unit_series, 4, &u) == 0);
  CHECK(r.render() == "# HELP duet_things_total Things done.\n"
                      "# TYPE duet_things_total counter\n"
                      "duet_things_total 0\n"
                      "# HELP duet_things_now Things open now.\n"
                      "# TYPE duet_things_now gauge\n"
                      "duet_things_now 0\n"
                      "# HELP duet_age_seconds Seconds since the unit started.\n"
                      "# TYPE duet_age_seconds gauge\n"
                      "duet_age_seconds 0.000\n"
                      "# HELP duet_refusals_total Refusals, by code.\n"
                      "# TYPE duet_refusals_total counter\n");
  u.counter = 18446744073709551ull;
  u.gauge = -3;
  u.seconds = 12.34567;
  duet__label_counts_add(&u.codes, "malformed");
  duet__label_counts_add(&u.codes, "too-large");
  duet__label_counts_add(&u.codes, "malformed");
  CHECK(r.render() == "# HELP duet_things_total Things done.\n"
                      "# TYPE duet_things_total counter\n"
                      "duet_things_total 18446744073709551\n"
                      "# HELP duet_things_now Things open now.\n"
                      "# TYPE duet_things_now gauge\n"
                      "duet_things_now -3\n"
                      "# HELP duet_age_seconds Seconds since the unit started.\n"
                      "# TYPE duet_age_seconds gauge\n"
                      "duet_age_seconds 12.346\n"
                      "# HELP duet_refusals_total Refusals, by code.\n"
                      "# TYPE duet_refusals_total counter\n"
                      "duet_refusals_total{code=\"malformed\"} 2\n"
                      "duet_refusals_total{code=\"too-large\"} 1\n");
}

TEST_CASE("a unit may not register a bad series or a name already taken") {
  Registry r;
  Unit u;
  duet_series_t s = {"ok_total", "Ok.", DUET_METRIC_COUNTER, nullptr, put_counter};
  REQUIRE(duet__metrics_add_series(&r.m, &s, 1, &u) == 0);
  CHECK(duet__metrics_add_series(&r.m, &s, 1, &u) == DUET_EINVAL);  // taken
  for (const char *bad : {"", "9lives", "Upper", "with-dash", "duet.x"}) {
    duet_series_t b = {bad, "Bad.", DUET_METRIC_GAUGE, nullptr, put_gauge};
    CHECK(duet__metrics_add_series(&r.m, &b, 1, &u) == DUET_EINVAL);
  }
  duet_series_t no_read = {"no_read", "x", DUET_METRIC_GAUGE, nullptr, nullptr};
  CHECK(duet__metrics_add_series(&r.m, &no_read, 1, &u) == DUET_EINVAL);
  duet_series_t bad_type = {"bad_type", "x", static_cast<duet_metric_type_t>(7), nullptr, put_gauge};
  CHECK(duet__metrics_add_series(&r.m, &bad_type, 1, &u) == DUET_EINVAL);
  duet_series_t bad_label = {"bad_label", "x", DUET_METRIC_GAUGE, "a-b", put_gauge};
  CHECK(duet__metrics_add_series(&r.m, &bad_label, 1, &u) == DUET_EINVAL);
  CHECK(r.m.count == 1);
}

TEST_CASE("a plugin's value: same name, same id; set and add follow the type") {
  Registry r;
  int64_t pairs = duet__metrics_register(&r.m, "pairs_active", "Pairs now.", DUET_METRIC_GAUGE);
  int64_t relayed = duet__metrics_register(&r.m, "relayed_total", "Relayed.", DUET_METRIC_COUNTER);
  REQUIRE(pairs > 0);
  REQUIRE(relayed > 0);
  CHECK(pairs != relayed);
  CHECK(duet__metrics_register(&r.m, "pairs_active", "Other help.", DUET_METRIC_GAUGE) == pairs);
  CHECK(duet__metrics_register(&r.m, "pairs_active", "x", DUET_METRIC_COUNTER) == DUET_EINVAL);
  CHECK(duet__metrics_register(&r.m, "Bad", "x", DUET_METRIC_COUNTER) == DUET_EINVAL);
  CHECK(duet__metrics_register(&r.m, nullptr, "x", DUET_METRIC_COUNTER) == DUET_EINVAL);

  CHECK(duet__metrics_set(&r.m, pairs, 5) == 0);
  CHECK(duet__metrics_add(&r.m, pairs, -2) == 0);  // a gauge goes down
  CHECK(duet__metrics_add(&r.m, relayed, 4) == 0);
  CHECK(duet__metrics_add(&r.m, relayed, -1) == DUET_EINVAL);
  CHECK(duet__metrics_set(&r.m, relayed, 1) == DUET_EINVAL);
  CHECK(duet__metrics_add(&r.m, 0, 1) == DUET_ENOENT);
  CHECK(duet__metrics_add(&r.m, 99, 1) == DUET_ENOENT);
  CHECK(duet__metrics_set(&r.m, -1, 1) == DUET_ENOENT);
  CHECK(r.render() == "# HELP duet_pairs_active Pairs now.\n"
                      "# TYPE duet_pairs_active gauge\n"
                      "duet_pairs_active 3\n"
                      "# HELP duet_relayed_total Relayed.\n"
                      "# TYPE duet_relayed_total counter\n"
                      "duet_relayed_total 4\n");
}

TEST_CASE("a plugin can neither take nor change a unit's series") {
  Registry r;
  Unit u;
  u.gauge = 7;
  REQUIRE(duet__metrics_add_series(&r.m, unit_series, 4, &u) == 0);
  CHECK(duet__metrics_register(&r.m, "things_now", "Mine.", DUET_METRIC_GAUGE) == DUET_EINVAL);
  // Ids 1..4 are the unit's: not a plugin's value to set or add to.
  for (int64_t id = 1; id <= 4; id++) {
    CHECK(duet__metrics_set(&r.m, id, 1) == DUET_ENOENT);
    CHECK(duet__metrics_add(&r.m, id, 1) == DUET_ENOENT);
  }
  CHECK(r.render().find("duet_things_now 7\n") != std::string::npos);
}

TEST_CASE("the units' series come first, in the order registered, then the plugins'") {
  Registry r;
  Unit a, b;
  const duet_series_t first[] = {{"first", "F.", DUET_METRIC_GAUGE, nullptr, put_gauge}};
  const duet_series_t second[] = {{"second", "S.", DUET_METRIC_GAUGE, nullptr, put_gauge}};
  REQUIRE(duet__metrics_register(&r.m, "plugin_one", "P.", DUET_METRIC_GAUGE) == 1);
  REQUIRE(duet__metrics_add_series(&r.m, first, 1, &a) == 0);
  REQUIRE(duet__metrics_register(&r.m, "plugin_two", "Q.", DUET_METRIC_GAUGE) == 3);
  REQUIRE(duet__metrics_add_series(&r.m, second, 1, &b) == 0);
  std::string text = r.render();
  size_t at_first = text.find("# HELP duet_first "), at_second = text.find("# HELP duet_second ");
  size_t at_one = text.find("# HELP duet_plugin_one "), at_two = text.find("# HELP duet_plugin_two ");
  REQUIRE(at_two != std::string::npos);
  CHECK(at_first < at_second);
  CHECK(at_second < at_one);
  CHECK(at_one < at_two);
  // Ids stay what register returned, whatever the order shown.
  CHECK(duet__metrics_set(&r.m, 3, 9) == 0);
  CHECK(r.render().find("duet_plugin_two 9\n") != std::string::npos);
}

TEST_CASE("help escapes backslash and newline; label values escape quote, backslash and newline") {
  Registry r;
  Unit u;
  REQUIRE(duet__metrics_register(&r.m, "odd", "line one\nback\\slash \"quoted\"", DUET_METRIC_GAUGE) > 0);
  const duet_series_t labelled[] = {{"labelled_total", "L.", DUET_METRIC_COUNTER, "code", put_codes}};
  REQUIRE(duet__metrics_add_series(&r.m, labelled, 1, &u) == 0);
  duet__label_counts_add(&u.codes, "a\"b\\c\nd");
  CHECK(r.render() == "# HELP duet_labelled_total L.\n"
                      "# TYPE duet_labelled_total counter\n"
                      "duet_labelled_total{code=\"a\\\"b\\\\c\\nd\"} 1\n"
                      "# HELP duet_odd line one\\nback\\\\slash \"quoted\"\n"
                      "# TYPE duet_odd gauge\n"
                      "duet_odd 0\n");
}

TEST_CASE("a series with a label may show no sample, or several") {
  Registry r;
  Unit u;
  const duet_series_t empty[] = {{"empty_total", "E.", DUET_METRIC_COUNTER, "reason", put_nothing}};
  REQUIRE(duet__metrics_add_series(&r.m, empty, 1, &u) == 0);
  CHECK(r.render() == "# HELP duet_empty_total E.\n# TYPE duet_empty_total counter\n");
}

TEST_CASE("label counts: each value its own sample up to the bound, then other") {
  duet_label_counts_t c{};
  for (int i = 0; i < DUET_LABEL_COUNTS_MAX; i++) {
    std::string code = "code-" + std::to_string(i);
    duet__label_counts_add(&c, code.c_str());
    duet__label_counts_add(&c, code.c_str());
  }
  CHECK(c.used == DUET_LABEL_COUNTS_MAX);
  CHECK(c.other == 0);
  duet__label_counts_add(&c, "one-too-many");
  duet__label_counts_add(&c, "one-too-many");
  duet__label_counts_add(&c, "code-3");  // a known one still counts as itself
  CHECK(c.used == DUET_LABEL_COUNTS_MAX);
  CHECK(c.other == 2);
  CHECK(c.seen[3].count == 3);
  duet_label_counts_t d{};
  duet__label_counts_add(&d, std::string(39, 'x').c_str());
  duet__label_counts_add(&d, std::string(40, 'y').c_str());  // too long to keep
  CHECK(d.used == 1);
  CHECK(d.other == 1);

  Registry r;
  Unit u;
  u.codes = d;
  const duet_series_t s[] = {{"codes_total", "C.", DUET_METRIC_COUNTER, "code", put_codes}};
  REQUIRE(duet__metrics_add_series(&r.m, s, 1, &u) == 0);
  CHECK(r.render() == "# HELP duet_codes_total C.\n# TYPE duet_codes_total counter\n"
                      "duet_codes_total{code=\"" +
                          std::string(39, 'x') +
                          "\"} 1\n"
                          "duet_codes_total{code=\"other\"} 1\n");
}

// ---- /healthz and /metrics (admin_http.c) ----

namespace {

struct Admin {
  duet_options_t opt{};
  Registry registry;
  duet_health_t next{};
  int asked = 0;
  duet_admin_http_t admin{};
  Admin() {
    opt.health = 1;
    opt.metrics = 1;
    admin = duet_admin_http_t{&opt, &registry.m, fill, this};
  }
  static void fill(void *data, duet_health_t *health) {
    auto *self = static_cast<Admin *>(data);
    self->asked++;
    *health = self->next;
  }
  // Returns what answer returns; body and the rest in the out parameters.
  int get(const char *uri, unsigned *status = nullptr, std::string *type = nullptr, std::string *body = nullptr) {
    duet_admin_answer_t answer{};
    int r = duet__admin_http_answer(&admin, uri, &answer);
    if (r == 1) {
      if (status)
        *status = answer.status;
      if (type)
        *type = answer.content_type;
      if (body)
        *body = std::string(answer.body, answer.len);
      free(answer.body);
    }
    return r;
  }
};

}  // namespace

TEST_CASE("/healthz: ok, degraded with its reasons, stopping with 503") {
  Admin a;
  a.next.connections = 3;
  a.next.uptime_s = 1.5;
  unsigned status = 0;
  std::string type, body;
  const std::string pid = std::to_string(static_cast<long>(getpid()));
  REQUIRE(a.get("/healthz", &status, &type, &body) == 1);
  CHECK(status == 200);
  CHECK(type == "application/json");
  CHECK(body == "{\"status\":\"ok\",\"connections\":3,\"uptime_s\":1.500,\"pid\":" + pid + "}\n");

  a.next.degraded = 1;
  snprintf(a.next.degraded_reasons, sizeof a.next.degraded_reasons, "cluster: redis \"down\"");
  REQUIRE(a.get("/healthz", &status, &type, &body) == 1);
  CHECK(status == 200);
  CHECK(body == "{\"status\":\"degraded\",\"connections\":3,\"uptime_s\":1.500,\"pid\":" + pid +
                    ",\"degraded\":\"cluster: redis \\\"down\\\"\"}\n");

  a.next.stopping = 1;
  REQUIRE(a.get("/healthz", &status, &type, &body) == 1);
  CHECK(status == 503);
  CHECK(body == "{\"status\":\"stopping\",\"connections\":3,\"uptime_s\":1.500,\"pid\":" + pid + "}\n");
  CHECK(a.asked == 3);
}

TEST_CASE("/metrics renders the registry as Prometheus text") {
  Admin a;
  REQUIRE(duet__metrics_register(&a.registry.m, "x_total", "X.", DUET_METRIC_COUNTER) == 1);
  REQUIRE(duet__metrics_add(&a.registry.m, 1, 2) == 0);
  unsigned status = 0;
  std::string type, body;
  REQUIRE(a.get("/metrics", &status, &type, &body) == 1);
  CHECK(status == 200);
  CHECK(type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(body == "# HELP duet_x_total X.\n# TYPE duet_x_total counter\nduet_x_total 2\n");
  CHECK(a.asked == 0);  // no health asked for metrics
}

TEST_CASE("other paths are not the admin's, and a switched-off path is not served") {
  Admin a;
  for (const char *uri : {"/", "/healthz/", "/metrics/x", "/healthzz", "/Metrics", "/healthz?x=1"})
    CHECK(a.get(uri) == 0);
  a.opt.health = 0;
  CHECK(a.get("/healthz") == 0);
  CHECK(a.get("/metrics") == 1);
  a.opt.health = 1;
  a.opt.metrics = 0;
  CHECK(a.get("/metrics") == 0);
  CHECK(a.get("/healthz") == 1);
}
