/*
 * Retention, run by the reaper every [retention] interval: it keeps the
 * store bounded by deleting, on any storage plugin, through list, stat,
 * get and del only:
 *
 *   jobs/ID   the record of a job finished more than record_ttl ago,
 *             unless it is a variant of a kept image ("image": ID with
 *             img/ID present) or its callback is still pending;
 *   orig/ID   the original of a job finished more than original_ttl ago
 *             (never of a job queued or running: the sweep and the worker
 *             still need it), and an original with no record once it is
 *             older than both original_ttl and [workers] stuck_after;
 *   out/KEY   a result (with its KEY.* companions: .meta, renditions)
 *             written more than result_ttl ago that no record keeps: a
 *             record keeps every out/ key it names while its job is
 *             queued or running, for result_ttl after it finished, and
 *             for as long as its kept image exists.
 *
 *   idem/HEX  an Idempotency-Key's record (idempotency.h) written more
 *             than [ingress] idempotency_window ago (the ingress takes
 *             one that old for absent already, so this only frees space);
 *             swept even when every TTL above is 0.
 *
 * Kept images (img/ID) are never deleted here, only by DELETE.
 *
 * The records are read first, then the results and originals listed: an
 * object written after the records were read is younger than its TTL, so
 * nothing a job being accepted now stores can be taken for expired. One
 * narrow window stays: a result cache hit (the ingress finds out/KEY and
 * writes a record naming it) that lands between this pass reading the
 * records and deleting that same, old, unreferenced result; the job is
 * then done with its result gone (GET .../result says 404) and submitting
 * again makes it anew.
 *
 * Nodes sharing a store take turns: a pass runs only while its node holds
 * locks/retention (put_excl; one older than twice the interval, or ten
 * minutes, is taken for a dead node's and removed). Every deletion is
 * idempotent, so two passes at once (a lease broken twice) only repeat
 * work.
 */
#include "retention.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../log.h"
#include "../spawn.h"
#include "idempotency.h"
#include "job.h"
#include "metrics.h"

#define COMPONENT "retention"
#define LEASE_KEY "locks/retention"
#define LEASE_MIN_MS (10 * 60 * 1000)
#define STEP_BUSY_MS (10 * 60 * 1000)

/* A growing array of strings (owned). */
struct keys {
	char **k;
	size_t n, cap;
	bool sorted;
};

static int keys_add(struct keys *ks, const char *key, size_t len)
{
	char *copy;

	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 256;
		char **grown = realloc(ks->k, cap * sizeof(*ks->k));

		if (!grown)
			return -ENOMEM;
		ks->k = grown;
		ks->cap = cap;
	}
	copy = strndup(key, len);
	if (!copy)
		return -ENOMEM;
	ks->k[ks->n++] = copy;
	ks->sorted = false;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool keys_has(struct keys *ks, const char *key)
{
	if (!ks->sorted) {
		qsort(ks->k, ks->n, sizeof(*ks->k), cmp_str);
		ks->sorted = true;
	}
	return ks->n &&
	       bsearch(&key, ks->k, ks->n, sizeof(*ks->k), cmp_str) != NULL;
}

static void keys_free(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->k[i]);
	free(ks->k);
	*ks = (struct keys){0};
}

/* The length of a result key's base, "out/KEY" of "out/KEY.meta". */
static size_t base_len(const char *key)
{
	const char *dot = strchr(key + 4, '.');

	return dot ? (size_t)(dot - key) : strlen(key);
}

/* list's callback: every key, as it is. */
static int collect(const char *key, void *arg)
{
	return keys_add(arg, key, strlen(key));
}

