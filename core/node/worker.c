/*
 * A worker: consume a job, fetch its original, run its pipeline, store the
 * result under its content-derived key, update the record, notify the
 * ingress that waits, ack. One job at a time, in a process of its own.
 *
 * What happens on each outcome (docs/design.md §3, §4):
 *   - the result already exists (redelivery, duplicate): record done, ack;
 *   - the input or pipeline is bad (libvips says so): record failed with
 *     the reason, ack - a clean failure is not retried;
 *   - storage or transport trouble: release (redelivered later);
 *   - a crash: the supervisor restarts the worker, the transport
 *     redelivers, and past the delivery limit dead-letters the job for the
 *     reaper;
 *   - a deadline overrun: the same kill and redelivery, but the watchdog
 *     (watchdog.h) records it first, so the job fails for good after at
 *     most one retry.
 * SIGTERM drains: the job under way finishes, then the worker exits 0.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base.h"
#include "../log.h"
#include "../spawn.h"
#include "image.h"
#include "job.h"
#include "metrics.h"
#include "node_conf.h"
#include "overlays.h"
#include "pipeline.h"
#include "renditions.h"
#include "sandbox.h"
#include "startup.h"
#include "ticker.h"
#include "watchdog.h"

#define META_MAX JOB_META_MAX
/* How often the transport's tick() runs while a job does (the ABI asks
 * for at least once a second). */
#define TICK_MS 250
/* Busy lines to the supervisor closer together than this are one (ms). */
#define BUSY_COALESCE 200

static volatile sig_atomic_t draining;

static void on_term(int sig)
{
	(void)sig;
	draining = 1;
}

struct worker {
	struct node *node;
	struct conf *conf;
	struct plugin_set set;
	const char *id;
	struct watchdog *wd; /* NULL if it could not start */
	int64_t deadline_ms; /* the supervisor's, CLOCK_MONOTONIC */
	bool cancelled; /* consumes no more jobs (about to exit) */
	struct ticker ticker; /* ticks the transport during jobs */
	bool ticking; /* the ticker's thread runs (paused between jobs) */
};

/*
 * A worker about to exit (its last job before a recycle, or SIGTERM):
 * stops consuming, so the jobs the transport sent ahead go back now,
 * uncounted, and the slot its last ack frees is not filled with one the
 * close would count as a delivery (amqp's prefetch; ABI 1.4 cancel).
 */
static void stop_consuming(struct worker *w)
{
	if (w->cancelled || !plugin_transport_has_cancel(w->set.transport))
		return;
	w->cancelled = true;
	transport_ops(&w->set)->cancel(w->set.transport->state,
	                               IMGNODE_QUEUE_JOBS);
}

/*
 * Tells the supervisor the job may take job_timeout from now: sent before
 * each storage call too, so a call that waits out the storage's op timeout
 * (below job_timeout) during an outage never gets the worker killed;
 * job_timeout bounds each step, the image's above all.
 */
static void notify_busy(struct worker *w)
{
	int64_t timeout = w->conf->app->workers.job_timeout, now = now_ms();
	int64_t sent = w->deadline_ms - timeout; /* the last line's time */
	int64_t window =
	        timeout / 50 < BUSY_COALESCE ? timeout / 50 : BUSY_COALESCE;

	/*
	 * Coalesced: a job's storage calls come in bursts a few ms apart,
	 * and each line wakes the supervisor. One sent less than window ago
	 * still gives every step nearly all of job_timeout; deadline_ms (the
	 * watchdog's) stays the supervisor's, from the last line sent.
	 */
	if (w->deadline_ms && now >= sent && now - sent < window)
		return;
	proc_notify_busy(timeout);
	w->deadline_ms = now + timeout;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void reply(struct worker *w, const struct imgnode_delivery *d,
                  const char *id, enum job_status status)
{
	char body[JOB_REPLY_MAX];
	int n;

	if (!d->reply_to)
		return;
	n = job_reply_encode(id, status, body, sizeof(body));
	if (n > 0)
		transport_ops(&w->set)->reply(w->set.transport->state,
		                              d->reply_to, body, (size_t)n);
}

/* Records the outcome of a finished job and counts it. */
static int finish(struct worker *w, json_t *rec, enum job_status status,
                  const char *error)
{
	struct metrics *m = w->node->metrics;
	int64_t created = job_stamp_us(rec, "created");
	int64_t started = job_stamp_us(rec, "started");
	int ret;

	job_record_set_status(rec, status, error);
	notify_busy(w);
	ret = job_record_put(w->set.storage, rec);
	if (ret)
		return ret;
	if (m) {
		int64_t now = now_us();
		atomic_fetch_add(
		        &m->outcome[status == JOB_DONE ? OUTCOME_DONE
		                                       : OUTCOME_FAILED],
		        1);
		if (started)
			metrics_observe(&m->processing, now - started);
		if (created)
			metrics_observe(&m->total, now - created);
	}
	return 0;
}

/* Copies the stored result's metadata into the record's output. */
static int output_from_meta(struct worker *w, json_t *rec, const char *key)
{
	char meta_key[JOB_KEY_MAX + 8];
	json_error_t jerr;
	void *buf = NULL;
	size_t len = 0;
	json_t *meta;
	int ret;

	snprintf(meta_key, sizeof(meta_key), "%s.meta", key);
	notify_busy(w);
	ret = storage_ops(&w->set)->get(w->set.storage->state, meta_key,
	                                META_MAX, &buf, &len);
	if (ret)
		return ret;
	meta = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!meta)
		return -EBADMSG;
	json_object_set_new(rec, "output", meta);
	return 0;
}

