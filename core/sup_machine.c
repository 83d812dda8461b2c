/*
 * What a supervisor does (see sup_tree.h): its queue of operations and the
 * life of each child.
 *
 * Each supervisor works through a queue of operations, one at a time:
 * START a child (done when it reports ready) and STOP a child (done when it
 * has exited). Strategies are plans written into that queue: one_for_all
 * queues a STOP of every running sibling in reverse order and a START of
 * every child in order. Operations that find nothing to do (START of a
 * running child, STOP of a stopped one) complete at once, so a plan can be
 * written again over a half-finished one.
 *
 * A child is idle, starting (forked, waiting for "ready"), running or
 * stopping. What happens when it goes down is one table, down_table: what
 * the child was doing by how it ended (docs/supervision.md shows it).
 */
#include "base.h"
#include "sup_tree.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "spawn.h"

const char *const sup_strategy_names[] = {"one_for_one", "one_for_all",
                                          "rest_for_one", "simple_one_for_one"};

struct sup *sup_root_of(struct sup *s)
{
	while (s->parent)
		s = s->parent;
	return s;
}

/* ---- the operation queue ---- */

void sup_push_op(struct sup *s, enum op_kind kind, struct ch *c)
{
	struct op *ops = realloc(s->ops, (s->nops + 1) * sizeof(*ops));

	if (!ops) {
		log_error("supervisor",
		          "out of memory queueing for %s; stopping", c->id);
		sup_fail(sup_root_of(s), 1);
		return;
	}
	s->ops = ops;
	s->ops[s->nops++] = (struct op){kind, c};
}

static void pop_op(struct sup *s)
{
	memmove(s->ops, s->ops + 1, (s->nops - 1) * sizeof(*s->ops));
	s->nops--;
	s->busy = false;
}

/* Drops queued (not under way) operations on c, or on every child. */
void sup_drop_queued(struct sup *s, struct ch *c)
{
	size_t j = s->busy ? 1 : 0;

	for (size_t i = j; i < s->nops; i++)
		if (c && s->ops[i].ch != c)
			s->ops[j++] = s->ops[i];
	s->nops = j;
}

/*
 * Drops every queued operation, and a START under way too (its child is
 * then stopped like the others); a STOP under way must finish.
 */
static void drop_all(struct sup *s)
{
	if (s->busy && s->ops[0].kind == OP_START)
		s->busy = false;
	sup_drop_queued(s, NULL);
}

/* The operation under way is kind on c: it is done. */
static void op_done(struct sup *s, enum op_kind kind, struct ch *c)
{
	if (s->busy && s->ops[0].ch == c && s->ops[0].kind == kind) {
		pop_op(s);
		sup_pump(s);
	}
}

/* ---- a child's life: start, status lines, stop ---- */

static int child_main(void *arg)
{
	struct ch *c = arg;

	return c->spec->start(c->spec->arg, c->id);
}

static void on_status(struct loop *loop, int fd, short revents, void *arg);

static void close_status(struct ch *c)
{
	if (c->sfd < 0)
		return;
	on_status(c->parent->loop, c->sfd, POLLIN, c); /* last words */
	if (c->sfd < 0)
		return;
	loop_del_fd(c->parent->loop, c->sfd);
	close(c->sfd);
	c->sfd = -1;
}

static void child_ready(struct ch *c)
{
	int64_t now = now_ms();

	c->state = CH_RUNNING;
	c->replacing = false;
	c->deadline = c->spec->heartbeat_ms ? now + c->spec->heartbeat_ms : 0;
	log_info("supervisor", "child ready id=%s pid=%d after=%lldms", c->id,
	         (int)c->pid, (long long)(now - c->started));
	op_done(c->parent, OP_START, c);
}

