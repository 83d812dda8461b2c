/*
 * The supervisor's side of the loop (see sup_tree.h): children reaped on
 * SIGCHLD, and one timer armed for the earliest deadline of the tree.
 *
 * There is no tick. Before the loop sleeps, a prepare hook computes the
 * earliest of every child's deadlines (start timeout, heartbeat or busy
 * deadline, shutdown timeout, busy deadline while stopping, restart
 * backoff, and the next RSS check when a running child has max_rss) and
 * arms the timer for it; when it fires, the deadlines that are due act and
 * the queues that waited for a backoff pump. Any event that moves a
 * deadline (a status line, an exit, a control command) is followed by the
 * hook, so the loop never sleeps past one. An idle tree with no deadline
 * sleeps until a descriptor wakes it.
 */
#include "base.h"
#include "sup_tree.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "log.h"
#include "loop.h"
#include "spawn.h"

#define RSS_EVERY_MS 1000
#define NONE INT64_MAX

static void on_sigchld(struct loop *loop, int sig, void *arg)
{
	struct sup *root = arg;
	int status;
	pid_t pid;

	(void)loop;
	(void)sig;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct ch *c = sup_find_pid(root, pid);
		char how[64];

		if (!c) {
			/* not in the tree (e.g. a reload's check) */
			if (root->on_foreign)
				root->on_foreign(pid, status,
				                 root->foreign_arg);
			continue;
		}
		proc_describe_status(status, how, sizeof(how));
		sup_child_down(c, how,
		               WIFEXITED(status) && WEXITSTATUS(status) == 0,
		               WIFEXITED(status) &&
		                       WEXITSTATUS(status) == EXIT_PERMANENT);
		if (root->freed_later)
			return;
	}
}

/* A running child whose RSS is checked every RSS_EVERY_MS. */
static bool rss_watched(const struct ch *c)
{
	return c->pid && !c->kill_reason && c->state == CH_RUNNING &&
	       c->spec->max_rss && !c->recycling;
}

/*
 * When c's deadline in its state falls due (the first millisecond past
 * it), or NONE; check_deadlines acts on exactly these.
 */
static int64_t child_due(const struct ch *c)
{
	int64_t due = NONE;

	if (!c->pid || c->kill_reason)
		return NONE;
	if (c->state == CH_STARTING && c->spec->start_timeout_ms)
		return c->started + c->spec->start_timeout_ms + 1;
	if (c->state == CH_RUNNING && c->deadline)
		return c->deadline + 1;
	if (c->state == CH_STOPPING && c->stop_deadline)
		due = c->stop_deadline + 1;
	if (c->state == CH_STOPPING && c->busy_until && c->busy_until + 1 < due)
		due = c->busy_until + 1;
	return due;
}

/* The earliest deadline under s; *rss is set if a child's RSS is watched. */
static int64_t earliest(const struct sup *s, bool *rss)
{
	int64_t due = NONE;

	/* a START waiting for its child's backoff to pass */
	due = sup_backoff_due(s);
	for (size_t i = 0; i < s->nch; i++) {
		const struct ch *c = s->ch[i];
		int64_t d = c->sub ? earliest(c->sub, rss) : child_due(c);

		if (d < due)
			due = d;
		*rss |= !c->sub && rss_watched(c);
	}
	return due;
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
			sup_child_kill(c, "start timeout");
		else if (c->state == CH_RUNNING && c->deadline &&
		         now > c->deadline)
			sup_child_kill(c, "heartbeat missed");
		else if (c->state == CH_STOPPING && c->stop_deadline &&
		         now > c->stop_deadline)
			sup_child_kill(c, "shutdown timeout");
		/* a child asked to stop (recycled over max_rss, rolled)
		 * while busy finishes its work, but within its deadline */
		else if (c->state == CH_STOPPING && c->busy_until &&
		         now > c->busy_until)
			sup_child_kill(c,
			               "busy past its deadline while stopping");
		else if (rss && rss_watched(c)) {
			int64_t bytes = proc_rss(c->pid);
			if (bytes > c->spec->max_rss) {
				log_info(
				        "supervisor",
				        "recycling child id=%s pid=%d rss=%lld max_rss=%lld",
				        c->id, (int)c->pid, (long long)bytes,
				        (long long)c->spec->max_rss);
				c->recycling = true;
				sup_child_stop(c);
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
	sup_pump(s);
}

static void on_deadline(struct loop *loop, void *arg)
{
	struct sup *root = arg;
	int64_t now = now_ms();
	bool rss = now - root->last_rss_check >= RSS_EVERY_MS;

	(void)loop;
	root->timer = NULL;
	root->armed_at = NONE;
	if (root->freed_later)
		return;
	if (rss)
		root->last_rss_check = now;
	check_deadlines(root, now, rss);
	if (!root->freed_later)
		pump_all(root);
}

/* Runs a sup_when_settled waiter whose supervisor has settled. */
static void run_settled(struct sup *root)
{
	sup_settled_fn *fn = root->on_settled;

	if (!fn || !sup_tree_settled(root, root->settle_id))
		return;
	root->on_settled = NULL;
	root->settle_id = NULL;
	fn(root, root->settled_arg);
}

/* Before the loop sleeps: (re)arms the timer for the earliest deadline. */
static void on_prepare(struct loop *loop, void *arg)
{
	struct sup *root = arg;
	bool rss = false;
	int64_t due;

	if (!root->freed_later)
		run_settled(root);
	due = root->freed_later ? NONE : earliest(root, &rss);
	if (rss && root->last_rss_check + RSS_EVERY_MS < due)
		due = root->last_rss_check + RSS_EVERY_MS;
	if (due == root->armed_at)
		return;
	if (root->timer)
		loop_timer_cancel(loop, root->timer);
	root->timer = NULL;
	root->armed_at = NONE;
	if (due == NONE)
		return;
	root->timer = loop_timer_add(loop, due - now_ms(), on_deadline, root);
	if (root->timer)
		root->armed_at = due;
	else
		log_error("supervisor",
		          "out of memory arming a deadline; trying again");
}

int sup_deadline_attach(struct sup *root)
{
	int ret = loop_on_signal(root->loop, SIGCHLD, on_sigchld, root);

	if (ret)
		return ret;
	root->armed_at = NONE;
	root->prepare = loop_prepare_add(root->loop, on_prepare, root);
	if (!root->prepare) {
		loop_on_signal(root->loop, SIGCHLD, NULL, NULL);
		return -ENOMEM;
	}
	return 0;
}

void sup_deadline_detach(struct sup *root)
{
	if (root->timer)
		loop_timer_cancel(root->loop, root->timer);
	root->timer = NULL;
	if (root->prepare)
		loop_prepare_del(root->loop, root->prepare);
	root->prepare = NULL;
	loop_on_signal(root->loop, SIGCHLD, NULL, NULL);
}
