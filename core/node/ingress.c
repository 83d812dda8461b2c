/*
 * The ingress child, the process: set-up, the HTTP daemons (ingress_http.c)
 * and, on the main thread, the loop that turns workers' replies into
 * answers for waiting requests (ingress_wait.c), closes connections past
 * their deadline (ingress_conn.c), heartbeats the supervisor and, on
 * SIGTERM, stops taking connections and lets the requests in progress
 * finish before it exits.
 *
 * Replies only wake; the record in storage is the truth, and jobs whose
 * reply never comes (a lost reply queue, a job reaped without one) are
 * found finished by reading their records now and then (the sweep).
 */
#include "ingress.h"
#include "../base.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "../log.h"
#include "../spawn.h"
#include "../supervisor.h"
#include "image.h"
#include "metrics.h"
#include "node_conf.h"
#include "prober.h"
#include "startup.h"
#include "storer.h"

#define COMPONENT "ingress"
#define TURN_MS 200 /* longest sleep of the main loop */
#define REPLY_BATCH 64 /* replies taken per hold of io */
#define SWEEP_EVERY_MS 500 /* look for jobs finished without a reply */
#define SWEEP_AGE_MS 10000 /* ... among those older than this */
#define SWEEP_BATCH 16
#define STOP_WAIT_MS 1000 /* for a plugin call under way at exit */

/* ---- replies ---- */

/* The id of a reply (job_reply_decode), or false. */
static bool reply_id(const void *body, size_t len, char id[JOB_ID_LEN + 1])
{
	struct job_reply reply;

	if (job_reply_decode(body, len, &reply)) {
		log_warn(COMPONENT, "ignoring a reply without a job id len=%zu",
		         len);
		return false;
	}
	memcpy(id, reply.id, JOB_ID_LEN + 1);
	return true;
}

/*
 * The transport executor's idle function: takes every reply waiting (and
 * ticks the transport); wakes their jobs. 0, or the -errno that stopped it.
 */
static int drain_replies(void *arg)
{
	struct ingress *in = arg;
	const struct imgnode_transport_ops *t = transport_ops(&in->set);
	void *ts = in->set.transport->state;
	char ids[REPLY_BATCH][JOB_ID_LEN + 1];
	size_t n;
	int ret = 0;

	do {
		n = 0;
		if (t->tick)
			t->tick(ts);
		while (n < REPLY_BATCH) {
			struct imgnode_delivery d;

			ret = t->consume(ts, IMGNODE_QUEUE_REPLY, &d, 0);
			if (ret)
				break;
			n += reply_id(d.body, d.len, ids[n]);
		}
		if (ret == -ETIMEDOUT || ret == -EAGAIN || ret == -EINTR)
			ret = 0;
		for (size_t i = 0; i < n; i++)
			ingress_pending_finish(in, ids[i]);
	} while (n == REPLY_BATCH);
	return ret;
}

/* Reads the records of a few old jobs; forgets those that finished. On
 * the storage's executor (sweep_op), nobody waiting. */
struct sweep_op {
	struct exec_op op;
	struct ingress *in;
	size_t n;
	char ids[SWEEP_BATCH][JOB_ID_LEN + 1];
};

static int sweep_run(struct exec_op *op, void *state)
{
	struct sweep_op *o = (struct sweep_op *)op;
	struct ingress *in = o->in;
	int worst = 0;

	(void)state;
	for (size_t i = 0; i < o->n; i++) {
		const char *status;
		json_t *rec;
		int ret;

		rec = job_record_get(in->set.storage, o->ids[i], &ret);
		if (breaker_counts(ret))
			worst = ret;
		status = json_string_value(json_object_get(rec, "status"));
		if (ret == -ENOENT ||
		    job_status_final(job_status_parse(status))) {
			log_debug(
			        COMPONENT,
			        "job finished without a reply id=%s status=%s",
			        o->ids[i], status ? status : "gone");
			ingress_pending_finish(in, o->ids[i]);
		}
		json_decref(rec);
	}
	return worst;
}

static void sweep_drop(struct exec_op *op)
{
	free(op);
}

static void sweep(struct ingress *in, int64_t now)
{
	struct sweep_op *o;

	if (!executor_up(&in->storage_ex, NULL, 0, NULL))
		return; /* the ids stay stale: looked at again once it is up */
	o = calloc(1, sizeof(*o));
	if (!o)
		return;
	o->op.run = sweep_run;
	o->op.drop = sweep_drop;
	o->in = in;
	o->n = ingress_pending_stale(in, now, SWEEP_AGE_MS, o->ids,
	                             SWEEP_BATCH);
	if (!o->n) {
		free(o);
		return;
	}
	executor_post(&in->storage_ex, &o->op);
}