/* Starts c now. On failure c is down (and handled as a failed start). */
static void child_start(struct ch *c)
{
	struct sup *s = c->parent;
	pid_t pid;

	c->started = now_ms();
	c->generation = sup_root_of(s)->generation;
	c->kill_reason = NULL;
	c->recycling = false;
	c->linelen = 0;
	c->state = CH_STARTING;
	if (c->spec->type == SUP_SUPERVISOR) {
		c->sub = sup_new(s->loop, c->spec->sup, s, c);
		if (!c->sub) {
			sup_child_down(c, "cannot start: out of memory", false,
			               false);
			return;
		}
		log_info("supervisor", "supervisor starting id=%s strategy=%s",
		         c->id, sup_strategy_names[c->spec->sup->strategy]);
		sup_pump(c->sub);
		return;
	}
	pid = proc_spawn(child_main, c, &c->sfd);
	if (pid < 0) {
		char how[96];
		snprintf(how, sizeof(how), "cannot fork: %s", strerror(-pid));
		c->sfd = -1;
		sup_child_down(c, how, false, false);
		return;
	}
	c->pid = pid;
	if (loop_add_fd(s->loop, c->sfd, POLLIN, on_status, c) < 0) {
		close(c->sfd);
		c->sfd = -1;
	}
	log_info("supervisor", "child started id=%s pid=%d", c->id, (int)pid);
	if (!c->spec->start_timeout_ms)
		child_ready(c);
}

/* Asks c to stop (SIGTERM, or SIGKILL for brutal_kill). */
void sup_child_stop(struct ch *c)
{
	if (c->spec->type == SUP_SUPERVISOR) {
		c->state = CH_STOPPING;
		log_info("supervisor", "supervisor stopping id=%s", c->id);
		c->sub->state = SUP_STOPPING;
		drop_all(c->sub);
		for (size_t i = c->sub->nch; i-- > 0;)
			sup_push_op(c->sub, OP_STOP, c->sub->ch[i]);
		sup_pump(c->sub);
		return;
	}
	c->state = CH_STOPPING;
	if (c->spec->shutdown_ms <= 0) {
		c->stop_deadline = 0;
		kill(c->pid, SIGKILL);
	} else {
		c->stop_deadline = now_ms() + c->spec->shutdown_ms;
		kill(c->pid, SIGTERM);
	}
}

/* Kills c at once, remembering why (for its last_exit). */
void sup_child_kill(struct ch *c, const char *reason)
{
	log_warn("supervisor", "killing child id=%s pid=%d reason=\"%s\"",
	         c->id, (int)c->pid, reason);
	c->kill_reason = reason;
	kill(c->pid, SIGKILL);
}

static void on_line(struct ch *c, const char *line)
{
	int64_t now = now_ms();

	if (strcmp(line, "ready") == 0) {
		if (c->state == CH_STARTING)
			child_ready(c);
	} else if (strcmp(line, "alive") == 0 || strcmp(line, "idle") == 0) {
		c->busy_until = 0;
		if (c->spec->heartbeat_ms && c->state == CH_RUNNING)
			c->deadline = now + c->spec->heartbeat_ms;
	} else if (strncmp(line, "busy ", 5) == 0) {
		char *end;
		long long ms = strtoll(line + 5, &end, 10);
		if (*end == '\0' && ms > 0 && c->state == CH_RUNNING)
			c->deadline = c->busy_until = now + ms;
		else if (*end == '\0' && ms > 0 && c->state == CH_STOPPING)
			c->busy_until = now + ms;
	} else if (strcmp(line, "recycle") == 0) {
		c->recycling = true;
	} else {
		log_warn(
		        "supervisor",
		        "child id=%s pid=%d sent an unknown status line \"%.40s\"",
		        c->id, (int)c->pid, line);
	}
}

static void on_status(struct loop *loop, int fd, short revents, void *arg)
{
	struct ch *c = arg;
	char buf[512];
	ssize_t n;

	(void)revents;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (c->linelen < sizeof(c->line) - 1)
					c->line[c->linelen++] = buf[i];
				continue;
			}
			c->line[c->linelen] = '\0';
			c->linelen = 0;
			on_line(c, c->line);
		}
	}
	if (n == 0) { /* the child closed it (or exited) */
		loop_del_fd(loop, fd);
		close(fd);
		c->sfd = -1;
	}
}

