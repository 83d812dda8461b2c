/*
 * POST /v1/jobs (see ingress_http.c for the rest of the API): the upload,
 * raw or multipart/form-data, read up to [ingress] max_body; the pipeline
 * or preset, checked against the loaded filters (and signed, if [ingress]
 * hmac_keys is set: auth.c); the image's header; then the job. It is
 * accepted only once the original and the record are stored and the
 * publish is confirmed; whatever fails before that is a 503 and undone.
 * An identical earlier job (same original, pipeline and filter versions)
 * makes this one done at once, from the result cache.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../log.h"
#include "cost.h"
#include "image.h"
#include "ingress.h"
#include "metrics.h"
#include "node_conf.h"
#include "pipeline.h"
#include "prober.h"
#include "request_check.h"
#include "startup.h"
#include "storer.h"

#define COMPONENT "ingress"
#define PUBLISH_TIMEOUT_MS 5000
#define MULTIPART_SLACK (64 * 1024) /* boundaries and part headers */
#define PREALLOC_MAX (8 * 1024 * 1024)

static const char *arg(struct request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
	                                   name);
}

static const char *header(struct request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Notes a 429 for r's client, which has n jobs in flight. */
static void fail_client_quota(struct request *r, int64_t n)
{
	bool key = strncmp(r->client, "key:", 4) == 0;

	ingress_fail(
	        r, MHD_HTTP_TOO_MANY_REQUESTS, "too many jobs",
	        "%s %s has %lld jobs in flight on this node; the limit per client is %lld ([ingress] max_inflight_per_client)",
	        key ? "API key" : "client", key ? r->client + 4 : r->client,
	        (long long)n,
	        (long long)r->in->conf->app->ingress.max_inflight_per_client);
	r->fail_limit = "max_inflight_per_client";
}

/* True (with a 429 noted) when r's client, or the node, has as many jobs
 * in flight as it may. */
static bool over_inflight(struct request *r)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;
	int64_t n;

	if (ic->max_inflight_per_client) {
		n = ingress_client_inflight(r->in, r->client);
		if (n >= ic->max_inflight_per_client) {
			fail_client_quota(r, n);
			return true;
		}
	}
	n = metrics_inflight(r->in->metrics);
	if (n < ic->max_inflight)
		return false;
	ingress_fail(
	        r, MHD_HTTP_TOO_MANY_REQUESTS, "too many jobs",
	        "%lld jobs in flight on this node; the limit is %lld ([ingress] max_inflight)",
	        (long long)n, (long long)ic->max_inflight);
	r->fail_limit = "max_inflight";
	return true;
}

/* Checks and parses the pipeline (or the preset named by text). */
static int resolve(struct request *r, const char *text, bool preset)
{
	const struct conf *conf = r->in->conf;
	const char *pipeline = text;
	char err[512];

	if (!preset && conf->app->ingress.presets_only)
		return ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                    "this node accepts only ?preset=NAME");
	if (preset) {
		const struct preset *p = conf->app->presets;

		while (p && strcmp(p->name, text) != 0)
			p = p->next;
		if (!p)
			return ingress_fail(r, MHD_HTTP_BAD_REQUEST,
			                    "bad pipeline", "no preset \"%s\"",
			                    text);
		pipeline = p->pipeline;
	}
	r->pl = pipeline_parse(pipeline, &r->in->set, err, sizeof(err));
	if (!r->pl)
		return ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                    "%s", err);
	return 0;
}

/* Notes why a multipart/form-data body is refused (the first reason). */
static enum MHD_Result bad_form(struct request *r, const char *why)
{
	if (!r->bad_form)
		r->form_why = why;
	r->bad_form = true;
	return MHD_YES;
}

/*
 * Reserves n more bytes of [ingress] upload_memory for r's body: false if
 * they do not fit beside the other uploads in progress. An upload that
 * holds all there is reserved may always grow (up to max_body), so one
 * upload of any allowed size goes through.
 */
static bool reserve(struct request *r, size_t n)
{
	struct ingress *in = r->in;
	int64_t budget = in->conf->app->ingress.upload_memory;
	int64_t was = atomic_fetch_add(&in->upload_bytes, (int64_t)n);

	if (was + (int64_t)n > budget && was != (int64_t)r->reserved) {
		atomic_fetch_sub(&in->upload_bytes, (int64_t)n);
		return false;
	}
	if (!r->reserved)
		atomic_fetch_add(&in->uploads, 1);
	r->reserved += n;
	return true;
}

