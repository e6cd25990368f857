/* duet-loadgen: a load generator for any server that speaks v1 of the
 * signaling protocol (README.md, "Protocol") over wss:// on loopback.
 *
 * One process, one libuv loop, libwebsockets as a client on that loop. It
 * runs bounded phases, each of which checks what it measures:
 *
 *   churn    N call set-ups (connect, pair, one SDP and two ICE each way,
 *            hang up) with K in flight; lost messages, and RSS after vs before
 *   connect  C connections in pairs: TLS + upgrade + open + both starts
 *   idle     the server's RSS with those C connections held, per connection
 *   relay    R of those pairs exchange ICE (~250 B) and SDP (3-6 KB)
 *            messages at fixed offered rates and then flat out, with a
 *            bounded window per sender; every message must arrive exactly
 *            once, in order and byte for byte unchanged, at the partner
 *   close    one side of every pair hangs up; the other must hear
 *            {"close":1}, then hangs up too; RSS after the mass disconnect
 *
 * Several servers (a cluster of duetd nodes on one Redis, issue 12):
 * --ports P1,P2,... puts pair i on port i % N, both sides (same-node pairs)
 * or, with --cross, its second side on the next port (cross-node pairs);
 * --pid takes a list too, and CPU and RSS are then the sums of them all.
 *
 * Server CPU and RSS come from /proc/PID (--pid); the load generator's own
 * CPU is reported beside them so it can be seen not to be the bottleneck.
 * Results go to stdout as one JSON object; progress goes to stderr.
 *
 * Every loop is bounded in count and in time (--phase-timeout); traffic
 * goes only to the address given (loopback by default). */
#include <uv.h> /* before libwebsockets.h, which does not include it */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define WMAX 64 /* largest window: send times are kept in a ring this big */
#define MAX_STEPS 16
#define TX_CAP 16384
#define CHURN_MSGS 3 /* per side and call: one SDP, two ICE */
#define MAX_SERVERS 16 /* --ports and --pid lists */

typedef struct pair pair_t;

typedef enum { C_IDLE, C_CONNECTING, C_OPEN, C_GONE } client_state_t;

typedef struct client {
  struct lws *wsi;
  pair_t *pair;
  int side; /* 0 = "a", the first to open; 1 = "b" */
  client_state_t state;
  int role; /* 0 none yet, 1 offer, 2 answer */
  bool open_sent, hangup, got_close, unlimited;
  uint32_t credit; /* messages it may still send */
  uint32_t sent;   /* relayed messages sent: the next one's sequence number */
  uint32_t recvd;  /* relayed messages received from the partner, in order */
  char *rx;        /* reassembly of fragmented messages */
  size_t rx_len, rx_cap;
  uint64_t sent_at[WMAX]; /* uv_hrtime() of send, by sequence number % WMAX */
} client_t;

struct pair {
  uint32_t index;
  int starts;
  int gone;
  bool ready, failed, churn, closing;
  int slot; /* churn: its place in g.churn_pairs */
  client_t c[2];
  char id[2][48];
};

/* In the order they run: churn first, on a fresh server, so its RSS before
 * and after show a leak and not the memory left by the mass disconnect. */
typedef enum { PH_NONE, PH_CHURN, PH_CONNECT, PH_IDLE, PH_RELAY, PH_CLOSE, PH_DONE } phase_t;

typedef struct {
  double rate; /* offered messages/s; 0 means flat out within the window */
  uint64_t t0, t_end_send, t_drained;
  uint64_t granted, sent, delivered, skipped;
  double server_cpu_s, client_cpu_s;
  uint32_t *lat_us;
  size_t lat_n, lat_cap;
  bool drained;
} step_t;

static struct {
  /* options */
  const char *host;
  const char *id_prefix; /* --id-prefix: ids unique across runs (the soak) */
  const char *ca;
  int port; /* the first of ports[] */
  int pid;  /* the first of pids[] */
  int ports[MAX_SERVERS], port_count;
  int pids[MAX_SERVERS], pid_count;
  bool cross; /* the two sides of a pair on different ports */
  int conns, concurrency, relay_pairs, window, churn, churn_concurrency, src_addrs;
  double relay_secs, phase_timeout, settle_secs, idle_settle_secs;
  double rates[MAX_STEPS];
  int rate_count;
  bool phase_on[PH_DONE];
  int verbose;
  bool tearing_down;

  uv_loop_t loop;
  struct lws_context *lws;
  uv_timer_t deadline, tick, settle;
  phase_t phase, settling;
  uint64_t phase_t0;
  double phase_server_cpu0, phase_client_cpu0;
  uint32_t next_index;

  /* connect */
  pair_t **pairs;
  int pairs_launched, pairs_ready, pairs_failed, pairs_inflight;

  /* relay */
  client_t **relay_clients;
  int relay_n, relay_cursor, step;
  step_t steps[MAX_STEPS];

  /* close */
  int close_pairs, closes_heard, clients_gone_in_close;

  /* churn */
  int churn_launched, churn_done, churn_inflight, churn_failed;
  pair_t **churn_pairs; /* the calls in flight, churn_concurrency places */
  uint64_t churn_lost, churn_missing_close, churn_delivered;

  /* counters over the whole run */
  uint64_t errors, conn_errors, corrupt, server_errors, unexpected_closes, pings, other_msgs;
  char first_error[256];

  /* results, as JSON members, appended as phases finish */
  char json[16384];
  size_t json_len;
  long rss_base_kb;
} g;

/* ---- clocks and /proc ------------------------------------------------- */

static double client_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of every thread of one server process, in seconds. */
static double process_cpu(int pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p)
    return -1;
  /* After ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  unsigned long long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU seconds of every --pid together; -1 if one cannot be read. */
static double server_cpu(void) {
  double sum = 0;
  for (int i = 0; i < g.pid_count; i++) {
    double c = process_cpu(g.pids[i]);
    if (c < 0)
      return -1;
    sum += c;
  }
  return sum;
}

static long process_rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

/* The RSS of every --pid together; -1 if one cannot be read. */
static long server_rss_kb(void) {
  long sum = 0;
  for (int i = 0; i < g.pid_count; i++) {
    long kb = process_rss_kb(g.pids[i]);
    if (kb < 0)
      return -1;
    sum += kb;
  }
  return sum;
}

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void count_error(uint64_t *counter, const char *fmt, ...) {
  (*counter)++;
  g.errors++;
  if (!g.first_error[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.first_error, sizeof g.first_error, fmt, ap);
    va_end(ap);
    note("first error: %s", g.first_error);
  }
}

