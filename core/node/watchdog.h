/*
 * A worker's deadline watchdog: a thread with its own instance of the
 * storage plugin that, when a job is still running just before the
 * supervisor kills the worker for passing [workers] job_timeout, writes
 * the overrun into the job's record. The kill looks like any crash to the
 * transport (spool and amqp both redeliver the job); the record is what
 * makes a deadline kill count: the first overrun is retried once, the
 * second marks the job failed ("killed after job_timeout (60 s) on 2
 * attempts"), and the delivery after that finds it finished and acks it.
 */
#ifndef IMGNODE_WATCHDOG_H
#define IMGNODE_WATCHDOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;
struct plugin;
struct watchdog;

/* Overruns of one job after which it is failed for good. */
#define WATCHDOG_MAX_OVERRUNS 2

/*
 * Starts the watchdog for jobs limited to timeout_ms: its thread and an
 * instance of storage. m (may be NULL) counts the jobs it fails. Returns
 * 0 or -errno with a reason in err.
 */
int watchdog_start(struct watchdog **out, const struct plugin *storage,
                   int64_t timeout_ms, struct metrics *m, char *err,
                   size_t errlen);

/*
 * Arms the watchdog for the job whose record is rec (copied: rec stays
 * the caller's) and whose deadline is the CLOCK_MONOTONIC time deadline_ms.
 */
void watchdog_arm(struct watchdog *w, json_t *rec, int64_t deadline_ms);

/*
 * Disarms it: once this returns, the watchdog writes nothing more for the
 * job (a write under way is waited for), so the caller's own record write
 * comes last. NULL is fine.
 */
void watchdog_disarm(struct watchdog *w);

/* Ends the thread and the instance. NULL is fine. */
void watchdog_stop(struct watchdog *w);

#endif
