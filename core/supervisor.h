/*
 * Supervision trees with Erlang/OTP semantics, for Unix processes.
 *
 * A supervisor (struct sup) runs children from a spec: workers are forked
 * processes; a child of type supervisor is a nested supervisor living in the
 * same loop (escalation is a call, not a process exit). Strategies, restart
 * types, intensity/period, shutdown and start/stop order follow OTP's
 * supervisor module; beyond OTP: readiness, heartbeat deadlines, capped
 * exponential restart backoff, recycling on RSS or on the child's request,
 * and exit code 100 as "permanent failure, do not restart". The differences
 * from OTP are listed in docs/supervision.md.
 *
 * Everything here runs in the supervisor process: no libvips, no librados,
 * no librabbitmq, no plugin code.
 */
#ifndef IMGNODE_SUPERVISOR_H
#define IMGNODE_SUPERVISOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct sup;

enum sup_strategy {
	SUP_ONE_FOR_ONE,
	SUP_ONE_FOR_ALL,
	SUP_REST_FOR_ONE,
	SUP_SIMPLE_ONE_FOR_ONE,
};

enum sup_restart {
	SUP_PERMANENT, /* always restarted */
	SUP_TRANSIENT, /* restarted unless it exits 0 */
	SUP_TEMPORARY, /* never restarted */
};

enum sup_child_type { SUP_WORKER, SUP_SUPERVISOR };

/* Exit code of a child (or of the node) that must not be restarted. */

/*
 * Runs in the forked child: id is the child's id ("worker.3" in a pool).
 * Returns the exit code.
 */
typedef int sup_start_fn(void *arg, const char *id);

struct sup_spec;

struct sup_child_spec {
	const char *id;
	enum sup_child_type type;
	enum sup_restart restart;
	int64_t shutdown_ms; /* SIGTERM, then SIGKILL; 0 = brutal_kill */
	sup_start_fn *start; /* SUP_WORKER */
	void *arg; /* borrowed; passed to start */
	const struct sup_spec *sup; /* SUP_SUPERVISOR */
	int64_t start_timeout_ms; /* wait for "ready"; 0 = ready when forked */
	int64_t heartbeat_ms; /* max silence when running; 0 = none */
	int64_t max_rss; /* bytes; over it the child is recycled */
};

struct sup_spec {
	const char *id;
	enum sup_strategy strategy;
	int64_t intensity; /* more restarts than this within period: give up */
	int64_t period_ms;
	int64_t backoff_min_ms; /* 0: restart at once, always */
	int64_t backoff_max_ms;
	const struct sup_child_spec *children; /* simple_one_for_one: one */
	size_t nchildren;
	size_t count; /* simple_one_for_one: pool size */
};

/*
 * Called once when a root supervisor has gone down: code 0 after
 * sup_shutdown, 1 when restart intensity was exceeded, EXIT_PERMANENT
 * when a child failed permanently.
 */
typedef void sup_exit_fn(struct sup *root, int code, void *arg);

/* Called once when the root's initial start completed (every child ready). */
typedef void sup_ready_fn(struct sup *root, void *arg);

/*
 * Starts a root supervisor in loop (which must have no SIGCHLD handler of
 * its own). Specs are borrowed for the supervisor's life. Returns the
 * supervisor or NULL (errno set). Free with sup_free after on_exit ran.
 */
struct sup *sup_start(struct loop *loop, const struct sup_spec *spec,
                      sup_ready_fn *on_ready, sup_exit_fn *on_exit, void *arg);
void sup_free(struct sup *root);

/* Orderly stop: children in reverse start order, then on_exit(0). */
void sup_shutdown(struct sup *root);

/*
 * Restarts the child with id (anywhere in the tree; "workers" restarts a
 * whole nested supervisor). Not counted against intensity. 0 or -ENOENT.
 */
int sup_restart_child(struct sup *root, const char *id);

/*
 * Replaces every member of the simple_one_for_one supervisor with id, one
 * at a time: start a new member, wait until it is ready, then stop an old
 * one (which finishes its work on SIGTERM). Capacity never drops, and no
 * restart is counted. This is how a new generation of code rolls in.
 * 0, -ENOENT, -EINVAL.
 */
int sup_roll(struct sup *root, const char *id);

/*
 * Called for children the loop reaps that are not in the tree (a reload's
 * validation child); status as from waitpid.
 */
typedef void sup_foreign_fn(pid_t pid, int status, void *arg);
void sup_on_foreign_exit(struct sup *root, sup_foreign_fn *fn, void *arg);

/*
 * Calls fn once, when the supervisor with id is settled: it has no
 * operation queued or under way (e.g. a roll has finished), or there is no
 * such supervisor. Checked before the loop next sleeps, after any event, so
 * fn runs outside the supervisor's own calls. One waiter per root; a
 * second replaces the first. id is borrowed until fn runs.
 */
typedef void sup_settled_fn(struct sup *root, void *arg);
void sup_when_settled(struct sup *root, const char *id, sup_settled_fn *fn,
                      void *arg);

/* Resizes the simple_one_for_one supervisor with id. 0, -ENOENT, -EINVAL. */
int sup_resize(struct sup *root, const char *id, size_t count);

/*
 * The live tree as JSON (caller owns the reference): for each supervisor
 * its id, strategy, state and children; for each worker its id, pid, state,
 * uptime_ms, restarts and last_exit.
 */
json_t *sup_status(struct sup *root);

/*
 * Tags every child started from now on with generation (1 at the start;
 * shown by sup_status): after a reload, old and new children tell apart.
 */
void sup_set_generation(struct sup *root, unsigned generation);

/* A pool's members as they stand, for readiness (sup_pool_counts). */
struct sup_pool_counts {
	size_t members; /* not leaving the pool */
	size_t ready; /* running, or being replaced after a recycle */
	size_t alive; /* with a process: starting, running or stopping */
	size_t starting; /* forked, not ready yet */
	int64_t next_start; /* now_ms() when the earliest restart waiting
	                     * for its backoff is due; 0: none waits */
};

/*
 * Counts the members of the simple_one_for_one supervisor with id into
 * out. 0, or -ENOENT when there is no such pool now (a pool that gave up
 * is being restarted by its parent).
 */
int sup_pool_counts(struct sup *root, const char *id,
                    struct sup_pool_counts *out);

/* Restarts counted in the whole tree since it started. */
unsigned sup_restarts(struct sup *root);

/* One line for sd_notify STATUS=: "3 children running, 12 restarts". */
void sup_summary(struct sup *root, char *buf, size_t len);

#endif