/*
 * Stores out under key: the image first, then key.meta, which marks it
 * complete. 0 with *meta (a new reference: the record's output), or
 * -errno. out stays the caller's.
 */
static int store_output(struct worker *w, const char *key,
                        const struct image_out *out, json_t **meta)
{
	const struct imgnode_storage_ops *st = storage_ops(&w->set);
	void *sst = w->set.storage->state;
	char meta_key[JOB_KEY_MAX + 8];
	char *text;
	int ret;

	notify_busy(w);
	ret = st->put_excl(sst, key, out->buf, out->len);
	if (ret == -EEXIST)
		ret = st->put(sst, key, out->buf, out->len);
	if (ret)
		return ret;
	if (w->node->metrics)
		atomic_fetch_add(&w->node->metrics->bytes_out, out->len);
	*meta = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:s}", "key", key,
	                  "mime", out->mime, "format", out->format, "width",
	                  out->width, "height", out->height, "bytes",
	                  (json_int_t)out->len, "encoder", out->encoder);
	if (*meta && out->frames > 1) /* an animation: height is a frame's */
		json_object_set_new(*meta, "frames", json_integer(out->frames));
	text = *meta ? json_dumps(*meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	snprintf(meta_key, sizeof(meta_key), "%s.meta", key);
	notify_busy(w);
	ret = text ? st->put(sst, meta_key, text, strlen(text)) : -ENOMEM;
	free(text);
	if (ret) {
		json_decref(*meta);
		*meta = NULL;
	}
	return ret;
}

/*
 * Marks rec running (in storage) and reads job id's original into *orig
 * (the caller frees it). 0; 1 when the job is over instead (failed: the
 * original is gone); or -errno (release).
 */
static int begin_running(struct worker *w, const struct imgnode_delivery *d,
                         json_t *rec, const char *id, void **orig, size_t *len)
{
	char key[JOB_KEY_MAX];
	int ret;

	json_object_set_new(rec, "attempts", json_integer(d->attempt));
	json_object_set_new(rec, "worker", json_string(w->id));
	job_record_set_status(rec, JOB_RUNNING, NULL);
	notify_busy(w);
	ret = job_record_put(w->set.storage, rec);
	if (ret)
		return ret;
	if (w->node->metrics) {
		int64_t created = job_stamp_us(rec, "created");
		if (created)
			metrics_observe(&w->node->metrics->queue_wait,
			                now_us() - created);
	}
	job_input_key(rec, id, key, sizeof(key));
	notify_busy(w);
	ret = storage_ops(&w->set)->get(w->set.storage->state, key,
	                                (size_t)w->conf->app->ingress.max_body,
	                                orig, len);
	if (ret == -ENOENT) {
		ret = finish(w, rec, JOB_FAILED, "the original is gone");
		return ret ? ret : 1;
	}
	return ret;
}

/* The versions of the filters a job ran, and the node's generation, into
 * rec's "processed" (its "plugins" as n pipelines use them). */
static void set_processed(struct worker *w, json_t *rec,
                          struct pipeline *const *pls, size_t n)
{
	json_t *used = json_object();

	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < pls[k]->n; i++)
			json_object_set_new(
			        used, pls[k]->steps[i].name,
			        json_string(pls[k]->steps[i].version
			                            ? pls[k]->steps[i].version
			                            : "?"));
	json_object_set_new(rec, "processed",
	                    json_pack("{s:I, s:o}", "generation",
	                              (json_int_t)w->node->generation,
	                              "plugins", used));
}

