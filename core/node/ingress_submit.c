/*
 * POST /v1/jobs (see ingress_http.c for the rest of the API): the upload,
 * raw or multipart/form-data, read up to [ingress] max_body; the pipeline
 * or preset, checked against the loaded filters (and signed, if [ingress]
 * hmac_keys is set: auth.c); the image's header; then the job. It is
 * accepted only once the original and the record are stored and the
 * publish is confirmed; whatever fails before that is a 503 and undone.
 * An identical earlier job (same original, pipeline and filter versions)
 * makes this one done at once, from the result cache.
 *
 * With an Idempotency-Key (idempotency.h), the key is claimed in storage
 * before anything else is stored: a request that finds it claimed by the
 * same request (same upload, pipeline, callback) is answered that job
 * (202, Idempotent-Replayed: true) once it was accepted, or 409 with
 * Retry-After while it is still being stored; by another request, 422.
 * The claim is marked accepted once the job is published, and deleted
 * with what the job stored when it is refused.
 *
 * Storing the job (its record, the claim, the writes on the storage's
 * executor) is ingress_store.c.
 *
 * POST /v1/images (ingress_images.c) reads, probes and signs its upload
 * here too, without a pipeline; the pipeline checks (resolve, admit) are
 * the variants' as well.
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
#include "callback.h"
#include "cost.h"
#include "idempotency.h"
#include "image.h"
#include "ingress.h"
#include "ingress_store.h"
#include "metrics.h"
#include "negotiate.h"
#include "node_conf.h"
#include "pipeline.h"
#include "prober.h"
#include "renditions.h"
#include "request_check.h"

#define COMPONENT "ingress"
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

const struct preset *ingress_preset_find(const struct conf *conf,
                                         const char *name)
{
	const struct preset *p = conf->app->presets;

	while (p && strcmp(p->name, name) != 0)
		p = p->next;
	return p;
}

int ingress_pipeline_resolve(struct request *r, const char *text, bool preset)
{
	const struct conf *conf = r->in->conf;
	const char *pipeline = text;
	char err[512];

	if (!preset && conf->app->ingress.presets_only)
		return ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                    "this node accepts only ?preset=NAME");
	if (preset) {
		const struct preset *p = ingress_preset_find(conf, text);

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

/*
 * Checks and parses ?renditions=P1;P2;... (or ?presets=A;B;... when
 * presets) into r->rend, r->pl then being the first (renditions.h).
 */
static int resolve_renditions(struct request *r, const char *text, bool presets)
{
	size_t max = (size_t)r->in->conf->app->limits.max_renditions;
	char **parts, err[256];
	int n = renditions_split(text, max, &parts, err, sizeof(err));

	if (n < 0)
		return ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                    "%s=: %s",
		                    presets ? "presets" : "renditions", err);
	r->rend = calloc((size_t)n, sizeof(*r->rend));
	if (!r->rend) {
		renditions_parts_free(parts, (size_t)n);
		return ingress_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                    "internal error", "out of memory");
	}
	for (int i = 0; i < n; i++) {
		if (ingress_pipeline_resolve(r, parts[i], presets)) {
			char detail[sizeof(r->fail_detail)];

			snprintf(detail, sizeof(detail), "%s", r->fail_detail);
			snprintf(r->fail_detail, sizeof(r->fail_detail),
			         "rendition %d: %.480s", i + 1, detail);
			renditions_parts_free(parts, (size_t)n);
			return -1;
		}
		r->rend[r->nrend++] = r->pl;
		r->pl = NULL;
	}
	renditions_parts_free(parts, (size_t)n);
	r->pl = r->rend[0];
	return 0;
}

void ingress_submit_free(struct request *r)
{
	if (!r->rend)
		return;
	for (size_t i = 0; i < r->nrend; i++)
		pipeline_free(r->rend[i]);
	free(r->rend);
	r->rend = NULL;
	r->nrend = 0;
	r->pl = NULL;
}

