/*
 * The notifier: a child of the node's tree, beside the reaper, that sends
 * webhooks. It knows the jobs with a callback pending from its node's
 * ingress (hints in shared memory, at once) and from listing callbacks/
 * (callback.h) at its start and every [webhooks] rescan (other nodes'
 * jobs, its own from before a restart). Every [webhooks] poll it reads
 * the record of each and, for a job done or failed whose callback is due,
 * POSTs the record as JSON to the callback's URL with libcurl: signed
 * (X-Imgnode-Signature: sha256=hex(HMAC-SHA256(secret, TIMESTAMP.BODY))),
 * with X-Imgnode-Timestamp, X-Imgnode-Delivery (the job's id, the same on
 * every attempt: receivers dedupe by it), X-Imgnode-Attempt and
 * X-Imgnode-Event (job.done or job.failed). No redirect is followed, no
 * proxy used, only http and https, within [webhooks] timeout.
 *
 * A 2xx delivers it; anything else is retried after backoff_min doubling
 * up to backoff_max, max_attempts times in all, then given up. The state
 * is in the record (callback: state, attempts, next_attempt, last_error,
 * delivered_at), written after each attempt, so it survives restarts and
 * GET /v1/jobs/ID shows it.
 *
 * Nodes sharing a store: the node about to send claims the job with
 * put_excl(claims/ID) and removes the claim once the record has the
 * outcome; a claim older than twice the timeout plus a minute is a dead
 * node's and removed. Delivery is at least once: a node that dies after
 * the receiver answered but before the record is written sends it again.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base.h"
#include "../config.h"
#include "../log.h"
#include "../spawn.h"
#include "callback.h"
#include "job.h"
#include "metrics.h"
#include "node_conf.h"
#include "startup.h"

#define COMPONENT "notifier"
/* an index whose record never came (a refused upload) is removed after */
#define ORPHAN_INDEX_MS (10 * 60 * 1000)
#define LIST_BUSY_MS (10 * 60 * 1000)

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

struct notifier {
	struct plugin_set set;
	const struct conf *conf;
	struct metrics *m;
	CURL *curl;
	json_t *known; /* ids of jobs whose callback may be pending */
	uint64_t tail; /* the hints read */
	int64_t next_rescan; /* now_ms() */
	bool failing; /* the last listing failed */
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms since the epoch as a record's timestamp. */
static void stamp_of(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, (int)(ms % 1000) % 1000);
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
	(void)data, (void)arg;
	return size * n;
}

/*
 * POSTs body to url, signed: 0 for a 2xx, else -1 with what happened in
 * why ("HTTP 500", or libcurl's reason).
 */
