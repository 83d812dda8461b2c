/*
 * Metrics in shared memory (see metrics.h). Writers only ever add with
 * relaxed atomics; a reader may see a histogram mid-update, which
 * Prometheus tolerates.
 */
#include "metrics.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const double bounds[METRICS_BUCKETS - 1] = {
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct metrics *metrics_create(void)
{
	void *p = mmap(NULL, sizeof(struct metrics), PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void metrics_observe(struct histogram *h, int64_t us)
{
	size_t i = 0;

	if (us < 0)
		us = 0;
	while (i < METRICS_BUCKETS - 1 && (double)us / 1e6 > bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us,
	                          memory_order_relaxed);
}

_Atomic int64_t *metrics_inflight_slot(struct metrics *m)
{
	int me = (int)getpid();

	for (size_t i = 0; i < METRICS_INGRESS_SLOTS; i++) {
		int pid = atomic_load(&m->inflight[i].pid);

		if (pid == me)
			return &m->inflight[i].jobs;
		if (pid != 0 && (kill(pid, 0) == 0 || errno != ESRCH))
			continue;
		if (atomic_compare_exchange_strong(&m->inflight[i].pid, &pid,
		                                   me)) {
			atomic_store(&m->inflight[i].jobs, 0);
			return &m->inflight[i].jobs;
		}
	}
	return &m->inflight[0].jobs;
}

int64_t metrics_inflight(struct metrics *m)
{
	int64_t n = 0;

	for (size_t i = 0; i < METRICS_INGRESS_SLOTS; i++)
		n += atomic_load(&m->inflight[i].jobs);
	return n;
}

void metrics_filter_used(struct metrics *m, const char *name)
{
	for (size_t i = 0; i < METRICS_FILTERS; i++) {
		int expected = 0;

		if (atomic_load(&m->filters[i].claimed) == 2 &&
		    strcmp(m->filters[i].name, name) == 0) {
			atomic_fetch_add(&m->filters[i].jobs, 1);
			return;
		}
		if (atomic_compare_exchange_strong(&m->filters[i].claimed,
		                                   &expected, 1)) {
			snprintf(m->filters[i].name, sizeof(m->filters[i].name),
			         "%s", name);
			atomic_store(&m->filters[i].claimed, 2);
			atomic_fetch_add(&m->filters[i].jobs, 1);
			return;
		}
		while (atomic_load(&m->filters[i].claimed) == 1)
			; /* another process is writing the name: a few ns */
		if (strcmp(m->filters[i].name, name) == 0) {
			atomic_fetch_add(&m->filters[i].jobs, 1);
			return;
		}
	}
}

struct out {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void put(struct out *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = true;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		char *bigger = realloc(o->buf, o->cap * 2 + (size_t)n);
		if (!bigger) {
			o->failed = true;
			return;
		}
		o->buf = bigger;
		o->cap = o->cap * 2 + (size_t)n;
	}
}

static void histogram(struct out *o, const char *name, const char *help,
                      struct histogram *h)
{
	uint64_t cum = 0;

	put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cum += atomic_load_explicit(&h->bucket[i],
		                            memory_order_relaxed);
		if (i < METRICS_BUCKETS - 1)
			put(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
			    (unsigned long long)cum);
		else
			put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name,
			    (unsigned long long)cum);
	}
	put(o, "%s_sum %.6f\n%s_count %llu\n", name,
	    (double)atomic_load(&h->sum_us) / 1e6, name,
	    (unsigned long long)atomic_load(&h->count));
}

static void counter(struct out *o, const char *name, const char *help,
                    uint64_t v)
{
	put(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
	    name, (unsigned long long)v);
}