/* ---- the process ---- */

/* SIGTERM: no new connections; the kernel sends them to a new ingress
 * listening on the same port (SO_REUSEPORT), or refuses them. */
static void begin_stop(struct ingress *in)
{
	MHD_socket fd = MHD_quiesce_daemon(in->daemon);

	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	if (in->admin) {
		fd = MHD_quiesce_daemon(in->admin);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	atomic_store(&in->quiescing, true);
	log_info(COMPONENT, "stopping: no new connections requests=%d",
	         atomic_load(&in->active));
}

/* Returns true when a signal asks to stop. */
static bool read_signal(int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM)
			return true;
		log_info(COMPONENT,
		         "ignoring signal=%s (a reload starts a new ingress)",
		         strsignal((int)si.ssi_signo));
	}
	return false;
}

/*
 * The main thread until the end: wait deadlines, heartbeats, signals, and
 * calls outlasting dependency_wait (their requests answer 503); it never
 * calls a plugin nor waits for one. After SIGTERM, requests in progress get half of [supervisor]
 * shutdown_timeout to finish; then waiters answer 202 (their jobs go on),
 * and at four fifths of it the daemon stops whatever is left, before the
 * supervisor's SIGKILL.
 */
static void run(struct ingress *in, int sfd)
{
	int64_t budget = in->conf->supervisor.shutdown_timeout;
	int64_t wait = ingress_io_deadline(in) - now_ms();
	int64_t next_sweep = now_ms() + SWEEP_EVERY_MS;
	int64_t stop_at = -1;
	bool released = false;

	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		int64_t now = now_ms();

		proc_notify_alive();
		executor_check(&in->storage_ex, wait);
		executor_check(&in->transport_ex, wait);
		executor_expire(&in->storage_ex, now, false);
		executor_expire(&in->transport_ex, now, false);
		ingress_waiters_expire(in, now, false);
		ingress_conn_sweep(in, now);
		if (now >= next_sweep) {
			sweep(in, now);
			next_sweep = now + SWEEP_EVERY_MS;
		}
		if (stop_at >= 0) {
			if (atomic_load(&in->active) == 0)
				break;
			if (!released && now >= stop_at - budget * 3 / 10) {
				ingress_waiters_expire(in, now, true);
				released = true;
			}
			if (now >= stop_at) {
				log_warn(
				        COMPONENT,
				        "stopping with requests=%d still in progress",
				        atomic_load(&in->active));
				break;
			}
		}
		if (poll(&pfd, 1, TURN_MS) < 0 && errno != EINTR) {
			log_error(COMPONENT, "unable to wait: %s",
			          strerror(errno));
			break;
		}
		if ((pfd.revents & POLLIN) && read_signal(sfd) && stop_at < 0) {
			begin_stop(in);
			stop_at = now_ms() + budget * 4 / 5;
		}
	}
	ingress_waiters_expire(in, 0, true);
	/* no request stays suspended on a call: the daemon stops next */
	executor_expire(&in->storage_ex, 0, true);
	executor_expire(&in->transport_ex, 0, true);
}

/* The label of a dependency in messages: its plugin, and the pool it
 * uses if it has one ("rados pool imgnode"); never its URL (secrets). */
