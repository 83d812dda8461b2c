/*
 * The deadline watchdog (see watchdog.h). It fires a margin before the
 * supervisor's deadline (a quarter of job_timeout, at most a second) so
 * that its one record write lands before the kill; if the job ends in
 * that margin after all, the worker's own final record replaces the mark.
 */
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base.h"
#include "../log.h"
#include "../plugin.h"
#include "job.h"
#include "metrics.h"

#define MARGIN_MAX_MS 1000

struct watchdog {
	const struct plugin *storage;
	void *state; /* this instance's, not storage->state */
	struct metrics *metrics;
	int64_t timeout_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	json_t *rec; /* under mu: the armed job's record (a copy), or NULL */
	int64_t fire_ms; /* under mu: when to write it */
	bool writing, quit;
};

/* Writes the overrun into rec (the watchdog's own copy) and stores it. */
static void mark(struct watchdog *w, json_t *rec)
{
	const struct imgnode_storage_ops *ops = w->storage->desc->ops;
	const char *id = json_string_value(json_object_get(rec, "id"));
	json_int_t n = json_integer_value(json_object_get(rec, "overruns")) + 1;
	char key[JOB_KEY_MAX], reason[256];
	char *text;
	int ret;

	if (!id || !job_id_valid(id))
		return;
	json_object_set_new(rec, "overruns", json_integer(n));
	if (n >= WATCHDOG_MAX_OVERRUNS) {
		snprintf(
		        reason, sizeof(reason),
		        "killed after job_timeout (%g s) on %lld attempts: the job costs more than a worker may spend on one",
		        (double)w->timeout_ms / 1000, (long long)n);
		job_record_set_status(rec, JOB_FAILED, reason);
	}
	job_record_key(id, key, sizeof(key));
	text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	ret = text ? ops->put(w->state, key, text, strlen(text)) : -ENOMEM;
	free(text);
	if (ret) {
		log_warn(
		        "worker",
		        "job id=%s is about to pass job_timeout; unable to record it: %s",
		        id, strerror(-ret));
		return;
	}
	if (n >= WATCHDOG_MAX_OVERRUNS) {
		log_warn("worker", "job failed id=%s reason=\"%s\"", id,
		         reason);
		if (w->metrics)
			atomic_fetch_add(&w->metrics->outcome[OUTCOME_FAILED],
			                 1);
	} else {
		log_warn(
		        "worker",
		        "job id=%s is about to pass job_timeout (%g s) and be killed; it gets one more attempt",
		        id, (double)w->timeout_ms / 1000);
	}
}

static void *run(void *arg)
{
	struct watchdog *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		int64_t now = now_ms();
		json_t *rec;

		if (w->quit)
			break;
		if (!w->rec) {
			pthread_cond_wait(&w->cv, &w->mu);
			continue;
		}
		if (now < w->fire_ms) {
			struct timespec until = {
			        .tv_sec = (time_t)(w->fire_ms / 1000),
			        .tv_nsec = (long)(w->fire_ms % 1000) * 1000000,
			};
			pthread_cond_timedwait(&w->cv, &w->mu, &until);
			continue;
		}
		rec = w->rec;
		w->rec = NULL;
		w->writing = true;
		pthread_mutex_unlock(&w->mu);
		mark(w, rec);
		json_decref(rec);
		pthread_mutex_lock(&w->mu);
		w->writing = false;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int watchdog_start(struct watchdog **out, const struct plugin *storage,
                   int64_t timeout_ms, struct metrics *m, char *err,
                   size_t errlen)
{
	struct watchdog *w = calloc(1, sizeof(*w));
	pthread_condattr_t attr;
	int ret;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->storage = storage;
	w->metrics = m;
	w->timeout_ms = timeout_ms;
	ret = plugin_instance(storage, &w->state, err, errlen);
	if (ret) {
		free(w);
		return ret;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &attr);
	pthread_condattr_destroy(&attr);
	ret = -pthread_create(&w->thread, NULL, run, w);
	if (ret) {
		snprintf(err, errlen, "cannot start its thread: %s",
		         strerror(-ret));
		plugin_instance_free(storage, w->state);
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return ret;
	}
	*out = w;
	return 0;
}

void watchdog_arm(struct watchdog *w, json_t *rec, int64_t deadline_ms)
{
	int64_t margin = w ? w->timeout_ms / 4 : 0;
	json_t *copy;

	if (!w)
		return;
	copy = json_deep_copy(rec);
	if (margin > MARGIN_MAX_MS)
		margin = MARGIN_MAX_MS;
	pthread_mutex_lock(&w->mu);
	json_decref(w->rec);
	w->rec = copy;
	w->fire_ms = deadline_ms - margin;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void watchdog_disarm(struct watchdog *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	json_decref(w->rec);
	w->rec = NULL;
	while (w->writing)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

void watchdog_stop(struct watchdog *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	json_decref(w->rec);
	plugin_instance_free(w->storage, w->state);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
