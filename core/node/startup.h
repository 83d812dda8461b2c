/*
 * A node process's start-up (the ingress, a worker, the reaper, each
 * forked by the supervisor): the struct node it is handed, its entry
 * point, loading and starting its own copy of the current plugin
 * generation (transport, storage, filters), and the exit code when that
 * fails. (The supervisor's side of these processes, its "children", is
 * core/supervisor.c.)
 */
#ifndef IMGNODE_STARTUP_H
#define IMGNODE_STARTUP_H

#include <stdbool.h>
#include <stddef.h>

#include "../plugin.h"

struct conf;
struct metrics;

/* The node as its children see it (borrowed from the supervisor, copied
 * into each child by fork). */
struct node {
	struct conf *conf;
	unsigned generation; /* increases with every successful reload */
	struct metrics *metrics; /* shared by every process of the node */
};

/* The children's entry points (sup_start_fn): arg is the struct node. */
int ingress_main(void *arg, const char *id);
int worker_main(void *arg, const char *id);
int reaper_main(void *arg, const char *id);
int notifier_main(void *arg, const char *id);

/*
 * Loads and starts the plugins of conf into set (zeroed by the caller):
 * the transport and the storage always, the filters if filters is set.
 * Returns 0 or -errno with a reason in err; free with plugin_set_free.
 */
int startup_plugins(struct plugin_set *set, struct conf *conf, bool filters,
                    char *err, size_t errlen);

/*
 * The exit code for a child that could not start with error ret: 100
 * (permanent: a config, plugin or permission problem; restarting will not
 * help) or 111 (temporary: a broker or cluster that may come back).
 */
int startup_exit_code(int ret);

/* Shorthands for the ops tables of the chosen plugins. */
static inline const struct imgnode_storage_ops *
storage_ops(const struct plugin_set *set)
{
	return set->storage->desc->ops;
}

/* True if the storage plugin reads pieces of objects (ABI 1.2 read). */
static inline bool storage_reads_ranges(const struct plugin_set *set)
{
	return plugin_storage_reads_ranges(set->storage);
}

static inline const struct imgnode_transport_ops *
transport_ops(const struct plugin_set *set)
{
	return set->transport->desc->ops;
}

#endif