/* Every rendition's cost, predicted from the header (as cost_check). */
static int cost_check_renditions(struct request *r,
                                 const struct image_info *info, char *err,
                                 size_t errlen)
{
	char why[512];
	int ret;

	for (size_t i = 0; i < r->nrend; i++) {
		ret = cost_check(r->rend[i], &r->in->set, info,
		                 &r->in->conf->app->limits, why, sizeof(why));
		if (ret) {
			snprintf(err, errlen, "rendition %zu: %.470s", i + 1,
			         why);
			return ret;
		}
	}
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

int ingress_upload_sha(struct request *r, unsigned char sha[32])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!(r->sha ? EVP_DigestFinal_ex(r->sha, md, &len)
	             : EVP_Digest(r->body, r->len, md, &len, EVP_sha256(),
	                          NULL)) ||
	    len != 32)
		return ingress_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                    "internal error",
		                    "unable to hash the image");
	if (!auth_sha_ok(r, md))
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, "bad signature",
		        "the upload's SHA-256 is not the signed sha256=");
	memcpy(sha, md, 32);
	return 0;
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
	pipeline = strcmp(key, "pipeline") == 0 || strcmp(key, "preset") == 0 ||
	           strcmp(key, "renditions") == 0 ||
	           strcmp(key, "presets") == 0;
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
	const char *renditions = arg(r, "renditions"),
	           *presets = arg(r, "presets");
	const char *wait = arg(r, "wait"), *cl = header(r, "Content-Length");
	const char *type = header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *idem = header(r, "Idempotency-Key");
	bool image = r->route == ROUTE_IMAGES; /* POST /v1/images */
	unsigned long long declared = 0;
	uint64_t limit;

	r->multipart =
	        type && strncasecmp(type, "multipart/form-data", 19) == 0;
	limit = (uint64_t)ic->max_body + (r->multipart ? MULTIPART_SLACK : 0);
	MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, check_arg,
	                            r);
	if (r->fail_status || (!image && over_inflight(r)))
		return ingress_answer_fail(r);
	/* an image's id is its content's: its repeats are one image already,
	 * so on POST /v1/images the key is only checked */
	if (idem) {
		char why[200];

		if (idem_key_check(idem, r->idem_key, why, sizeof(why)))
			return ingress_fail_now(r, MHD_HTTP_BAD_REQUEST,
			                        "bad idempotency key", "%s",
			                        why);
		if (image)
			r->idem_key[0] = '\0';
	}
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
	if (image && (pipeline || preset))
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad request",
		        "an image is uploaded without a pipeline: its variants name theirs (GET /v1/images/ID/PIPELINE)");
	if (image && auth_upload(r))
		return ingress_answer_fail(r);
	if (pipeline && preset)
		return ingress_fail_now(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                        "give pipeline or preset, not both");
	if ((renditions || presets) &&
	    (image || pipeline || preset || (renditions && presets)))
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		        "give one of pipeline, preset, renditions or presets");
	/* a signed renditions request signs pipeline=P1;P2 (presets=:
	 * preset=A;B), which no single pipeline can be */
	if (renditions || presets) {
		pipeline = renditions;
		preset = presets;
	}
	r->callback = arg(r, "callback");
	if (r->callback && image)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad callback",
		        "callback= is for jobs (POST /v1/jobs): storing an image runs none");
	if (r->callback) {
		char why[400];

		if (callback_url_check(r->callback, &ic->callback_hosts, why,
		                       sizeof(why)))
			return ingress_fail_now(r, MHD_HTTP_BAD_REQUEST,
			                        "bad callback", "%s", why);
	}
	if (!image && (pipeline || preset || r->multipart) &&
	    auth_submit(r, "/v1/jobs", pipeline, preset))
		return ingress_answer_fail(r);
	if ((renditions || presets) &&
	    resolve_renditions(r, renditions ? renditions : presets,
	                       presets != NULL))
		return ingress_answer_fail(r);
	if ((pipeline || preset) && !r->rend &&
	    ingress_pipeline_resolve(r, pipeline ? pipeline : preset,
	                             preset != NULL))
		return ingress_answer_fail(r);
	if (!image && !pipeline && !preset && !r->multipart)
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

/* The refusal noted in r, once what the job stored is deleted (or the
 * storage gave up on it). */
static enum MHD_Result answer_undone(struct request *r)
{
	ingress_io_free(r->io_op);
	r->io_op = NULL;
	return ingress_answer_fail(r);
}

/*
 * Refuses the job of r (the refusal noted already): deletes what the
 * stored job o (taken) left, then answers. While the storage is down the
 * records' sweep is left to find them.
 */
static enum MHD_Result undo(struct request *r, struct store_op *o)
{
	struct exec_op *del =
	        ingress_io_delete_op(r->in, r->id, o->record, o->orig);

	if (del && o->claimed)
		ingress_io_delete_also(del, o->idem);
	ingress_store_drop(&o->op);
	if (!del)
		return ingress_answer_fail(r);
	return ingress_io_begin(r, &r->in->storage_ex, del, answer_undone);
}

