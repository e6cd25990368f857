/* Connections per client address, for the per-address limit: O(1) to
 * count a connection in and out. */
#ifndef DUET_IP_TABLE_H
#define DUET_IP_TABLE_H

#include <stddef.h>

typedef struct duet_ip_entry {
  struct duet_ip_entry *next;
  size_t count;
  char addr[46];
} duet_ip_entry_t;

typedef struct duet_ip_table {
  duet_ip_entry_t **buckets;
  size_t bucket_count;
  size_t entries;
} duet_ip_table_t;

/* Counts one more connection from addr; returns its entry (count already
 * incremented), or NULL when out of memory. An addr longer than an entry
 * holds (45 bytes; inet_ntop's never are) counts as its first 45 bytes. */
duet_ip_entry_t *duet__ip_table_acquire(duet_ip_table_t *t, const char *addr);
/* Counts one connection out; the entry is freed at zero. */
void duet__ip_table_release(duet_ip_table_t *t, duet_ip_entry_t *e);
void duet__ip_table_destroy(duet_ip_table_t *t);

#endif
