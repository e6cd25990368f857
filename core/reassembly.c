#include "reassembly.h"

#include <stdlib.h>
#include <string.h>

#include "duet/plugin.h" /* DUET_E* */

/* A buffer this large is given back after its message; smaller ones are
 * kept for the next fragmented message. */
#define KEEP_BYTES (16 * 1024)

static int append(duet_reassembly_t *rx, const char *in, size_t len, size_t max) {
  if (len == 0)
    return 0; /* an empty fragment: nothing to copy, and memcpy must not see NULL */
  size_t need = (size_t)rx->len + len;
  if (need > max)
    return DUET_ENOBUFS;
  if (need > rx->cap) {
    size_t cap = rx->cap ? rx->cap : 1024;
    while (cap < need)
      cap *= 2;
    if (cap > max)
      cap = max;
    char *buf = realloc(rx->buf, cap);
    if (!buf)
      return DUET_ENOMEM;
    rx->buf = buf;
    rx->cap = (uint32_t)cap;
  }
  memcpy(rx->buf + rx->len, in, len);
  rx->len = (uint32_t)need;
  return 0;
}

/* Called once the last piece of a message has been seen. */
static duet_rx_t finish(duet_reassembly_t *rx, const char **data, size_t *data_len) {
  duet_rx_t result = rx->refused ? (duet_rx_t)rx->refused : DUET_RX_MESSAGE;
  *data = rx->buf ? rx->buf : ""; /* a message of empty fragments only */
  *data_len = rx->len;
  rx->len = 0;
  rx->refused = 0;
  return result;
}

duet_rx_t duet__reassembly_feed(duet_reassembly_t *rx, const char *in, size_t len, bool first, bool final, bool binary,
                                size_t max, const char **data, size_t *data_len) {
  if (first) {
    rx->len = 0;
    rx->refused = binary ? DUET_RX_BINARY : 0;
    if (final && !binary && len <= max) {
      *data = in; /* the common case needs no copy */
      *data_len = len;
      return DUET_RX_MESSAGE;
    }
  }
  if (!rx->refused && append(rx, in, len, max) != 0)
    rx->refused = DUET_RX_TOO_LARGE;
  return final ? finish(rx, data, data_len) : DUET_RX_MORE;
}

void duet__reassembly_trim(duet_reassembly_t *rx) {
  if (rx->cap > KEEP_BYTES)
    duet__reassembly_free(rx);
}

void duet__reassembly_free(duet_reassembly_t *rx) {
  free(rx->buf);
  rx->buf = NULL;
  rx->len = rx->cap = 0;
}
