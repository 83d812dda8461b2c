/*
 * The sweep, run by the reaper (reaper.c) every quarter of [workers]
 * stuck_after: it brings to a final state the jobs whose record stayed
 * queued or running that long without a write, which nothing else would
 * ever finish: a publish that was never confirmed while storage was down
 * too (the ingress could neither remove the record nor mark it failed),
 * a message lost with a broker's disk, a running record whose worker died
 * while storage was away. Such a job is published again, with the reason
 * and the count in the record ("swept"), up to [workers] stuck_republish
 * times; then, or at once if its original is gone, it is marked failed with
 * the reason.
 *
 * Publishing again is safe: a job that was only waiting (a deep queue) runs
 * once more at worst, and the worker that takes the second copy finds the
 * record over (acks it) or the result already stored under its
 * content-derived key (done at once); the result is the same bytes either
 * way. What it costs is the duplicate's work, which stuck_after, far above
 * job_timeout x delivery_limit plus the longest queue wait, keeps rare.
 *
 * A job counts as stuck from the last write of its record (the storage's
 * mtime, or the record's own stamps if later), so a job a worker took is
 * never stuck before job_timeout (the config refuses a stuck_after that is
 * not longer). Every node's reaper sweeps; two at once publish a job twice
 * at worst.
 */
#include "sweep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../log.h"
#include "../spawn.h"
#include "job.h"
#include "metrics.h"

#define COMPONENT "sweep"
#define PUBLISH_TIMEOUT_MS 5000
/*
 * How long the supervisor waits without a heartbeat while the sweep lists
 * the records, and then while it deals with one (a few storage calls and a
 * publish, each bounded by its plugin's timeouts): a storage outage slows
 * the sweep down but never gets the reaper killed for "heartbeat missed".
 */
#define LIST_BUSY_MS (10 * 60 * 1000)
#define RECORD_BUSY_MS (2 * 60 * 1000)

struct ids {
	char (*id)[JOB_ID_LEN + 1];
	size_t n, cap;
};

/* list's callback: keeps the ids of jobs/ID keys. */
static int collect(const char *key, void *arg)
{
	struct ids *ids = arg;
	const char *id = key + 5;

	if (strncmp(key, "jobs/", 5) != 0 || !job_id_valid(id))
		return 0;
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 256;
		void *grown = realloc(ids->id, cap * sizeof(*ids->id));

		if (!grown)
			return -ENOMEM;
		ids->id = grown;
		ids->cap = cap;
	}
	memcpy(ids->id[ids->n++], id, JOB_ID_LEN + 1);
	return 0;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The last time rec was written, in ms since the epoch. */
static int64_t last_write_ms(json_t *rec, int64_t mtime_ms)
{
	static const char *const stamps[] = {"created", "started", NULL};
	int64_t last = mtime_ms;
	json_t *swept = json_object_get(rec, "swept");

	for (int i = 0; stamps[i]; i++) {
		int64_t us = job_stamp_us(rec, stamps[i]);
		if (us / 1000 > last)
			last = us / 1000;
	}
	if (json_is_object(swept)) {
		int64_t us = job_stamp_us(swept, "at");
		if (us / 1000 > last)
			last = us / 1000;
	}
	return last;
}

/* Publishes the job of rec again; 0 or -errno. */
static int republish(struct plugin_set *set, json_t *rec)
{
	const char *id = json_string_value(json_object_get(rec, "id"));
	const char *rid = json_string_value(json_object_get(rec, "request_id"));
	struct job_msg m = {
	        .pipeline = (char *)json_string_value(
	                json_object_get(rec, "pipeline")),
	        .result = (char *)json_string_value(
	                json_object_get(rec, "result")),
	        .request_id = job_request_id_valid(rid) ? (char *)rid : NULL,
	};
	size_t len = 0;
	char *body;
	int ret;

	if (!id || !m.pipeline || !m.result ||
	    strncmp(m.result, "out/", 4) != 0)
		return -EBADMSG;
	memcpy(m.id, id, JOB_ID_LEN + 1);
	body = job_msg_encode(&m, &len);
	if (!body)
		return -ENOMEM;
	ret = transport_ops(set)->publish(set->transport->state, body, len,
	                                  NULL, PUBLISH_TIMEOUT_MS);
	free(body);
	return ret;
}

/*
 * Deals with one stuck job: published again (counted in its record's
 * "swept") or failed. 0, or -errno when the transport or storage failed
 * (the pass stops: the next one tries again).
 */
