/*
 * The executor's thread, its queue and its breaker (see executor.h).
 */
#include "executor.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../base.h"
#include "../host.h"
#include "../log.h"

#define COMPONENT "ingress"

static void wake(struct executor *ex)
{
	uint64_t one = 1;
	ssize_t n = write(ex->wake_fd, &one, sizeof(one));

	(void)n; /* a full counter wakes it anyway */
}

/* Under mu: the dependency failed at now because of why. */
static void note_fail(struct executor *ex, int64_t now, const char *why)
{
	if (!breaker_fail(&ex->br, now, why))
		return;
	atomic_store(&ex->up, false);
	log_warn(COMPONENT, "%s unavailable: %s (requests needing it get 503)",
	         ex->name, ex->br.why);
}

/* Under mu: the result ret of a call on the thread (of a ping: any
 * error says the dependency is not there). */
static void note_result(struct executor *ex, int ret, const char *what)
{
	int64_t now = now_ms(), down;
	char why[BREAKER_WHY_MAX];
	bool ping = strcmp(what, "ping") == 0;

	if (ping ? !ret : !breaker_counts(ret)) {
		down = breaker_ok(&ex->br, now);
		if (down < 0)
			return;
		atomic_store(&ex->up, true);
		log_info(COMPONENT, "%s available again after %lld s", ex->name,
		         (long long)((down + 500) / 1000));
		return;
	}
	if (ex->seen[0])
		snprintf(why, sizeof(why), "%s", ex->seen);
	else
		snprintf(why, sizeof(why), "%s: %s: %s", ex->label, what,
		         strerror(-ret));
	note_fail(ex, now, why);
}

/* Under mu: the thread is (busy) or is no longer inside a plugin call. */
static void mark(struct executor *ex, bool busy)
{
	ex->busy_since = busy ? now_ms() : 0;
	if (!busy)
		ex->last_call = now_ms();
}

/* Under mu, released meanwhile: runs every op queued. */
static void run_queue(struct executor *ex)
{
	struct exec_op *op;

	while ((op = ex->head) && !ex->quit) {
		ex->head = op->next;
		if (!ex->head)
			ex->tail = NULL;
		if (op->orphan && ex->br.open) { /* posted, and it is down */
			pthread_mutex_unlock(&ex->mu);
			op->drop(op);
			pthread_mutex_lock(&ex->mu);
			continue;
		}
		op->state = EXEC_RUNNING;
		ex->current = op;
		mark(ex, true);
		pthread_mutex_unlock(&ex->mu);
		ex->seen[0] = '\0';
		int ret = op->run(op, ex->state);
		/* an outage's warnings go into the breaker's one line */
		host_log_capture_end(!breaker_counts(ret));
		pthread_mutex_lock(&ex->mu);
		ex->current = NULL;
		mark(ex, false);
		note_result(ex, ret, "an operation failed");
		if (op->orphan || op->done) {
			pthread_mutex_unlock(&ex->mu);
			if (op->orphan)
				op->drop(op);
			else
				op->done(op, ret, op->done_arg);
			pthread_mutex_lock(&ex->mu);
			continue;
		}
		op->ret = ret;
		op->state = EXEC_DONE;
		pthread_cond_broadcast(&ex->cv);
	}
}

