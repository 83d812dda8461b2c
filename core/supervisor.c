/*
 * Supervision trees (see supervisor.h).
 *
 * Each supervisor works through a queue of operations, one at a time:
 * START a child (done when it reports ready) and STOP a child (done when it
 * has exited). Strategies are plans written into that queue: one_for_all
 * queues a STOP of every running sibling in reverse order and a START of
 * every child in order. Operations that find nothing to do (START of a
 * running child, STOP of a stopped one) complete at once, so a plan can be
 * written again over a half-finished one.
 *
 * Events arrive from the loop: SIGCHLD (reap every child), a child's status
 * pipe (ready, alive, busy, idle, recycle), and a tick every TICK_MS that
 * enforces deadlines: start timeouts, heartbeats, shutdown timeouts,
 * restart backoff and RSS limits.
 */
#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "log.h"
#include "loop.h"
#include "proc.h"

#define TICK_MS 20
#define RSS_EVERY_MS 1000
#define ID_MAX 64

enum ch_state {
	CH_IDLE, /* not running (never started, stopped, or crashed) */
	CH_STARTING, /* forked, waiting for "ready" */
	CH_RUNNING,
	CH_STOPPING, /* asked to stop, waiting for it to exit */
};

struct ch {
	struct sup *parent;
	const struct sup_child_spec *spec;
	char id[ID_MAX];
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
	struct loop_timer *tick;
	int64_t last_rss_check;
	sup_ready_fn *on_ready;
	sup_exit_fn *on_exit;
	void *arg;
	sup_foreign_fn *on_foreign;
	void *foreign_arg;
	unsigned generation;
	bool freed_later; /* on_exit called; loop must not touch it again */
};

static const char *const strategy_names[] = {
        "one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"};
static const char *const state_names[] = {"idle", "starting", "running",
                                          "stopping"};
static const char *const sup_state_names[] = {"starting", "running", "stopping",
                                              "down"};

static void pump(struct sup *s);
static void child_down(struct ch *c, const char *how, bool normal,
                       bool permanent);
static struct sup *sup_new(struct loop *loop, const struct sup_spec *spec,
                           struct sup *parent, struct ch *self);
static void sup_destroy(struct sup *s);
static void sup_fail(struct sup *s, int code);

static struct sup *root_of(struct sup *s)
{
	while (s->parent)
		s = s->parent;
	return s;
}

/* ---- the operation queue ---- */

static void push_op(struct sup *s, enum op_kind kind, struct ch *c)
{
	struct op *ops = realloc(s->ops, (s->nops + 1) * sizeof(*ops));

	if (!ops) {
		log_error("supervisor",
		          "out of memory queueing for %s; stopping", c->id);
		sup_fail(root_of(s), 1);
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
static void drop_queued(struct sup *s, struct ch *c)
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
	drop_queued(s, NULL);
}

/* The operation under way is kind on c: it is done. */
static void op_done(struct sup *s, enum op_kind kind, struct ch *c)
{
	if (s->busy && s->ops[0].ch == c && s->ops[0].kind == kind) {
		pop_op(s);
		pump(s);
	}
}

/* ---- children ---- */

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
	c->deadline = c->spec->heartbeat_ms ? now + c->spec->heartbeat_ms : 0;
	log_info("supervisor", "child ready id=%s pid=%d after=%lldms", c->id,
	         (int)c->pid, (long long)(now - c->started));
	op_done(c->parent, OP_START, c);
}

/* Starts c now. On failure c is down (and handled as a crash). */
static void child_start(struct ch *c)
{
	struct sup *s = c->parent;
	pid_t pid;

	c->started = now_ms();
	c->generation = root_of(s)->generation;
	c->kill_reason = NULL;
	c->recycling = false;
	c->linelen = 0;
	if (c->spec->type == SUP_SUPERVISOR) {
		c->state = CH_STARTING;
		c->sub = sup_new(s->loop, c->spec->sup, s, c);
		if (!c->sub) {
			child_down(c, "cannot start: out of memory", false,
			           false);
			return;
		}
		log_info("supervisor", "supervisor starting id=%s strategy=%s",
		         c->id, strategy_names[c->spec->sup->strategy]);
		pump(c->sub);
		return;
	}
	pid = proc_spawn(child_main, c, &c->sfd);
	if (pid < 0) {
		char how[96];
		snprintf(how, sizeof(how), "cannot fork: %s", strerror(-pid));
		c->sfd = -1;
		child_down(c, how, false, false);
		return;
	}
	c->pid = pid;
	c->state = CH_STARTING;
	if (loop_add_fd(s->loop, c->sfd, POLLIN, on_status, c) < 0) {
		close(c->sfd);
		c->sfd = -1;
	}
	log_info("supervisor", "child started id=%s pid=%d", c->id, (int)pid);
	if (!c->spec->start_timeout_ms)
		child_ready(c);
}

