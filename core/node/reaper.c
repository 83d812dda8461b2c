/*
 * The reaper: consumes the dead-letter queue and marks each job there
 * failed, with the transport's reason ("delivery limit (5) exceeded"), so a
 * poison job ends in a record a user can read instead of vanishing. Every
 * quarter of [workers] stuck_after (at most 5 min) it also sweeps the job
 * records for jobs stuck in queued or running (sweep.c), and every
 * [retention] interval it deletes what has expired (retention.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../base.h"
#include "../config.h"
#include "../log.h"
#include "../spawn.h"
#include "job.h"
#include "metrics.h"
#include "retention.h"
#include "startup.h"
#include "sweep.h"

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Marks the job of d failed; 0 to ack, -errno to release and retry. */
static int reap(struct plugin_set *set, struct metrics *m,
                const struct imgnode_delivery *d)
{
	char why[512], reason[768];
	struct job_msg msg;
	json_t *rec;
	int ret;

	if (job_msg_decode(d->body, d->len, &msg, why, sizeof(why))) {
		log_warn("reaper", "dropping a dead letter that is no job: %s",
		         why);
		return 0;
	}
	rec = job_record_get(set->storage, msg.id, &ret);
	if (!rec) {
		log_warn("reaper", "dead job id=%s has no record: %s", msg.id,
		         strerror(-ret));
		job_msg_clear(&msg);
		return ret == -ENOENT ? 0 : ret;
	}
	if (job_status_final(job_record_status(rec))) {
		ret = 0; /* it finished after all */
	} else {
		json_int_t overruns =
		        json_integer_value(json_object_get(rec, "overruns"));
		char why[128] = "the input may crash or hang the worker";

		/* the worker's watchdog counted deadline kills (watchdog.h) */
		if (overruns > 0)
			snprintf(why, sizeof(why),
			         "killed after job_timeout %lld time%s",
			         (long long)overruns, overruns > 1 ? "s" : "");
		snprintf(reason, sizeof(reason),
		         "gave up after %u deliveries: %s (%s)",
		         (unsigned)json_integer_value(
		                 json_object_get(rec, "attempts")),
		         d->reason ? d->reason : "dead-lettered", why);
		job_record_set_status(rec, JOB_FAILED, reason);
		ret = job_record_put(set->storage, rec);
		if (!ret) {
			log_warn("reaper", "job failed id=%s reason=\"%s\"%s%s",
			         msg.id, reason,
			         msg.request_id ? " request_id=" : "",
			         msg.request_id ? msg.request_id : "");
			if (m)
				atomic_fetch_add(&m->outcome[OUTCOME_FAILED],
				                 1);
		}
	}
	if (!ret && d->reply_to) {
		char body[JOB_REPLY_MAX];
		int n = job_reply_encode(msg.id, JOB_FAILED, body,
		                         sizeof(body));

		if (n > 0)
			transport_ops(set)->reply(set->transport->state,
			                          d->reply_to, body, (size_t)n);
	}
	json_decref(rec);
	job_msg_clear(&msg);
	return ret;
}

int reaper_main(void *arg, const char *id)
{
	struct node *node = arg;
	struct plugin_set set = {0};
	struct sigaction sa = {.sa_handler = on_term};
	const struct imgnode_transport_ops *tr;
	char err[CONF_ERR_MAX];
	int64_t next_sweep, next_retention;
	int ret;

	log_set_process(id);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	ret = startup_plugins(&set, node->conf, false, err, sizeof(err));
	if (ret) {
		log_error("reaper", "cannot start: %s", err);
		plugin_set_free(&set);
		return startup_exit_code(ret);
	}
	tr = transport_ops(&set);
	proc_notify_ready();
	next_sweep = now_ms() + sweep_interval_ms(node->conf);
	next_retention = now_ms() + node->conf->app->retention.interval;
	while (!stopping) {
		struct imgnode_delivery d;

		if (now_ms() >= next_sweep) {
			sweep_run(&set, node->conf, node->metrics, &stopping);
			next_sweep = now_ms() + sweep_interval_ms(node->conf);
		}
		if (now_ms() >= next_retention) {
			retention_run(&set, node->conf, node->metrics,
			              &stopping);
			next_retention =
			        now_ms() + node->conf->app->retention.interval;
		}
		tr->tick(set.transport->state);
		proc_notify_alive();
		ret = tr->consume(set.transport->state, IMGNODE_QUEUE_DEAD, &d,
		                  1000);
		if (ret == -ETIMEDOUT || ret == -EINTR)
			continue;
		if (ret) {
			struct timespec pause = {0, 200 * 1000000};
			nanosleep(&pause, NULL);
			continue;
		}
		/* a record read and written, each within the storage's op
		 * timeout: during an outage that is longer than a heartbeat */
		proc_notify_busy(2 * node->conf->app->workers.job_timeout);
		if (reap(&set, node->metrics, &d) == 0)
			tr->ack(set.transport->state, &d);
		else
			tr->release(set.transport->state, &d);
	}
	plugin_set_free(&set);
	return 0;
}