static void *run(void *arg)
{
	struct executor *ex = arg;
	int64_t now;
	uint64_t n;
	int ret;

	/* the plugin's warnings kept aside (quiet): logged after the call as
	 * they were unless they say the dependency is away (executor.h) */
	host_log_capture(ex->seen, sizeof(ex->seen), true);
	pthread_mutex_lock(&ex->mu);
	for (;;) {
		struct pollfd pfd[2] = {{.fd = ex->wake_fd, .events = POLLIN},
		                        {.fd = ex->idle_fd, .events = POLLIN}};
		int64_t timeout = ex->turn_ms, next_ping;

		run_queue(ex);
		if (ex->quit)
			break;
		/* no call for a while (or down): is it there? */
		now = now_ms();
		if (now - ex->last_call >= EXECUTOR_PROBE_MS) {
			mark(ex, true);
			pthread_mutex_unlock(&ex->mu);
			/* quietly: the breaker's line says it, once */
			ex->seen[0] = '\0';
			ret = ex->ping(ex->state);
			pthread_mutex_lock(&ex->mu);
			mark(ex, false);
			note_result(ex, ret, "ping");
			continue; /* ops may have come meanwhile */
		}
		if (ex->idle) {
			mark(ex, true);
			pthread_mutex_unlock(&ex->mu);
			ex->seen[0] = '\0';
			ret = ex->idle(ex->idle_arg);
			host_log_capture_end(!breaker_counts(ret));
			pthread_mutex_lock(&ex->mu);
			ex->busy_since = 0; /* not an answer: last_call stays */
			if (breaker_counts(
			            ret)) /* only a ping or an op closes */
				note_result(ex, ret, "unable to take replies");
		}
		if (ex->head || ex->quit)
			continue;
		next_ping = ex->last_call + EXECUTOR_PROBE_MS;
		now = now_ms();
		if (next_ping - now < timeout)
			timeout = next_ping > now ? next_ping - now : 0;
		pthread_mutex_unlock(&ex->mu);
		if (poll(pfd, ex->idle_fd >= 0 ? 2 : 1, (int)timeout) > 0 &&
		    (pfd[0].revents & POLLIN))
			(void)!read(ex->wake_fd, &n, sizeof(n));
		pthread_mutex_lock(&ex->mu);
	}
	ex->running = false;
	pthread_cond_broadcast(&ex->cv);
	pthread_mutex_unlock(&ex->mu);
	host_log_capture(NULL, 0, false);
	return NULL;
}

void executor_check(struct executor *ex, int64_t limit_ms)
{
	char why[BREAKER_WHY_MAX];
	int64_t now = now_ms();

	pthread_mutex_lock(&ex->mu);
	if (ex->busy_since && now - ex->busy_since > limit_ms && !ex->br.open) {
		snprintf(why, sizeof(why), "%s: no answer within %.1f s",
		         ex->label, (double)limit_ms / 1000);
		note_fail(ex, now, why);
	}
	pthread_mutex_unlock(&ex->mu);
}

int executor_start(struct executor *ex)
{
	pthread_condattr_t ca;
	int ret;

	ex->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ex->wake_fd < 0)
		return -errno;
	pthread_mutex_init(&ex->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ex->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_store(&ex->up, true);
	ex->running = true;
	ret = -pthread_create(&ex->thread, NULL, run, ex);
	if (ret) {
		ex->running = false;
		pthread_cond_destroy(&ex->cv);
		pthread_mutex_destroy(&ex->mu);
		close(ex->wake_fd);
		ex->wake_fd = -1;
	}
	return ret;
}

static struct timespec abs_time(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000};

	return ts;
}

bool executor_stop(struct executor *ex, int64_t wait_ms)
{
	struct timespec until = abs_time(now_ms() + wait_ms);
	struct exec_op *op;
	bool stopped;

	pthread_mutex_lock(&ex->mu);
	ex->quit = true;
	wake(ex);
	while (ex->running &&
	       pthread_cond_timedwait(&ex->cv, &ex->mu, &until) != ETIMEDOUT)
		;
	stopped = !ex->running;
	op = ex->head;
	ex->head = ex->tail = NULL;
	pthread_mutex_unlock(&ex->mu);
	while (op) { /* the waiters, if any, are gone too by now */
		struct exec_op *next = op->next;
		if (op->orphan || op->done) /* nobody waits for those now */
			op->drop(op);
		op = next;
	}
	if (!stopped) {
		log_warn(
		        COMPONENT,
		        "%s: a call is still under way at exit; not waiting for it",
		        ex->name);
		return false;
	}
	pthread_join(ex->thread, NULL);
	pthread_cond_destroy(&ex->cv);
	pthread_mutex_destroy(&ex->mu);
	close(ex->wake_fd);
	return true;
}

/* Under mu: appends op. */
static void enqueue(struct executor *ex, struct exec_op *op)
{
	op->state = EXEC_QUEUED;
	op->next = NULL;
	if (ex->tail)
		ex->tail->next = op;
	else
		ex->head = op;
	ex->tail = op;
	wake(ex);
}

/* Under mu: takes op out of the queue. */
static void unqueue(struct executor *ex, struct exec_op *op)
{
	struct exec_op **p = &ex->head, *prev = NULL;

	while (*p && *p != op) {
		prev = *p;
		p = &(*p)->next;
	}
	if (!*p)
		return;
	*p = op->next;
	if (ex->tail == op)
		ex->tail = prev;
}