struct pass {
	struct plugin_set *set;
	const struct retention_conf *rc;
	const struct conf *conf;
	struct metrics *m;
	int64_t now;
	struct keys keep; /* result bases some record keeps */
	struct keys ids; /* ids that have a record */
	struct keys images_seen, images_kept; /* img/ID looked up */
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deletes key, counted as kind with its size; 0 (gone already too) or
 * -errno. */
static int drop(struct pass *p, const char *key, enum swept_kind kind,
                uint64_t size)
{
	int ret = storage_ops(p->set)->del(p->set->storage->state, key);

	if (ret == -ENOENT)
		return 0;
	if (ret) {
		log_warn(COMPONENT, "unable to delete %s: %s", key,
		         strerror(-ret));
		return ret;
	}
	if (p->m) {
		atomic_fetch_add(&p->m->swept[kind], 1);
		atomic_fetch_add(&p->m->swept_bytes[kind], size);
	}
	log_debug(COMPONENT, "deleted %s bytes=%llu", key,
	          (unsigned long long)size);
	return 0;
}

/* True if the kept image id exists (looked up once a pass). */
static bool image_kept(struct pass *p, const char *id, int *ret)
{
	struct imgnode_stat st;
	char key[JOB_KEY_MAX];

	*ret = 0;
	if (!job_id_valid(id))
		return false;
	if (keys_has(&p->images_kept, id))
		return true;
	if (keys_has(&p->images_seen, id))
		return false;
	job_image_key(id, key, sizeof(key));
	*ret = storage_ops(p->set)->stat(p->set->storage->state, key, &st);
	if (*ret && *ret != -ENOENT)
		return false;
	*ret = keys_add(*ret ? &p->images_seen : &p->images_kept, id,
	                strlen(id));
	return keys_has(&p->images_kept, id);
}

/* Every "out/..." string in j, whatever member holds it (result, and
 * whatever renditions a record names), into keep by its base. */
static int keep_results(struct pass *p, json_t *j)
{
	const char *s = json_string_value(j);
	size_t i;
	int ret = 0;

	if (s && strncmp(s, "out/", 4) == 0 && s[4])
		return keys_add(&p->keep, s, base_len(s));
	for (void *it = json_object_iter(j); it && !ret;
	     it = json_object_iter_next(j, it))
		ret = keep_results(p, json_object_iter_value(it));
	for (i = 0; i < json_array_size(j) && !ret; i++)
		ret = keep_results(p, json_array_get(j, i));
	return ret;
}

/* True while a record's callback is neither delivered nor given up. */
static bool callback_pending(json_t *rec)
{
	json_t *cb = json_object_get(rec, "callback");
	const char *state = json_string_value(json_object_get(cb, "state"));

	return json_is_object(cb) && (!state || strcmp(state, "pending") == 0);
}

/* One record: what it keeps, and what of it has expired. */
static int record(struct pass *p, const char *id)
{
	const struct retention_conf *rc = p->rc;
	const struct imgnode_storage_ops *st = storage_ops(p->set);
	void *state = p->set->storage->state;
	struct imgnode_stat ost;
	char key[JOB_KEY_MAX];
	const char *image;
	int64_t finished, age;
	bool kept;
	json_t *rec;
	int ret;

	rec = job_record_get(p->set->storage, id, &ret);
	if (!rec) /* gone, or unreadable: its original counts as orphan */
		return ret == -ENOENT || ret == -EBADMSG || ret == -EFBIG ? 0
		                                                          : ret;
	ret = keys_add(&p->ids, id, strlen(id));
	image = json_string_value(json_object_get(rec, "image"));
	kept = image && image_kept(p, image, &ret);
	if (ret)
		goto out;
	if (!job_status_final(job_record_status(rec))) {
		ret = keep_results(p, rec); /* queued or running */
		goto out;
	}
	finished = job_stamp_us(rec, "finished") / 1000;
	if (!finished) { /* a record of an older node: its last write */
		job_record_key(id, key, sizeof(key));
		ret = st->stat(state, key, &ost);
		if (ret)
			goto out;
		finished = ost.mtime_ms;
	}
	age = p->now - finished;
	if (kept || !rc->result_ttl || age < rc->result_ttl)
		ret = keep_results(p, rec);
	if (ret)
		goto out;
	if (rc->original_ttl && age >= rc->original_ttl) {
		job_orig_key(id, key, sizeof(key));
		ret = st->stat(state, key, &ost);
		if (ret == 0)
			ret = drop(p, key, SWEPT_ORIGINAL, ost.size);
		if (ret == -ENOENT)
			ret = 0;
		if (ret)
			goto out;
	}
	if (rc->record_ttl && age >= rc->record_ttl && !kept &&
	    !callback_pending(rec)) {
		char *text = json_dumps(rec, JSON_COMPACT);

		job_record_key(id, key, sizeof(key));
		ret = drop(p, key, SWEPT_RECORD, text ? strlen(text) : 0);
		free(text);
	}
out:
	json_decref(rec);
	return ret;
}

#define GROUP_MAX 16 /* objects of one result: KEY, KEY.meta, ... */

/*
 * The results no record keeps, each with its companions (KEY.meta, and
 * renditions named KEY.*) as one: deleted once every one of them was
 * written more than result_ttl ago, the companions first and KEY last (a
 * .meta without its image would be a cache hit with nothing to serve).
 */
static int results(struct pass *p, const volatile sig_atomic_t *stop)
{
	const struct imgnode_storage_ops *st = storage_ops(p->set);
	void *state = p->set->storage->state;
	struct keys out = {0};
	size_t i, j;
	int ret;

	ret = st->list(state, "out/", collect, &out);
	keys_has(&out, ""); /* sorted: KEY just before its KEY.* */
	for (i = 0; !ret && i < out.n && !*stop; i = j) {
		struct imgnode_stat s[GROUP_MAX];
		size_t n = base_len(out.k[i]);
		bool young = false;
		char base[JOB_KEY_MAX];

		for (j = i + 1; j < out.n && base_len(out.k[j]) == n &&
		                strncmp(out.k[j], out.k[i], n) == 0;
		     j++)
			;
		if (n >= sizeof(base) || j - i > GROUP_MAX)
			continue;
		memcpy(base, out.k[i], n);
		base[n] = '\0';
		if (keys_has(&p->keep, base))
			continue;
		proc_notify_busy(STEP_BUSY_MS);
		for (size_t k = i; !ret && !young && k < j; k++) {
			ret = st->stat(state, out.k[k], &s[k - i]);
			if (ret == -ENOENT) {
				ret = 0;
				s[k - i] = (struct imgnode_stat){0};
				continue;
			}
			young = !ret &&
			        p->now - s[k - i].mtime_ms < p->rc->result_ttl;
		}
		for (size_t k = j; !ret && !young && k-- > i;)
			if (s[k - i].mtime_ms)
				ret = drop(p, out.k[k], SWEPT_RESULT,
				           s[k - i].size);
	}
	keys_free(&out);
	return ret;
}

/*
 * Drops the keys under prefix last written ttl or more ago, but those keep
 * (if not NULL) says to keep: a key gone meanwhile is no failure.
 */
static int sweep_older(struct pass *p, const char *prefix, int64_t ttl,
                       enum swept_kind kind,
                       bool (*keep)(struct pass *p, const char *key),
                       const volatile sig_atomic_t *stop)
{
	const struct imgnode_storage_ops *st = storage_ops(p->set);
	struct keys ks = {0};
	int ret;

	ret = st->list(p->set->storage->state, prefix, collect, &ks);
	for (size_t i = 0; !ret && i < ks.n && !*stop; i++) {
		struct imgnode_stat s;

		if (keep && keep(p, ks.k[i]))
			continue;
		proc_notify_busy(STEP_BUSY_MS);
		ret = st->stat(p->set->storage->state, ks.k[i], &s);
		if (ret == -ENOENT) {
			ret = 0;
			continue;
		}
		if (!ret && p->now - s.mtime_ms >= ttl)
			ret = drop(p, ks.k[i], kind, s.size);
	}
	keys_free(&ks);
	return ret;
}

/* An original ("orig/ID") to keep: its job's record is there (or the key
 * is no job's). */
static bool original_kept(struct pass *p, const char *key)
{
	return !job_id_valid(key + 5) || keys_has(&p->ids, key + 5);
}

/* Originals whose record is gone, older than original_ttl and than
 * stuck_after (a record is written with its original, at once). */
static int orphans(struct pass *p, const volatile sig_atomic_t *stop)
{
	int64_t ttl = p->rc->original_ttl;

	if (ttl < p->conf->app->workers.stuck_after)
		ttl = p->conf->app->workers.stuck_after;
	return sweep_older(p, "orig/", ttl, SWEPT_ORIGINAL, original_kept,
	                   stop);
}

/* Idempotency-Keys' records older than [ingress] idempotency_window. */
static int idempotency_keys(struct pass *p, const volatile sig_atomic_t *stop)
{
	return sweep_older(p, IDEM_PREFIX,
	                   p->conf->app->ingress.idempotency_window,
	                   SWEPT_IDEMPOTENCY, NULL, stop);
}

/* Takes the lease; false if another node holds a live one. */
static bool lease_take(struct pass *p)
{
	const struct imgnode_storage_ops *st = storage_ops(p->set);
	void *state = p->set->storage->state;
	int64_t stale = 2 * p->rc->interval;
	struct imgnode_stat s;
	char body[128];
	int n, ret;

	n = snprintf(body, sizeof(body), "{\"pid\":%d,\"at_ms\":%lld}",
	             (int)getpid(), (long long)p->now);
	ret = st->put_excl(state, LEASE_KEY, body, (size_t)n);
	if (ret != -EEXIST)
		return ret == 0;
	if (stale < LEASE_MIN_MS)
		stale = LEASE_MIN_MS;
	if (st->stat(state, LEASE_KEY, &s) == 0 &&
	    p->now - s.mtime_ms >= stale) {
		log_warn(
		        COMPONENT,
		        "removing a stale lease %s (%lld s old): its node died in a pass",
		        LEASE_KEY, (long long)((p->now - s.mtime_ms) / 1000));
		st->del(state, LEASE_KEY);
		return st->put_excl(state, LEASE_KEY, body, (size_t)n) == 0;
	}
	return false;
}

int retention_run(struct plugin_set *set, const struct conf *conf,
                  struct metrics *m, const volatile sig_atomic_t *stop)
{
	const struct retention_conf *rc = &conf->app->retention;
	struct pass p = {
	        .set = set, .rc = rc, .conf = conf, .m = m, .now = wall_ms()};
	bool ttls = rc->result_ttl || rc->original_ttl || rc->record_ttl;
	struct keys ids = {0};
	int ret = 0;

