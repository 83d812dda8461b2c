/*
 * Retention (retention.c): the reaper's pass that deletes what [retention]
 * says has expired, so that a store's size stays bounded.
 */
#ifndef IMGNODE_NODE_RETENTION_H
#define IMGNODE_NODE_RETENTION_H

#include <signal.h>

#include "node_conf.h"
#include "startup.h"

struct metrics;

/*
 * One pass over set's storage: expired results, originals, records and
 * Idempotency-Keys' records deleted, counted in m. Does nothing while
 * another node holds the lease (nor, when every TTL is 0, more than the
 * Idempotency-Keys). Tells the supervisor it is busy as it
 * goes; stops early once *stop is set. 0, or the -errno that stopped it
 * (logged); the next pass goes on.
 */
int retention_run(struct plugin_set *set, const struct conf *conf,
                  struct metrics *m, const volatile sig_atomic_t *stop);

#endif
