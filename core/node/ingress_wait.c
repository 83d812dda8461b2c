/*
 * Waiting, in the ingress: the table of jobs this process published and
 * has not heard back about, and the requests suspended on them (POST
 * ?wait=). The node's in-flight count and each client's (quota.h), and so
 * the 429s, rest on the table. A job leaves it when its reply comes, when
 * its record says it finished, or when its publish failed; its waiter, if
 * any, is resumed then to answer from the record (ingress_answer.c), or
 * when its wait ends. Each ingress process counts its own jobs: during a
 * roll a client may hold its share in the old one and the new one.
 *
 * Everything here holds jobs (ingress.h) and calls no other file of the
 * ingress but the connections' (ingress_conn.c).
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base.h"
#include "../log.h"
#include "ingress.h"
#include "metrics.h"
#include "node_conf.h"

#define COMPONENT "ingress"
#define WATCH_EVERY_MS 500 /* a watched job's record is read this often */

/* ---- the suspended requests ---- */

/* Takes r off the waiters and its job. The caller holds jobs. */
static void unlink_waiter(struct ingress *in, struct request *r)
{
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		in->waiters = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	r->wprev = r->wnext = NULL;
	if (r->pend)
		r->pend->waiters--;
	r->pend = NULL;
	r->phase = PHASE_ANSWERED;
}

/* Resumes a suspended request so it answers from the job's record. The
 * caller holds jobs. */
static void wake(struct ingress *in, struct request *r)
{
	if (r->phase != PHASE_WAITING)
		return;
	unlink_waiter(in, r);
	r->phase = PHASE_RESUMED;
	MHD_resume_connection(r->conn);
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
	/* checked again here, where it is counted: requests in parallel
	 * (their uploads are stored at once, each on its own time) */
	if (metrics_inflight(in->metrics) >=
	    in->conf->app->ingress.max_inflight) {
		pthread_mutex_unlock(&in->jobs);
		free(p);
		return -EUSERS;
	}
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

/* The entry of id, or NULL. The caller holds jobs. */
static struct pending *pending_find(struct ingress *in, const char *id)
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
	if (!p->watch)
		quota_release(in->quota, p->client);
	/* every request waiting on it (identical variants wait on one) */
	for (struct request *w = in->waiters, *next; w; w = next) {
		next = w->wnext;
		if (w->pend == p)
			wake(in, w);
	}
	pthread_mutex_unlock(&in->jobs);
	if (!p->watch)
		atomic_fetch_sub(in->inflight, 1);
	free(p);
}

int ingress_pending_watch(struct ingress *in, const char *id)
{
	struct pending *p = calloc(1, sizeof(*p));
	size_t b;

	if (!p)
		return -ENOMEM;
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->since_ms = p->checked_ms = now_ms();
	p->watch = true;
	pthread_mutex_lock(&in->jobs);
	if (pending_find(in, id)) { /* published or watched here already */
		pthread_mutex_unlock(&in->jobs);
		free(p);
		return 0;
	}
	b = bucket_of(in, id);
	p->next = in->buckets[b];
	in->buckets[b] = p;
	in->npending++;
	pthread_mutex_unlock(&in->jobs);
	return 0;
}

void ingress_pending_clear(struct ingress *in)
{
	size_t n = 0;

	pthread_mutex_lock(&in->jobs);
	for (size_t b = 0; b < in->nbuckets; b++) {
		struct pending *p = in->buckets[b], *next;

		for (; p; p = next) {
			next = p->next;
			n += !p->watch;
			free(p);
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

size_t ingress_pending_stale(struct ingress *in, int64_t now, int64_t age,
                             char (*ids)[JOB_ID_LEN + 1], size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&in->jobs);
	for (size_t b = 0; b < in->nbuckets && n < max; b++) {
		struct pending **pp = &in->buckets[b], *p;

		while ((p = *pp) && n < max) {
			/* a job another process published is only
			 * watched: its record is the only news of it */
			int64_t a = p->watch ? WATCH_EVERY_MS : age;

			if (now - p->since_ms < a) {
				pp = &p->next;
				continue;
			}
			if (p->watch && !p->waiters) { /* nobody waits now */
				*pp = p->next;
				in->npending--;
				free(p);
				continue;
			}
			pp = &p->next;
			if (now - p->checked_ms < a)
				continue;
			p->checked_ms = now;
			memcpy(ids[n++], p->id, JOB_ID_LEN + 1);
		}
	}
	pthread_mutex_unlock(&in->jobs);
	return n;
}

int ingress_pending_init(struct ingress *in)
{
	/* a power of two, about a quarter of the most jobs in flight */
	for (in->nbuckets = 64;
	     in->nbuckets < 65536 &&
	     (int64_t)in->nbuckets * 4 < in->conf->app->ingress.max_inflight;
	     in->nbuckets *= 2)
		;
	in->buckets = calloc(in->nbuckets, sizeof(*in->buckets));
	in->quota = quota_new(in->nbuckets);
	if (!in->buckets || !in->quota) {
		ingress_pending_free(in);
		return -ENOMEM;
	}
	return 0;
}

void ingress_pending_free(struct ingress *in)
{
	free(in->buckets);
	quota_free(in->quota);
	in->buckets = NULL;
	in->quota = NULL;
}

void ingress_waiters_expire(struct ingress *in, int64_t now, bool all)
{
	struct request *r, *next;

	pthread_mutex_lock(&in->jobs);
	if (all)
		in->stopping = true;
	for (r = in->waiters; r; r = next) {
		next = r->wnext;
		if (all || now >= r->deadline_ms)
			wake(in, r);
	}
	pthread_mutex_unlock(&in->jobs);
}

bool ingress_wait_suspend(struct request *r)
{
	struct ingress *in = r->in;
	struct pending *p;

	pthread_mutex_lock(&in->jobs);
	p = in->stopping ? NULL : pending_find(in, r->id);
	if (p) {
		p->waiters++;
		r->pend = p;
		r->deadline_ms = now_ms() + r->wait_ms;
		r->wnext = in->waiters;
		if (in->waiters)
			in->waiters->wprev = r;
		in->waiters = r;
		r->phase = PHASE_WAITING;
		ingress_conn_answering(r);
		MHD_suspend_connection(r->conn);
	}
	pthread_mutex_unlock(&in->jobs);
	return p != NULL;
}

void ingress_waiter_cancel(struct ingress *in, struct request *r)
{
	if (r->phase != PHASE_WAITING)
		return;
	pthread_mutex_lock(&in->jobs);
	unlink_waiter(in, r);
	pthread_mutex_unlock(&in->jobs);
}