static int post(struct notifier *nt, const char *url, const char *id,
                const char *event, int64_t attempt, const char *body, char *why,
                size_t len)
{
	const struct webhooks_conf *wc = &nt->conf->app->webhooks;
	long long ts = (long long)(wall_ms() / 1000);
	char sig[65], line[160];
	struct curl_slist *h = NULL;
	long status = 0;
	CURLcode cc;

	if (callback_sign(wc->secret, ts, body, strlen(body), sig)) {
		snprintf(why, len, "unable to sign");
		return -1;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	snprintf(line, sizeof(line), "X-Imgnode-Signature: sha256=%s", sig);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Imgnode-Timestamp: %lld", ts);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Imgnode-Delivery: %s", id);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Imgnode-Attempt: %lld",
	         (long long)attempt);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Imgnode-Event: %s", event);
	h = curl_slist_append(h, line);
	if (!h) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	curl_easy_reset(nt->curl);
	curl_easy_setopt(nt->curl, CURLOPT_URL, url);
	curl_easy_setopt(nt->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(nt->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(nt->curl, CURLOPT_PROXY, "");
	curl_easy_setopt(nt->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(nt->curl, CURLOPT_TIMEOUT_MS, (long)wc->timeout);
	curl_easy_setopt(nt->curl, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)wc->timeout);
	curl_easy_setopt(nt->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(nt->curl, CURLOPT_USERAGENT,
	                 "imgnode/" IMGNODE_VERSION);
	curl_easy_setopt(nt->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(nt->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(nt->curl, CURLOPT_WRITEFUNCTION, discard);
	cc = curl_easy_perform(nt->curl);
	curl_slist_free_all(h);
	if (cc != CURLE_OK) {
		snprintf(why, len, "%s", curl_easy_strerror(cc));
		return -1;
	}
	curl_easy_getinfo(nt->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		return 0;
	snprintf(why, len, "HTTP %ld", status);
	return -1;
}

/*
 * One attempt at the callback of rec (claimed): the record written with
 * its outcome. 0, or -errno if the storage failed (the claim then lapses
 * and the attempt may be made again).
 */
static int attempt(struct notifier *nt, const char *id, json_t *rec)
{
	const struct webhooks_conf *wc = &nt->conf->app->webhooks;
	json_t *cb = json_object_get(rec, "callback");
	const char *url = json_string_value(json_object_get(cb, "url"));
	json_int_t tries = json_integer_value(json_object_get(cb, "attempts"));
	enum job_status status = job_record_status(rec);
	char why[CURL_ERROR_SIZE + 64], now[40], next[80];
	const char *event = status == JOB_DONE ? "job.done" : "job.failed";
	char *body;
	int ret, sent;

	if (!url)
		return -EBADMSG;
	tries++;
	json_object_set_new(cb, "attempts", json_integer(tries));
	json_object_del(cb, "next_attempt");
	body = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	if (!body)
		return -ENOMEM;
	proc_notify_busy(2 * wc->timeout + 60 * 1000);
	sent = post(nt, url, id, event, tries, body, why, sizeof(why));
	free(body);
	job_timestamp(now, sizeof(now));
	if (sent == 0) {
		json_object_set_new(cb, "state", json_string("delivered"));
		json_object_set_new(cb, "delivered_at", json_string(now));
		atomic_fetch_add(&nt->m->webhooks[WEBHOOK_DELIVERED], 1);
		log_info(COMPONENT, "delivered id=%s attempt=%lld", id,
		         (long long)tries);
	} else if (tries >= wc->max_attempts) {
		json_object_set_new(cb, "state", json_string("failed"));
		json_object_set_new(cb, "last_error", json_string(why));
		json_object_set_new(cb, "gave_up_at", json_string(now));
		atomic_fetch_add(&nt->m->webhooks[WEBHOOK_GAVE_UP], 1);
		log_warn(
		        COMPONENT,
		        "gave up id=%s after %lld attempts ([webhooks] max_attempts): %s",
		        id, (long long)tries, why);
	} else {
		stamp_of(wall_ms() + callback_backoff_ms(wc, tries), next,
		         sizeof(next));
		json_object_set_new(cb, "last_error", json_string(why));
		json_object_set_new(cb, "next_attempt", json_string(next));
		atomic_fetch_add(&nt->m->webhooks[WEBHOOK_RETRY], 1);
		log_info(COMPONENT, "attempt failed id=%s attempt=%lld: %s", id,
		         (long long)tries, why);
	}
	json_object_set_new(cb, "last_attempt", json_string(now));
	ret = job_record_put(nt->set.storage, rec);
	if (ret)
		log_warn(COMPONENT,
		         "unable to write the callback state of id=%s: %s", id,
		         strerror(-ret));
	return ret;
}

/* Claims the callback of id for this node: 0, -EEXIST (another holds
 * it) or -errno. A claim left by a dead node is removed. */
static int claim(struct notifier *nt, const char *key)
{
	const struct imgnode_storage_ops *st = storage_ops(&nt->set);
	void *state = nt->set.storage->state;
	int64_t stale = 2 * nt->conf->app->webhooks.timeout + 60 * 1000;
	struct imgnode_stat s;
	int ret = st->put_excl(state, key, "1", 1);

	if (ret == -EEXIST && st->stat(state, key, &s) == 0 &&
	    wall_ms() - s.mtime_ms >= stale) {
		log_warn(COMPONENT, "removing a stale claim %s", key);
		st->del(state, key);
	}
	return ret;
}

/*
 * The callback pending for job id: sent if due, its index removed once it
 * is over. 1 once there is nothing left to do for it (forget it), 0 to
 * look again later, or -errno (storage down: the pass stops).
 */
static int pending(struct notifier *nt, const char *id)
{
	const struct imgnode_storage_ops *st = storage_ops(&nt->set);
	void *state = nt->set.storage->state;
	char index[JOB_KEY_MAX], claimed[JOB_KEY_MAX];
	struct imgnode_stat s;
	json_t *rec, *cb;
	const char *cbstate;
	int ret;

	callback_index_key(id, index, sizeof(index));
	rec = job_record_get(nt->set.storage, id, &ret);
	if (!rec && ret == -ENOENT) { /* not yet written, or refused */
		ret = st->stat(state, index, &s);
		if (ret == -ENOENT)
			return 1;
		if (ret == 0 && wall_ms() - s.mtime_ms >= ORPHAN_INDEX_MS) {
			st->del(state, index);
			return 1;
		}
		return ret;
	}
	if (!rec) /* unreadable: nothing to send */
		return ret == -EBADMSG || ret == -EFBIG ? 1 : ret;
	cb = json_object_get(rec, "callback");
	cbstate = json_string_value(json_object_get(cb, "state"));
	if (!json_is_object(cb) || (cbstate && strcmp(cbstate, "pending"))) {
		json_decref(rec);
		st->del(state, index);
		return 1;
	}
	if (!job_status_final(job_record_status(rec)) ||
	    job_stamp_us(cb, "next_attempt") / 1000 > wall_ms()) {
		json_decref(rec);
		return 0;
	}
	json_decref(rec);
	callback_claim_key(id, claimed, sizeof(claimed));
	ret = claim(nt, claimed);
	if (ret)
		return ret == -EEXIST ? 0 : ret;
	/* read again under the claim: another node may just have sent it */
	rec = job_record_get(nt->set.storage, id, &ret);
	cb = json_object_get(rec, "callback");
	cbstate = json_string_value(json_object_get(cb, "state"));
	if (rec && (!cbstate || strcmp(cbstate, "pending") == 0) &&
	    job_stamp_us(cb, "next_attempt") / 1000 <= wall_ms()) {
		ret = attempt(nt, id, rec);
		cbstate = json_string_value(json_object_get(cb, "state"));
	}
	st->del(state, claimed);
	if (!rec || (cbstate && strcmp(cbstate, "pending") != 0)) {
		st->del(state, index);
		ret = 1;
	}
	json_decref(rec);
	return ret == -EBADMSG ? 1 : ret;
}

/* list's callback: the ids of callbacks/ID keys, into the known set. */
static int collect(const char *key, void *arg)
{
	json_t *known = arg;
	const char *id = key + strlen("callbacks/");

	if (strncmp(key, "callbacks/", 10) != 0 || !job_id_valid(id))
		return 0;
	return json_object_set_new(known, id, json_true()) ? -ENOMEM : 0;
}

/* Lists the store's pending callbacks into the known set; one line when
 * it starts failing and one when it works again. */
static void rescan(struct notifier *nt)
{
	int ret;

	proc_notify_busy(LIST_BUSY_MS);
	ret = storage_ops(&nt->set)->list(nt->set.storage->state, "callbacks/",
	                                  collect, nt->known);
	if (ret && !nt->failing)
		log_warn(COMPONENT, "unable to list the callbacks pending: %s",
		         strerror(-ret));
	else if (!ret && nt->failing)
		log_info(COMPONENT, "listing the callbacks pending again");
	nt->failing = ret != 0;
	proc_notify_alive();
}

/* One look at every callback known, after this node's hints. */
static void pass(struct notifier *nt)
{
	char id[33];
	void *it;
	int got;

	while ((got = callback_hint_pop(nt->m, &nt->tail, id)) != 0)
		if (got < 0) /* missed some: list them */
			nt->next_rescan = 0;
		else if (job_id_valid(id))
			json_object_set_new(nt->known, id, json_true());
	if (now_ms() >= nt->next_rescan) {
		rescan(nt);
		nt->next_rescan = now_ms() + nt->conf->app->webhooks.rescan;
	}
	it = json_object_iter(nt->known);
	while (it && !stopping) {
		const char *key = json_object_iter_key(it);
		int ret;

		proc_notify_busy(LIST_BUSY_MS);
		ret = pending(nt, key);
		if (ret < 0) {
			log_warn(
			        COMPONENT,
			        "pass stopped at id=%s: %s; the next one goes on",
			        key, strerror(-ret));
			break;
		}
		if (ret == 1) {
			void *next = json_object_iter_next(nt->known, it);
			char gone[JOB_ID_LEN + 1];

			snprintf(gone, sizeof(gone), "%s", key);
			json_object_del(nt->known, gone);
			it = next;
			continue;
		}
		it = json_object_iter_next(nt->known, it);
	}
	proc_notify_alive();
}

int notifier_main(void *arg, const char *id)
{
	struct node *node = arg;
	struct notifier nt = {.conf = node->conf, .m = node->metrics};
	bool off = node->conf->app->ingress.callback_hosts.n == 0;
	struct sigaction sa = {.sa_handler = on_term};
	char err[CONF_ERR_MAX];
	int ret;

	log_set_process(id);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* the hints from now on: the first rescan finds the older ones */
	nt.tail = atomic_load(&nt.m->hints.head);
	nt.known = json_object();
	if (!nt.known || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    !(nt.curl = curl_easy_init())) {
		log_error(COMPONENT, "cannot start libcurl");
		json_decref(nt.known);
		return EXIT_TEMPORARY;
	}
	ret = startup_plugins(&nt.set, node->conf, false, err, sizeof(err));
	if (ret) {
		log_error(COMPONENT, "cannot start: %s", err);
		plugin_set_free(&nt.set);
		curl_easy_cleanup(nt.curl);
		json_decref(nt.known);
		return startup_exit_code(ret);
	}
	proc_notify_ready();
	while (!stopping) {
		int64_t until = now_ms() + node->conf->app->webhooks.poll;

		if (!off)
			pass(&nt);
		transport_ops(&nt.set)->tick(nt.set.transport->state);
		/* the heartbeat, every 250 ms of the wait (poll may be long) */
		for (int i = 0; !stopping && now_ms() < until; i++) {
			struct timespec pause = {0, 50 * 1000000};

			if (i % 5 == 0)
				proc_notify_alive();
			nanosleep(&pause, NULL);
		}
	}
	plugin_set_free(&nt.set);
	curl_easy_cleanup(nt.curl);
	curl_global_cleanup();
	json_decref(nt.known);
	return 0;
}
