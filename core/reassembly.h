/* Reassembly of fragmented WebSocket messages, bounded: a message over the
 * limit, or a binary one, is refused as a whole and the rest of it skipped.
 * No I/O here, so the rules are unit-tested directly. */
#ifndef DUET_REASSEMBLY_H
#define DUET_REASSEMBLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct duet_reassembly {
  char *buf; /* the pieces so far; NULL until a message comes in pieces */
  uint32_t len;
  uint32_t cap;
  uint8_t refused; /* the current message is being skipped (a duet_rx_t) */
} duet_reassembly_t;

typedef enum duet_rx {
  DUET_RX_MORE,      /* wait for the next piece */
  DUET_RX_MESSAGE,   /* *data, *data_len: one whole text message */
  DUET_RX_BINARY,    /* a whole binary message was skipped */
  DUET_RX_TOO_LARGE, /* a whole message over max was skipped */
} duet_rx_t;

/* Feeds one piece (lws hands messages over in pieces of its receive buffer).
 * A message that comes whole is returned in place, without a copy; pieces
 * are copied. max is at most 16 MiB (the CLI's bound). */
duet_rx_t duet__reassembly_feed(duet_reassembly_t *rx, const char *in, size_t len, bool first, bool final, bool binary,
                                size_t max, const char **data, size_t *data_len);
/* Once a whole message has been handled: gives a big buffer back (a small
 * one is kept for the next fragmented message). */
void duet__reassembly_trim(duet_reassembly_t *rx);
/* Frees the buffer. */
void duet__reassembly_free(duet_reassembly_t *rx);

#endif
