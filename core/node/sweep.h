/*
 * The sweep of stuck jobs (sweep.c): records left queued or running past
 * [workers] stuck_after are published again or failed, with the reason.
 */
#ifndef IMGNODE_NODE_SWEEP_H
#define IMGNODE_NODE_SWEEP_H

#include <signal.h>

#include "node_conf.h"
#include "startup.h"

struct metrics;

/*
 * One pass over every job record in set's storage, publishing stuck jobs
 * again through set's transport or marking them failed, counted in m.
 * Tells the supervisor it is busy as it goes (a storage outage slows it,
 * never gets the reaper killed); stops early once *stop is set.
 * Returns 0, or the -errno that stopped it (logged).
 */
int sweep_run(struct plugin_set *set, const struct conf *conf,
              struct metrics *m, const volatile sig_atomic_t *stop);

/* How often the reaper sweeps, in ms: a quarter of stuck_after, capped. */
static inline int64_t sweep_interval_ms(const struct conf *conf)
{
	int64_t ms = conf->app->workers.stuck_after / 4;

	return ms > 5 * 60 * 1000 ? 5 * 60 * 1000 : ms;
}

#endif