/* Notes the 503 of a job refused because a dependency failed at a step; a
 * line at debug if the dependency is away (its breaker logs the outage
 * once), else a warning. -1. */
static int refuse(struct request *r, struct executor *ex, int ret,
                  const char *what)
{
	log_msg(ret == -ECANCELED || breaker_counts(ret) ? LOG_DEBUG : LOG_WARN,
	        COMPONENT, "refusing a job: %s: %s", what,
	        ret == -ECANCELED ? "down"
	        : ret == -ETIME   ? "no answer in time"
	                          : strerror(-ret));
	return ingress_fail_unavailable(r, ex, ret, what);
}

/* The answer to a job just accepted: 202, or after its wait. */
static enum MHD_Result answer_new(struct request *r)
{
	if (r->wait_ms <= 0)
		return ingress_answer_accepted(r, job_status_name(JOB_QUEUED));
	return ingress_wait_suspend(r) ? MHD_YES
	                               : ingress_answer_from_record(r);
}

/* Its Idempotency-Key marked accepted (or not: logged), the job is
 * answered. */
static enum MHD_Result confirmed(struct request *r)
{
	if (r->io_ret)
		log_warn(
		        COMPONENT,
		        "job id=%s accepted, its Idempotency-Key left pending: %s; a retry gets 409 until it is taken for stale",
		        r->id, strerror(-r->io_ret));
	ingress_io_free(r->io_op);
	r->io_op = NULL;
	return answer_new(r);
}

/* The publish ended: accepted, or refused and undone. */
static enum MHD_Result published(struct request *r)
{
	struct ingress *in = r->in;
	struct store_op *o = (struct store_op *)r->job_op;
	struct exec_op *confirm = NULL;
	int ret = r->io_ret;

	r->job_op = NULL;
	ingress_io_free(r->io_op);
	r->io_op = NULL;
	if (ret) {
		/* refused, so undone even if it was sent unconfirmed: a
		 * delivery that finds no record is dead-lettered unrun */
		ingress_pending_finish(in, r->id);
		refuse(r, &in->transport_ex, ret, "unable to queue the job");
		return undo(r, o);
	}
	atomic_fetch_add(&in->metrics->accepted, 1);
	atomic_fetch_add(&in->metrics->bytes_in, o->up.len);
	log_debug(COMPONENT, "accepted id=%s pipeline=%s bytes=%zu", r->id,
	          r->pl->canonical, o->up.len);
	if (o->claimed)
		confirm = ingress_io_put_op(in, o->idem,
		                            ingress_store_accepted(o));
	ingress_store_drop(&o->op);
	if (confirm)
		return ingress_io_begin(r, &in->storage_ex, confirm, confirmed);
	return answer_new(r);
}

/*
 * The answer to a request whose Idempotency-Key another request holds
 * (o's verdict; o is dropped): that job, 409 while it is being stored,
 * or 422 if it was another request.
 */
static enum MHD_Result answer_repeat(struct request *r, struct store_op *o)
{
	struct ingress *in = r->in;
	enum idem_verdict verdict = o->verdict;
	char status[sizeof(o->replay_status)];
	long long window = (long long)(o->window / 1000);

	snprintf(r->id, sizeof(r->id), "%s", o->found.job);
	snprintf(status, sizeof(status), "%s", o->replay_status);
	ingress_store_drop(&o->op);
	if (verdict == IDEM_MISMATCH) {
		r->id[0] = '\0'; /* not this request's to know */
		return ingress_fail_now(
		        r, MHD_HTTP_UNPROCESSABLE_CONTENT,
		        "idempotency key reused",
		        "this Idempotency-Key was given to another request (another image, pipeline or callback) within the last %lld s ([ingress] idempotency_window); give a new key for a new job",
		        window);
	}
	if (verdict != IDEM_REPLAY) {
		ingress_fail(
		        r, MHD_HTTP_CONFLICT, "request in progress",
		        "a request with this Idempotency-Key is being accepted, on this node or another; ask again after Retry-After to get its job");
		return ingress_answer_fail_with(r, MHD_HTTP_HEADER_RETRY_AFTER,
		                                "1");
	}
	r->idem_replayed = true;
	atomic_fetch_add(&in->metrics->idempotent_replays, 1);
	log_debug(COMPONENT, "replayed id=%s for its Idempotency-Key", r->id);
	if (r->wait_ms <= 0 || ingress_pending_watch(in, r->id))
		return ingress_answer_accepted(r, status);
	return ingress_wait_suspend(r) ? MHD_YES
	                               : ingress_answer_from_record(r);
}

