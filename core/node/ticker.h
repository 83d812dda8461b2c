/*
 * A ticker: a thread that calls the transport's tick() while a worker is
 * busy with a job, in libvips or storage calls and away from the
 * transport, so that what the transport holds for the job stays held (the
 * spool renews the job's lease; a broker sees a live connection). The
 * plugin ABI asks for tick() at least once a second, also during a long
 * job.
 */
#ifndef IMGNODE_TICKER_H
#define IMGNODE_TICKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <imgnode/plugin.h>

struct ticker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct imgnode_transport_ops *ops;
	void *state;
	int64_t every_ms;
	bool stop; /* under lock */
	bool paused; /* under lock: no tick() until ticker_resume */
	bool ticking; /* under lock: tick() under way */
	uint64_t ticks; /* under lock: tick() calls so far */
};

/*
 * Starts a thread that calls ops->tick(state) every every_ms until
 * ticker_stop. A transport state is used by one thread at a time: the
 * caller must not use the transport until ticker_stop returns. The thread
 * blocks every signal (they stay the caller's). Returns 0 or -errno.
 */
int ticker_start(struct ticker *t, const struct imgnode_transport_ops *ops,
                 void *state, int64_t every_ms);

/*
 * Pauses the ticker: once this returns, no tick() runs until
 * ticker_resume, and the caller may use the transport again. For a
 * thread kept from one busy spell to the next (a worker's jobs) instead
 * of one started and joined each time. ticker_resume starts the periods
 * again (the first tick one period later).
 */
void ticker_pause(struct ticker *t);
void ticker_resume(struct ticker *t);

/* Stops and joins the thread, at once (it does not finish its period);
 * returns how many times it ticked. */
uint64_t ticker_stop(struct ticker *t);

#endif
