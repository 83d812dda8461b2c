/*
 * An executor: the one thread that calls a plugin (the ingress's storage,
 * or its transport), so that no HTTP thread and not the main thread, which
 * heartbeats the supervisor, ever waits inside one. Plugins are not
 * thread-safe; here each instance has one caller, so no call waits for
 * another's lock either.
 *
 * A caller hands an operation and a deadline and either waits on a
 * condition variable (executor_call), or goes on and is called back when
 * it ends (executor_begin: the ingress suspends the request's connection
 * meanwhile), never past the deadline (executor_expire, from the main
 * loop): then the operation is dropped if it has not started, or its
 * result thrown away when it returns. Operations nobody waits for (executor_post: undoing a refused
 * upload, reading old records) run in turn unless the dependency is down.
 *
 * The executor keeps the dependency's breaker (breaker.h): a deadline
 * passed or an error that says the dependency is away opens it, with one
 * log line naming the dependency and why; while it is open, calls are
 * refused at once (-ECANCELED) and the thread pings the plugin every
 * EXECUTOR_PROBE_MS (quietly: a ping that fails logs nothing); any answer
 * closes it, with one line saying how long it was down. An idle thread
 * pings as often, so a dependency lost with no request under way is seen
 * too, and a call that outlasts its bound (executor_check, from a thread
 * that never calls a plugin) opens the breaker while it is still stuck.
 * Between operations
 * the thread runs an idle function (the transport's: take the replies),
 * woken by an fd of the plugin's or every turn_ms.
 */
#ifndef IMGNODE_NODE_EXECUTOR_H
#define IMGNODE_NODE_EXECUTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"

#define EXECUTOR_PROBE_MS                                                      \
	1000 /* a dependency not called is pinged this often */

struct exec_op;

/* Runs op on the executor's thread with the plugin's state: 0 or -errno
 * (the plugin's). */
typedef int (*exec_run_fn)(struct exec_op *op, void *state);
/* Frees op and what it holds, once nobody waits for it. */
typedef void (*exec_drop_fn)(struct exec_op *op);
/* Tells op's caller it ended with ret (executor_begin). */
typedef void (*exec_done_fn)(struct exec_op *op, int ret, void *arg);

/*
 * One operation: first member of the caller's own struct (heap-allocated:
 * it may outlive its caller's wait), which run and drop cast back.
 */
struct exec_op {
	exec_run_fn run;
	exec_drop_fn drop;
	bool patient; /* a deadline passed does not open the breaker (its
	                 caller waits less than dependency_wait) */
	/* the executor's, under its lock */
	enum { EXEC_QUEUED, EXEC_RUNNING, EXEC_DONE } state;
	bool orphan; /* nobody waits: drop after running (or instead) */
	int ret;
	exec_done_fn done; /* executor_begin's */
	void *done_arg;
	int64_t began_ms, deadline_ms;
	struct exec_op *next;
};

struct executor {
	/* set by the caller before executor_start */
	const char *name; /* "storage", "transport": in messages */
	char label[96]; /* its backend, for messages: "rados pool imgnode" */
	void *state; /* the plugin's; used only on the thread */
	int (*ping)(void *state);
	int (*idle)(void *arg); /* or NULL: 0, or a -errno that may open */
	void *idle_arg;
	int idle_fd; /* wakes the thread for idle, or -1 */
	int64_t turn_ms; /* longest sleep between two idles */
	/* the executor's */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* an op finished */
	int wake_fd; /* eventfd: an op was queued, or stop */
	struct exec_op *head, *tail; /* under mu */
	struct breaker br; /* under mu */
	atomic_bool up; /* !br.open, for readers that take no lock */
	struct exec_op *current; /* under mu: the op being run, or NULL */
	bool quit, running; /* under mu */
	bool closing; /* under mu: executor_begin refuses (stopping) */
	int64_t busy_since; /* under mu: in a plugin call since; 0: not */
	int64_t last_call; /* under mu: the last call ended at */
	char seen[BREAKER_WHY_MAX]; /* the thread's last plugin warning */
};

/* Starts the thread. 0 or -errno. */
int executor_start(struct executor *ex);

/*
 * Asks the thread to stop after its current call and waits up to
 * wait_ms for it; ops not run are dropped. True if it stopped (then the
 * plugin may be freed), false if it is still inside a plugin call.
 */
bool executor_stop(struct executor *ex, int64_t wait_ms);

/*
 * Runs op on the thread and waits for it until deadline_ms (monotonic).
 * Returns its 0 or -errno (op stays the caller's); -ECANCELED at once if
 * the dependency is down (op stays the caller's, never run); -ETIME if
 * the deadline passed: the op is then no longer the caller's (dropped
 * now if it had not started, or when it returns).
 */
int executor_call(struct executor *ex, struct exec_op *op, int64_t deadline_ms);

/*
 * Queues op, whose caller does not wait: done(op, ret, arg) is called
 * once, from the executor's thread with op's result (op is the caller's
 * again), or from executor_expire (op is no longer the caller's) with
 * -ETIME if it is under way, -ECANCELED if it never ran (so a publish
 * that was never sent is known to be). 0, or -ECANCELED at once if the dependency is down or the
 * executor closing (op stays the caller's, done is never called).
 */
int executor_begin(struct executor *ex, struct exec_op *op, int64_t deadline_ms,
                   exec_done_fn done, void *arg);

/*
 * Ends the waits of executor_begin's ops past their deadline at now, or
 * all of them (and refuses new ones from then on): their done gets -ETIME
 * or -ECANCELED, and a deadline passed opens the breaker (unless the op
 * is patient). Never waits for a
 * call: a thread that calls no plugin (the main loop) calls it.
 */
void executor_expire(struct executor *ex, int64_t now, bool all);

/* Queues op, which nobody waits for: it runs in turn and is dropped, or
 * is dropped unrun if the dependency is down by then. */
void executor_post(struct executor *ex, struct exec_op *op);

/* Opens the breaker if the thread has been inside one call (an op, a
 * ping, the idle function) for more than limit_ms. Never waits for it. */
void executor_check(struct executor *ex, int64_t limit_ms);

/*
 * True if the dependency is up. Else why (if not NULL) gets the reason it
 * went down (len bytes at most) and *down_ms (if not NULL) since when.
 */
bool executor_up(struct executor *ex, char *why, size_t len, int64_t *down_ms);

#endif