/* The job is stored (or done from the cache): count it, publish it. */
static enum MHD_Result stored(struct request *r)
{
	struct ingress *in = r->in;
	struct store_op *o = (struct store_op *)r->io_op;
	struct job_msg m = {.request_id = r->request_id};
	int ret = r->io_ret;
	size_t len = 0;
	char *body;

	r->io_op = NULL;
	if (!o) {
		refuse(r, &in->storage_ex, ret, "unable to store the job");
		return ingress_answer_fail(r);
	}
	if (ret) {
		refuse(r, &in->storage_ex, ret, o->what);
		ingress_store_drop(&o->op);
		return ingress_answer_fail(r);
	}
	if (o->idem[0] && !o->claimed)
		return answer_repeat(r, o);
	if (o->hit) {
		enum MHD_Result answer;

		atomic_fetch_add(&in->metrics->accepted, 1);
		atomic_fetch_add(&in->metrics->outcome[OUTCOME_CACHED], 1);
		atomic_fetch_add(&in->metrics->cache_hits, 1);
		atomic_fetch_add(&in->metrics->bytes_in, o->up.len);
		log_debug(COMPONENT, "result cache hit id=%s", r->id);
		answer = r->wait_ms > 0
		                 ? ingress_answer_job(r, o->rec, &o->res, true)
		                 : ingress_answer_accepted(
		                           r, job_status_name(JOB_DONE));
		ingress_store_drop(&o->op);
		return answer;
	}
	atomic_fetch_add(&in->metrics->cache_misses, 1);
	ret = ingress_pending_add(in, r->id, r->client);
	if (ret == -EDQUOT) { /* requests in parallel took the last place */
		fail_client_quota(r, ingress_client_inflight(in, r->client));
		return undo(r, o);
	}
	if (ret == -EUSERS) { /* the same, for the node */
		if (!over_inflight(r)) { /* one finished meanwhile */
			ingress_fail(
			        r, MHD_HTTP_TOO_MANY_REQUESTS, "too many jobs",
			        "the limit is %lld ([ingress] max_inflight)",
			        (long long)in->conf->app->ingress.max_inflight);
			r->fail_limit = "max_inflight";
		}
		return undo(r, o);
	}
	if (ret) {
		ingress_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "internal error",
		             "unable to count the job: %s", strerror(-ret));
		return undo(r, o);
	}
	memcpy(m.id, r->id, sizeof(m.id));
	/* a renditions job's: all of them, joined (its record's) */
	m.pipeline =
	        (char *)json_string_value(json_object_get(o->rec, "pipeline"));
	m.result = (char *)json_string_value(json_object_get(o->rec, "result"));
	body = job_msg_encode(&m, &len);
	r->job_op = &o->op;
	return ingress_io_begin(
	        r, &in->transport_ex,
	        body ? ingress_io_publish_op(in, body, len) : NULL, published);
}

/*
 * Stores the original and the record (at once), then publishes: only when
 * all three succeeded is the job accepted. Undoes what it did when one
 * fails, a publish sent but not confirmed too (a 503 leaves no record;
 * its delivery, if any, finds none and is dead-lettered). Each step waits for its dependency at most dependency_wait, with
 * the connection suspended (ingress_io_begin), and not at all while the
 * dependency is known down.
 */
static enum MHD_Result accept_job(struct request *r,
                                  const struct image_info *info)
{
	struct ingress *in = r->in;
	char result[JOB_KEY_MAX], hex[65];
	unsigned char sha[32];
	struct store_op *o;
	json_t *rec;

	if (ingress_upload_sha(r, sha))
		return ingress_answer_fail(r);
	if (job_new_id(r->id))
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make an id");
	job_sha256_hex(sha, hex);
	if (job_result_key_of(hex, r->pl, &in->set, info->format,
	                      in->conf->app->limits.keep_metadata, result,
	                      sizeof(result)))
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make the result's key");
	o = calloc(1, sizeof(*o));
	rec = o ? ingress_job_record(r, hex, r->len, result, info) : NULL;
	if (!rec) { /* out of memory, or text jansson refused (not UTF-8) */
		free(o);
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make the job record");
	}
	o->op.run = ingress_store_run;
	o->op.drop = ingress_store_drop;
	o->in = in;
	o->rec = rec;
	if (r->idem_key[0]) {
		if (idem_storage_key(r->key_id, r->idem_key, o->idem)) {
			ingress_store_drop(&o->op);
			return ingress_fail_now(
			        r, MHD_HTTP_INTERNAL_SERVER_ERROR,
			        "internal error",
			        "unable to hash the Idempotency-Key");
		}
		idem_request_hash(r->idem_def, sha, o->mine.hash);
		snprintf(o->mine.job, sizeof(o->mine.job), "%s", r->id);
		o->window = in->conf->app->ingress.idempotency_window;
	}
	o->wait = r->wait_ms > 0;
	o->res.ret = -ENOENT;
	if (!r->rend)
		snprintf(o->meta, sizeof(o->meta), "%s.meta", result);
	job_orig_key(r->id, o->orig, sizeof(o->orig));
	job_record_key(r->id, o->record, sizeof(o->record));
	if (r->callback)
		callback_index_key(r->id, o->callback, sizeof(o->callback));
	/* the upload is the op's now: it may outlive this request's wait */
	ingress_upload_take(r, &o->up);
	log_debug(COMPONENT, "storing id=%s pipeline=%s format=%s bytes=%zu",
	          r->id, r->pl->canonical, info->format, o->up.len);
	return ingress_io_begin(r, &in->storage_ex, &o->op, stored);
}

