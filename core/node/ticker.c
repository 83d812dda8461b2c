/*
 * The ticker (see ticker.h): one thread, waiting on a condition variable
 * on the monotonic clock so that ticker_stop and ticker_pause wake it at
 * once and a job does not wait for a period to end.
 */
#include "ticker.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static void *ticker_main(void *arg)
{
	struct ticker *t = arg;
	struct timespec at;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		if (t->paused) {
			pthread_cond_wait(&t->cond, &t->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += t->every_ms / 1000;
		at.tv_nsec += (long)(t->every_ms % 1000) * 1000000;
		if (at.tv_nsec >= 1000000000) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000;
		}
		while (!t->stop && !t->paused &&
		       pthread_cond_timedwait(&t->cond, &t->lock, &at) == 0)
			;
		if (t->stop || t->paused)
			continue;
		t->ticks++;
		t->ticking = true;
		pthread_mutex_unlock(&t->lock);
		t->ops->tick(t->state);
		pthread_mutex_lock(&t->lock);
		t->ticking = false;
		pthread_cond_broadcast(&t->cond); /* a pause may wait for it */
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

void ticker_pause(struct ticker *t)
{
	pthread_mutex_lock(&t->lock);
	t->paused = true;
	pthread_cond_broadcast(&t->cond);
	while (t->ticking)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

void ticker_resume(struct ticker *t)
{
	pthread_mutex_lock(&t->lock);
	t->paused = false;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

int ticker_start(struct ticker *t, const struct imgnode_transport_ops *ops,
                 void *state, int64_t every_ms)
{
	pthread_condattr_t attr;
	sigset_t all, old;
	int r;

	memset(t, 0, sizeof(*t));
	t->ops = ops;
	t->state = state;
	t->every_ms = every_ms > 0 ? every_ms : 1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &attr);
	pthread_condattr_destroy(&attr);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&t->thread, NULL, ticker_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->lock);
		return -r;
	}
	return 0;
}

uint64_t ticker_stop(struct ticker *t)
{
	uint64_t ticks;

	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	ticks = t->ticks;
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	return ticks;
}
