/* Decoding of signaling messages: each text frame is parsed once, here. */
#ifndef DUET_MESSAGE_H
#define DUET_MESSAGE_H

#include <stddef.h>

#include "duet/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses json (len bytes) as one JSON object and fills msg. The decoded
 * document stays available to duet__message_string until the next call.
 * Returns 0, or DUET_EINVAL with *why set to a sentence for the client. */
int duet__message_decode(const char *json, size_t len, duet_msg_t *msg, const char **why);

/* Looks up a string by JSON Pointer in the document decoded for msg. */
int duet__message_string(const duet_msg_t *msg, const char *pointer, const char **out,
                         size_t *out_len);

/* Writes s as a JSON string (quotes included, escaped) into out; returns the
 * length it needs, like snprintf. */
size_t duet__json_escape(char *out, size_t out_size, const char *s);

#ifdef __cplusplus
}
#endif

#endif
