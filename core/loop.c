/*
 * The event loop. Few descriptors and few timers live in a supervisor, so
 * both are plain arrays: poll(2) over the descriptors, a linear scan for the
 * next timer. Entries removed during dispatch are marked and swept after it,
 * so callbacks may add and remove freely.
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "base.h"

struct watch {
	int fd;
	short events;
	bool dead;
	loop_fd_fn *fn;
	void *arg;
};

struct loop_timer {
	int64_t due;
	loop_timer_fn *fn;
	void *arg;
	struct loop_timer *next;
};

struct sig_handler {
	loop_signal_fn *fn;
	void *arg;
};

struct loop {
	struct watch *watches;
	size_t nwatches, cap;
	struct pollfd *pfds;
	struct loop_timer *timers; /* unsorted */
	int sigfd;
	sigset_t sigs;
	struct sig_handler handlers[NSIG];
	bool stopped;
	int code;
};

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->sigfd = -1;
	sigemptyset(&loop->sigs);
	return loop;
}

void loop_free(struct loop *loop)
{
	struct loop_timer *t, *next;

	if (!loop)
		return;
	for (t = loop->timers; t; t = next) {
		next = t->next;
		free(t);
	}
	if (loop->sigfd >= 0) {
		close(loop->sigfd);
		sigprocmask(SIG_UNBLOCK, &loop->sigs, NULL);
	}
	free(loop->watches);
	free(loop->pfds);
	free(loop);
}

static struct watch *find_watch(struct loop *loop, int fd)
{
	for (size_t i = 0; i < loop->nwatches; i++)
		if (loop->watches[i].fd == fd && !loop->watches[i].dead)
			return &loop->watches[i];
	return NULL;
}

int loop_add_fd(struct loop *loop, int fd, short events, loop_fd_fn *fn,
                void *arg)
{
	if (find_watch(loop, fd))
		return -EEXIST;
	if (loop->nwatches == loop->cap) {
		size_t cap = loop->cap ? loop->cap * 2 : 16;
		struct watch *w = realloc(loop->watches, cap * sizeof(*w));
		struct pollfd *p;

		if (!w)
			return -ENOMEM;
		loop->watches = w;
		p = realloc(loop->pfds, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		loop->pfds = p;
		loop->cap = cap;
	}
	loop->watches[loop->nwatches++] =
	        (struct watch){fd, events, false, fn, arg};
	return 0;
}

int loop_mod_fd(struct loop *loop, int fd, short events)
{
	struct watch *w = find_watch(loop, fd);

	if (!w)
		return -ENOENT;
	w->events = events;
	return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
	struct watch *w = find_watch(loop, fd);

	if (w)
		w->dead = true;
}

static void sweep(struct loop *loop)
{
	size_t j = 0;

	for (size_t i = 0; i < loop->nwatches; i++)
		if (!loop->watches[i].dead)
			loop->watches[j++] = loop->watches[i];
	loop->nwatches = j;
}

struct loop_timer *loop_timer_add(struct loop *loop, int64_t ms,
                                  loop_timer_fn *fn, void *arg)
{
	struct loop_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->due = now_ms() + (ms > 0 ? ms : 0);
	t->fn = fn;
	t->arg = arg;
	t->next = loop->timers;
	loop->timers = t;
	return t;
}

void loop_timer_cancel(struct loop *loop, struct loop_timer *timer)
{
	for (struct loop_timer **p = &loop->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = timer->next;
			free(timer);
			return;
		}
	}
}

static void on_signalfd(struct loop *loop, int fd, short revents, void *arg)
{
	struct signalfd_siginfo si;

	(void)revents;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		struct sig_handler *h = &loop->handlers[si.ssi_signo];
		if (h->fn)
			h->fn(loop, (int)si.ssi_signo, h->arg);
	}
}

int loop_on_signal(struct loop *loop, int sig, loop_signal_fn *fn, void *arg)
{
	int fd, ret;

	if (sig <= 0 || sig >= NSIG)
		return -EINVAL;
	sigaddset(&loop->sigs, sig);
	if (sigprocmask(SIG_BLOCK, &loop->sigs, NULL) < 0)
		return -errno;
	fd = signalfd(loop->sigfd, &loop->sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		ret = loop_add_fd(loop, fd, POLLIN, on_signalfd, NULL);
		if (ret)
			return ret;
	}
	loop->handlers[sig] = (struct sig_handler){fn, arg};
	return 0;
}

int loop_signal_fd(const struct loop *loop)
{
	return loop->sigfd;
}

/* Runs the timers that are due; returns ms to the next one, or -1. */
static int run_timers(struct loop *loop)
{
	int64_t now = now_ms(), next = -1;
	struct loop_timer *t;

again:
	for (t = loop->timers; t; t = t->next) {
		if (t->due <= now) {
			loop_timer_fn *fn = t->fn;
			void *arg = t->arg;

			loop_timer_cancel(loop, t);
			fn(loop, arg);
			if (loop->stopped)
				return 0;
			goto again; /* the list may have changed */
		}
	}
	for (t = loop->timers; t; t = t->next)
		if (next < 0 || t->due - now < next)
			next = t->due - now;
	return next > INT32_MAX ? INT32_MAX : (int)next;
}

int loop_run(struct loop *loop)
{
	loop->stopped = false;
	while (!loop->stopped) {
		int timeout = run_timers(loop), n;
		size_t count;

		if (loop->stopped)
			break;
		sweep(loop);
		count = loop->nwatches;
		for (size_t i = 0; i < count; i++)
			loop->pfds[i] =
			        (struct pollfd){loop->watches[i].fd,
			                        loop->watches[i].events, 0};
		n = poll(loop->pfds, count, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (size_t i = 0; i < count && n > 0 && !loop->stopped; i++) {
			struct watch *w = &loop->watches[i];

			if (!loop->pfds[i].revents)
				continue;
			n--;
			if (!w->dead && w->fd == loop->pfds[i].fd)
				w->fn(loop, w->fd, loop->pfds[i].revents,
				      w->arg);
		}
	}
	return loop->code;
}

void loop_stop(struct loop *loop, int code)
{
	loop->stopped = true;
	loop->code = code;
}