/* ---- restarts: intensity, backoff, strategies ---- */

/* Restart bookkeeping: true if s may restart once more. */
static bool count_restart(struct sup *s)
{
	int64_t now = now_ms();
	size_t j = 0;
	int64_t *at;

	for (size_t i = 0; i < s->nrestart; i++)
		if (now - s->restart_at[i] < s->spec->period_ms)
			s->restart_at[j++] = s->restart_at[i];
	s->nrestart = j;
	at = realloc(s->restart_at, (s->nrestart + 1) * sizeof(*at));
	if (!at)
		return false;
	s->restart_at = at;
	s->restart_at[s->nrestart++] = now;
	return (int64_t)s->nrestart <= s->spec->intensity;
}

/* Capped exponential backoff for a child that keeps crashing. */
static void set_backoff(struct ch *c)
{
	const struct sup_spec *spec = c->parent->spec;
	int64_t now = now_ms();
	bool quick = c->last_restart && now - c->last_restart < spec->period_ms;

	if (!spec->backoff_min_ms || !quick)
		c->backoff = 0;
	else if (!c->backoff)
		c->backoff = spec->backoff_min_ms < spec->backoff_max_ms
		                     ? spec->backoff_min_ms
		                     : spec->backoff_max_ms;
	else if (c->backoff < spec->backoff_max_ms)
		c->backoff = c->backoff * 2 > spec->backoff_max_ms
		                     ? spec->backoff_max_ms
		                     : c->backoff * 2;
	c->not_before = now + c->backoff;
	c->last_restart = now;
	if (c->backoff)
		log_info("supervisor", "restart delayed id=%s backoff=%lldms",
		         c->id, (long long)c->backoff);
}

/* Applies the strategy after c went down and must be restarted. */
static void plan_restart(struct sup *s, struct ch *c)
{
	size_t at = 0;

	set_backoff(c);
	switch (s->spec->strategy) {
	case SUP_ONE_FOR_ONE:
	case SUP_SIMPLE_ONE_FOR_ONE: sup_push_op(s, OP_START, c); break;
	case SUP_ONE_FOR_ALL:
	case SUP_REST_FOR_ONE:
		if (s->spec->strategy == SUP_REST_FOR_ONE)
			while (at < s->nch && s->ch[at] != c)
				at++;
		for (size_t i = at; i < s->nch; i++)
			sup_drop_queued(s, s->ch[i]);
		for (size_t i = s->nch; i-- > at;) {
			if (s->ch[i] == c)
				continue;
			/* OTP: a temporary sibling stopped by the strategy is
			 * not restarted, and leaves the supervisor */
			if (s->ch[i]->spec->restart == SUP_TEMPORARY)
				s->ch[i]->removing = true;
			sup_push_op(s, OP_STOP, s->ch[i]);
		}
		for (size_t i = at; i < s->nch; i++)
			if (!s->ch[i]->removing)
				sup_push_op(s, OP_START, s->ch[i]);
		break;
	}
}

static void remove_child(struct sup *s, struct ch *c)
{
	size_t i;

	sup_drop_queued(s, c);
	for (i = 0; i < s->nch && s->ch[i] != c; i++)
		;
	if (i == s->nch)
		return;
	memmove(s->ch + i, s->ch + i + 1, (s->nch - i - 1) * sizeof(*s->ch));
	s->nch--;
	free(c);
}

/* ---- a child went down: the state-by-event table ---- */

/* What the child was doing when it went down (starting or running: "up"). */
enum down_row {
	ROW_STOPPING, /* asked to stop by its supervisor */
	ROW_REMOVING, /* asked to stop, to leave its pool (shrink, roll) */
	ROW_SHUTDOWN, /* up while its supervisor is going down */
	ROW_PERMANENT, /* up, restart type permanent */
	ROW_TRANSIENT, /* up, restart type transient */
	ROW_TEMPORARY, /* up, restart type temporary */
	ROWS
};