static int unstick(struct plugin_set *set, const struct conf *conf,
                   struct metrics *m, json_t *rec, enum job_status status,
                   int64_t idle_ms)
{
	const char *id = json_string_value(json_object_get(rec, "id"));
	json_t *swept = json_object_get(rec, "swept");
	json_int_t times = json_integer_value(json_object_get(swept, "count"));
	struct imgnode_stat st;
	char key[JOB_KEY_MAX], why[512], now[40], reason[700];
	int ret;

	snprintf(
	        why, sizeof(why),
	        "%s for %lld s with no progress ([workers] stuck_after = %lld s)",
	        job_status_name(status), (long long)(idle_ms / 1000),
	        (long long)(conf->app->workers.stuck_after / 1000));
	job_input_key(rec, id, key, sizeof(key));
	ret = storage_ops(set)->stat(set->storage->state, key, &st);
	if (ret && ret != -ENOENT)
		return ret;
	if (ret == 0 && times < conf->app->workers.stuck_republish) {
		json_t *was = json_deep_copy(rec);

		/* the record first: the worker that takes the copy reads it
		 * and writes it back, reason included */
		job_timestamp(now, sizeof(now));
		json_object_set_new(rec, "swept",
		                    json_pack("{s:s, s:I, s:s}", "at", now,
		                              "count", times + 1, "reason",
		                              why));
		job_record_set_status(rec, JOB_QUEUED, NULL);
		ret = job_record_put(set->storage, rec);
		if (!ret)
			ret = republish(set, rec);
		if (ret == -EBADMSG) {
			json_decref(was);
			goto out_fail;
		}
		if (ret) {
			log_warn(COMPONENT,
			         "unable to publish stuck job id=%s again: %s",
			         id, strerror(-ret));
			/* not published: not counted (best effort) */
			if (was)
				job_record_put(set->storage, was);
			json_decref(was);
			return ret;
		}
		json_decref(was);
		if (m)
			atomic_fetch_add(&m->stuck_republished, 1);
		log_warn(COMPONENT,
		         "published stuck job id=%s again (%lld of %lld): %s",
		         id, (long long)times + 1,
		         (long long)conf->app->workers.stuck_republish, why);
		return 0;
	}
out_fail:
	snprintf(reason, sizeof(reason), "lost: %s%s%s", why,
	         ret == -ENOENT ? "; its original is gone" : "",
	         ret == -EBADMSG ? "; its record names no pipeline or result"
	         : times         ? "; published again before, in vain"
	                         : "");
	job_record_set_status(rec, JOB_FAILED, reason);
	ret = job_record_put(set->storage, rec);
	if (ret)
		return ret;
	if (m) {
		atomic_fetch_add(&m->stuck_failed, 1);
		atomic_fetch_add(&m->outcome[OUTCOME_FAILED], 1);
	}
	log_warn(COMPONENT, "job failed id=%s reason=\"%s\"", id, reason);
	return 0;
}

/* One record: stuck or not. 0 or -errno (storage or transport down). */
static int check(struct plugin_set *set, const struct conf *conf,
                 struct metrics *m, const char *id, int64_t now)
{
	struct imgnode_stat st;
	char key[JOB_KEY_MAX];
	enum job_status status;
	int64_t idle;
	json_t *rec;
	int ret;

	job_record_key(id, key, sizeof(key));
	ret = storage_ops(set)->stat(set->storage->state, key, &st);
	if (ret)
		return ret == -ENOENT ? 0 : ret;
	if (now - st.mtime_ms < conf->app->workers.stuck_after)
		return 0; /* written lately: cheap to skip */
	rec = job_record_get(set->storage, id, &ret);
	if (!rec)
		return ret == -ENOENT || ret == -EBADMSG || ret == -EFBIG ? 0
		                                                          : ret;
	status = job_record_status(rec);
	idle = now - last_write_ms(rec, st.mtime_ms);
	ret = 0;
	if ((status == JOB_QUEUED || status == JOB_RUNNING) &&
	    idle >= conf->app->workers.stuck_after)
		ret = unstick(set, conf, m, rec, status, idle);
	json_decref(rec);
	return ret;
}

int sweep_run(struct plugin_set *set, const struct conf *conf,
              struct metrics *m, const volatile sig_atomic_t *stop)
{
	struct ids ids = {0};
	int64_t now = wall_ms();
	int ret;

	proc_notify_busy(LIST_BUSY_MS);
	ret = storage_ops(set)->list(set->storage->state, "jobs/", collect,
	                             &ids);
	if (ret) {
		log_warn(COMPONENT, "unable to list job records: %s",
		         strerror(-ret));
		goto out_free;
	}
	for (size_t i = 0; i < ids.n && !*stop; i++) {
		if (i % 64 == 0)
			transport_ops(set)->tick(set->transport->state);
		proc_notify_busy(RECORD_BUSY_MS);
		ret = check(set, conf, m, ids.id[i], now);
		if (ret) {
			log_warn(
			        COMPONENT,
			        "sweep stopped at job id=%s: %s; the next one goes on",
			        ids.id[i], strerror(-ret));
			break;
		}
	}
out_free:
	proc_notify_alive(); /* the heartbeat's deadline again */
	free(ids.id);
	return ret;
}
