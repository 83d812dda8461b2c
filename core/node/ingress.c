/*
 * The ingress child: the node's HTTP API (ingress_http.c) and, on the main
 * thread, the loop that turns workers' replies into answers for waiting
 * requests, heartbeats the supervisor and, on SIGTERM, stops taking
 * connections and lets the requests in progress finish before it exits.
 *
 * It also keeps the table of jobs this process published and has not heard
 * back about, which is what the node's in-flight count and each client's
 * (quota.h), and so the 429s, rest on. Replies only wake; the record in
 * storage is the truth, and jobs whose reply never comes (a lost reply
 * queue, a job reaped without one) are found finished by reading their
 * records now and then. Each ingress process counts its own jobs: during
 * a roll a client may hold its share in the old one and the new one.
 */
#include "ingress.h"

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

#include "../base.h"
#include "../log.h"
#include "../proc.h"
#include "../supervisor.h"
#include "child.h"
#include "image.h"
#include "metrics.h"
#include "node_conf.h"
#include "prober.h"
#include "storer.h"

#define COMPONENT "ingress"
#define TURN_MS 200 /* longest sleep of the main loop */
#define REPLY_BATCH 64 /* replies taken per hold of io */
#define SWEEP_EVERY_MS 5000 /* look for jobs finished without a reply */
#define SWEEP_AGE_MS 10000 /* ... among those older than this */
#define SWEEP_BATCH 16

void ingress_kick(struct ingress *in)
{
	uint64_t one = 1;
	ssize_t n = write(in->kick_fd, &one, sizeof(one));

	(void)n; /* a full counter already wakes the loop */
}

/* ---- the jobs this process published ---- */