void ingress_upload_release(struct request *r)
{
	if (r->reserved) {
		atomic_fetch_sub(&r->in->upload_bytes, (int64_t)r->reserved);
		atomic_fetch_sub(&r->in->uploads, 1);
	}
	r->reserved = 0;
	free(r->body);
	r->body = NULL;
	r->cap = 0;
}

/* Stops keeping the body: it is refused anyway (too big, no memory). */
static void drop_body(struct request *r)
{
	ingress_upload_release(r);
	r->len = 0;
}

/* Keeps n more bytes of the image, up to [ingress] max_body and within
 * the memory reserved for it. */
static void take(struct request *r, const char *data, size_t n)
{
	size_t max = (size_t)r->in->conf->app->ingress.max_body;

	if (r->too_big || r->over_budget || !n)
		return;
	if (n > max - r->len) {
		r->too_big = true;
		drop_body(r);
		return;
	}
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 64 * 1024;
		char *grown;

		while (cap < r->len + n)
			cap *= 2;
		if (cap > max)
			cap = max;
		/* within what is reserved already, or reserve what is due */
		if (cap > r->reserved && r->reserved >= r->len + n)
			cap = r->reserved;
		if (cap > r->reserved && !reserve(r, cap - r->reserved) &&
		    !reserve(r, r->len + n - r->reserved)) {
			r->over_budget = true;
			drop_body(r);
			return;
		}
		if (cap > r->reserved)
			cap = r->reserved;
		grown = realloc(r->body, cap);
		if (!grown) { /* answered as a 400; logged */
			bad_form(r, "out of memory for the upload");
			log_error(COMPONENT, "out of memory for an upload");
			return;
		}
		r->body = grown;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	/* while the rest arrives; on failure accept_job hashes it whole */
	if (r->sha && !EVP_DigestUpdate(r->sha, data, n)) {
		EVP_MD_CTX_free(r->sha);
		r->sha = NULL;
	}
}

/* multipart/form-data: the "file" part is the image, "pipeline" text. */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *filename,
                               const char *type, const char *encoding,
                               const char *data, uint64_t off, size_t size)
{
	struct request *r = cls;

	(void)kind, (void)filename, (void)type, (void)encoding;
	if (!key) /* a part without Content-Disposition or name= */
		return bad_form(r, "a part without a name");
	/* a part's first piece comes at offset 0 (an empty one may come
	 * first): one at 0 with data after data is another part */
	if (strcmp(key, "file") == 0) {
		if (off == 0 && size && r->len)
			return bad_form(r, "a second file part");
		take(r, data, size);
	} else if (strcmp(key, "pipeline") == 0 && size) {
		char *grown;

		if (off == 0 && r->form_len)
			return bad_form(r, "a second pipeline part");
		if (r->form_len + size > PIPELINE_MAX_LEN)
			return bad_form(r, "the pipeline part is too long");
		grown = realloc(r->form_pipeline, r->form_len + size + 1);
		if (!grown)
			return bad_form(r,
			                "out of memory for the pipeline part");
		memcpy(grown + r->form_len, data, size);
		r->form_len += size;
		grown[r->form_len] = '\0';
		r->form_pipeline = grown;
	}
	return MHD_YES;
}

/* 503: the uploads in progress hold all of [ingress] upload_memory. */
static int over_budget(struct request *r)
{
	return ingress_fail(
	        r, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
	        "uploads in progress=%d hold %lld bytes of upload_memory=%lld; try again later",
	        atomic_load(&r->in->uploads),
	        (long long)atomic_load(&r->in->upload_bytes),
	        (long long)r->in->conf->app->ingress.upload_memory);
}

static enum MHD_Result over_budget_now(struct request *r)
{
	over_budget(r);
	return ingress_answer_fail(r);
}

/* A query parameter must be UTF-8 text (it may end up in a record and in
 * JSON answers): notes a 400 naming it and stops at the first that isn't. */
static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind,
                                 const char *key, size_t key_size,
                                 const char *value, size_t value_size)
{
	struct request *r = cls;
	bool pipeline;
	char why[128];

	(void)kind;
	if (!request_text_ok(key, key_size, why, sizeof(why))) {
		ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad request",
		             "the name of a query parameter: %s", why);
		return MHD_NO;
	}
	if (!value || request_text_ok(value, value_size, why, sizeof(why)))
		return MHD_YES;
	pipeline = strcmp(key, "pipeline") == 0 || strcmp(key, "preset") == 0;
	ingress_fail(r, MHD_HTTP_BAD_REQUEST,
	             pipeline ? "bad pipeline" : "bad request",
	             "query parameter %s: %s", key, why);
	return MHD_NO;
}

