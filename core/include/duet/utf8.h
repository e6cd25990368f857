/*
 * UTF-8 checks shared by duetd and plugins: header-only, C11 and C++, so a
 * plugin uses the same rules as duetd without linking anything of it.
 * Well-formed means RFC 3629: no overlong forms, no surrogates, nothing
 * past U+10FFFF.
 */
#ifndef DUET_UTF8_H
#define DUET_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The length of the well-formed sequence at the start of s (n > 0 bytes),
 * or 0 when none starts there. */
static inline size_t duet_utf8_sequence_length(const unsigned char *s, size_t n) {
  const unsigned char lead = s[0];
  unsigned char low = 0x80, high = 0xbf; /* the range of the second byte */
  size_t len;
  if (lead < 0x80)
    return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    len = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    len = 3;
    low = lead == 0xe0 ? 0xa0 : 0x80;  /* overlong below U+0800 */
    high = lead == 0xed ? 0x9f : 0xbf; /* surrogates */
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    len = 4;
    low = lead == 0xf0 ? 0x90 : 0x80;  /* overlong below U+10000 */
    high = lead == 0xf4 ? 0x8f : 0xbf; /* past U+10FFFF */
  } else {
    return 0; /* a continuation byte first, an overlong lead (c0, c1), or past U+10FFFF */
  }
  if (n < len || s[1] < low || s[1] > high)
    return 0;
  for (size_t k = 2; k < len; k++)
    if ((s[k] & 0xc0) != 0x80)
      return 0;
  return len;
}

/* Whether s (n bytes) is well-formed UTF-8. Signaling is nearly all ASCII,
 * which goes eight bytes at a time. */
static inline int duet_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      uint64_t word;
      memcpy(&word, s + i, 8);
      if ((word & UINT64_C(0x8080808080808080)) == 0) {
        i += 8;
        continue;
      }
    }
    const size_t len = duet_utf8_sequence_length(s + i, n - i);
    if (len == 0)
      return 0;
    i += len;
  }
  return 1;
}

#endif /* DUET_UTF8_H */
