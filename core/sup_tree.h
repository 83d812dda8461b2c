/*
 * Inside the supervisor: the tree's structures and the calls its files make
 * to each other, one way only:
 *
 *   supervisor.c    the API (start, stop, restart, roll, resize)
 *     -> sup_deadline.c  the loop's side: SIGCHLD, the deadlines armed by
 *                        the earliest, waiters for a settled supervisor
 *     -> sup_machine.c   the operation queue and each child's life: start,
 *                        stop, status lines, and its exit handled by the
 *                        state-by-event table (docs/supervision.md)
 *   sup_status.c    the tree as JSON and counts (reads the structures only)
 *
 * Not for use outside the supervisor's files.
 */
#ifndef IMGNODE_SUP_TREE_H
#define IMGNODE_SUP_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "supervisor.h"

#define SUP_ID_MAX 64

enum ch_state {
	CH_IDLE, /* not running (never started, stopped, or crashed) */
	CH_STARTING, /* forked, waiting for "ready" */
	CH_RUNNING,
	CH_STOPPING, /* asked to stop, waiting for it to exit */
};

struct ch {
	struct sup *parent;
	const struct sup_child_spec *spec;
	char id[SUP_ID_MAX];
	enum ch_state state;
	pid_t pid;
	int sfd; /* status pipe, or -1 */
	char line[128];
	size_t linelen;
	struct sup *sub; /* SUP_SUPERVISOR, while running */
	int64_t started;
	int64_t deadline; /* heartbeat or busy deadline; 0: none */
	int64_t busy_until; /* the busy deadline alone, kept while stopping */
	int64_t stop_deadline; /* SIGKILL after; 0: none */
	int64_t not_before; /* restart backoff */
	int64_t backoff;
	int64_t last_restart;
	unsigned restarts;
	unsigned generation; /* the root's when this child last started */
	char last_exit[64];
	const char *kill_reason; /* why the supervisor killed it */
	bool recycling; /* the exit is a planned replacement */
	bool replacing; /* starting again after a recycle, not a crash */
	bool removing; /* pool shrink: gone once stopped */
};

enum op_kind { OP_START, OP_STOP };

struct op {
	enum op_kind kind;
	struct ch *ch;
};

enum sup_state { SUP_STARTING, SUP_RUNNING, SUP_STOPPING, SUP_DOWN };

struct sup {
	struct loop *loop;
	const struct sup_spec *spec;
	struct sup *parent; /* NULL at the root */
	struct ch *self; /* the entry in parent that is this supervisor */
	struct ch **ch;
	size_t nch;
	struct op *ops; /* ops[0] is under way when busy */
	size_t nops;
	bool busy;
	int64_t *restart_at; /* times of restarts within period */
	size_t nrestart;
	enum sup_state state;
	int exit_code;
	/* root only */
	struct loop_timer
	        *timer; /* armed for armed_at, the earliest deadline */
	int64_t armed_at;
	struct loop_prepare *prepare;
	int64_t last_rss_check;
	sup_ready_fn *on_ready;
	sup_exit_fn *on_exit;
	void *arg;
	sup_foreign_fn *on_foreign;
	void *foreign_arg;
	const char *settle_id; /* sup_when_settled's waiter */
	sup_settled_fn *on_settled;
	void *settled_arg;
	unsigned generation;
	bool freed_later; /* on_exit called; loop must not touch it again */
};

extern const char *const sup_strategy_names[];

/* sup_machine.c: the tree. */
struct sup *sup_root_of(struct sup *s);
struct sup *sup_new(struct loop *loop, const struct sup_spec *spec,
                    struct sup *parent, struct ch *self);
void sup_destroy(struct sup *s);
struct ch *sup_find_id(struct sup *s, const char *id);
struct ch *sup_find_pid(struct sup *s, pid_t pid);
struct sup *sup_find_pool(struct sup *root, const char *id);
bool sup_tree_settled(struct sup *root, const char *id);
struct ch *sup_pool_grow(struct sup *s);

/* sup_machine.c: the queue. */
void sup_push_op(struct sup *s, enum op_kind kind, struct ch *c);
void sup_drop_queued(struct sup *s, struct ch *c);
void sup_pump(struct sup *s);
int64_t sup_backoff_due(const struct sup *s);
void sup_fail(struct sup *s, int code);

/* sup_machine.c: a child's life. */
void sup_child_stop(struct ch *c);
void sup_child_kill(struct ch *c, const char *reason);
void sup_child_down(struct ch *c, const char *how, bool normal, bool permanent);

/* sup_deadline.c: the root's hooks into the loop. 0 or -errno. */
int sup_deadline_attach(struct sup *root);
void sup_deadline_detach(struct sup *root);

#endif