/* The first call: what can be refused before the body is read. */
enum MHD_Result ingress_submit_begin(struct request *r)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;
	const char *pipeline = arg(r, "pipeline"), *preset = arg(r, "preset");
	const char *wait = arg(r, "wait"), *cl = header(r, "Content-Length");
	const char *type = header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	unsigned long long declared = 0;
	uint64_t limit;

	r->multipart =
	        type && strncasecmp(type, "multipart/form-data", 19) == 0;
	limit = (uint64_t)ic->max_body + (r->multipart ? MULTIPART_SLACK : 0);
	MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, check_arg,
	                            r);
	if (r->fail_status || over_inflight(r))
		return ingress_answer_fail(r);
	if (cl) {
		char *end;
		unsigned long long n = strtoull(cl, &end, 10);

		if (n > limit)
			return ingress_fail_now(
			        r, MHD_HTTP_CONTENT_TOO_LARGE, "body too large",
			        "Content-Length %llu is over the limit of %lld bytes",
			        n, (long long)ic->max_body);
		declared = n;
	}
	if (wait) {
		char *end;
		double s = strtod(wait, &end);

		if (end == wait || *end || !(s >= 0) || s > 1e9)
			return ingress_fail_now(
			        r, MHD_HTTP_BAD_REQUEST, "bad request",
			        "wait=%s is not a number of seconds", wait);
		r->wait_ms = (int64_t)(s * 1000);
		if (r->wait_ms > ic->wait_max)
			r->wait_ms = ic->wait_max;
	}
	if (pipeline && preset)
		return ingress_fail_now(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                        "give pipeline or preset, not both");
	if ((pipeline || preset || r->multipart) &&
	    auth_submit(r, "/v1/jobs", pipeline, preset))
		return ingress_answer_fail(r);
	if ((pipeline || preset) &&
	    resolve(r, pipeline ? pipeline : preset, preset != NULL))
		return ingress_answer_fail(r);
	if (!pipeline && !preset && !r->multipart)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		        "no pipeline: give ?pipeline=... or ?preset=NAME");
	if (r->multipart) {
		r->pp = MHD_create_post_processor(r->conn, 64 * 1024, on_part,
		                                  r);
		if (!r->pp)
			return ingress_fail_now(
			        r, MHD_HTTP_BAD_REQUEST, "bad request",
			        "unreadable multipart/form-data header");
	}
	/* a request refused for what it is, not for the node being busy */
	if (declared && !reserve(r, (size_t)declared))
		return over_budget_now(r);
	if (!r->multipart && declared) {
		r->cap = declared < PREALLOC_MAX ? (size_t)declared
		                                 : PREALLOC_MAX;
		r->body = malloc(r->cap);
		r->cap = r->body ? r->cap : 0;
	}
	r->sha = EVP_MD_CTX_new();
	if (r->sha && !EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(r->sha);
		r->sha = NULL;
	}
	r->phase = PHASE_BODY;
	return MHD_YES;
}

enum MHD_Result ingress_submit_body(struct request *r, const char *data,
                                    size_t *size)
{
	uint64_t limit = (uint64_t)r->in->conf->app->ingress.max_body +
	                 (r->multipart ? MULTIPART_SLACK : 0);

	r->received += *size;
	if (r->received > limit && !r->too_big) {
		r->too_big = true;
		drop_body(r);
	}
	if (r->pp && !r->too_big && !r->over_budget && !r->bad_form &&
	    MHD_post_process(r->pp, data, *size) != MHD_YES)
		bad_form(r, "a malformed part, or part headers over 64 KiB");
	else if (!r->pp)
		take(r, data, *size);
	*size = 0;
	/*
	 * A body refused anyway (a chunked one over max_body, or one that
	 * outgrew upload_memory) is read to its end and thrown away, then
	 * answered: libmicrohttpd cannot answer in the middle of a body, and
	 * cutting the connection would leave the client without its 413 or
	 * 503. [ingress] request_deadline bounds the time.
	 */
	return MHD_YES;
}