/* How it ended. */
enum down_event {
	EV_RECYCLED, /* said "recycle" or passed max_rss, and is wanted back */
	EV_EXIT_0, /* a normal exit */
	EV_CRASHED, /* any other exit, a signal, a failed or timed-out start */
	EV_EXIT_100, /* EXIT_PERMANENT: do not restart me */
	EVENTS
};

enum down_action {
	DO_REPLACE, /* start it again at once: no restart counted, no backoff */
	DO_STOPPED, /* the STOP under way is done */
	DO_REMOVE, /* the STOP under way is done; the child leaves */
	DO_NOTHING, /* its supervisor goes on stopping the others */
	DO_RESTART, /* count it against intensity, back off, apply the strategy */
	DO_LEAVE, /* stays down (a simple_one_for_one member leaves) */
	DO_ESCALATE, /* its supervisor stops every child and fails with 100 */
};

/*
 * Rows: what the child was doing; columns: recycled, exit 0, crashed,
 * exit 100. An exit counts as recycled only when the child is wanted back
 * (down_event), so that column is the same in every row.
 */
static const enum down_action down_table[ROWS][EVENTS] = {
        [ROW_STOPPING] = {DO_REPLACE, DO_STOPPED, DO_STOPPED, DO_STOPPED},
        [ROW_REMOVING] = {DO_REPLACE, DO_REMOVE, DO_REMOVE, DO_REMOVE},
        [ROW_SHUTDOWN] = {DO_REPLACE, DO_NOTHING, DO_NOTHING, DO_NOTHING},
        [ROW_PERMANENT] = {DO_REPLACE, DO_RESTART, DO_RESTART, DO_ESCALATE},
        [ROW_TRANSIENT] = {DO_REPLACE, DO_LEAVE, DO_RESTART, DO_ESCALATE},
        [ROW_TEMPORARY] = {DO_REPLACE, DO_LEAVE, DO_LEAVE, DO_LEAVE},
};

static enum down_row down_row(const struct ch *c, enum ch_state was)
{
	if (was == CH_STOPPING)
		return c->removing ? ROW_REMOVING : ROW_STOPPING;
	if (c->parent->state == SUP_STOPPING)
		return ROW_SHUTDOWN;
	switch (c->spec->restart) {
	case SUP_PERMANENT: return ROW_PERMANENT;
	case SUP_TRANSIENT: return ROW_TRANSIENT;
	default: return ROW_TEMPORARY;
	}
}

static enum down_event down_event(const struct ch *c, bool normal,
                                  bool permanent)
{
	if (c->recycling && c->parent->state != SUP_STOPPING && !c->removing)
		return EV_RECYCLED;
	if (permanent)
		return EV_EXIT_100;
	return normal ? EV_EXIT_0 : EV_CRASHED;
}

static void do_restart(struct sup *s, struct ch *c)
{
	log_warn("supervisor", "child exited id=%s status=\"%s\" restart=yes",
	         c->id, c->last_exit);
	c->restarts++;
	if (!count_restart(s)) {
		log_error(
		        "supervisor",
		        "supervisor %s: more than %lld restarts within %lldms; giving up",
		        s->self ? s->self->id : s->spec->id,
		        (long long)s->spec->intensity,
		        (long long)s->spec->period_ms);
		sup_fail(s, 1);
		return;
	}
	plan_restart(s, c);
	sup_pump(s);
}

/*
 * c is no longer running: how says why ("exit 1", "signal SIGKILL"),
 * normal is a clean exit (0), permanent an exit with EXIT_PERMANENT.
 * What follows is down_table's cell for what c was doing and how it ended.
 */