int executor_call(struct executor *ex, struct exec_op *op, int64_t deadline_ms)
{
	struct timespec until = abs_time(deadline_ms);
	int64_t began = now_ms();
	char why[BREAKER_WHY_MAX];
	bool run_yet;
	int ret;

	pthread_mutex_lock(&ex->mu);
	if (ex->br.open || ex->quit) {
		pthread_mutex_unlock(&ex->mu);
		return -ECANCELED;
	}
	op->orphan = false;
	op->done = NULL;
	enqueue(ex, op);
	while (op->state != EXEC_DONE &&
	       pthread_cond_timedwait(&ex->cv, &ex->mu, &until) != ETIMEDOUT)
		;
	if (op->state == EXEC_DONE) {
		ret = op->ret;
		pthread_mutex_unlock(&ex->mu);
		return ret;
	}
	/* past the deadline: the dependency did not answer in time */
	run_yet = op->state == EXEC_RUNNING;
	if (run_yet)
		op->orphan = true; /* the thread drops it when it returns */
	else
		unqueue(ex, op);
	snprintf(why, sizeof(why), "%s: no answer within %.1f s", ex->label,
	         (double)(deadline_ms - began) / 1000);
	if (!op->patient)
		note_fail(ex, now_ms(), why);
	pthread_mutex_unlock(&ex->mu);
	if (!run_yet)
		op->drop(op);
	return -ETIME;
}

int executor_begin(struct executor *ex, struct exec_op *op, int64_t deadline_ms,
                   exec_done_fn done, void *arg)
{
	pthread_mutex_lock(&ex->mu);
	if (ex->br.open || ex->quit || ex->closing) {
		pthread_mutex_unlock(&ex->mu);
		return -ECANCELED;
	}
	op->orphan = false;
	op->done = done;
	op->done_arg = arg;
	op->began_ms = now_ms();
	op->deadline_ms = deadline_ms;
	enqueue(ex, op);
	pthread_mutex_unlock(&ex->mu);
	return 0;
}

void executor_expire(struct executor *ex, int64_t now, bool all)
{
	struct exec_op *expired = NULL, *running = NULL, **p, *op;
	char why[BREAKER_WHY_MAX];

	pthread_mutex_lock(&ex->mu);
	if (all)
		ex->closing = true;
	op = ex->current;
	if (op && op->done && !op->orphan && (all || now >= op->deadline_ms)) {
		op->orphan = true; /* the thread drops it when it returns */
		running = op;
	}
	for (p = &ex->head; *p;) {
		op = *p;
		if (!op->done || op->orphan ||
		    !(all || now >= op->deadline_ms)) {
			p = &op->next;
			continue;
		}
		*p = op->next;
		if (ex->tail == op) {
			ex->tail = NULL;
			for (struct exec_op *t = ex->head; t; t = t->next)
				ex->tail = t;
		}
		op->next = expired;
		expired = op;
	}
	op = running && !running->patient ? running : NULL;
	for (struct exec_op *e = expired; !op && e; e = e->next)
		op = e->patient ? NULL : e;
	if (op && !all) {
		snprintf(why, sizeof(why), "%s: no answer within %.1f s",
		         ex->label,
		         (double)(op->deadline_ms - op->began_ms) / 1000);
		note_fail(ex, now, why);
	}
	pthread_mutex_unlock(&ex->mu);
	if (running)
		running->done(running, -ETIME, running->done_arg);
	while ((op = expired)) { /* never run: never tried */
		expired = op->next;
		op->done(op, -ECANCELED, op->done_arg);
		op->drop(op);
	}
}

void executor_post(struct executor *ex, struct exec_op *op)
{
	pthread_mutex_lock(&ex->mu);
	op->orphan = true;
	op->done = NULL;
	if (ex->quit) {
		pthread_mutex_unlock(&ex->mu);
		op->drop(op);
		return;
	}
	enqueue(ex, op);
	pthread_mutex_unlock(&ex->mu);
}

bool executor_up(struct executor *ex, char *why, size_t len, int64_t *down_ms)
{
	bool up;

	if (atomic_load(&ex->up) && !why && !down_ms)
		return true;
	pthread_mutex_lock(&ex->mu);
	up = !ex->br.open;
	if (!up && why && len)
		snprintf(why, len, "%s", ex->br.why);
	if (!up && down_ms)
		*down_ms = ex->br.since_ms;
	pthread_mutex_unlock(&ex->mu);
	return up;
}