/* The job's record as it starts: queued, nothing done yet. */
static json_t *new_record(struct request *r, const unsigned char sha[32],
                          const char *result, const struct image_info *info)
{
	json_t *plugins = json_object(), *rec;
	char now[40], hex[65];

	for (size_t i = 0; i < r->pl->n; i++) {
		const char *v = r->pl->steps[i].version;

		json_object_set_new(plugins, r->pl->steps[i].name,
		                    json_string(v ? v : "?"));
	}
	job_sha256_hex(sha, hex);
	job_timestamp(now, sizeof(now));
	rec = json_pack("{s:s, s:s, s:s, s:n, s:n, s:s, "
	                "s:{s:I, s:s, s:s, s:i, s:i, s:i}, "
	                "s:n, s:n, s:i, s:o, s:I, s:s, s:b}",
	                "id", r->id, "status", job_status_name(JOB_QUEUED),
	                "created", now, "started", "finished", "pipeline",
	                r->pl->canonical, "input", "bytes", (json_int_t)r->len,
	                "sha256", hex, "format", info->format, "width",
	                info->width, "height", info->height, "pages",
	                info->pages, "output", "error", "attempts", 0,
	                "plugins", plugins, "generation",
	                (json_int_t)r->in->node->generation, "result", result,
	                "cached", 0);
	if (rec)
		json_object_set_new(rec, "request_id",
		                    json_string(r->request_id));
	if (rec && r->key_id[0]) /* its ID, never the key */
		json_object_set_new(rec, "api_key_id", json_string(r->key_id));
	return rec;
}

/*
 * Under io: if out/KEY.meta exists the result is there already; the job
 * is done now. 0 (a hit, record stored), -ENOENT (no result yet), or
 * another -errno (storage failed).
 */
static int cache_hit(struct request *r, json_t *rec, const char *meta_key)
{
	const struct imgnode_storage_ops *st = storage_ops(&r->in->set);
	void *st_state = r->in->set.storage->state;
	json_t *meta, *out;
	void *buf = NULL;
	size_t len = 0;
	int ret;

	ret = st->get(st_state, meta_key, JOB_META_MAX, &buf, &len);
	if (ret)
		return ret;
	meta = json_loadb(buf, len, 0, NULL);
	free(buf);
	if (!json_is_object(meta)) {
		json_decref(meta);
		return -ENOENT; /* half-written or foreign: make it again */
	}
	out = json_deep_copy(meta);
	if (!json_object_get(out, "bytes") && json_object_get(meta, "size"))
		json_object_set(out, "bytes", json_object_get(meta, "size"));
	json_decref(meta);
	json_object_set_new(rec, "output", out);
	json_object_set_new(rec, "cached", json_true());
	json_object_set(rec, "started", json_object_get(rec, "created"));
	job_record_set_status(rec, JOB_DONE, NULL);
	return job_record_put(r->in->set.storage, rec);
}

static int publish(struct request *r, const char *result)
{
	struct ingress *in = r->in;
	struct job_msg m = {.pipeline = r->pl->canonical,
	                    .result = (char *)result,
	                    .request_id = r->request_id};
	size_t len = 0;
	char *body;
	int ret;

	memcpy(m.id, r->id, sizeof(m.id));
	body = job_msg_encode(&m, &len);
	if (!body)
		return -ENOMEM;
	ret = transport_ops(&in->set)->publish(in->set.transport->state, body,
	                                       len, in->reply_to,
	                                       PUBLISH_TIMEOUT_MS);
	free(body);
	return ret;
}

/*
 * Undoes a job refused after its record was stored, so that no record of
 * it stays queued for ever: removes the record (or, with keep, or when
 * removing it fails, marks it failed with why) and then the original. A
 * publish that was sent but not confirmed keeps the record, marked failed:
 * the message may still arrive, and a worker acks a job already over. If
 * storage refuses both, the record stays queued with its original, and the
 * reaper's sweep takes it up after [workers] stuck_after (reaper.c).
 * Under io.
 */
