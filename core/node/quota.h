/*
 * Jobs in flight per client (an API key or a client address), so that one
 * client cannot take all of the node's [ingress] max_inflight and push
 * every other client into 429s. A small hash table of counters, one entry
 * per client that has a job in flight; not thread-safe (the ingress holds
 * its jobs lock).
 */
#ifndef IMGNODE_QUOTA_H
#define IMGNODE_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#define QUOTA_CLIENT_MAX 80 /* a client's name, with its NUL */

struct quota;

/* A table of about nbuckets buckets (rounded up to a power of two), or
 * NULL. The caller frees it with quota_free. */
struct quota *quota_new(size_t nbuckets);
void quota_free(struct quota *q);

/*
 * Counts one more job for client if it holds fewer than max: 0, -EDQUOT
 * (it holds max or more) or -ENOMEM. *held is what it held before.
 */
int quota_take(struct quota *q, const char *client, int64_t max, int64_t *held);

/* Counts one job less for client (forgetting it at zero). */
void quota_release(struct quota *q, const char *client);

/* The jobs client holds. */
int64_t quota_held(const struct quota *q, const char *client);

/* How many clients hold at least one job. */
size_t quota_clients(const struct quota *q);

#endif