static int run_renditions(struct worker *w, const struct imgnode_delivery *d,
                          json_t *rec);

/*
 * Runs the job; returns 0 when the record was updated (done or failed:
 * ack), or -errno for trouble worth a redelivery (release).
 */
static int run_job(struct worker *w, const struct imgnode_delivery *d,
                   struct job_msg *msg, json_t *rec)
{
	char why[1024];
	struct image_info info;
	struct image_out out;
	struct pipeline *pl;
	void *orig = NULL;
	size_t len = 0;
	char result[JOB_KEY_MAX];
	json_t *input = json_object_get(rec, "input");
	json_t *meta;
	int ret;

	if (renditions_count(rec))
		return run_renditions(w, d, rec);
	pl = pipeline_parse(msg->pipeline, &w->set, why, sizeof(why));
	if (!pl) {
		char reason[1100];
		snprintf(reason, sizeof(reason),
		         "pipeline no longer valid on this node: %s", why);
		return finish(w, rec, JOB_FAILED, reason);
	}
	/*
	 * The result's key names the filter versions that make it: this
	 * worker's, which after a hot swap may differ from the ingress's
	 * (job.h: whose key counts).
	 */
	if (job_result_key_of(
	            json_string_value(json_object_get(input, "sha256")), pl,
	            &w->set,
	            json_string_value(json_object_get(input, "format")),
	            w->conf->app->limits.keep_metadata, result, sizeof(result)))
		snprintf(result, sizeof(result), "%s", msg->result);
	set_processed(w, rec, &pl, 1);
	json_object_set_new(rec, "result", json_string(result));

	/* a redelivery or a twin job: the result is there already */
	if (output_from_meta(w, rec, result) == 0) {
		pipeline_free(pl);
		return finish(w, rec, JOB_DONE, NULL);
	}

	ret = begin_running(w, d, rec, msg->id, &orig, &len);
	if (ret) {
		pipeline_free(pl);
		return ret > 0 ? 0 : ret;
	}
	/* the part that can cost more than job_timeout: watched */
	notify_busy(w);
	watchdog_arm(w->wd, rec, w->deadline_ms);
	ret = image_probe(orig, len, &w->conf->app->limits, &info, why,
	                  sizeof(why));
	if (!ret) {
		ret = image_run(pl, &w->set, orig, len, &info,
		                &w->conf->app->limits, &out, why, sizeof(why));
		if (w->node->metrics)
			atomic_fetch_add(&w->node->metrics->decodes, 1);
	}
	watchdog_disarm(w->wd);
	free(orig);
	if (ret == -EAGAIN) {
		/* storage away while reading an image a step names
		 * (overlay): trouble that passes, not the job's fault */
		pipeline_free(pl);
		log_warn("worker", "job id=%s waits: %s", msg->id, why);
		return ret;
	}
	if (ret) {
		pipeline_free(pl);
		log_info("worker", "job failed id=%s reason=\"%s\"", msg->id,
		         why);
		return finish(w, rec, JOB_FAILED, why);
	}
	for (size_t i = 0; w->node->metrics && i < pl->n; i++)
		metrics_filter_used(w->node->metrics, pl->steps[i].name);
	pipeline_free(pl);

	ret = store_output(w, result, &out, &meta);
	image_out_free(&out);
	if (ret)
		return ret;
	json_object_set_new(rec, "output", meta);
	return finish(w, rec, JOB_DONE, NULL);
}

/*
 * run_job for a job with renditions (renditions.h): each output's key;
 * those in storage already are taken as they are; the others are made
 * from one decode of the original, then stored, and all listed in the
 * record's "results". The job fails if any output fails.
 */