static void json_add(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(g.json + g.json_len, sizeof g.json - g.json_len, fmt, ap);
  va_end(ap);
  if (n > 0 && (size_t)n < sizeof g.json - g.json_len)
    g.json_len += (size_t)n;
}

/* ---- the messages ------------------------------------------------------ */

/* SDP-like text, already JSON-escaped as a browser's JSON.stringify makes it;
 * each SDP is a slice of it, so no two messages are alike. */
static char sdp_text[16384];
static size_t sdp_text_len;

static void make_sdp_text(void) {
  size_t n = 0;
  for (unsigned i = 0; n < sizeof sdp_text - 200; i++) {
    int k;
    switch (i % 6) {
    case 0:
      k = snprintf(sdp_text + n, sizeof sdp_text - n, "m=video 9 UDP/TLS/RTP/SAVPF %u %u\\r\\n", 96 + i % 30, 97 + i % 30);
      break;
    case 1:
      k = snprintf(sdp_text + n, sizeof sdp_text - n, "a=rtpmap:%u VP8/90000\\r\\n", 96 + i % 30);
      break;
    case 2:
      k = snprintf(sdp_text + n, sizeof sdp_text - n, "a=rtcp-fb:%u nack pli\\r\\n", 96 + i % 30);
      break;
    case 3:
      k = snprintf(sdp_text + n, sizeof sdp_text - n,
                   "a=fmtp:%u level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\\r\\n",
                   100 + i % 20);
      break;
    case 4:
      k = snprintf(sdp_text + n, sizeof sdp_text - n, "a=ssrc:%u cname:bench%04x\\r\\n", 1000000u + i * 7919u, i);
      break;
    default:
      k = snprintf(sdp_text + n, sizeof sdp_text - n, "a=extmap:%u urn:ietf:params:rtp-hdrext:sdes:mid\\r\\n", i % 14 + 1);
      break;
    }
    n += (size_t)k;
  }
  sdp_text_len = n;
}

static uint32_t mix(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t h = a * 2654435761u ^ (b + 0x9e3779b9u) * 40503u ^ c * 2246822519u;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  return h;
}

/* The seq-th message that side `from` of pair p sends: the same bytes every
 * time, so the receiver can check what arrived. Every tenth is an SDP. */