/* Asks c to stop (SIGTERM, or SIGKILL for brutal_kill). */
static void child_stop(struct ch *c)
{
	if (c->spec->type == SUP_SUPERVISOR) {
		c->state = CH_STOPPING;
		log_info("supervisor", "supervisor stopping id=%s", c->id);
		c->sub->state = SUP_STOPPING;
		drop_all(c->sub);
		for (size_t i = c->sub->nch; i-- > 0;)
			push_op(c->sub, OP_STOP, c->sub->ch[i]);
		pump(c->sub);
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
static void child_kill(struct ch *c, const char *reason)
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
		c->backoff = spec->backoff_min_ms;
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
	case SUP_SIMPLE_ONE_FOR_ONE: push_op(s, OP_START, c); break;
	case SUP_ONE_FOR_ALL:
	case SUP_REST_FOR_ONE:
		if (s->spec->strategy == SUP_REST_FOR_ONE)
			while (at < s->nch && s->ch[at] != c)
				at++;
		for (size_t i = at; i < s->nch; i++)
			drop_queued(s, s->ch[i]);
		for (size_t i = s->nch; i-- > at;) {
			if (s->ch[i] == c)
				continue;
			/* OTP: a temporary sibling stopped by the strategy is
			 * not restarted, and leaves the supervisor */
			if (s->ch[i]->spec->restart == SUP_TEMPORARY)
				s->ch[i]->removing = true;
			push_op(s, OP_STOP, s->ch[i]);
		}
		for (size_t i = at; i < s->nch; i++)
			if (!s->ch[i]->removing)
				push_op(s, OP_START, s->ch[i]);
		break;
	}
}

static void remove_child(struct sup *s, struct ch *c)
{
	size_t i;

	drop_queued(s, c);
	for (i = 0; i < s->nch && s->ch[i] != c; i++)
		;
	if (i == s->nch)
		return;
	memmove(s->ch + i, s->ch + i + 1, (s->nch - i - 1) * sizeof(*s->ch));
	s->nch--;
	free(c);
}

/*
 * c is no longer running: how says why ("exit 1", "signal SIGKILL"),
 * normal is a clean exit (0), permanent an exit with EXIT_PERMANENT.
 */
static void child_down(struct ch *c, const char *how, bool normal,
                       bool permanent)
{
	struct sup *s = c->parent;
	enum ch_state was = c->state;
	bool restart;

	close_status(c);
	c->state = CH_IDLE;
	c->pid = 0;
	c->deadline = c->stop_deadline = c->busy_until = 0;
	if (c->kill_reason)
		snprintf(c->last_exit, sizeof(c->last_exit), "%s (%s)", how,
		         c->kill_reason);
	else
		snprintf(c->last_exit, sizeof(c->last_exit), "%s", how);

	if (c->recycling && s->state != SUP_STOPPING && !c->removing) {
		log_info("supervisor", "child recycled id=%s status=\"%s\"",
		         c->id, c->last_exit);
		c->recycling = false;
		if (was == CH_STOPPING)
			op_done(s, OP_STOP, c);
		c->not_before = 0;
		push_op(s, OP_START, c);
		pump(s);
		return;
	}
	if (was == CH_STOPPING) {
		log_info("supervisor", "child stopped id=%s status=\"%s\"",
		         c->id, c->last_exit);
		if (c->removing) {
			bool under_way = s->busy && s->ops[0].ch == c;
			if (under_way)
				pop_op(s);
			remove_child(s, c);
			pump(s);
			return;
		}
		op_done(s, OP_STOP, c);
		return;
	}
	if (was == CH_STARTING)
		/* a failed start: the START under way is over */
		if (s->busy && s->ops[0].ch == c && s->ops[0].kind == OP_START)
			pop_op(s);
	if (s->state == SUP_STOPPING) {
		pump(s);
		return;
	}
	restart = c->spec->restart == SUP_PERMANENT ||
	          (c->spec->restart == SUP_TRANSIENT && !normal);
	if (permanent) {
		log_error(
		        "supervisor",
		        "child failed permanently id=%s status=\"%s\"; not restarting it",
		        c->id, c->last_exit);
		if (c->spec->restart != SUP_TEMPORARY) {
			sup_fail(s, EXIT_PERMANENT);
			return;
		}
		restart = false;
	}
	log_warn("supervisor", "child exited id=%s status=\"%s\" restart=%s",
	         c->id, c->last_exit, restart ? "yes" : "no");
	if (!restart) {
		if (s->spec->strategy == SUP_SIMPLE_ONE_FOR_ONE)
			remove_child(s, c);
		pump(s);
		return;
	}
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
	pump(s);
}