void sup_child_down(struct ch *c, const char *how, bool normal, bool permanent)
{
	struct sup *s = c->parent;
	enum ch_state was = c->state;
	enum down_event ev;
	enum down_action action;

	close_status(c); /* its last words may say "recycle" */
	ev = down_event(c, normal, permanent);
	action = down_table[down_row(c, was)][ev];
	c->state = CH_IDLE;
	c->replacing = false;
	c->pid = 0;
	c->deadline = c->stop_deadline = c->busy_until = 0;
	if (c->kill_reason)
		snprintf(c->last_exit, sizeof(c->last_exit), "%s (%s)", how,
		         c->kill_reason);
	else
		snprintf(c->last_exit, sizeof(c->last_exit), "%s", how);
	/* a failed start: the START under way is over */
	if (was == CH_STARTING && s->busy && s->ops[0].ch == c &&
	    s->ops[0].kind == OP_START)
		pop_op(s);
	if (ev == EV_EXIT_100 && (action == DO_ESCALATE || action == DO_LEAVE))
		log_error(
		        "supervisor",
		        "child failed permanently id=%s status=\"%s\"; not restarting it",
		        c->id, c->last_exit);

	switch (action) {
	case DO_REPLACE:
		log_info("supervisor", "child recycled id=%s status=\"%s\"",
		         c->id, c->last_exit);
		c->recycling = false;
		c->replacing = true;
		if (was == CH_STOPPING)
			op_done(s, OP_STOP, c);
		c->not_before = 0;
		sup_push_op(s, OP_START, c);
		sup_pump(s);
		break;
	case DO_STOPPED:
		log_info("supervisor", "child stopped id=%s status=\"%s\"",
		         c->id, c->last_exit);
		op_done(s, OP_STOP, c);
		break;
	case DO_REMOVE:
		log_info("supervisor", "child stopped id=%s status=\"%s\"",
		         c->id, c->last_exit);
		if (s->busy && s->ops[0].ch == c)
			pop_op(s);
		remove_child(s, c);
		sup_pump(s);
		break;
	case DO_NOTHING: sup_pump(s); break;
	case DO_RESTART: do_restart(s, c); break;
	case DO_LEAVE:
		log_warn("supervisor",
		         "child exited id=%s status=\"%s\" restart=no", c->id,
		         c->last_exit);
		if (s->spec->strategy == SUP_SIMPLE_ONE_FOR_ONE)
			remove_child(s, c);
		sup_pump(s);
		break;
	case DO_ESCALATE: sup_fail(s, EXIT_PERMANENT); break;
	}
}

/* ---- supervisors: the tree, and the queue's pump ---- */

static struct ch *ch_new(struct sup *s, const struct sup_child_spec *spec,
                         const char *id)
{
	struct ch *c = calloc(1, sizeof(*c));
	struct ch **chs;

	if (!c)
		return NULL;
	chs = realloc(s->ch, (s->nch + 1) * sizeof(*chs));
	if (!chs) {
		free(c);
		return NULL;
	}
	s->ch = chs;
	c->parent = s;
	c->spec = spec;
	c->sfd = -1;
	snprintf(c->id, sizeof(c->id), "%s", id);
	s->ch[s->nch++] = c;
	return c;
}

/* Adds pool member number n (1-based) of a simple_one_for_one. */
static struct ch *pool_add(struct sup *s, size_t n)
{
	char id[SUP_ID_MAX];

	snprintf(id, sizeof(id), "%s.%zu", s->spec->children[0].id, n);
	return ch_new(s, &s->spec->children[0], id);
}

/* A supervisor with every child queued to START; NULL on ENOMEM. */
struct sup *sup_new(struct loop *loop, const struct sup_spec *spec,
                    struct sup *parent, struct ch *self)
{
	struct sup *s = calloc(1, sizeof(*s));
	bool ok = true;