static int run_renditions(struct worker *w, const struct imgnode_delivery *d,
                          json_t *rec)
{
	const struct limits_conf *lim = &w->conf->app->limits;
	json_t *input = json_object_get(rec, "input");
	json_t *names = json_object_get(rec, "renditions");
	const char *sha = json_string_value(json_object_get(input, "sha256"));
	const char *format =
	        json_string_value(json_object_get(input, "format"));
	const char *id = json_string_value(json_object_get(rec, "id"));
	size_t n = json_array_size(names), i;
	struct rendition rs[RENDITIONS_MAX] = {{0}};
	struct pipeline *pls[RENDITIONS_MAX] = {0};
	json_t *results = json_array(), *meta;
	char why[1100], reason[1200];
	struct image_info info;
	int ret = 0, decodes = 0;
	size_t made = 0;
	void *orig = NULL;
	size_t len = 0;

	if (n > RENDITIONS_MAX || !results) {
		json_decref(results);
		return finish(w, rec, JOB_FAILED, "too many renditions");
	}
	for (i = 0; i < n; i++) {
		const char *text = json_string_value(json_array_get(names, i));
		rs[i].pl =
		        text ? pipeline_parse(text, &w->set, why, sizeof(why))
		             : NULL;
		if (!rs[i].pl ||
		    job_result_key_of(sha, rs[i].pl, &w->set, format,
		                      lim->keep_metadata, rs[i].key,
		                      sizeof(rs[i].key))) {
			snprintf(
			        reason, sizeof(reason),
			        "rendition %zu: pipeline no longer valid on this node: %s",
			        i + 1, rs[i].pl ? "no key" : why);
			ret = finish(w, rec, JOB_FAILED, reason);
			goto out_free;
		}
		pls[i] = rs[i].pl;
	}
	set_processed(w, rec, pls, n);
	json_object_set_new(rec, "result", json_string(rs[0].key));
	/* outputs already made (by a single job too) are taken as they are */
	for (i = 0; i < n; i++) {
		json_t *probe = json_object();
		rs[i].stored =
		        probe && output_from_meta(w, probe, rs[i].key) == 0;
		if (rs[i].stored)
			json_array_append(results,
			                  json_object_get(probe, "output"));
		else
			json_array_append_new(results, json_null());
		made += !rs[i].stored;
		json_decref(probe);
	}
	if (made) {
		ret = begin_running(w, d, rec, id, &orig, &len);
		if (ret) {
			ret = ret > 0 ? 0 : ret;
			goto out_free;
		}
		notify_busy(w);
		watchdog_arm(w->wd, rec, w->deadline_ms);
		ret = image_probe(orig, len, lim, &info, why, sizeof(why));
		if (!ret)
			ret = renditions_run(rs, n, &w->set, orig, len, &info,
			                     lim, &decodes, why, sizeof(why));
		watchdog_disarm(w->wd);
		free(orig);
		if (w->node->metrics)
			atomic_fetch_add(&w->node->metrics->decodes,
			                 (uint64_t)decodes);
		if (ret) {
			log_info("worker", "job failed id=%s reason=\"%s\"", id,
			         why);
			ret = finish(w, rec, JOB_FAILED, why);
			goto out_free;
		}
	}
	for (i = 0; i < n; i++) {
		if (rs[i].stored)
			continue;
		ret = store_output(w, rs[i].key, &rs[i].out, &meta);
		if (ret)
			goto out_free;
		json_array_set_new(results, i, meta);
		for (size_t k = 0; w->node->metrics && k < rs[i].pl->n; k++)
			metrics_filter_used(w->node->metrics,
			                    rs[i].pl->steps[k].name);
	}
	for (i = 0; i < n; i++)
		json_object_set(json_array_get(results, i), "pipeline",
		                json_array_get(names, i));
	json_object_set(rec, "output", json_array_get(results, 0));
	json_object_set(rec, "results", results);
	json_object_set_new(rec, "decodes", json_integer(decodes));
	ret = finish(w, rec, JOB_DONE, NULL);
out_free:
	renditions_out_free(rs, n);
	for (i = 0; i < n; i++)
		pipeline_free(rs[i].pl);
	json_decref(results);
	return ret;
}

/*
 * Trouble that passes (storage or broker away for a while): the job is
 * kept and retried here rather than released at once, since every
 * release counts as a delivery and an outage would otherwise burn a
 * job's whole delivery limit in seconds.
 */
static bool transient(int ret)
{
	switch (-ret) {
	case ETIMEDOUT:
	case ENOTCONN:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case EAGAIN:
	case EIO:
	case ESTALE: return true;
	default: return false;
	}
}

/*
 * run_job with the transport ticking meanwhile, from a thread (run_job
 * never uses the transport): the spool renews the job's lease, so a job
 * that runs longer than the lease is not handed to a second worker. If no
 * thread can be made, the job runs anyway: a lease at least job_timeout
 * long (checked with the config) still covers it.
 */
static int run_job_ticking(struct worker *w, const struct imgnode_delivery *d,
                           struct job_msg *msg, json_t *rec)
{
	int ret;

