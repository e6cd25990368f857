#include "ip_table.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet/plugin.h" /* DUET_E* */

static size_t hash(const char *s) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return (size_t)h;
}

static int grow(duet_ip_table_t *t) {
  size_t n = t->bucket_count ? t->bucket_count * 2 : 64;
  duet_ip_entry_t **buckets = calloc(n, sizeof *buckets);
  if (!buckets)
    return DUET_ENOMEM;
  for (size_t i = 0; i < t->bucket_count; i++) {
    duet_ip_entry_t *e = t->buckets[i];
    while (e) {
      duet_ip_entry_t *next = e->next;
      size_t b = hash(e->addr) & (n - 1);
      e->next = buckets[b];
      buckets[b] = e;
      e = next;
    }
  }
  free(t->buckets);
  t->buckets = buckets;
  t->bucket_count = n;
  return 0;
}

duet_ip_entry_t *duet__ip_table_acquire(duet_ip_table_t *t, const char *addr) {
  /* The key is what an entry can hold. Addresses from inet_ntop() always
   * fit; a longer one is cut the same way on every call, so it is found
   * again, and release hashes what the entry holds to the same bucket. */
  char key[sizeof((duet_ip_entry_t *)NULL)->addr];
  snprintf(key, sizeof key, "%s", addr);
  if (t->entries >= t->bucket_count && grow(t) != 0)
    return NULL;
  size_t b = hash(key) & (t->bucket_count - 1);
  for (duet_ip_entry_t *e = t->buckets[b]; e; e = e->next)
    if (strcmp(e->addr, key) == 0) {
      e->count++;
      return e;
    }
  duet_ip_entry_t *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  memcpy(e->addr, key, sizeof key);
  e->count = 1;
  e->next = t->buckets[b];
  t->buckets[b] = e;
  t->entries++;
  return e;
}

void duet__ip_table_release(duet_ip_table_t *t, duet_ip_entry_t *e) {
  if (--e->count > 0)
    return;
  duet_ip_entry_t **link = &t->buckets[hash(e->addr) & (t->bucket_count - 1)];
  while (*link != e)
    link = &(*link)->next;
  *link = e->next;
  t->entries--;
  free(e);
}

void duet__ip_table_destroy(duet_ip_table_t *t) {
  for (size_t i = 0; i < t->bucket_count; i++) {
    duet_ip_entry_t *e = t->buckets[i];
    while (e) {
      duet_ip_entry_t *next = e->next;
      free(e);
      e = next;
    }
  }
  free(t->buckets);
  memset(t, 0, sizeof *t);
}