static size_t bucket_of(const struct ingress *in, const char *id)
{
	uint32_t h = 0;

	/* ids are random hex: their first eight digits spread well */
	for (int i = 0; i < 8 && id[i]; i++)
		h = h << 4 |
		    (uint32_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	return h & (in->nbuckets - 1);
}

int ingress_pending_add(struct ingress *in, const char *id, const char *client)
{
	int64_t max = in->conf->app->ingress.max_inflight_per_client, held;
	struct pending *p = calloc(1, sizeof(*p));
	size_t b;
	int ret;

	if (!p)
		return -ENOMEM;
	snprintf(p->id, sizeof(p->id), "%s", id);
	snprintf(p->client, sizeof(p->client), "%s", client);
	p->since_ms = p->checked_ms = now_ms();
	pthread_mutex_lock(&in->jobs);
	/* checked again here, where it is counted: requests in parallel */
	ret = quota_take(in->quota, client, max ? max : INT64_MAX, &held);
	if (ret) {
		pthread_mutex_unlock(&in->jobs);
		free(p);
		return ret;
	}
	b = bucket_of(in, id);
	p->next = in->buckets[b];
	in->buckets[b] = p;
	in->npending++;
	pthread_mutex_unlock(&in->jobs);
	atomic_fetch_add(in->inflight, 1);
	return 0;
}

struct pending *ingress_pending_find(struct ingress *in, const char *id)
{
	struct pending *p = in->buckets[bucket_of(in, id)];

	while (p && strcmp(p->id, id) != 0)
		p = p->next;
	return p;
}

void ingress_pending_finish(struct ingress *in, const char *id)
{
	struct pending **pp, *p;

	pthread_mutex_lock(&in->jobs);
	for (pp = &in->buckets[bucket_of(in, id)]; (p = *pp); pp = &p->next)
		if (strcmp(p->id, id) == 0)
			break;
	if (!p) {
		pthread_mutex_unlock(&in->jobs);
		return; /* a duplicate reply, or a job of another process */
	}
	*pp = p->next;
	in->npending--;
	quota_release(in->quota, p->client);
	if (p->waiter)
		ingress_http_wake(in, p->waiter);
	pthread_mutex_unlock(&in->jobs);
	free(p);
	atomic_fetch_sub(in->inflight, 1);
}

/* At exit: nobody will hear about these, so they no longer count. */
static void pending_clear(struct ingress *in)
{
	size_t n = 0;

	pthread_mutex_lock(&in->jobs);
	for (size_t b = 0; b < in->nbuckets; b++) {
		struct pending *p = in->buckets[b], *next;

		for (; p; p = next) {
			next = p->next;
			free(p);
			n++;
		}
		in->buckets[b] = NULL;
	}
	in->npending = 0;
	pthread_mutex_unlock(&in->jobs);
	atomic_fetch_sub(in->inflight, (int64_t)n);
	if (n)
		log_info(
		        COMPONENT,
		        "leaving jobs=%zu unfinished (they complete without this process; no longer counted in flight)",
		        n);
}

int64_t ingress_client_inflight(struct ingress *in, const char *client)
{
	int64_t n;

	pthread_mutex_lock(&in->jobs);
	n = quota_held(in->quota, client);
	pthread_mutex_unlock(&in->jobs);
	return n;
}

/* ---- replies ---- */

/* The id of a reply ({"id": "...", "status": "..."}), or false. */
static bool reply_id(const void *body, size_t len, char id[JOB_ID_LEN + 1])
{
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *s = j ? json_string_value(json_object_get(j, "id")) : NULL;
	bool ok = s && job_id_valid(s);

	if (ok)
		memcpy(id, s, JOB_ID_LEN + 1);
	else
		log_warn(COMPONENT, "ignoring a reply without a job id len=%zu",
		         len);
	json_decref(j);
	return ok;
}

/*
 * Takes every reply waiting (and ticks the transport); wakes their jobs.
 * Returns how many replies came.
 */
static size_t drain_replies(struct ingress *in, int *last_err)
{
	const struct imgnode_transport_ops *t = transport_ops(&in->set);
	void *ts = in->set.transport->state;
	char ids[REPLY_BATCH][JOB_ID_LEN + 1];
	size_t n, total = 0;

	do {
		int ret = 0;

		n = 0;
		pthread_mutex_lock(&in->io);
		if (t->tick)
			t->tick(ts);
		while (n < REPLY_BATCH) {
			struct imgnode_delivery d;

			ret = t->consume(ts, IMGNODE_QUEUE_REPLY, &d, 0);
			if (ret)
				break;
			n += reply_id(d.body, d.len, ids[n]);
		}
		pthread_mutex_unlock(&in->io);
		if (ret == -ETIMEDOUT || ret == -EAGAIN || ret == -EINTR)
			ret = 0;
		if (ret != *last_err) {
			if (ret)
				log_warn(
				        COMPONENT,
				        "unable to read replies: %s (waiting requests answer from records)",
				        strerror(-ret));
			else
				log_info(COMPONENT, "reading replies again");
			*last_err = ret;
		}

		for (size_t i = 0; i < n; i++)
			ingress_pending_finish(in, ids[i]);
		total += n;
	} while (n == REPLY_BATCH);
	return total;
}

/* Reads the records of a few old jobs; forgets those that finished. */
static void sweep(struct ingress *in, int64_t now)
{
	char ids[SWEEP_BATCH][JOB_ID_LEN + 1];
	size_t n = 0;

	pthread_mutex_lock(&in->jobs);
	for (size_t b = 0; b < in->nbuckets && n < SWEEP_BATCH; b++)
		for (struct pending *p = in->buckets[b]; p && n < SWEEP_BATCH;
		     p = p->next) {
			if (now - p->since_ms < SWEEP_AGE_MS ||
			    now - p->checked_ms < SWEEP_AGE_MS)
				continue;
			p->checked_ms = now;
			memcpy(ids[n++], p->id, JOB_ID_LEN + 1);
		}
	pthread_mutex_unlock(&in->jobs);
	for (size_t i = 0; i < n; i++) {
		const char *status;
		json_t *rec;
		int ret;

		pthread_mutex_lock(&in->io);
		rec = job_record_get(in->set.storage, ids[i], &ret);
		pthread_mutex_unlock(&in->io);
		status = json_string_value(json_object_get(rec, "status"));
		if (ret == -ENOENT ||
		    (status && (strcmp(status, "done") == 0 ||
		                strcmp(status, "failed") == 0))) {
			log_debug(
			        COMPONENT,
			        "job finished without a reply id=%s status=%s",
			        ids[i], status ? status : "gone");
			ingress_pending_finish(in, ids[i]);
		}
		json_decref(rec);
	}
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
 * The main thread until the end: replies, wait deadlines, heartbeats,
 * signals. After SIGTERM, requests in progress get half of [supervisor]
 * shutdown_timeout to finish; then waiters answer 202 (their jobs go on),
 * and at four fifths of it the daemon stops whatever is left, before the
 * supervisor's SIGKILL.
 */
static void run(struct ingress *in, int sfd)
{
	const struct imgnode_transport_ops *t = transport_ops(&in->set);
	int64_t budget = in->conf->supervisor.shutdown_timeout;
	int64_t next_sweep = now_ms() + SWEEP_EVERY_MS;
	int64_t stop_at = -1;
	int tfd, last_err = 0;
	bool released = false, tfd_fired = false;

	pthread_mutex_lock(&in->io);
	tfd = t->pollfd ? t->pollfd(in->set.transport->state) : -1;
	pthread_mutex_unlock(&in->io);
	for (;;) {
		struct pollfd pfd[3] = {{.fd = sfd, .events = POLLIN},
		                        {.fd = in->kick_fd, .events = POLLIN},
		                        {.fd = tfd, .events = POLLIN}};
		int64_t now = now_ms();
		size_t got;
		uint64_t kicks;
		nfds_t nfds;

		proc_notify_alive();
		got = drain_replies(in, &last_err);
		/* a transport fd that woke us for nothing must not spin the
		 * loop: leave it out for one turn */
		nfds = tfd >= 0 && !(tfd_fired && got == 0) ? 3 : 2;
		ingress_http_expire(in, now, false);
		ingress_http_sweep(in, now);
		if (now >= next_sweep) {
			sweep(in, now);
			next_sweep = now + SWEEP_EVERY_MS;
		}
		if (stop_at >= 0) {
			if (atomic_load(&in->active) == 0)
				break;
			if (!released && now >= stop_at - budget * 3 / 10) {
				ingress_http_expire(in, now, true);
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
		if (poll(pfd, nfds, TURN_MS) < 0 && errno != EINTR) {
			log_error(COMPONENT, "unable to wait: %s",
			          strerror(errno));
			break;
		}
		tfd_fired = nfds == 3 && (pfd[2].revents & POLLIN);
		if (pfd[1].revents & POLLIN)
			(void)!read(in->kick_fd, &kicks, sizeof(kicks));
		if ((pfd[0].revents & POLLIN) && read_signal(sfd) &&
		    stop_at < 0) {
			begin_stop(in);
			stop_at = now_ms() + budget * 4 / 5;
		}
	}
	ingress_http_expire(in, 0, true);
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
	struct ingress in = {.node = node, .conf = node->conf, .kick_fd = -1};
	char err[CONF_ERR_MAX];
	sigset_t mask;
	int sfd, ret, code = EXIT_PERMANENT;

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
	in.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sfd < 0 || in.kick_fd < 0) {
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
	ret = child_open(&in.set, node->conf, false, err, sizeof(err));
	if (!ret)
		ret = start_predicting_filters(&in.set, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = child_exit_code(ret);
		goto out_free_set;
	}
	ret = storer_start(&in.storer, in.set.storage, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = child_exit_code(ret);
		goto out_free_set;
	}
	ret = transport_ops(&in.set)->reply_open(
	        in.set.transport->state, in.reply_to, sizeof(in.reply_to));
	if (ret) {
		log_error(COMPONENT, "cannot start: no reply queue: %s",
		          strerror(-ret));
		code = child_exit_code(ret);
		goto out_free_set;
	}
	/* a power of two, about a quarter of the most jobs in flight */
	for (in.nbuckets = 64;
	     in.nbuckets < 65536 &&
	     (int64_t)in.nbuckets * 4 < node->conf->app->ingress.max_inflight;
	     in.nbuckets *= 2)
		;
	in.buckets = calloc(in.nbuckets, sizeof(*in.buckets));
	in.quota = quota_new(in.nbuckets);
	if (!in.buckets || !in.quota) {
		free(in.buckets);
		quota_free(in.quota);
		log_error(COMPONENT, "out of memory");
		code = EXIT_TEMPORARY;
		goto out_free_set;
	}
	pthread_mutex_init(&in.io, NULL);
	pthread_mutex_init(&in.jobs, NULL);
	pthread_mutex_init(&in.conns, NULL);
	ret = ingress_http_start(&in, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = child_exit_code(ret);
		goto out_free_buckets;
	}
	ret = ingress_http_start_admin(&in, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		code = child_exit_code(ret);
		MHD_stop_daemon(in.daemon);
		goto out_free_buckets;
	}
	proc_notify_ready();
	run(&in, sfd);
	if (in.admin)
		MHD_stop_daemon(in.admin);
	MHD_stop_daemon(in.daemon);
	log_info(COMPONENT, "stopped");
	code = 0;
	pending_clear(&in);
out_free_buckets:
	pthread_mutex_destroy(&in.conns);
	pthread_mutex_destroy(&in.jobs);
	pthread_mutex_destroy(&in.io);
	free(in.buckets);
	quota_free(in.quota);
out_free_set:
	storer_stop(in.storer);
	plugin_set_free(&in.set);
out_close:
	prober_pool_free(in.probers);
	if (in.kick_fd >= 0)
		close(in.kick_fd);
	if (sfd >= 0)
		close(sfd);
	return code;
}