/* ---- supervisors ---- */

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
	char id[ID_MAX];

	snprintf(id, sizeof(id), "%s.%zu", s->spec->children[0].id, n);
	return ch_new(s, &s->spec->children[0], id);
}

static struct sup *sup_new(struct loop *loop, const struct sup_spec *spec,
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
		push_op(s, OP_START, s->ch[i]);
	if (!ok) {
		sup_destroy(s);
		return NULL;
	}
	return s;
}

static void sup_destroy(struct sup *s)
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
static void sup_fail(struct sup *s, int code)
{
	if (s->state == SUP_STOPPING || s->state == SUP_DOWN)
		return;
	s->state = SUP_STOPPING;
	s->exit_code = code;
	drop_all(s);
	for (size_t i = s->nch; i-- > 0;)
		push_op(s, OP_STOP, s->ch[i]);
	pump(s);
}

/* s has stopped all its children: tell its parent (or the caller). */
static void sup_went_down(struct sup *s)
{
	struct ch *self = s->self;
	char how[32];
	int code;

	s->state = SUP_DOWN;
	if (!s->parent) {
		if (s->tick)
			loop_timer_cancel(s->loop, s->tick);
		s->tick = NULL;
		s->freed_later = true;
		if (s->on_exit)
			s->on_exit(s, s->exit_code, s->arg);
		return;
	}
	self->sub = NULL;
	code = s->exit_code;
	snprintf(how, sizeof(how), code ? "failed (exit %d)" : "stopped", code);
	sup_destroy(s);
	child_down(self, how, code == 0, code == EXIT_PERMANENT);
}

/* Runs queued operations until one has to wait. */
static void pump(struct sup *s)
{
	while (!s->busy && s->nops > 0) {
		struct op op = s->ops[0];
		struct ch *c = op.ch;

		if (op.kind == OP_START) {
			if (s->state == SUP_STOPPING || c->state != CH_IDLE ||
			    c->removing) {
				pop_op(s);
				continue;
			}
			if (now_ms() < c->not_before)
				return; /* the tick pumps again */
			s->busy = true;
			child_start(c);
			return; /* child_ready or child_down pops it */
		}
		if (c->state == CH_IDLE) {
			pop_op(s);
			if (c->removing)
				remove_child(s, c);
			continue;
		}
		s->busy = true;
		if (c->state != CH_STOPPING)
			child_stop(c);
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

/* ---- events from the loop ---- */

static struct ch *find_pid(struct sup *s, pid_t pid)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		if (c->pid == pid && c->spec->type == SUP_WORKER)
			return c;
		if (c->sub) {
			struct ch *found = find_pid(c->sub, pid);
			if (found)
				return found;
		}
	}
	return NULL;
}

static void on_sigchld(struct loop *loop, int sig, void *arg)
{
	struct sup *root = arg;
	int status;
	pid_t pid;

	(void)loop;
	(void)sig;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct ch *c = find_pid(root, pid);
		char how[64];

		if (!c) {
			/* not in the tree (e.g. a reload's check) */
			if (root->on_foreign)
				root->on_foreign(pid, status,
				                 root->foreign_arg);
			continue;
		}
		proc_describe_status(status, how, sizeof(how));
		child_down(c, how,
		           WIFEXITED(status) && WEXITSTATUS(status) == 0,
		           WIFEXITED(status) &&
		                   WEXITSTATUS(status) == EXIT_PERMANENT);
		if (root->freed_later)
			return;
	}
}

