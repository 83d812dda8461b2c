/*
 * The node's metrics: counters and histograms in one shared, anonymous
 * mapping that the supervisor creates before forking, so every child adds
 * to the same numbers with atomics and the ingress can render them all for
 * GET /metrics (Prometheus text format).
 */
#ifndef IMGNODE_METRICS_H
#define IMGNODE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS 12 /* 5ms .. 10s, then +Inf */
#define METRICS_FILTERS 64
#define METRICS_INGRESS_SLOTS 8
#define METRICS_HINTS 256

struct histogram {
	_Atomic uint64_t bucket[METRICS_BUCKETS]; /* cumulative on render */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_us;
};

enum job_outcome { OUTCOME_DONE, OUTCOME_FAILED, OUTCOME_CACHED, OUTCOMES };

/* What retention deletes (retention.c). */
enum swept_kind {
	SWEPT_RESULT,
	SWEPT_ORIGINAL,
	SWEPT_RECORD,
	SWEPT_IDEMPOTENCY, /* idem/ records past [ingress] idempotency_window */
	SWEPT_KINDS
};

/* What became of a webhook attempt (notifier.c). */
enum webhook_outcome {
	WEBHOOK_DELIVERED,
	WEBHOOK_RETRY,
	WEBHOOK_GAVE_UP,
	WEBHOOK_OUTCOMES
};

struct metrics {
	_Atomic uint64_t accepted; /* 202s and cache hits */
	_Atomic uint64_t outcome[OUTCOMES]; /* jobs by outcome */
	_Atomic uint64_t redelivered; /* deliveries with attempt > 1 */
	/* records the reaper's sweep found stuck (queued or running past
	 * [workers] stuck_after): published again, or marked failed */
	_Atomic uint64_t stuck_republished, stuck_failed;
	/* refused submissions (503) whose record could not be removed:
	 * marked failed, or left for the sweep (storage down too) */
	_Atomic uint64_t unqueued_failed, unqueued_left;
	/* objects (and their bytes) retention deleted, by kind */
	_Atomic uint64_t swept[SWEPT_KINDS], swept_bytes[SWEPT_KINDS];
	_Atomic uint64_t retention_passes; /* whole passes this node made */
	/* submissions answered another's job by their Idempotency-Key */
	_Atomic uint64_t idempotent_replays;
	_Atomic uint64_t webhooks[WEBHOOK_OUTCOMES]; /* attempts, by outcome */
	/* ids of jobs with a callback the ingress accepted, for the notifier
	 * (callback.h: a hint; the store's index is the truth) */
	struct {
		_Atomic uint64_t head;
		struct metrics_hint {
			_Atomic uint64_t seq; /* the push that wrote it, + 1 */
			char id[33];
		} slot[METRICS_HINTS];
	} hints;
	_Atomic uint64_t bytes_in; /* originals uploaded */
	_Atomic uint64_t bytes_out; /* results produced */
	_Atomic uint64_t decodes; /* originals decoded by workers */
	_Atomic uint64_t restarts; /* children restarted */
	_Atomic uint64_t cache_hits, cache_misses; /* result cache lookups */
	/* set by the supervisor (imgnodectl drain): uploads get 503 */
	atomic_bool draining;
	_Atomic int64_t submitting; /* uploads being taken, on all ingresses */
	/* set by the supervisor as the workers pool changes: with none
	 * ready (and a pool wanted), /readyz says 503 */
	struct {
		_Atomic int64_t wanted; /* [workers] count */
		_Atomic int64_t ready, alive, starting;
		_Atomic int64_t next_start; /* CLOCK_MONOTONIC ms; 0: none */
	} workers;
	/* this node's jobs not finished, one slot per ingress process, so a
	 * slot of an ingress that died (and never heard of its jobs' ends) is
	 * taken over and zeroed instead of counting forever */
	struct {
		_Atomic int pid;
		_Atomic int64_t jobs;
	} inflight[METRICS_INGRESS_SLOTS];
	_Atomic uint64_t http[6]; /* responses by class: [2] = 2xx */
	struct histogram queue_wait; /* created -> started */
	struct histogram processing; /* started -> finished */
	struct histogram total; /* created -> finished */
	struct {
		char name[32]; /* set once, under the first claim of slot */
		_Atomic int claimed;
		_Atomic uint64_t jobs;
	} filters[METRICS_FILTERS];
};

/* The shared mapping, zeroed; NULL with errno on failure. */
struct metrics *metrics_create(void);

void metrics_observe(struct histogram *h, int64_t us);

/*
 * This process's in-flight counter: a free slot, or one whose process is
 * gone (zeroed). Slot 0 is shared when all are taken.
 */
_Atomic int64_t *metrics_inflight_slot(struct metrics *m);

/* Jobs in flight on the whole node. */
int64_t metrics_inflight(struct metrics *m);

/* Counts a job that used filter name. */
void metrics_filter_used(struct metrics *m, const char *name);

/* The Prometheus text; caller frees. NULL on ENOMEM. */
char *metrics_render(struct metrics *m);

#endif