	if (!s)
		return NULL;
	s->loop = loop;
	s->spec = spec;
	s->parent = parent;
	s->self = self;
	s->state = SUP_STARTING;
	if (spec->strategy == SUP_SIMPLE_ONE_FOR_ONE) {
		for (size_t i = 1; ok && i <= spec->count; i++)
			ok = pool_add(s, i) != NULL;
	} else {
		for (size_t i = 0; ok && i < spec->nchildren; i++)
			ok = ch_new(s, &spec->children[i],
			            spec->children[i].id) != NULL;
	}
	for (size_t i = 0; ok && i < s->nch; i++)
		sup_push_op(s, OP_START, s->ch[i]);
	if (!ok) {
		sup_destroy(s);
		return NULL;
	}
	return s;
}

/* Frees s and its nested supervisors (their processes are not touched). */
void sup_destroy(struct sup *s)
{
	for (size_t i = 0; i < s->nch; i++) {
		if (s->ch[i]->sub)
			sup_destroy(s->ch[i]->sub);
		if (s->ch[i]->sfd >= 0) {
			loop_del_fd(s->loop, s->ch[i]->sfd);
			close(s->ch[i]->sfd);
		}
		free(s->ch[i]);
	}
	free(s->ch);
	free(s->ops);
	free(s->restart_at);
	free(s);
}

/* Stops every child (reverse order), then goes down with code. */
void sup_fail(struct sup *s, int code)
{
	if (s->state == SUP_STOPPING || s->state == SUP_DOWN)
		return;
	s->state = SUP_STOPPING;
	s->exit_code = code;
	drop_all(s);
	for (size_t i = s->nch; i-- > 0;)
		sup_push_op(s, OP_STOP, s->ch[i]);
	sup_pump(s);
}

/* s has stopped all its children: tell its parent (or the caller). */
static void sup_went_down(struct sup *s)
{
	struct ch *self = s->self;
	char how[32];
	int code;

	s->state = SUP_DOWN;
	if (!s->parent) {
		s->freed_later = true;
		if (s->on_exit)
			s->on_exit(s, s->exit_code, s->arg);
		return;
	}
	self->sub = NULL;
	code = s->exit_code;
	snprintf(how, sizeof(how), code ? "failed (exit %d)" : "stopped", code);
	sup_destroy(s);
	sup_child_down(self, how, code == 0, code == EXIT_PERMANENT);
}

/* op is a START that must wait for its child's restart backoff. */
static bool backing_off(const struct sup *s, const struct op *op, int64_t now)
{
	return op->kind == OP_START && s->state != SUP_STOPPING &&
	       op->ch->state == CH_IDLE && !op->ch->removing &&
	       now < op->ch->not_before;
}

/*
 * In a pool (simple_one_for_one) the members are alike and independent:
 * a START waiting for its member's backoff does not hold back the others.
 * Brings the first operation that can run now to the head of the queue,
 * unless an operation it passes is on the same child (their order stays).
 */
static void pool_pass_backoffs(struct sup *s)
{
	int64_t now = now_ms();
	size_t i;

	if (s->spec->strategy != SUP_SIMPLE_ONE_FOR_ONE || s->busy ||
	    s->nops < 2 || !backing_off(s, &s->ops[0], now))
		return;
	for (i = 1; i < s->nops; i++) {
		struct op run = s->ops[i];
		bool same = false;

		if (backing_off(s, &run, now))
			continue;
		for (size_t k = 0; k < i; k++)
			same |= s->ops[k].ch == run.ch;
		if (same)
			continue;
		memmove(s->ops + 1, s->ops, i * sizeof(*s->ops));
		s->ops[0] = run;
		return;
	}
}

/*
 * When s's queue, idle now, can go on once a restart backoff has passed
 * (in a pool, the earliest of its members'), or INT64_MAX.
 */