static void check_deadlines(struct sup *s, int64_t now, bool rss)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];

		if (c->sub) {
			check_deadlines(c->sub, now, rss);
			continue;
		}
		if (!c->pid || c->kill_reason)
			continue;
		if (c->state == CH_STARTING && c->spec->start_timeout_ms &&
		    now - c->started > c->spec->start_timeout_ms)
			child_kill(c, "start timeout");
		else if (c->state == CH_RUNNING && c->deadline &&
		         now > c->deadline)
			child_kill(c, "heartbeat missed");
		else if (c->state == CH_STOPPING && c->stop_deadline &&
		         now > c->stop_deadline)
			child_kill(c, "shutdown timeout");
		/* a child asked to stop (recycled over max_rss, rolled)
		 * while busy finishes its work, but within its deadline */
		else if (c->state == CH_STOPPING && c->busy_until &&
		         now > c->busy_until)
			child_kill(c, "busy past its deadline while stopping");
		else if (rss && c->state == CH_RUNNING && c->spec->max_rss &&
		         !c->recycling) {
			int64_t bytes = proc_rss(c->pid);
			if (bytes > c->spec->max_rss) {
				log_info(
				        "supervisor",
				        "recycling child id=%s pid=%d rss=%lld max_rss=%lld",
				        c->id, (int)c->pid, (long long)bytes,
				        (long long)c->spec->max_rss);
				c->recycling = true;
				child_stop(c);
			}
		}
	}
}

/* Pumps supervisors whose queue waits for a backoff to pass. */
static void pump_all(struct sup *s)
{
	for (size_t i = 0; i < s->nch; i++)
		if (s->ch[i]->sub)
			pump_all(s->ch[i]->sub);
	pump(s);
}

static void on_tick(struct loop *loop, void *arg)
{
	struct sup *root = arg;
	int64_t now = now_ms();
	bool rss = now - root->last_rss_check >= RSS_EVERY_MS;

	root->tick = NULL;
	if (rss)
		root->last_rss_check = now;
	check_deadlines(root, now, rss);
	pump_all(root);
	if (!root->freed_later)
		root->tick = loop_timer_add(loop, TICK_MS, on_tick, root);
}

/* ---- the API ---- */

struct sup *sup_start(struct loop *loop, const struct sup_spec *spec,
                      sup_ready_fn *on_ready, sup_exit_fn *on_exit, void *arg)
{
	struct sup *root;
	int ret;

	root = sup_new(loop, spec, NULL, NULL);
	if (!root)
		return NULL;
	ret = loop_on_signal(loop, SIGCHLD, on_sigchld, root);
	if (ret) {
		sup_destroy(root);
		errno = -ret;
		return NULL;
	}
	root->on_ready = on_ready;
	root->on_exit = on_exit;
	root->generation = 1; /* sup_set_generation moves it on */
	root->arg = arg;
	root->tick = loop_timer_add(loop, TICK_MS, on_tick, root);
	log_info("supervisor", "starting id=%s strategy=%s children=%zu",
	         spec->id, strategy_names[spec->strategy], root->nch);
	pump(root);
	return root;
}

void sup_free(struct sup *root)
{
	if (!root)
		return;
	if (root->tick)
		loop_timer_cancel(root->loop, root->tick);
	loop_on_signal(root->loop, SIGCHLD, NULL, NULL);
	sup_destroy(root);
}

void sup_shutdown(struct sup *root)
{
	log_info("supervisor", "shutting down id=%s", root->spec->id);
	sup_fail(root, 0); /* keeps the code of a failure under way */
}

static struct ch *find_id(struct sup *s, const char *id)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		if (strcmp(c->id, id) == 0)
			return c;
		if (c->sub) {
			struct ch *found = find_id(c->sub, id);
			if (found)
				return found;
		}
	}
	return NULL;
}

int sup_restart_child(struct sup *root, const char *id)
{
	struct ch *c = find_id(root, id);
	struct sup *s;

	if (!c)
		return -ENOENT;
	s = c->parent;
	if (s->state != SUP_RUNNING && s->state != SUP_STARTING)
		return -EBUSY;
	log_info("supervisor", "restart requested id=%s", id);
	drop_queued(s, c);
	push_op(s, OP_STOP, c);
	push_op(s, OP_START, c);
	c->not_before = 0;
	pump(s);
	return 0;
}

void sup_on_foreign_exit(struct sup *root, sup_foreign_fn *fn, void *arg)
{
	root->on_foreign = fn;
	root->foreign_arg = arg;
}

/* The simple_one_for_one supervisor called id (the root or a nested one). */
static struct sup *find_pool(struct sup *root, const char *id)
{
	struct ch *c = find_id(root, id);
	struct sup *s = c ? c->sub : NULL;

	if (!root->self && strcmp(root->spec->id, id) == 0)
		s = root;
	return s;
}

/* Adds the lowest-numbered member whose id is free. */
static struct ch *pool_grow(struct sup *s)
{
	for (size_t k = 1; k <= s->nch + 1; k++) {
		char want[ID_MAX];
		snprintf(want, sizeof(want), "%s.%zu", s->spec->children[0].id,
		         k);
		if (!find_id(s, want))
			return pool_add(s, k);
	}
	return NULL;
}