static void label(char *buf, size_t len, const struct conf *conf,
                  const char *section, const struct plugin *p)
{
	const struct conf_entry *e = conf_find(conf, section, "pool");
	const char *pool = e ? e->value : NULL;

	for (const struct imgnode_conf_key *k = p->desc->conf_keys;
	     !pool && k && k->name; k++)
		if (strcmp(k->name, "pool") == 0)
			pool = k->def; /* its default */
	snprintf(buf, len, "%s%s%s", p->desc->name, pool ? " pool " : "",
	         pool ? pool : "");
	for (char *c = buf; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
}

/* Starts the storage's executor and the transport's. 0 or -errno with a
 * reason in err. */
static int start_executors(struct ingress *in, char *err, size_t errlen)
{
	const struct imgnode_transport_ops *t = transport_ops(&in->set);
	struct executor *se = &in->storage_ex, *te = &in->transport_ex;
	int ret;

	se->name = "storage";
	label(se->label, sizeof(se->label), in->conf, "storage",
	      in->set.storage);
	se->state = in->set.storage->state;
	se->ping = storage_ops(&in->set)->ping;
	se->idle_fd = -1;
	se->turn_ms = TURN_MS;
	te->name = "transport";
	label(te->label, sizeof(te->label), in->conf, "transport",
	      in->set.transport);
	te->state = in->set.transport->state;
	te->ping = t->ping;
	te->idle = drain_replies;
	te->idle_arg = in;
	te->idle_fd = t->pollfd ? t->pollfd(te->state) : -1;
	te->turn_ms = TURN_MS;
	ret = executor_start(se);
	if (!ret) {
		ret = executor_start(te);
		if (ret)
			executor_stop(se, STOP_WAIT_MS);
	}
	if (ret)
		snprintf(err, errlen, "unable to start a thread: %s",
		         strerror(-ret));
	return ret;
}

/*
 * Starts the filters the cost check calls (a predict hook gets the
 * filter's state); the others run only in workers, where libvips is
 * started (avif's start asks libvips what it can encode).
 */
static int start_predicting_filters(struct plugin_set *set, char *err,
                                    size_t errlen)
{
	for (struct plugin *p = set->head; p; p = p->next) {
		const struct imgnode_filter_ops *ops = p->desc->ops;
		int ret;

		if (p->desc->kind != IMGNODE_KIND_FILTER ||
		    p->desc->abi_minor < 1 || !ops->predict)
			continue;
		ret = plugin_start(p, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

int ingress_main(void *arg, const char *id)
{
	static struct metrics unshared; /* when run without a supervisor */
	struct node *node = arg;
	struct ingress in = {.node = node, .conf = node->conf};
	char err[CONF_ERR_MAX];
	sigset_t mask;
	int sfd, ret, code = EXIT_PERMANENT;
	bool stopped = true;

	log_set_process(id);
	in.metrics = node->metrics ? node->metrics : &unshared;
	in.inflight = metrics_inflight_slot(in.metrics);
	/* before any thread starts, so every thread inherits the mask */
	sigemptyset(&mask);
	sigaddset(&mask, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error(COMPONENT, "unable to make an event fd: %s",
		          strerror(errno));
		code = EXIT_TEMPORARY;
		goto out_close;
	}
	/* as image_init did when the ingress started libvips: at most two
	 * malloc arenas, or each HTTP thread's uploads grow one of its own */
	mallopt(M_ARENA_MAX, 2);
	/* no libvips here: uploads' headers are read by the probers (one
	 * that cannot start stops the ingress at once, with the reason) */
	in.probers = prober_pool_new(node->conf, err, sizeof(err));
	if (!in.probers) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = EXIT_TEMPORARY;
		goto out_close;
	}
	ret = startup_plugins(&in.set, node->conf, false, err, sizeof(err));
	if (!ret)
		ret = start_predicting_filters(&in.set, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = startup_exit_code(ret);
		goto out_free_set;
	}
	ret = storer_start(&in.storer, in.set.storage, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = startup_exit_code(ret);
		goto out_free_set;
	}
	ret = transport_ops(&in.set)->reply_open(
	        in.set.transport->state, in.reply_to, sizeof(in.reply_to));
	if (ret) {
		log_error(COMPONENT, "cannot start: no reply queue: %s",
		          strerror(-ret));
		code = startup_exit_code(ret);
		goto out_free_set;
	}
	if (ingress_pending_init(&in)) {
		log_error(COMPONENT, "out of memory");
		code = EXIT_TEMPORARY;
		goto out_free_set;
	}
	pthread_mutex_init(&in.jobs, NULL);
	pthread_mutex_init(&in.conns, NULL);
	ret = start_executors(&in, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = EXIT_TEMPORARY;
		goto out_free_buckets;
	}
	ret = ingress_http_start(&in, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = startup_exit_code(ret);
		goto out_stop_executors;
	}
	ret = ingress_http_start_admin(&in, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = startup_exit_code(ret);
		MHD_stop_daemon(in.daemon);
		goto out_stop_executors;
	}
	proc_notify_ready();
	run(&in, sfd);
	if (in.admin)
		MHD_stop_daemon(in.admin);
	MHD_stop_daemon(in.daemon);
	log_info(COMPONENT, "stopped");
	code = 0;
out_stop_executors:
	ingress_pending_clear(&in);
	/* a call stuck in a plugin keeps its state: then exit without
	 * freeing the plugins under it */
	stopped = executor_stop(&in.storage_ex, STOP_WAIT_MS);
	stopped = executor_stop(&in.transport_ex, STOP_WAIT_MS) && stopped;
	if (!stopped)
		goto out_close;
out_free_buckets:
	pthread_mutex_destroy(&in.conns);
	pthread_mutex_destroy(&in.jobs);
	ingress_pending_free(&in);
out_free_set:
	storer_stop(in.storer);
	plugin_set_free(&in.set);
out_close:
	prober_pool_free(in.probers);
	if (sfd >= 0)
		close(sfd);
	return code;
}
