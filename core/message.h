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
int duet__message_string(const duet_msg_t *msg, const char *pointer, const char **out, size_t *out_len);

/* Writes s as a JSON string, quotes included, into out and returns its
 * length. The result is always a whole JSON string of valid UTF-8: what does
 * not fit is cut before a whole character (never inside a UTF-8 sequence or
 * an escape), and bytes that are not UTF-8 become U+FFFD. out_size >= 3. */
size_t duet__json_escape(char *out, size_t out_size, const char *s);

/* Error answers: the code and message as JSON strings, each cut (at a
 * character) to fit, so the frame is always valid JSON. */
#define DUET_ERROR_CODE_MAX 128
#define DUET_ERROR_MESSAGE_MAX 512
#define DUET_ERROR_FRAME_MAX (DUET_ERROR_CODE_MAX + DUET_ERROR_MESSAGE_MAX + 32)
/* Writes {"error":{"code":...,"message":...}} into out (DUET_ERROR_FRAME_MAX
 * bytes); returns its length. */
size_t duet__error_frame(char *out, const char *code, const char *message);

#ifdef __cplusplus
}
#endif

#endif