bool sup_settled(struct sup *root, const char *id)
{
	struct sup *s = find_pool(root, id);

	if (!s) {
		struct ch *c = find_id(root, id);
		s = c ? c->sub : NULL;
	}
	return !s || (!s->busy && s->nops == 0);
}

int sup_roll(struct sup *root, const char *id)
{
	struct sup *s = find_pool(root, id);
	size_t n;
	struct ch **old;

	if (!s)
		return -ENOENT;
	if (s->spec->strategy != SUP_SIMPLE_ONE_FOR_ONE)
		return -EINVAL;
	n = s->nch;
	old = malloc((n ? n : 1) * sizeof(*old));
	if (!old)
		return -ENOMEM;
	memcpy(old, s->ch, n * sizeof(*old));
	log_info("supervisor", "rolling id=%s members=%zu", id, n);
	for (size_t i = 0; i < n; i++) {
		struct ch *fresh;

		if (old[i]->removing)
			continue;
		fresh = pool_grow(s);
		if (!fresh) {
			free(old);
			return -ENOMEM;
		}
		old[i]->removing = true;
		push_op(s, OP_START, fresh);
		push_op(s, OP_STOP, old[i]);
	}
	free(old);
	pump(s);
	return 0;
}

int sup_resize(struct sup *root, const char *id, size_t count)
{
	struct sup *s = find_pool(root, id);
	size_t live = 0;

	if (!s)
		return -ENOENT;
	if (s->spec->strategy != SUP_SIMPLE_ONE_FOR_ONE)
		return -EINVAL;
	for (size_t i = 0; i < s->nch; i++)
		live += !s->ch[i]->removing;
	log_info("supervisor", "resizing id=%s from=%zu to=%zu", id, live,
	         count);
	for (; live < count; live++) {
		struct ch *added = pool_grow(s);
		if (!added)
			return -ENOMEM;
		push_op(s, OP_START, added);
	}
	for (size_t i = s->nch; i-- > 0 && live > count;) {
		if (s->ch[i]->removing)
			continue;
		s->ch[i]->removing = true;
		push_op(s, OP_STOP, s->ch[i]);
		live--;
	}
	pump(s);
	return 0;
}

static json_t *status_of(struct sup *s, const char *id)
{
	json_t *children = json_array();
	int64_t now = now_ms();

	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		json_t *j;

		if (c->sub) {
			j = status_of(c->sub, c->id);
		} else {
			j = json_pack(
			        "{s:s, s:s, s:s, s:I, s:i}", "id", c->id,
			        "type",
			        c->spec->type == SUP_SUPERVISOR ? "supervisor"
			                                        : "worker",
			        "state", state_names[c->state], "restarts",
			        (json_int_t)c->restarts, "pid", (int)c->pid);
			if (c->pid)
				json_object_set_new(
				        j, "uptime_ms",
				        json_integer(now - c->started));
			if (c->pid && c->generation)
				json_object_set_new(
				        j, "generation",
				        json_integer(c->generation));
		}
		json_object_set_new(j, "last_exit",
		                    c->last_exit[0] ? json_string(c->last_exit)
		                                    : json_null());
		json_object_set_new(j, "restarts",
		                    json_integer((json_int_t)c->restarts));
		json_array_append_new(children, j);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "id", id,
	                 "type", "supervisor", "strategy",
	                 strategy_names[s->spec->strategy], "state",
	                 sup_state_names[s->state], "intensity",
	                 (json_int_t)s->spec->intensity, "period_ms",
	                 (json_int_t)s->spec->period_ms, "children", children);
}

json_t *sup_status(struct sup *root)
{
	return status_of(root, root->spec->id);
}

static void count_tree(struct sup *s, unsigned *running, unsigned *total,
                       unsigned *restarts)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		*restarts += c->restarts;
		if (c->sub) {
			count_tree(c->sub, running, total, restarts);
			continue;
		}
		(*total)++;
		*running += c->state == CH_RUNNING;
	}
}

void sup_summary(struct sup *root, char *buf, size_t len)
{
	unsigned running = 0, total = 0, restarts = 0;

	count_tree(root, &running, &total, &restarts);
	snprintf(buf, len, "%u of %u children running, %u restarts", running,
	         total, restarts);
}

unsigned sup_restarts(struct sup *root)
{
	unsigned running = 0, total = 0, restarts = 0;

	count_tree(root, &running, &total, &restarts);
	return restarts;
}

void sup_set_generation(struct sup *root, unsigned generation)
{
	root->generation = generation;
}