static size_t make_msg(char *out, size_t cap, const pair_t *p, int from, uint32_t seq) {
  const char *remote = p->id[1 - from];
  uint32_t h = mix(p->index, (uint32_t)from, seq);
  int n;
  if (seq % 10 == 0) {
    size_t target = 3000 + h % 3001;
    n = snprintf(out, cap,
                 "{\"sdp\":{\"type\":\"%s\",\"sdp\":\"v=0\\r\\no=- %u %u IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n"
                 "a=group:BUNDLE 0 1\\r\\na=ice-ufrag:%08x\\r\\n",
                 from == 0 ? "offer" : "answer", p->index, seq, h);
    const char *tail = "\"},\"remote\":\"";
    size_t fixed = (size_t)n + strlen(tail) + strlen(remote) + 2;
    size_t fill = target > fixed ? target - fixed : 0;
    size_t off = h % (sdp_text_len - 6100);
    /* Never cut an escape (\r\n) in half: a lone backslash is bad JSON. */
    while (fill && sdp_text[off + fill - 1] == '\\')
      fill--;
    if ((size_t)n + fill + 64 + strlen(remote) > cap)
      return 0;
    memcpy(out + n, sdp_text + off, fill);
    n += (int)fill;
    n += snprintf(out + n, cap - (size_t)n, "%s%s\"}", tail, remote);
  } else {
    n = snprintf(out, cap,
                 "{\"ice\":{\"candidate\":\"candidate:%u 1 udp 2122260223 127.0.0.1 %u typ host generation 0 ufrag "
                 "%08x network-id 1\",\"sdpMid\":\"%u\",\"sdpMLineIndex\":%u,\"usernameFragment\":\"%08x\"},"
                 "\"remote\":\"%s\"}",
                 h, 40000 + seq % 20000, h, seq % 2, seq % 2, p->index, remote);
  }
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---- connections ------------------------------------------------------- */

static void phase_maybe_done(void);
static void pair_ready(pair_t *p);
static void client_gone(client_t *c);

static void want_write(client_t *c) {
  if (c->wsi && c->state == C_OPEN)
    lws_callback_on_writable(c->wsi);
}

static void hang_up(client_t *c) {
  if (c->state == C_GONE || c->hangup)
    return;
  c->hangup = true;
  if (c->state == C_OPEN)
    want_write(c);
  /* A connecting client is closed when it is established (or fails). */
}

static void client_connect(client_t *c) {
  static char iface[32];
  struct lws_client_connect_info i;
  memset(&i, 0, sizeof i);
  i.context = g.lws;
  i.address = g.host;
  /* Pair i goes to server i % N; with --cross its second side to the next one. */
  unsigned server = c->pair->index % (unsigned)g.port_count;
  if (g.cross && c->side == 1)
    server = (server + 1) % (unsigned)g.port_count;
  i.port = g.ports[server];
  i.ssl_connection = LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
  i.path = "/";
  i.host = g.host;
  i.origin = NULL;
  i.protocol = NULL; /* the tutorial client names no sub-protocol */
  i.local_protocol_name = "bench";
  i.alpn = "http/1.1";
  i.opaque_user_data = c;
  if (g.src_addrs > 1) {
    snprintf(iface, sizeof iface, "127.0.0.%u", 1 + (c->pair->index * 2 + (unsigned)c->side) % (unsigned)g.src_addrs);
    i.iface = iface;
  }
  c->state = C_CONNECTING;
  i.pwsi = &c->wsi;
  if (!lws_client_connect_via_info(&i) && c->state == C_CONNECTING) {
    count_error(&g.conn_errors, "lws_client_connect_via_info failed");
    c->wsi = NULL;
    client_gone(c);
  }
}

static pair_t *pair_new(bool churn) {
  pair_t *p = calloc(1, sizeof *p);
  if (!p) {
    note("out of memory");
    exit(1);
  }
  p->index = g.next_index++;
  p->churn = churn;
  snprintf(p->id[0], sizeof p->id[0], "%.24s%c%u-a", g.id_prefix, churn ? 'c' : 'p', p->index);
  snprintf(p->id[1], sizeof p->id[1], "%.24s%c%u-b", g.id_prefix, churn ? 'c' : 'p', p->index);
  for (int s = 0; s < 2; s++) {
    p->c[s].pair = p;
    p->c[s].side = s;
  }
  return p;
}

static bool can_send(const client_t *c) {
  const client_t *partner = &c->pair->c[1 - c->side];
  return c->state == C_OPEN && c->role && partner->role && !c->hangup && (c->credit > 0 || c->unlimited) &&
         c->sent - partner->recvd < (uint32_t)g.window;
}

static int on_writeable(client_t *c) {
  static unsigned char tx[LWS_PRE + TX_CAP];
  char *out = (char *)tx + LWS_PRE;
  if (c->hangup) {
    lws_close_reason(c->wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
    return -1;
  }
  if (!c->open_sent) {
    int n = snprintf(out, TX_CAP, "{\"open\":{\"local\":\"%s\",\"remote\":\"%s\"}}", c->pair->id[c->side],
                     c->pair->id[1 - c->side]);
    c->open_sent = true;
    if (lws_write(c->wsi, (unsigned char *)out, (size_t)n, LWS_WRITE_TEXT) < n)
      return -1;
    if (can_send(c))
      want_write(c);
    return 0;
  }
  if (!can_send(c))
    return 0;
  size_t n = make_msg(out, TX_CAP, c->pair, c->side, c->sent);
  if (!n) {
    count_error(&g.other_msgs, "message does not fit the send buffer");
    return -1;
  }
  c->sent_at[c->sent % WMAX] = uv_hrtime();
  if (lws_write(c->wsi, (unsigned char *)out, n, LWS_WRITE_TEXT) < (int)n)
    return -1;
  c->sent++;
  if (!c->unlimited)
    c->credit--;
  if (g.phase == PH_RELAY)
    g.steps[g.step].sent++;
  if (can_send(c))
    want_write(c);
  return 0;
}

static void record_latency(uint64_t ns) {
  step_t *s = &g.steps[g.step];
  if (s->lat_n == s->lat_cap) {
    size_t cap = s->lat_cap ? s->lat_cap * 2 : 65536;
    uint32_t *l = realloc(s->lat_us, cap * sizeof *l);
    if (!l)
      return;
    s->lat_us = l;
    s->lat_cap = cap;
  }
  uint64_t us = ns / 1000;
  s->lat_us[s->lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void on_churn_progress(pair_t *p) {
  client_t *a = &p->c[0], *b = &p->c[1];
  if (a->recvd == CHURN_MSGS && b->recvd == CHURN_MSGS)
    hang_up(a); /* b must now hear {"close":1} */
}

static void on_message(client_t *c, const char *m, size_t len) {
  static char expect[TX_CAP];
  pair_t *p = c->pair;
  client_t *partner = &p->c[1 - c->side];
  if (len > 4 && (memcmp(m, "{\"sdp\"", 6) == 0 || memcmp(m, "{\"ice\"", 6) == 0)) {
    size_t n = make_msg(expect, sizeof expect, p, partner->side, c->recvd);
    if (c->recvd >= partner->sent || n != len || memcmp(expect, m, n) != 0) {
      count_error(&g.corrupt, "%s got a relayed message that is not the next one its partner sent (seq %u, %zu bytes)",
                  p->id[c->side], c->recvd, len);
      return;
    }
    uint64_t now = uv_hrtime();
    if (g.phase == PH_RELAY) {
      record_latency(now - partner->sent_at[c->recvd % WMAX]);
      g.steps[g.step].delivered++;
    } else if (p->churn) {
      g.churn_delivered++;
    }
    bool was_blocked = partner->sent - c->recvd >= (uint32_t)g.window;
    c->recvd++;
    if (was_blocked && can_send(partner))
      want_write(partner);
    if (p->churn)
      on_churn_progress(p);
    if (g.phase == PH_RELAY)
      phase_maybe_done();
    return;
  }
  if (len == 11 && memcmp(m, "{\"close\":1}", 11) == 0) {
    if (c->got_close)
      count_error(&g.other_msgs, "%s heard close twice", p->id[c->side]);
    c->got_close = true;
    if (g.phase == PH_CLOSE && !p->churn)
      g.closes_heard++;
    hang_up(c); /* as the tutorial client does, it drops the call; here it also goes */
    return;
  }
  if (len >= 10 && memcmp(m, "{\"start\":\"", 10) == 0) {
    int role = len >= 15 && memcmp(m + 10, "offer", 5) == 0 ? 1 : len >= 16 && memcmp(m + 10, "answer", 6) == 0 ? 2 : 0;
    if (!role || c->role) {
      count_error(&g.other_msgs, "%s: unexpected start: %.*s", p->id[c->side], (int)(len > 80 ? 80 : len), m);
      return;
    }
    c->role = role;
    if (++p->starts == 2) {
      if (p->c[0].role == p->c[1].role)
        count_error(&g.other_msgs, "pair %u got two starts of the same role", p->index);
      pair_ready(p);
    }
    return;
  }
  if (len >= 9 && memcmp(m, "{\"ping\":", 8) == 0) {
    g.pings++; /* the server's keepalive; lws answers its ping frames itself */
    return;
  }
  if (len >= 9 && memcmp(m, "{\"error\"", 8) == 0) {
    count_error(&g.server_errors, "%s: server error: %.*s", p->id[c->side], (int)(len > 160 ? 160 : len), m);
    return;
  }
  if (len >= 8 && memcmp(m, "{\"pong\"", 7) == 0)
    return;
  count_error(&g.other_msgs, "%s: unexpected message: %.*s", p->id[c->side], (int)(len > 80 ? 80 : len), m);
}

static void on_receive(client_t *c, struct lws *wsi, const char *in, size_t len) {
  bool final = lws_is_final_fragment(wsi);
  if (c->rx_len == 0 && final) {
    on_message(c, in, len);
    return;
  }
  if (c->rx_len + len > c->rx_cap) {
    size_t cap = c->rx_cap ? c->rx_cap : 8192;
    while (cap < c->rx_len + len)
      cap *= 2;
    char *rx = realloc(c->rx, cap);
    if (!rx) {
      note("out of memory");
      exit(1);
    }
    c->rx = rx;
    c->rx_cap = cap;
  }
  memcpy(c->rx + c->rx_len, in, len);
  c->rx_len += len;
  if (final) {
    on_message(c, c->rx, c->rx_len);
    c->rx_len = 0;
  }
}

static int callback_bench(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  (void)user;
  client_t *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (!c)
      return -1;
    c->wsi = wsi;
    c->state = C_OPEN;
    want_write(c); /* open first; or the hang-up asked for while connecting */
    return 0;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (c && c->state == C_OPEN)
      on_receive(c, wsi, in, len);
    return 0;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    return c && c->state == C_OPEN ? on_writeable(c) : 0;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (c && c->state != C_GONE) {
      count_error(&g.conn_errors, "connection failed: %s", in ? (const char *)in : "(no reason)");
      lws_set_opaque_user_data(wsi, NULL);
      c->wsi = NULL;
      client_gone(c);
    }
    return 0;
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (c && c->state != C_GONE) {
      lws_set_opaque_user_data(wsi, NULL);
      c->wsi = NULL;
      client_gone(c);
    }
    return 0;
  default:
    return 0;
  }
}

/* ---- phases ------------------------------------------------------------ */

static void next_phase(void);

static void begin_phase(phase_t ph) {
  g.phase = ph;
  g.phase_t0 = uv_hrtime();
  g.phase_server_cpu0 = server_cpu();
  g.phase_client_cpu0 = client_cpu();
  uv_timer_start(&g.deadline, (uv_timer_cb)next_phase, (uint64_t)(g.phase_timeout * 1000), 0);
}

static const char *phase_name(phase_t ph) {
  static const char *names[] = {"none", "churn", "connect", "idle", "relay", "close", "done"};
  return names[ph];
}

static void connect_pump(void) {
  while (g.pairs_launched < g.conns / 2 && g.pairs_inflight * 2 < g.concurrency) {
    pair_t *p = pair_new(false);
    g.pairs[g.pairs_launched++] = p;
    g.pairs_inflight++;
    client_connect(&p->c[0]);
    client_connect(&p->c[1]);
  }
}

static void churn_pump(void) {
  while (g.churn_launched < g.churn && g.churn_inflight < g.churn_concurrency) {
    pair_t *p = pair_new(true);
    for (p->slot = 0; g.churn_pairs[p->slot]; p->slot++)
      ;
    g.churn_pairs[p->slot] = p;
    g.churn_launched++;
    g.churn_inflight++;
    client_connect(&p->c[0]);
    client_connect(&p->c[1]);
  }
}

static void pair_ready(pair_t *p) {
  p->ready = true;
  if (p->churn) {
    p->c[0].credit = p->c[1].credit = CHURN_MSGS;
    want_write(&p->c[0]);
    want_write(&p->c[1]);
    return;
  }
  if (g.phase != PH_CONNECT)
    return;
  g.pairs_ready++;
  g.pairs_inflight--;
  connect_pump();
  phase_maybe_done();
}

static void pair_finished(pair_t *p) {
  /* Both clients are gone: a churn call is over, its slot free. */
  if (p->churn) {
    client_t *a = &p->c[0], *b = &p->c[1];
    if (p->failed) {
      g.churn_failed++;
    } else {
      uint64_t lost = (uint64_t)(CHURN_MSGS - (a->recvd < CHURN_MSGS ? a->recvd : CHURN_MSGS)) +
                      (CHURN_MSGS - (b->recvd < CHURN_MSGS ? b->recvd : CHURN_MSGS));
      if (lost) {
        count_error(&g.churn_lost, "churn call %u lost %" PRIu64 " message(s)", p->index, lost);
        g.churn_lost += lost - 1;
      }
      if (!b->got_close)
        count_error(&g.churn_missing_close, "churn call %u: %s never heard close", p->index, p->id[1]);
    }
    g.churn_pairs[p->slot] = NULL;
    free(a->rx);
    free(b->rx);
    free(p);
    g.churn_done++;
    g.churn_inflight--;
    if (g.phase == PH_CHURN) {
      churn_pump();
      phase_maybe_done();
    }
    return;
  }
  if (g.phase == PH_CLOSE)
    phase_maybe_done();
}

static void client_gone(client_t *c) {
  if (g.tearing_down)
    return; /* lws closes what is left; nothing is counted or freed any more */
  pair_t *p = c->pair;
  client_t *partner = &p->c[1 - c->side];
  bool was_open = c->state == C_OPEN;
  c->state = C_GONE;
  p->gone++;
  if (!c->hangup) {
    /* Neither we nor the protocol asked for this close. */
    if (was_open)
      count_error(&g.unexpected_closes, "%s was closed by the server", p->id[c->side]);
    bool first_failure = !p->failed;
    p->failed = true;
    if (first_failure && !p->ready && !p->churn && g.phase == PH_CONNECT) {
      g.pairs_failed++;
      g.pairs_inflight--;
      connect_pump();
    }
    if (partner->state != C_GONE)
      hang_up(partner);
  }
  if (p->closing)
    g.clients_gone_in_close++;
  if (p->gone == 2)
    pair_finished(p); /* may free p */
  else if (g.phase == PH_CONNECT)
    phase_maybe_done();
}

static void relay_tick(uv_timer_t *t) {
  (void)t;
  step_t *s = &g.steps[g.step];
  uint64_t now = uv_hrtime();
  if (now >= s->t_end_send) {
    uv_timer_stop(&g.tick);
    for (int i = 0; i < g.relay_n; i++) {
      g.relay_clients[i]->credit = 0;
      g.relay_clients[i]->unlimited = false;
    }
    phase_maybe_done();
    return;
  }
  if (s->rate <= 0)
    return;
  uint64_t due = (uint64_t)(s->rate * (double)(now - s->t0) / 1e9);
  while (s->granted < due) {
    client_t *c = g.relay_clients[g.relay_cursor++ % g.relay_n];
    s->granted++;
    if (c->credit >= (uint32_t)g.window) {
      s->skipped++; /* this sender is a window behind: the offer is not made */
      continue;
    }
    c->credit++;
    if (can_send(c))
      want_write(c);
  }
}

static void relay_start_step(void) {
  step_t *s = &g.steps[g.step];
  s->t0 = uv_hrtime();
  s->t_end_send = s->t0 + (uint64_t)(g.relay_secs * 1e9);
  s->server_cpu_s = server_cpu();
  s->client_cpu_s = client_cpu();
  for (int i = 0; i < g.relay_n; i++) {
    client_t *c = g.relay_clients[i];
    c->credit = 0;
    c->unlimited = s->rate <= 0;
    if (c->unlimited)
      want_write(c);
  }
  uv_timer_start(&g.tick, relay_tick, 1, 1);
}

static bool relay_in_flight(void) {
  for (int i = 0; i < g.relay_n; i++) {
    client_t *c = g.relay_clients[i];
    if (c->state == C_OPEN && c->sent != c->pair->c[1 - c->side].recvd)
      return true;
  }
  return false;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t pct(const step_t *s, double q) {
  if (!s->lat_n)
    return 0;
  size_t i = (size_t)(q * (double)(s->lat_n - 1) + 0.5);
  return s->lat_us[i];
}

static void relay_finish_step(void) {
  step_t *s = &g.steps[g.step];
  s->t_drained = uv_hrtime();
  s->server_cpu_s = server_cpu() - s->server_cpu_s;
  s->client_cpu_s = client_cpu() - s->client_cpu_s;
  qsort(s->lat_us, s->lat_n, sizeof *s->lat_us, cmp_u32);
  double secs = (double)(s->t_drained - s->t0) / 1e9;
  note("relay step %d: offered %.0f/s, delivered %" PRIu64 " in %.2f s = %.0f/s, p50 %u us p99 %u us max %u us, "
       "server cpu %.2f s, loadgen cpu %.2f s",
       g.step, s->rate, s->delivered, secs, (double)s->delivered / secs, pct(s, 0.5), pct(s, 0.99),
       s->lat_n ? s->lat_us[s->lat_n - 1] : 0, s->server_cpu_s, s->client_cpu_s);
}

static void settle_done(uv_timer_t *t);

static void settle_then(double secs) {
  uv_timer_start(&g.settle, settle_done, (uint64_t)(secs * 1000), 0);
}

/* Called after anything that may end the current phase. */
static void phase_maybe_done(void) {
  switch (g.phase) {
  case PH_CONNECT:
    if (g.pairs_ready + g.pairs_failed == g.conns / 2 && g.pairs_launched == g.conns / 2 && g.pairs_inflight == 0)
      next_phase();
    break;
  case PH_RELAY: {
    step_t *s = &g.steps[g.step];
    if (uv_is_active((uv_handle_t *)&g.tick) || relay_in_flight())
      return;
    s->drained = true;
    relay_finish_step();
    if (++g.step < g.rate_count)
      relay_start_step();
    else
      next_phase();
    break;
  }
  case PH_CLOSE:
    if (g.clients_gone_in_close == 2 * g.close_pairs)
      next_phase();
    break;
  case PH_CHURN:
    if (g.churn_done == g.churn)
      next_phase();
    break;
  default:
    break;
  }
}

static void end_connect(bool timed_out) {
  double secs = (double)(uv_hrtime() - g.phase_t0) / 1e9;
  double scpu = server_cpu() - g.phase_server_cpu0, ccpu = client_cpu() - g.phase_client_cpu0;
  int conns_ok = g.pairs_ready * 2;
  note("connect: %d pairs ready, %d failed, in %.2f s (%.0f pairs/s); server cpu %.2f s (%.3f ms/conn), loadgen cpu "
       "%.2f s%s",
       g.pairs_ready, g.pairs_failed, secs, g.pairs_ready / secs, scpu, conns_ok ? scpu * 1e3 / conns_ok : 0, ccpu,
       timed_out ? " (TIMED OUT)" : "");
  json_add("\"connect\":{\"connections\":%d,\"pairs_ready\":%d,\"pairs_failed\":%d,\"seconds\":%.4f,"
           "\"pairs_per_s\":%.1f,\"server_cpu_s\":%.3f,\"server_cpu_ms_per_conn\":%.4f,\"loadgen_cpu_s\":%.3f,"
           "\"timed_out\":%s},",
           g.conns, g.pairs_ready, g.pairs_failed, secs, g.pairs_ready / secs, scpu,
           conns_ok ? scpu * 1e3 / conns_ok : 0.0, ccpu, timed_out ? "true" : "false");
}

static void end_relay(bool timed_out) {
  double scpu = 0, ccpu = 0;
  uint64_t delivered = 0, sent = 0;
  json_add("\"relay\":{\"pairs\":%d,\"window\":%d,\"seconds_per_step\":%.2f,\"steps\":[", g.relay_n / 2, g.window,
           g.relay_secs);
  for (int i = 0; i < g.rate_count; i++) {
    step_t *s = &g.steps[i];
    if (i == g.step && !s->drained && s->t0) {
      relay_finish_step();
    }
    double secs = s->t_drained > s->t0 ? (double)(s->t_drained - s->t0) / 1e9 : 0;
    scpu += s->server_cpu_s;
    ccpu += s->client_cpu_s;
    delivered += s->delivered;
    sent += s->sent;
    json_add("%s{\"offered_per_s\":%.0f,\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"seconds\":%.4f,"
             "\"delivered_per_s\":%.1f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u,"
             "\"server_cpu_s\":%.3f,\"server_cpu_us_per_msg\":%.3f,\"loadgen_cpu_s\":%.3f,\"complete\":%s}",
             i ? "," : "", s->rate, s->sent, s->delivered, secs, secs > 0 ? (double)s->delivered / secs : 0.0,
             pct(s, 0.5), pct(s, 0.9), pct(s, 0.99), s->lat_n ? s->lat_us[s->lat_n - 1] : 0, s->server_cpu_s,
             s->delivered ? s->server_cpu_s * 1e6 / (double)s->delivered : 0.0, s->client_cpu_s,
             s->drained ? "true" : "false");
  }
  json_add("],\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"server_cpu_s\":%.3f,"
           "\"server_cpu_us_per_msg\":%.3f,\"loadgen_cpu_s\":%.3f,\"timed_out\":%s},",
           sent, delivered, sent - delivered, scpu, delivered ? scpu * 1e6 / (double)delivered : 0.0, ccpu,
           timed_out ? "true" : "false");
}

static void start_after(phase_t ph);

/* Ends the current phase: it is complete, or its deadline passed. */
static void next_phase(void) {
  uv_timer_stop(&g.deadline);
  uv_timer_stop(&g.tick);
  phase_t ended = g.phase;
  g.phase = PH_NONE; /* nothing may end it twice */
  switch (ended) {
  case PH_CONNECT:
    end_connect(g.pairs_ready + g.pairs_failed < g.conns / 2);
    break;
  case PH_RELAY:
    end_relay(g.step < g.rate_count);
    break;
  case PH_CLOSE: {
    bool timed_out = g.clients_gone_in_close < 2 * g.close_pairs;
    json_add("\"close\":{\"pairs\":%d,\"closes_heard\":%d,\"closes_missing\":%d,\"seconds\":%.3f,\"timed_out\":%s,"
             "\"rss_before_kb\":%ld,",
             g.close_pairs, g.closes_heard, g.close_pairs - g.closes_heard, (double)(uv_hrtime() - g.phase_t0) / 1e9,
             timed_out ? "true" : "false", g.rss_base_kb);
    note("close: %d of %d partners heard close%s", g.closes_heard, g.close_pairs, timed_out ? " (TIMED OUT)" : "");
    g.settling = PH_CLOSE;
    settle_then(g.settle_secs); /* settle_done reports RSS, then goes on */
    return;
  }
  case PH_CHURN: {
    bool timed_out = g.churn_done < g.churn;
    /* Calls still in flight at the deadline: what they never got is lost. */
    for (int i = 0; i < g.churn_concurrency; i++) {
      pair_t *p = g.churn_pairs[i];
      if (!p || p->failed)
        continue;
      uint64_t lost = 0;
      for (int s = 0; s < 2; s++)
        lost += p->c[s].recvd < CHURN_MSGS ? CHURN_MSGS - p->c[s].recvd : 0;
      if (lost) {
        count_error(&g.churn_lost, "churn call %u lost %" PRIu64 " message(s) (unfinished)", p->index, lost);
        g.churn_lost += lost - 1;
      } else if (!p->c[1].got_close) {
        count_error(&g.churn_missing_close, "churn call %u: %s never heard close (unfinished)", p->index, p->id[1]);
      }
    }
    double secs = (double)(uv_hrtime() - g.phase_t0) / 1e9;
    double scpu = server_cpu() - g.phase_server_cpu0, ccpu = client_cpu() - g.phase_client_cpu0;
    note("churn: %d of %d call set-ups in %.2f s (%.0f/s), %d failed, %" PRIu64 " lost messages, %" PRIu64
         " missing closes; server cpu %.2f s, loadgen cpu %.2f s%s",
         g.churn_done, g.churn, secs, g.churn_done / secs, g.churn_failed, g.churn_lost, g.churn_missing_close, scpu,
         ccpu, timed_out ? " (TIMED OUT)" : "");
    json_add("\"churn\":{\"setups\":%d,\"done\":%d,\"failed\":%d,\"seconds\":%.3f,\"setups_per_s\":%.1f,"
             "\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"missing_closes\":%" PRIu64 ",\"server_cpu_s\":%.3f,"
             "\"loadgen_cpu_s\":%.3f,\"timed_out\":%s,\"rss_before_kb\":%ld,",
             g.churn, g.churn_done, g.churn_failed, secs, g.churn_done / secs, g.churn_delivered, g.churn_lost,
             g.churn_missing_close, scpu, ccpu, timed_out ? "true" : "false", g.rss_base_kb);
    g.settling = PH_CHURN;
    settle_then(g.settle_secs);
    return;
  }
  default:
    break;
  }
  start_after(ended);
}

/* Starts the first switched-on phase after ph, or stops the loop. */
static void start_after(phase_t ph) {
  for (ph = ph + 1; ph < PH_DONE; ph++) {
    if (!g.phase_on[ph])
      continue;
    switch (ph) {
    case PH_CONNECT:
      g.rss_base_kb = server_rss_kb();
      json_add("\"rss_start_kb\":%ld,", g.rss_base_kb);
      g.pairs = calloc((size_t)g.conns / 2 + 1, sizeof *g.pairs);
      begin_phase(PH_CONNECT);
      note("connect: %d connections, %d handshakes at a time", g.conns, g.concurrency);
      connect_pump();
      phase_maybe_done();
      return;
    case PH_IDLE:
      g.phase = PH_IDLE;
      g.settling = PH_IDLE;
      settle_then(g.idle_settle_secs >= 0 ? g.idle_settle_secs : g.settle_secs);
      return;
    case PH_RELAY: {
      int want = g.relay_pairs < g.pairs_ready ? g.relay_pairs : g.pairs_ready;
      g.relay_clients = calloc((size_t)want * 2 + 1, sizeof *g.relay_clients);
      g.relay_n = 0;
      for (int i = 0; i < g.pairs_launched && g.relay_n < want * 2; i++) {
        pair_t *p = g.pairs[i];
        if (p->ready && !p->failed) {
          g.relay_clients[g.relay_n++] = &p->c[0];
          g.relay_clients[g.relay_n++] = &p->c[1];
        }
      }
      if (!g.relay_n) {
        note("relay: no pairs connected, skipped");
        continue;
      }
      begin_phase(PH_RELAY);
      note("relay: %d pairs, window %d, %d steps of %.1f s", g.relay_n / 2, g.window, g.rate_count, g.relay_secs);
      g.step = 0;
      for (int i = 0; i < g.rate_count; i++)
        g.steps[i].rate = g.rates[i];
      relay_start_step();
      return;
    }
    case PH_CLOSE:
      g.rss_base_kb = server_rss_kb();
      begin_phase(PH_CLOSE);
      g.close_pairs = 0;
      for (int i = 0; i < g.pairs_launched; i++) {
        pair_t *p = g.pairs[i];
        if (p->ready && !p->failed && p->c[0].state == C_OPEN && p->c[1].state == C_OPEN) {
          p->closing = true;
          g.close_pairs++;
          hang_up(&p->c[0]);
        } else {
          for (int s = 0; s < 2; s++)
            hang_up(&p->c[s]);
        }
      }
      note("close: %d pairs hang up", g.close_pairs);
      phase_maybe_done();
      return;
    case PH_CHURN:
      g.rss_base_kb = server_rss_kb();
      begin_phase(PH_CHURN);
      note("churn: %d call set-ups, %d at a time", g.churn, g.churn_concurrency);
      churn_pump();
      phase_maybe_done();
      return;
    default:
      break;
    }
  }
  g.phase = PH_DONE;
  uv_stop(&g.loop);
}

static void settle_done(uv_timer_t *t) {
  (void)t;
  long rss = server_rss_kb();
  phase_t settled = g.settling;
  g.settling = PH_NONE;
  if (settled == PH_IDLE) {
    int held = 0;
    for (int i = 0; i < g.pairs_launched; i++)
      for (int s = 0; s < 2; s++)
        held += g.pairs[i]->c[s].state == C_OPEN;
    double per = held ? (double)(rss - g.rss_base_kb) * 1024.0 / held : 0;
    note("idle: %d connections held, server RSS %ld kB (start %ld kB): %.0f bytes (%.2f KiB) per connection", held, rss,
         g.rss_base_kb, per, per / 1024);
    json_add("\"idle\":{\"connections\":%d,\"rss_kb\":%ld,\"rss_start_kb\":%ld,\"bytes_per_conn\":%.1f,"
             "\"kib_per_conn\":%.3f},",
             held, rss, g.rss_base_kb, per, per / 1024);
    g.phase = PH_NONE;
  } else {
    /* The close and churn objects were left open for this. */
    json_add("\"rss_after_kb\":%ld},", rss);
    note("%s: server RSS %ld kB after settling (%ld kB before)", phase_name(settled), rss, g.rss_base_kb);
  }
  start_after(settled);
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: duet-loadgen --port N [options]\n"
          "  --ports LIST           several servers (a cluster): pair i goes to port i %% N (instead of --port)\n"
          "  --cross                with --ports: the second side of each pair to the next port (cross-node pairs)\n"
          "  --host ADDR            server address (default 127.0.0.1; loopback only)\n"
          "  --ca FILE              trust this certificate (the server's own, self-signed); without it the\n"
          "                         system store is searched on every handshake, which costs the load generator\n"
          "  --pid PID[,PID...]     the server's processes, for CPU and RSS from /proc (summed)\n"
          "  --phases LIST          of churn,connect,idle,relay,close (default: all, in that order)\n"
          "  --conns N              connections in the connect phase, in pairs (default 10000)\n"
          "  --concurrency N        connections being set up at once (default 200)\n"
          "  --relay-pairs N        pairs that exchange messages (default 100)\n"
          "  --rates LIST           offered messages/s per relay step, 0 = flat out (default 5000,10000,20000,0)\n"
          "  --relay-secs S         seconds per relay step (default 3)\n"
          "  --window N             messages in flight per sender at most (default 8, at most %d)\n"
          "  --churn N              call set-ups in the churn phase (default 20000)\n"
          "  --churn-concurrency N  call set-ups at once (default 50)\n"
          "  --src-addrs N          spread connections over 127.0.0.1..127.0.0.N (default 1)\n"
          "  --settle S             seconds to wait before reading RSS after close and churn (default 2)\n"
          "  --idle-settle S        seconds to wait before reading RSS with the connections held (default: --settle)\n"
          "  --phase-timeout S      longest any phase may run (default 120)\n"
          "  --id-prefix TEXT       put TEXT before every id (up to 24 bytes; default none)\n",
          WMAX);
}

/* A comma-separated list of at most MAX_SERVERS positive numbers into out;
 * returns how many, or -1 when the list is malformed or too long. */
static int parse_ints(char *list, int *out) {
  int n = 0;
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    char *end;
    long v = strtol(tok, &end, 10);
    if (*end || v <= 0 || v > INT32_MAX || n == MAX_SERVERS)
      return -1;
    out[n++] = (int)v;
  }
  return n;
}

static bool loopback(const char *h) {
  return strncmp(h, "127.", 4) == 0 || strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0;
}

int main(int argc, char **argv) {
  g.host = "127.0.0.1";
  g.id_prefix = "";
  g.conns = 10000;
  g.concurrency = 200;
  g.relay_pairs = 100;
  g.window = 8;
  g.churn = 20000;
  g.churn_concurrency = 50;
  g.src_addrs = 1;
  g.relay_secs = 3;
  g.phase_timeout = 120;
  g.settle_secs = 2;
  g.idle_settle_secs = -1;
  double default_rates[] = {5000, 10000, 20000, 0};
  memcpy(g.rates, default_rates, sizeof default_rates);
  g.rate_count = 4;
  for (int i = PH_CHURN; i < PH_DONE; i++)
    g.phase_on[i] = true;

  static const struct option opts[] = {
      {"host", 1, 0, 'h'},        {"port", 1, 0, 'p'},         {"pid", 1, 0, 'P'},
      {"phases", 1, 0, 'f'},      {"conns", 1, 0, 'c'},        {"concurrency", 1, 0, 'k'},
      {"relay-pairs", 1, 0, 'r'}, {"rates", 1, 0, 'R'},        {"relay-secs", 1, 0, 's'},
      {"window", 1, 0, 'w'},      {"churn", 1, 0, 'n'},        {"churn-concurrency", 1, 0, 'K'},
      {"src-addrs", 1, 0, 'a'},   {"settle", 1, 0, 'S'},  {"idle-settle", 1, 0, 'I'},       {"phase-timeout", 1, 0, 't'},
      {"ca", 1, 0, 'C'},          {"verbose", 0, 0, 'v'},     {"help", 0, 0, '?'},
      {"ports", 1, 0, 'L'},       {"cross", 0, 0, 'X'},       {"id-prefix", 1, 0, 'i'},
      {0, 0, 0, 0},
  };
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 'h': g.host = optarg; break;
    case 'p': g.ports[0] = atoi(optarg); g.port_count = 1; break;
    case 'L': g.port_count = parse_ints(optarg, g.ports); break;
    case 'P': g.pid_count = parse_ints(optarg, g.pids); break;
    case 'X': g.cross = true; break;
    case 'i': g.id_prefix = optarg; break;
    case 'c': g.conns = atoi(optarg) & ~1; break;
    case 'k': g.concurrency = atoi(optarg); break;
    case 'r': g.relay_pairs = atoi(optarg); break;
    case 's': g.relay_secs = atof(optarg); break;
    case 'w': g.window = atoi(optarg); break;
    case 'n': g.churn = atoi(optarg); break;
    case 'K': g.churn_concurrency = atoi(optarg); break;
    case 'a': g.src_addrs = atoi(optarg); break;
    case 'S': g.settle_secs = atof(optarg); break;
    case 'I': g.idle_settle_secs = atof(optarg); break;
    case 't': g.phase_timeout = atof(optarg); break;
    case 'C': g.ca = optarg; break;
    case 'v': g.verbose++; break;
    case 'R': {
      g.rate_count = 0;
      for (char *tok = strtok(optarg, ","); tok && g.rate_count < MAX_STEPS; tok = strtok(NULL, ","))
        g.rates[g.rate_count++] = atof(tok);
      break;
    }
    case 'f': {
      for (int i = PH_CHURN; i < PH_DONE; i++)
        g.phase_on[i] = false;
      for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
        bool found = false;
        for (int i = PH_CHURN; i < PH_DONE; i++)
          if (strcmp(tok, phase_name((phase_t)i)) == 0)
            g.phase_on[i] = found = true;
        if (!found) {
          fprintf(stderr, "loadgen: unknown phase '%s'\n", tok);
          return 2;
        }
      }
      break;
    }
    default:
      usage(o == '?' ? stdout : stderr);
      return o == '?' ? 0 : 2;
    }
  }
  g.port = g.ports[0];
  g.pid = g.pid_count > 0 ? g.pids[0] : 0;
  bool ports_ok = g.port_count > 0 && g.pid_count >= 0 && !(g.cross && g.port_count < 2);
  for (int i = 0; i < g.port_count; i++)
    ports_ok = ports_ok && g.ports[i] > 0 && g.ports[i] <= 65535;
  for (int i = 0; i < g.pid_count; i++)
    ports_ok = ports_ok && g.pids[i] > 0;
  if (!ports_ok || !loopback(g.host) || g.window < 1 || g.window > WMAX || g.conns < 0 ||
      g.concurrency < 2 || g.churn < 0 || g.churn_concurrency < 1 || g.src_addrs < 1 || g.src_addrs > 254 ||
      g.relay_secs <= 0 || g.relay_secs > 60 || g.phase_timeout <= 0 || g.phase_timeout > 600) {
    usage(stderr);
    fprintf(stderr, "loadgen: a port is required (--cross: two or more); the host must be a loopback address; counts "
                    "must be sane\n");
    return 2;
  }
  /* Phases that need connected pairs. */
  if ((g.phase_on[PH_IDLE] || g.phase_on[PH_RELAY] || g.phase_on[PH_CLOSE]) && !g.phase_on[PH_CONNECT]) {
    fprintf(stderr, "loadgen: idle, relay and close need the connect phase\n");
    return 2;
  }

  /* Every connection is a file descriptor: take all the kernel allows. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    long need = (long)g.conns + 2L * g.churn_concurrency + 64;
    if ((long)rl.rlim_cur < need)
      note("warning: the file limit %ld is below the %ld descriptors this run needs", (long)rl.rlim_cur, need);
  }
  make_sdp_text();
  g.churn_pairs = calloc((size_t)g.churn_concurrency, sizeof *g.churn_pairs);

  uv_loop_init(&g.loop);
  uv_timer_init(&g.loop, &g.deadline);
  uv_timer_init(&g.loop, &g.tick);
  uv_timer_init(&g.loop, &g.settle);

  static const struct lws_protocols protocols[] = {
      {"bench", callback_bench, 0, 8192, 0, NULL, 0},
      {NULL, NULL, 0, 0, 0, NULL, 0},
  };
  void *loops[] = {&g.loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.foreign_loops = loops;
  info.timeout_secs = 30;
  info.connect_timeout_secs = 20;
  /* OpenSSL 3 scans the system certificate folder on every verification
   * (readdir of /etc/ssl/certs): trusting just the server's certificate
   * keeps that cost out of the load generator. */
  info.client_ssl_ca_filepath = g.ca;
  lws_set_log_level(g.verbose ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR, NULL);
  g.lws = lws_create_context(&info);
  if (!g.lws) {
    note("cannot create the libwebsockets context (is libwebsockets-evlib-uv installed?)");
    return 1;
  }

  double t0 = now_s(), cpu0 = client_cpu();
  json_add("{\"server_pid\":%d,\"servers\":%d,\"cross\":%s,\"rss_initial_kb\":%ld,", g.pid, g.port_count,
           g.cross ? "true" : "false", server_rss_kb());
  g.phase = PH_NONE;
  start_after(PH_NONE);
  if (g.phase != PH_DONE)
    uv_run(&g.loop, UV_RUN_DEFAULT);

  json_add("\"errors\":{\"total\":%" PRIu64 ",\"connection\":%" PRIu64 ",\"corrupt_or_out_of_order\":%" PRIu64
           ",\"server_errors\":%" PRIu64 ",\"unexpected_closes\":%" PRIu64 ",\"other\":%" PRIu64
           ",\"first\":\"",
           g.errors, g.conn_errors, g.corrupt, g.server_errors, g.unexpected_closes, g.other_msgs);
  for (const char *s = g.first_error; *s; s++)
    json_add(*s == '"' || *s == '\\' ? "\\%c" : (unsigned char)*s < 0x20 ? "?" : "%c", *s);
  json_add("\"},\"server_pings\":%" PRIu64 ",\"loadgen_cpu_s\":%.3f,\"wall_s\":%.3f}", g.pings, client_cpu() - cpu0,
           now_s() - t0);
  puts(g.json);
  fflush(stdout);

  int rc = g.errors ? 3 : 0;
  /* Teardown (foreign loop): destroy lws, close our handles, run dry. */
  g.tearing_down = true;
  lws_context_destroy(g.lws);
  uv_close((uv_handle_t *)&g.deadline, NULL);
  uv_close((uv_handle_t *)&g.tick, NULL);
  uv_close((uv_handle_t *)&g.settle, NULL);
  uv_run(&g.loop, UV_RUN_DEFAULT);
  if (g.lws) {
    lws_context_destroy(g.lws);
    uv_run(&g.loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&g.loop);
  return rc;
}