static void unqueue(struct request *r, json_t *rec, const char *record,
                    const char *orig, bool keep, const char *why)
{
	const struct imgnode_storage_ops *st = storage_ops(&r->in->set);
	void *st_state = r->in->set.storage->state;
	struct metrics *m = r->in->metrics;
	char reason[512];
	int ret = keep ? -EEXIST : st->del(st_state, record);

	if (ret && ret != -ENOENT) {
		snprintf(reason, sizeof(reason),
		         "not queued: %s; the upload was refused", why);
		job_record_set_status(rec, JOB_FAILED, reason);
		ret = job_record_put(r->in->set.storage, rec);
		if (ret) {
			atomic_fetch_add(&m->unqueued_left, 1);
			log_warn(
			        COMPONENT,
			        "job record id=%s left queued: unable to remove it or mark it failed: %s; the reaper's sweep takes it up after [workers] stuck_after",
			        r->id, strerror(-ret));
			return;
		}
		atomic_fetch_add(&m->unqueued_failed, 1);
	}
	st->del(st_state, orig);
}

/*
 * Stores the original and the record (at once), then publishes: only when
 * all three succeeded is the job accepted. Undoes what it did when one
 * fails (unqueue).
 */
static enum MHD_Result accept_job(struct request *r,
                                  const struct image_info *info)
{
	struct ingress *in = r->in;
	const struct imgnode_storage_ops *st = storage_ops(&in->set);
	void *st_state = in->set.storage->state;
	char result[JOB_KEY_MAX], meta[JOB_KEY_MAX + 8], hex[65];
	char orig[JOB_KEY_MAX], record[JOB_KEY_MAX], why[256];
	unsigned char sha[EVP_MAX_MD_SIZE];
	const char *what;
	bool transport = false;
	unsigned int shalen = 0;
	json_t *rec;
	int ret, oret;

	if (!(r->sha ? EVP_DigestFinal_ex(r->sha, sha, &shalen)
	             : EVP_Digest(r->body, r->len, sha, &shalen, EVP_sha256(),
	                          NULL)) ||
	    shalen != 32 || job_new_id(r->id))
		return ingress_fail_now(
		        r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error",
		        "unable to hash the image or make an id");
	if (!auth_sha_ok(r, sha))
		return ingress_fail_now(
		        r, MHD_HTTP_FORBIDDEN, "bad signature",
		        "the upload's SHA-256 is not the signed sha256=");
	job_sha256_hex(sha, hex);
	if (job_result_key_of(hex, r->pl, &in->set, info->format,
	                      in->conf->app->limits.keep_metadata, result,
	                      sizeof(result)))
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make the result's key");
	snprintf(meta, sizeof(meta), "%s.meta", result);
	job_orig_key(r->id, orig, sizeof(orig));
	job_record_key(r->id, record, sizeof(record));
	rec = new_record(r, sha, result, info);
	if (!rec) /* out of memory, or text jansson refused (not UTF-8) */
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make the job record");

	pthread_mutex_lock(&in->io);
	ret = cache_hit(r, rec, meta);
	if (ret == 0) {
		pthread_mutex_unlock(&in->io);
		atomic_fetch_add(&in->metrics->accepted, 1);
		atomic_fetch_add(&in->metrics->outcome[OUTCOME_CACHED], 1);
		atomic_fetch_add(&in->metrics->cache_hits, 1);
		atomic_fetch_add(&in->metrics->bytes_in, r->len);
		log_debug(COMPONENT, "result cache hit id=%s result=%s", r->id,
		          result);
		enum MHD_Result res =
		        r->wait_ms > 0 ? ingress_answer_job(r, rec, true)
		                       : ingress_answer_accepted(
		                                 r, job_status_name(JOB_DONE));
		json_decref(rec);
		return res;
	}
	what = "unable to look up the result cache";
	if (ret != -ENOENT)
		goto out_unlock;
	atomic_fetch_add(&in->metrics->cache_misses, 1);
	/* the original on the storer's instance, the record on ours, at once */
	storer_put(in->storer, orig, r->body, r->len);
	ret = job_record_put(in->set.storage, rec);
	oret = storer_wait(in->storer);
	if (oret) {
		what = "unable to store the original";
		if (!ret)
			unqueue(r, rec, record, orig, false,
			        "unable to store the original");
		ret = oret;
		goto out_unlock;
	}
	what = "unable to store the job record";
	if (ret)
		goto out_del_orig;
	what = "unable to count the job";
	ret = ingress_pending_add(in, r->id, r->client);
	if (ret == -EDQUOT) { /* requests in parallel took the last place */
		unqueue(r, rec, record, orig, false, "too many jobs");
		pthread_mutex_unlock(&in->io);
		json_decref(rec);
		fail_client_quota(r, ingress_client_inflight(in, r->client));
		return ingress_answer_fail(r);
	}
	if (ret)
		goto out_del_record;
	what = "unable to queue the job";
	transport = true;
	ret = publish(r, result);
	if (ret)
		goto out_forget;
	pthread_mutex_unlock(&in->io);
	ingress_kick(in);
	json_decref(rec);
	atomic_fetch_add(&in->metrics->accepted, 1);
	atomic_fetch_add(&in->metrics->bytes_in, r->len);
	log_debug(COMPONENT, "accepted id=%s pipeline=%s format=%s bytes=%zu",
	          r->id, r->pl->canonical, info->format, r->len);
	if (r->wait_ms <= 0)
		return ingress_answer_accepted(r, job_status_name(JOB_QUEUED));
	return ingress_wait_suspend(r) ? MHD_YES
	                               : ingress_answer_from_record(r);

out_forget:
	ingress_pending_finish(in, r->id);
	ingress_kick(in);
out_del_record:
	snprintf(why, sizeof(why), "%s: %s", what, strerror(-ret));
	/* sent but not confirmed: it may still arrive */
	unqueue(r, rec, record, orig, ret == -ETIMEDOUT, why);
	goto out_unlock;
out_del_orig:
	st->del(st_state, orig);
out_unlock:
	pthread_mutex_unlock(&in->io);
	json_decref(rec);
	log_warn(COMPONENT, "refusing a job: %s: %s", what, strerror(-ret));
	return ingress_fail_now(r, MHD_HTTP_SERVICE_UNAVAILABLE,
	                        transport ? "transport unavailable"
	                                  : "storage unavailable",
	                        "%s: %s", what, strerror(-ret));
}