	/* one thread for the worker's life, paused between jobs */
	if (w->ticking) {
		ticker_resume(&w->ticker);
	} else {
		ret = ticker_start(&w->ticker, transport_ops(&w->set),
		                   w->set.transport->state, TICK_MS);
		w->ticking = ret == 0;
		if (ret)
			log_warn(
			        "worker",
			        "job id=%s runs without lease renewal: no thread: %s",
			        msg->id, strerror(-ret));
	}
	ret = run_job(w, d, msg, rec);
	if (w->ticking)
		ticker_pause(&w->ticker);
	return ret;
}

/* Sleeps ms while heartbeating; the transport keeps its connection. */
static void pause_busy(struct worker *w, int64_t ms)
{
	struct timespec step = {0, 200 * 1000000};

	for (int64_t t = 0; t < ms && !draining; t += 200) {
		transport_ops(&w->set)->tick(w->set.transport->state);
		notify_busy(w);
		nanosleep(&step, NULL);
	}
}

/* One attempt at a delivery: 0 when settled, or a transient -errno. */
static int attempt(struct worker *w, const struct imgnode_delivery *d,
                   struct job_msg *msg)
{
	const struct imgnode_transport_ops *tr = transport_ops(&w->set);
	void *ts = w->set.transport->state;
	char why[512];
	enum job_status status;
	json_t *rec;
	int ret;

	notify_busy(w);
	rec = job_record_get(w->set.storage, msg->id, &ret);
	if (!rec) {
		if (transient(ret))
			return ret;
		snprintf(why, sizeof(why), "no record for job %s: %s", msg->id,
		         strerror(-ret));
		log_warn("worker", "%s", why);
		tr->reject(ts, d, why);
		return 0;
	}
	status = job_record_status(rec);
	/* reply before ack: the delivery (and its reply_to) is the
	 * plugin's until it is settled */
	if (job_status_final(status)) {
		reply(w, d, msg->id,
		      status); /* a duplicate of a finished job */
		if (draining)
			stop_consuming(w);
		tr->ack(ts, d);
	} else if ((ret = run_job_ticking(w, d, msg, rec)) == 0) {
		status = job_record_status(rec);
		log_debug("worker", "job %s id=%s attempt=%u",
		          job_status_name(status), msg->id, d->attempt);
		reply(w, d, msg->id, status);
		if (draining)
			stop_consuming(w);
		tr->ack(ts, d);
	} else if (!transient(ret)) {
		log_warn("worker", "job id=%s released: %s", msg->id,
		         strerror(-ret));
		tr->release(ts, d);
		ret = 0;
	}
	json_decref(rec);
	return ret;
}