char *metrics_render(struct metrics *m)
{
	static const char *const outcomes[] = {"done", "failed", "cached"};
	static const char *const swept_kinds[] = {"result", "original",
	                                          "record", "idempotency"};
	static const char *const webhook_outcomes[] = {"delivered", "retry",
	                                               "gave_up"};
	struct out o = {malloc(8192), 0, 8192, false};

	if (!o.buf)
		return NULL;
	o.buf[0] = '\0';
	counter(&o, "imgnode_jobs_accepted_total",
	        "Jobs accepted by the ingress (including result cache hits).",
	        atomic_load(&m->accepted));
	put(&o, "# HELP imgnode_jobs_total Jobs finished, by outcome.\n"
	        "# TYPE imgnode_jobs_total counter\n");
	for (int i = 0; i < OUTCOMES; i++)
		put(&o, "imgnode_jobs_total{outcome=\"%s\"} %llu\n",
		    outcomes[i],
		    (unsigned long long)atomic_load(&m->outcome[i]));
	counter(&o, "imgnode_redeliveries_total",
	        "Job deliveries after the first (crashes, timeouts).",
	        atomic_load(&m->redelivered));
	put(&o, "# HELP imgnode_stuck_jobs_total Jobs found queued or running "
	        "past [workers] stuck_after, by what the sweep did.\n"
	        "# TYPE imgnode_stuck_jobs_total counter\n");
	put(&o, "imgnode_stuck_jobs_total{action=\"republished\"} %llu\n",
	    (unsigned long long)atomic_load(&m->stuck_republished));
	put(&o, "imgnode_stuck_jobs_total{action=\"failed\"} %llu\n",
	    (unsigned long long)atomic_load(&m->stuck_failed));
	put(&o, "# HELP imgnode_swept_objects_total Objects retention deleted "
	        "([retention]), by kind.\n"
	        "# TYPE imgnode_swept_objects_total counter\n");
	for (int i = 0; i < SWEPT_KINDS; i++)
		put(&o, "imgnode_swept_objects_total{kind=\"%s\"} %llu\n",
		    swept_kinds[i],
		    (unsigned long long)atomic_load(&m->swept[i]));
	put(&o, "# HELP imgnode_swept_bytes_total Bytes of the objects "
	        "retention deleted, by kind.\n"
	        "# TYPE imgnode_swept_bytes_total counter\n");
	for (int i = 0; i < SWEPT_KINDS; i++)
		put(&o, "imgnode_swept_bytes_total{kind=\"%s\"} %llu\n",
		    swept_kinds[i],
		    (unsigned long long)atomic_load(&m->swept_bytes[i]));
	counter(&o, "imgnode_retention_passes_total",
	        "Whole retention passes this node made over the store.",
	        atomic_load(&m->retention_passes));
	counter(&o, "imgnode_idempotent_replays_total",
	        "Submissions answered the job an earlier one with the same Idempotency-Key made (Idempotent-Replayed: true).",
	        atomic_load(&m->idempotent_replays));
	put(&o, "# HELP imgnode_webhooks_total Webhook attempts, by outcome "
	        "(retry: failed, tried again later).\n"
	        "# TYPE imgnode_webhooks_total counter\n");
	for (int i = 0; i < WEBHOOK_OUTCOMES; i++)
		put(&o, "imgnode_webhooks_total{outcome=\"%s\"} %llu\n",
		    webhook_outcomes[i],
		    (unsigned long long)atomic_load(&m->webhooks[i]));
	put(&o, "# HELP imgnode_unqueued_records_total Refused submissions "
	        "whose record could not be removed: marked failed, or left "
	        "for the sweep.\n"
	        "# TYPE imgnode_unqueued_records_total counter\n");
	put(&o, "imgnode_unqueued_records_total{action=\"failed\"} %llu\n",
	    (unsigned long long)atomic_load(&m->unqueued_failed));
	put(&o, "imgnode_unqueued_records_total{action=\"left\"} %llu\n",
	    (unsigned long long)atomic_load(&m->unqueued_left));
	counter(&o, "imgnode_result_cache_hits_total",
	        "Uploads whose result was in storage already (done at once).",
	        atomic_load(&m->cache_hits));
	counter(&o, "imgnode_result_cache_misses_total",
	        "Uploads whose result was not in storage (a job was queued).",
	        atomic_load(&m->cache_misses));
	counter(&o, "imgnode_bytes_in_total", "Bytes of originals uploaded.",
	        atomic_load(&m->bytes_in));
	counter(&o, "imgnode_bytes_out_total", "Bytes of results produced.",
	        atomic_load(&m->bytes_out));
	counter(&o, "imgnode_decodes_total",
	        "Originals decoded by the workers (once per job, renditions too).",
	        atomic_load(&m->decodes));
	counter(&o, "imgnode_child_restarts_total",
	        "Children (workers, ingress, reaper) restarted after a crash.",
	        atomic_load(&m->restarts));
	put(&o,
	    "# HELP imgnode_jobs_inflight Jobs this node accepted that "
	    "have not finished.\n# TYPE imgnode_jobs_inflight gauge\n"
	    "imgnode_jobs_inflight %lld\n",
	    (long long)metrics_inflight(m));
	put(&o,
	    "# HELP imgnode_draining 1 while the node is drained "
	    "(imgnodectl drain): uploads get 503.\n"
	    "# TYPE imgnode_draining gauge\nimgnode_draining %d\n",
	    atomic_load(&m->draining) ? 1 : 0);
	put(&o,
	    "# HELP imgnode_workers_ready Workers able to take a job "
	    "(running, or replaced after a recycle); 0 makes /readyz say "
	    "503.\n# TYPE imgnode_workers_ready gauge\n"
	    "imgnode_workers_ready %lld\n"
	    "# HELP imgnode_workers_alive Worker processes (starting, "
	    "running or stopping).\n# TYPE imgnode_workers_alive gauge\n"
	    "imgnode_workers_alive %lld\n",
	    (long long)atomic_load(&m->workers.ready),
	    (long long)atomic_load(&m->workers.alive));
	put(&o, "# HELP imgnode_http_responses_total HTTP responses by "
	        "class.\n# TYPE imgnode_http_responses_total counter\n");
	for (int i = 1; i < 6; i++)
		put(&o, "imgnode_http_responses_total{code=\"%dxx\"} %llu\n", i,
		    (unsigned long long)atomic_load(&m->http[i]));
	histogram(&o, "imgnode_queue_wait_seconds",
	          "Time from upload to a worker starting the job.",
	          &m->queue_wait);
	histogram(&o, "imgnode_processing_seconds",
	          "Time a worker spent on a job (fetch, pipeline, store).",
	          &m->processing);
	histogram(&o, "imgnode_job_seconds", "Time from upload to result.",
	          &m->total);
	put(&o, "# HELP imgnode_filter_jobs_total Jobs processed, by filter "
	        "used.\n# TYPE imgnode_filter_jobs_total counter\n");
	for (size_t i = 0; i < METRICS_FILTERS; i++)
		if (atomic_load(&m->filters[i].claimed) == 2)
			put(&o,
			    "imgnode_filter_jobs_total{filter=\"%s\"} %llu\n",
			    m->filters[i].name,
			    (unsigned long long)atomic_load(
			            &m->filters[i].jobs));
	if (o.failed) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}