/* The last call of an upload: the whole body is here. */
enum MHD_Result ingress_submit_finish(struct request *r)
{
	const struct conf *conf = r->in->conf;
	struct image_info info;
	enum MHD_Result res;
	char err[512], why[128];
	int ret;

	if (r->pp && MHD_destroy_post_processor(r->pp) != MHD_YES)
		bad_form(r, "the body ends before its closing boundary");
	r->pp = NULL;
	if (r->too_big)
		return ingress_fail_now(r, MHD_HTTP_CONTENT_TOO_LARGE,
		                        "body too large",
		                        "the limit is %lld bytes",
		                        (long long)conf->app->ingress.max_body);
	if (r->over_budget)
		return over_budget_now(r);
	if (r->bad_form)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad request",
		        "unreadable multipart/form-data body: %s (one file part, a pipeline part up to %d characters)",
		        r->form_why ? r->form_why : "malformed",
		        PIPELINE_MAX_LEN);
	if (r->form_pipeline && r->pl)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		        "give the pipeline once, in the query or the form");
	if (r->form_pipeline &&
	    !request_text_ok(r->form_pipeline, r->form_len, why, sizeof(why)))
		return ingress_fail_now(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                        "the pipeline part: %s", why);
	if (r->form_pipeline && (auth_form(r, r->form_pipeline) ||
	                         resolve(r, r->form_pipeline, false)))
		return ingress_answer_fail(r);
	if (!r->pl)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		        "no pipeline: give ?pipeline=..., ?preset=NAME or a pipeline part");
	if (!r->len)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad request", "%s",
		        r->multipart ? "no file part, or an empty one"
		                     : "empty body");
	if (over_inflight(r))
		return ingress_answer_fail(r);
	/* in a prober: libvips never sees untrusted bytes in the ingress */
	ret = prober_probe(r->in->probers, r->body, r->len, &conf->app->limits,
	                   &info, err, sizeof(err));
	if (ret == -EPROTONOSUPPORT)
		return ingress_fail_now(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		                        "unsupported format", "%s", err);
	if (ret && ret != -E2BIG && ret != -EINVAL && ret != -ECHILD &&
	    ret != -ETIMEDOUT)
		return ingress_fail_now(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                        "probe unavailable", "%s", err);
	/* every step's size, predicted from the header: no bomb is queued */
	if (!ret)
		ret = cost_check(r->pl, &r->in->set, &info, &conf->app->limits,
		                 err, sizeof(err));
	if (ret)
		return ingress_fail_now(r, MHD_HTTP_UNPROCESSABLE_CONTENT,
		                        "image rejected", "%s", err);
	res = accept_job(r, &info);
	/* stored or refused: a waiting request holds no upload memory */
	ingress_upload_release(r);
	return res;
}