	proc_notify_busy(STEP_BUSY_MS);
	if (!lease_take(&p)) {
		proc_notify_alive();
		return 0;
	}
	if (ttls)
		ret = storage_ops(set)->list(set->storage->state, "jobs/",
		                             collect, &ids);
	for (size_t i = 0; !ret && i < ids.n && !*stop; i++) {
		if (!job_id_valid(ids.k[i] + 5))
			continue;
		if (i % 64 == 0)
			transport_ops(set)->tick(set->transport->state);
		proc_notify_busy(STEP_BUSY_MS);
		ret = record(&p, ids.k[i] + 5);
	}
	if (!ret && rc->result_ttl && !*stop)
		ret = results(&p, stop);
	if (!ret && rc->original_ttl && !*stop)
		ret = orphans(&p, stop);
	if (!ret && !*stop)
		ret = idempotency_keys(&p, stop);
	if (ret)
		log_warn(COMPONENT, "pass stopped: %s; the next one goes on",
		         strerror(-ret));
	else if (!*stop && m)
		atomic_fetch_add(&m->retention_passes, 1);
	storage_ops(set)->del(set->storage->state, LEASE_KEY);
	proc_notify_alive();
	keys_free(&ids);
	keys_free(&p.keep);
	keys_free(&p.ids);
	keys_free(&p.images_seen);
	keys_free(&p.images_kept);
	return ret;
}