/* What defines r's job besides its upload, for its Idempotency-Key: its
 * pipelines as given (before auto is negotiated) and its callback. 0, or
 * -1 with a 500 noted. */
static int idem_note(struct request *r)
{
	const char *pipelines[RENDITIONS_MAX];
	size_t n = r->rend ? r->nrend : 1;

	if (n > RENDITIONS_MAX) /* [limits] max_renditions' bound */
		n = RENDITIONS_MAX;
	for (size_t i = 0; i < n; i++)
		pipelines[i] =
		        r->rend ? r->rend[i]->canonical : r->pl->canonical;
	if (idem_define(pipelines, n, r->callback, r->idem_def))
		return ingress_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                    "internal error",
		                    "unable to hash the request");
	return 0;
}

int ingress_pipeline_admit(struct request *r, const struct image_info *info)
{
	char err[512];

	/* auto becomes the encoder for this client and image, before the
	 * job is checked, recorded and keyed (negotiate.h) */
	r->vary_accept = negotiate_wanted(r->pl);
	if (r->vary_accept &&
	    negotiate_pipeline(&r->pl, &r->in->set,
	                       header(r, MHD_HTTP_HEADER_ACCEPT), info,
	                       &r->in->conf->app->formats, err, sizeof(err)))
		return ingress_fail(r, MHD_HTTP_UNPROCESSABLE_CONTENT,
		                    "image rejected", "%s", err);
	/* every step's size, predicted from the header: no bomb is queued */
	if (r->rend ? cost_check_renditions(r, info, err, sizeof(err))
	            : cost_check(r->pl, &r->in->set, info,
	                         &r->in->conf->app->limits, err, sizeof(err)))
		return ingress_fail(r, MHD_HTTP_UNPROCESSABLE_CONTENT,
		                    "image rejected", "%s", err);
	return 0;
}

/* The last call of an upload: the whole body is here. */
enum MHD_Result ingress_submit_finish(struct request *r)
{
	const struct conf *conf = r->in->conf;
	bool image = r->route == ROUTE_IMAGES; /* POST /v1/images */
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
	if (r->form_pipeline && image)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad request",
		        "an image is uploaded without a pipeline: its variants name theirs (GET /v1/images/ID/PIPELINE)");
	if (r->form_pipeline &&
	    (auth_form(r, r->form_pipeline) ||
	     ingress_pipeline_resolve(r, r->form_pipeline, false)))
		return ingress_answer_fail(r);
	if (!r->pl && !image)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		        "no pipeline: give ?pipeline=..., ?preset=NAME or a pipeline part");
	if (!r->len)
		return ingress_fail_now(
		        r, MHD_HTTP_BAD_REQUEST, "bad request", "%s",
		        r->multipart ? "no file part, or an empty one"
		                     : "empty body");
	if (!image && over_inflight(r))
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
	if (ret)
		return ingress_fail_now(r, MHD_HTTP_UNPROCESSABLE_CONTENT,
		                        "image rejected", "%s", err);
	if (image)
		res = ingress_images_store(r, &info);
	else if ((r->idem_key[0] && idem_note(r)) ||
	         ingress_pipeline_admit(r, &info))
		res = ingress_answer_fail(r);
	else
		res = accept_job(r, &info);
	/* stored or refused: a waiting request holds no upload memory */
	ingress_upload_release(r);
	return res;
}