/* One delivery, settled one way or another. */
static void handle(struct worker *w, const struct imgnode_delivery *d)
{
	const struct imgnode_transport_ops *tr = transport_ops(&w->set);
	void *ts = w->set.transport->state;
	int64_t waited = 0, backoff = 250;
	char why[512];
	struct job_msg msg;
	int ret;

	if (job_msg_decode(d->body, d->len, &msg, why, sizeof(why))) {
		log_warn("worker", "dead-lettering a bad message: %s", why);
		tr->reject(ts, d, why);
		return;
	}
	if (msg.request_id) { /* every line about this job names it */
		char ctx[JOB_REQUEST_ID_MAX + 16];
		snprintf(ctx, sizeof(ctx), "request_id=%s", msg.request_id);
		log_set_context(ctx);
	}
	if (d->attempt > 1 && w->node->metrics)
		atomic_fetch_add(&w->node->metrics->redelivered, 1);
	while ((ret = attempt(w, d, &msg)) != 0) {
		if (draining || waited >= w->conf->app->workers.job_timeout) {
			log_warn(
			        "worker",
			        "job id=%s released after %lld ms of storage or transport trouble: %s",
			        msg.id, (long long)waited, strerror(-ret));
			tr->release(ts, d);
			break;
		}
		if (waited == 0)
			log_warn("worker",
			         "job id=%s waits for storage or transport: %s",
			         msg.id, strerror(-ret));
		pause_busy(w, backoff);
		waited += backoff;
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
	log_set_context(NULL);
	job_msg_clear(&msg);
}

/*
 * Images are batch work: a worker yields the CPU to the ingress and the
 * supervisor, whose wake-ups are what a client waits on. Threads made
 * later (libvips', the transport's) inherit both settings.
 */
static void lower_priority(int64_t incr)
{
	struct sched_param sp = {0};

	if (incr <= 0)
		return;
	errno = 0;
	if (nice((int)incr) == -1 && errno)
		log_warn("worker", "unable to lower the priority by %lld: %s",
		         (long long)incr, strerror(errno));
	if (sched_setscheduler(0, SCHED_BATCH, &sp))
		log_warn("worker", "unable to use SCHED_BATCH: %s",
		         strerror(errno));
}

int worker_main(void *arg, const char *id)
{
	struct node *node = arg;
	struct worker w = {.node = node, .conf = node->conf, .id = id};
	const struct imgnode_transport_ops *tr;
	struct sigaction sa = {.sa_handler = on_term};
	char err[CONF_ERR_MAX];
	struct overlays *overlays;
	int64_t jobs = 0;
	int ret, failures = 0;

	log_set_process(id);
	sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: consume wakes up */
	signal(SIGPIPE, SIG_IGN);
	/* the sandbox: secrets gone at once, memory bounded before libvips,
	 * system calls once everything is started and connected */
	sandbox_forget_secrets(w.conf);
	sandbox_oom_first();
	lower_priority(w.conf->app->workers.nice);
	ret = sandbox_limit_memory(w.conf->app->workers.max_memory, err,
	                           sizeof(err));
	if (!ret)
		ret = image_init((int)w.conf->app->workers.concurrency, err,
		                 sizeof(err));
	image_set_sequential(w.conf->app->workers.sequential_access);
	if (!ret)
		ret = startup_plugins(&w.set, w.conf, true, err, sizeof(err));
	if (ret) {
		log_error("worker", "cannot start%s: %s",
		          w.conf->app->workers.max_memory
		                  ? " (within [workers] max_memory)"
		                  : "",
		          err);
		plugin_set_free(&w.set);
		return startup_exit_code(ret);
	}
	/* the images overlay(image=ID) names, from this worker's storage */
	overlays = overlays_new(&w.set, &w.conf->app->limits);
	if (overlays)
		image_set_fetch(overlays_fetch, overlays);
	ret = watchdog_start(&w.wd, w.set.storage,
	                     w.conf->app->workers.job_timeout, node->metrics,
	                     err, sizeof(err));
	if (ret)
		log_warn(
		        "worker",
		        "no deadline watchdog (%s): a job killed at job_timeout is retried up to the delivery limit",
		        err);
	/* after the watchdog's thread and storage instance: all covered */
	ret = sandbox_enter(w.conf->app->workers.seccomp, err, sizeof(err));
	if (ret) {
		log_error("worker", "cannot start: %s ([workers] seccomp)",
		          err);
		watchdog_stop(w.wd);
		overlays_free(overlays);
		plugin_set_free(&w.set);
		return EXIT_PERMANENT;
	}
	tr = transport_ops(&w.set);
	proc_notify_ready();
	log_debug("worker", "ready generation=%u", node->generation);
	while (!draining) {
		struct imgnode_delivery d;

		tr->tick(w.set.transport->state);
		proc_notify_alive();
		ret = tr->consume(w.set.transport->state, IMGNODE_QUEUE_JOBS,
		                  &d, 1000);
		if (ret == -ETIMEDOUT || ret == -EINTR)
			continue;
		if (ret) {
			/* broker away: back off, keep heartbeating */
			if (failures++ % 10 == 0)
				log_warn("worker", "cannot consume: %s",
				         strerror(-ret));
			struct timespec pause = {0, 200 * 1000000};
			nanosleep(&pause, NULL);
			continue;
		}
		failures = 0;
		notify_busy(&w);
		/* the last job before a recycle: what the transport sent
		 * ahead goes back now, to the other workers */
		if (w.conf->app->workers.max_jobs &&
		    jobs + 1 >= w.conf->app->workers.max_jobs)
			stop_consuming(&w);
		handle(&w, &d);
		proc_notify_idle();
		w.deadline_ms = 0; /* the next job's first busy line is sent */
		if (w.conf->app->workers.max_jobs &&
		    ++jobs >= w.conf->app->workers.max_jobs) {
			log_info("worker", "recycling after %lld jobs",
			         (long long)jobs);
			proc_notify_recycle();
			break;
		}
	}
	if (w.ticking)
		ticker_stop(&w.ticker);
	watchdog_stop(w.wd);
	image_set_fetch(NULL, NULL);
	overlays_free(overlays);
	plugin_set_free(&w.set);
	return 0;
}