int64_t sup_backoff_due(const struct sup *s)
{
	int64_t now = now_ms(), due = INT64_MAX;
	const struct op *head = s->nops ? &s->ops[0] : NULL;

	if (s->busy || !head)
		return INT64_MAX;
	if (head->kind == OP_START && s->state != SUP_STOPPING &&
	    head->ch->state == CH_IDLE && !head->ch->removing)
		due = head->ch->not_before;
	if (s->spec->strategy != SUP_SIMPLE_ONE_FOR_ONE)
		return due;
	for (size_t i = 1; i < s->nops; i++)
		if (backing_off(s, &s->ops[i], now) &&
		    s->ops[i].ch->not_before < due)
			due = s->ops[i].ch->not_before;
	return due;
}

/*
 * Runs queued operations until one has to wait: for a child's "ready" or
 * exit, or for a restart backoff (the deadlines pump again when it ends;
 * in a pool, only the member backing off waits).
 */
void sup_pump(struct sup *s)
{
	while (!s->busy && s->nops > 0) {
		struct op op;
		struct ch *c;

		pool_pass_backoffs(s);
		op = s->ops[0];
		c = op.ch;
		if (op.kind == OP_START) {
			if (s->state == SUP_STOPPING || c->state != CH_IDLE ||
			    c->removing) {
				pop_op(s);
				continue;
			}
			if (now_ms() < c->not_before)
				return; /* backing off: a deadline */
			s->busy = true;
			child_start(c);
			return; /* child_ready or sup_child_down pops it */
		}
		if (c->state == CH_IDLE) {
			pop_op(s);
			if (c->removing)
				remove_child(s, c);
			continue;
		}
		s->busy = true;
		if (c->state != CH_STOPPING)
			sup_child_stop(c);
		return;
	}
	if (s->nops > 0)
		return;
	if (s->state == SUP_STARTING) {
		s->state = SUP_RUNNING;
		if (s->self) {
			log_info("supervisor", "supervisor ready id=%s",
			         s->self->id);
			s->self->state =
			        CH_STARTING; /* child_ready expects it */
			child_ready(s->self);
		} else if (s->on_ready) {
			s->on_ready(s, s->arg);
		}
	} else if (s->state == SUP_STOPPING) {
		sup_went_down(s);
	}
}

/* ---- finding children ---- */

/* The worker with pid anywhere under s, or NULL. */
struct ch *sup_find_pid(struct sup *s, pid_t pid)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		if (c->pid == pid && c->spec->type == SUP_WORKER)
			return c;
		if (c->sub) {
			struct ch *found = sup_find_pid(c->sub, pid);
			if (found)
				return found;
		}
	}
	return NULL;
}

/* The child (worker or nested supervisor) with id under s, or NULL. */
struct ch *sup_find_id(struct sup *s, const char *id)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		if (strcmp(c->id, id) == 0)
			return c;
		if (c->sub) {
			struct ch *found = sup_find_id(c->sub, id);
			if (found)
				return found;
		}
	}
	return NULL;
}

/* The simple_one_for_one supervisor called id (the root or a nested one). */
struct sup *sup_find_pool(struct sup *root, const char *id)
{
	struct ch *c = sup_find_id(root, id);
	struct sup *s = c ? c->sub : NULL;

	if (!root->self && strcmp(root->spec->id, id) == 0)
		s = root;
	return s;
}

/* Adds the lowest-numbered member whose id is free; NULL on ENOMEM. */
struct ch *sup_pool_grow(struct sup *s)
{
	for (size_t k = 1; k <= s->nch + 1; k++) {
		char want[SUP_ID_MAX];
		snprintf(want, sizeof(want), "%s.%zu", s->spec->children[0].id,
		         k);
		if (!sup_find_id(s, want))
			return pool_add(s, k);
	}
	return NULL;
}

/* True when the supervisor id (or none by that id) has no operation. */
bool sup_tree_settled(struct sup *root, const char *id)
{
	struct sup *s = sup_find_pool(root, id);

	if (!s) {
		struct ch *c = sup_find_id(root, id);
		s = c ? c->sub : NULL;
	}
	return !s || (!s->busy && s->nops == 0);
}
