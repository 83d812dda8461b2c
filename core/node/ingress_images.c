/*
 * Images as a resource, and their variants by URL (see ingress_http.c for
 * the rest of the API):
 *
 *   POST   /v1/images              stores an original (raw or multipart,
 *                                  read and probed as POST /v1/jobs reads
 *                                  uploads): 201, or 200 if it was there
 *   GET    /v1/images/ID           its metadata (HEAD too)
 *   DELETE /v1/images/ID           the original, its variants, their
 *                                  records: 204
 *   GET    /v1/images/ID/VARIANT   VARIANT a preset's name or a pipeline
 *                                  (URL-encoded): the variant (HEAD too)
 *
 * An image's id is its content's (job.h): the same bytes uploaded twice
 * are one image, stored once. With [ingress] api_keys an image belongs to
 * the keys that uploaded it ("owners" in its metadata): another key reads
 * it as if there were none (404), its own first upload of the same bytes
 * is a 201 as for a new image (200 only for the key's own repeats), and
 * DELETE by one of several owners only drops that key from them; the
 * last owner's deletes it all.
 *
 * A variant is a job like any other, with the original at img/ID: made by
 * any node's workers, its result in the result store, its record marked
 * "image": ID (so retention can tell whose variant it is). Its job id is
 * its result key's (job_variant_id), and its record is created with
 * put_excl: identical requests, on any node, make one job; the requests
 * that find the record wait on it (ingress_pending_watch), the one that
 * created it publishes it. A request waits at most [ingress]
 * variant_wait, then gets 503 with Retry-After (the job goes on). With
 * [ingress] presets_only, only presets' names are taken (403 otherwise).
 *
 * The pipeline goes through the same checks as an upload's
 * (ingress_pipeline_resolve, ingress_pipeline_admit), against the header
 * kept in the image's metadata, before anything is stored or queued.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "image_info.h"
#include "ingress.h"
#include "metrics.h"
#include "node_conf.h"
#include "pipeline.h"
#include "request_check.h"
#include "startup.h"

#define COMPONENT "ingress"
#define IMAGE_META_MAX (64 * 1024)

/* ---- metadata ---- */

/* True if r may see the image of metadata meta: its key is an owner, it
 * is signed, or there are no keys (nor owners). */
static bool may_use(bool signed_read, const char *key_id, json_t *meta)
{
	json_t *owners = json_object_get(meta, "owners"), *v;
	size_t i;

	if (signed_read || !key_id[0] || !json_array_size(owners))
		return true;
	json_array_foreach(owners, i, v)
	{
		const char *s = json_string_value(v);

		if (s && strcmp(s, key_id) == 0)
			return true;
	}
	return false;
}

/* Adds key_id to meta's owners; true if it was not one. */
static bool add_owner(json_t *meta, const char *key_id)
{
	json_t *owners = json_object_get(meta, "owners"), *v;
	size_t i;

	if (!key_id[0])
		return false;
	if (!json_is_array(owners)) {
		owners = json_array();
		json_object_set_new(meta, "owners", owners);
	}
	json_array_foreach(owners, i, v)
	{
		const char *s = json_string_value(v);

		if (s && strcmp(s, key_id) == 0)
			return false;
	}
	json_array_append_new(owners, json_string(key_id));
	return true;
}

/* The image's header as the metadata keeps it (what the cost check of a
 * variant reads). False if it is not whole. */
static bool info_of(json_t *meta, struct image_info *info)
{
	json_t *h = json_object_get(meta, "header");
	const char *format = json_string_value(json_object_get(meta, "format"));

	memset(info, 0, sizeof(*info));
	if (!format || !json_is_object(h))
		return false;
	snprintf(info->format, sizeof(info->format), "%s", format);
	info->width = (int)json_integer_value(json_object_get(meta, "width"));
	info->height = (int)json_integer_value(json_object_get(meta, "height"));
	info->pages = (int)json_integer_value(json_object_get(meta, "pages"));
	info->interlaced = json_is_true(json_object_get(h, "interlaced"));
	info->bands = (int)json_integer_value(json_object_get(h, "bands"));
	info->band_bytes =
	        (int)json_integer_value(json_object_get(h, "band_bytes"));
	info->orientation =
	        (int)json_integer_value(json_object_get(h, "orientation"));
	return info->width > 0 && info->height > 0;
}

/* Reads and parses the metadata at key: new, or NULL with *ret (-EBADMSG:
 * not a JSON object). */
static json_t *meta_get(const struct plugin_set *set, void *state,
                        const char *key, int *ret)
{
	void *buf = NULL;
	size_t len = 0;
	json_t *meta;

	*ret = storage_ops(set)->get(state, key, IMAGE_META_MAX, &buf, &len);
	if (*ret)
		return NULL;
	meta = json_loadb(buf, len, 0, NULL);
	free(buf);
	if (!json_is_object(meta)) {
		json_decref(meta);
		*ret = -EBADMSG;
		return NULL;
	}
	return meta;
}

static int meta_put(const struct plugin_set *set, void *state, const char *key,
                    json_t *meta, bool excl)
{
	const struct imgnode_storage_ops *st = storage_ops(set);
	char *text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
	int ret;

	if (!text)
		return -ENOMEM;
	ret = (excl ? st->put_excl : st->put)(state, key, text, strlen(text));
	free(text);
	return ret;
}

/* The metadata as answered: without the owners and the header. New. */
static json_t *public_meta(json_t *meta)
{
	json_t *j = json_copy(meta);

	json_object_del(j, "owners");
	json_object_del(j, "header");
	return j;
}

/* An answer with the image's metadata. */
static enum MHD_Result answer_meta(struct request *r, unsigned status,
                                   json_t *meta)
{
	struct MHD_Response *resp;
	char where[64];
	size_t len = 0;

	resp = ingress_json_response(public_meta(meta), &len);
	if (resp) {
		snprintf(where, sizeof(where), "/v1/images/%s", r->image);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, where);
	}
	return ingress_respond(r, status, resp, len);
}

static enum MHD_Result unknown_image(struct request *r)
{
	return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown image",
	                        "no image %s", r->image);
}

/* ---- POST /v1/images ---- */

/*
 * Storing an image, on the storage's executor: found by its metadata, or
 * its original stored and then its metadata created (put_excl: of two
 * uploads at once, one creates it, the other finds it). The upload is the
 * op's, as a job's is (ingress_submit.c).
 */
struct put_op {
	struct exec_op op;
	struct ingress *in;
	char id[JOB_ID_LEN + 1];
	char key_id[72];
	json_t *meta; /* new; then as stored */
	struct ingress_upload up;
	bool created;
};

static int put_run(struct exec_op *op, void *state)
{
	struct put_op *o = (struct put_op *)op;
	const struct plugin_set *set = &o->in->set;
	char key[JOB_KEY_MAX], mkey[JOB_KEY_MAX];
	json_t *was;
	int ret;

	job_image_key(o->id, key, sizeof(key));
	job_image_meta_key(o->id, mkey, sizeof(mkey));
	for (int tries = 0; tries < 2; tries++) {
		was = meta_get(set, state, mkey, &ret);
		if (was) { /* there: one more owner, perhaps */
			json_decref(o->meta);
			o->meta = was;
			/* new to this key: 201, as if stored now, so that no
			 * key learns what others uploaded */
			o->created = add_owner(was, o->key_id);
			if (o->created)
				return meta_put(set, state, mkey, was, false);
			return 0;
		}
		if (ret != -ENOENT)
			return ret;
		/* the same bytes under the same key: rewriting is harmless */
		ret = storage_ops(set)->put(state, key, o->up.body, o->up.len);
		if (ret)
			return ret;
		ret = meta_put(set, state, mkey, o->meta, true);
		if (ret != -EEXIST) {
			o->created = !ret;
			return ret;
		}
	}
	return -EAGAIN;
}

static void put_drop(struct exec_op *op)
{
	struct put_op *o = (struct put_op *)op;

	ingress_upload_free(&o->up);
	json_decref(o->meta);
	free(o);
}

static enum MHD_Result stored(struct request *r)
{
	struct put_op *o = (struct put_op *)r->io_op;
	enum MHD_Result answer;

	r->io_op = NULL;
	if (!o || r->io_ret)
		answer = ingress_unavailable(r, &r->in->storage_ex, r->io_ret,
		                             "unable to store the image");
	else
		answer = answer_meta(
		        r, o->created ? MHD_HTTP_CREATED : MHD_HTTP_OK,
		        o->meta);
	ingress_io_free(o ? &o->op : NULL);
	return answer;
}

enum MHD_Result ingress_images_store(struct request *r,
                                     const struct image_info *info)
{
	unsigned char sha[32];
	char hex[65], now[40];
	struct put_op *o;

	if (ingress_upload_sha(r, sha))
		return ingress_answer_fail(r);
	job_image_id(sha, r->image);
	job_sha256_hex(sha, hex);
	job_timestamp(now, sizeof(now));
	o = calloc(1, sizeof(*o));
	if (o)
		o->meta = json_pack("{s:s, s:s, s:i, s:i, s:i, s:I, s:s, s:s, "
		                    "s:{s:b, s:i, s:i, s:i}, s:[]}",
		                    "id", r->image, "format", info->format,
		                    "width", info->width, "height",
		                    info->height, "pages", info->pages, "bytes",
		                    (json_int_t)r->len, "sha256", hex,
		                    "created", now, "header", "interlaced",
		                    info->interlaced, "bands", info->bands,
		                    "band_bytes", info->band_bytes,
		                    "orientation", info->orientation, "owners");
	if (!o || !o->meta) {
		free(o);
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make the image's metadata");
	}
	o->op.run = put_run;
	o->op.drop = put_drop;
	o->in = r->in;
	snprintf(o->id, sizeof(o->id), "%s", r->image);
	snprintf(o->key_id, sizeof(o->key_id), "%s", r->key_id);
	add_owner(o->meta, r->key_id);
	/* the upload is the op's now: it may outlive this request's wait */
	ingress_upload_take(r, &o->up);
	return ingress_io_begin(r, &r->in->storage_ex, &o->op, stored);
}

/* ---- GET /v1/images/ID (and the first step of a variant) ---- */

struct meta_op {
	struct exec_op op;
	const struct plugin_set *set;
	char key[JOB_KEY_MAX];
	json_t *meta;
};

static int meta_run(struct exec_op *op, void *state)
{
	struct meta_op *o = (struct meta_op *)op;
	int ret;

	o->meta = meta_get(o->set, state, o->key, &ret);
	return ret == -EBADMSG ? 0 : ret;
}

static void meta_drop(struct exec_op *op)
{
	struct meta_op *o = (struct meta_op *)op;

	json_decref(o->meta);
	free(o);
}

/* The metadata the meta op of r read (new), or NULL: then r is answered
 * (404, 503) in *answer. */
static json_t *meta_take(struct request *r, enum MHD_Result *answer)
{
	struct meta_op *o = (struct meta_op *)r->io_op;
	json_t *meta = o ? o->meta : NULL;
	int ret = r->io_ret;

	if (o)
		o->meta = NULL;
	ingress_io_free(r->io_op);
	r->io_op = NULL;
	if (meta && may_use(r->signed_read, r->key_id, meta))
		return meta;
	json_decref(meta);
	*answer = !ret || ret == -ENOENT
	                  ? unknown_image(r)
	                  : ingress_unavailable(r, &r->in->storage_ex, ret,
	                                        "unable to read the image");
	return NULL;
}

static enum MHD_Result meta_read(struct request *r)
{
	enum MHD_Result answer;
	json_t *meta = meta_take(r, &answer);

	if (!meta)
		return answer;
	answer = answer_meta(r, MHD_HTTP_OK, meta);
	json_decref(meta);
	return answer;
}

static struct exec_op *meta_op(struct request *r)
{
	struct meta_op *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->op.run = meta_run;
	o->op.drop = meta_drop;
	o->set = &r->in->set;
	job_image_meta_key(r->image, o->key, sizeof(o->key));
	return &o->op;
}

/* ---- DELETE /v1/images/ID ---- */

struct delete_op {
	struct exec_op op;
	const struct plugin_set *set;
	char id[JOB_ID_LEN + 1];
	char key_id[72];
	bool signed_read;
	bool released; /* the key is no longer an owner; others are */
	json_t *marks; /* the variants' markers found */
};

static int collect(const char *key, void *arg)
{
	return json_array_append_new(arg, json_string(key)) ? -ENOMEM : 0;
}

/* Deletes key; absent is fine. 0 or -errno. */
static int forget(const struct imgnode_storage_ops *st, void *state,
                  const char *key)
{
	int ret = st->del(state, key);

	return ret == -ENOENT ? 0 : ret;
}

/* A variant's result (and its .meta: the marker names the result, so
 * it is found without the record), record and marker. 0 or -errno. */
static int forget_variant(const struct imgnode_storage_ops *st, void *state,
                          const char *mark)
{
	const char *vid = strrchr(mark, '/');
	char key[JOB_KEY_MAX + 8], result[JOB_KEY_MAX];
	void *buf = NULL;
	size_t len = 0;
	int ret;

	ret = st->get(state, mark, JOB_KEY_MAX - 1, &buf, &len);
	if (ret)
		return ret == -ENOENT || ret == -EFBIG ? 0 : ret;
	snprintf(result, sizeof(result), "%.*s", (int)len, (char *)buf);
	free(buf);
	if (imgnode_key_valid(result) && strncmp(result, "out/", 4) == 0) {
		snprintf(key, sizeof(key), "%s.meta", result);
		ret = forget(st, state, key);
		if (!ret)
			ret = forget(st, state, result);
		if (ret)
			return ret;
	}
	if (vid && job_id_valid(vid + 1)) {
		job_record_key(vid + 1, key, sizeof(key));
		ret = forget(st, state, key);
	}
	return ret ? ret : forget(st, state, mark);
}

static int delete_run(struct exec_op *op, void *state)
{
	struct delete_op *o = (struct delete_op *)op;
	const struct imgnode_storage_ops *st = storage_ops(o->set);
	char mkey[JOB_KEY_MAX], key[JOB_KEY_MAX];
	size_t i;
	json_t *meta, *v;
	int ret;

	job_image_meta_key(o->id, mkey, sizeof(mkey));
	meta = meta_get(o->set, state, mkey, &ret);
	if (!meta && ret != -EBADMSG)
		return ret;
	if (meta && !may_use(o->signed_read, o->key_id, meta)) {
		json_decref(meta);
		return -ENOENT;
	}
	if (meta && o->key_id[0] && !o->signed_read &&
	    json_array_size(json_object_get(meta, "owners")) > 1) {
		json_t *owners = json_object_get(meta, "owners");

		json_array_foreach(owners, i, v)
		{
			const char *s = json_string_value(v);

			if (s && strcmp(s, o->key_id) == 0) {
				json_array_remove(owners, i);
				break;
			}
		}
		o->released = true;
		ret = meta_put(o->set, state, mkey, meta, false);
		json_decref(meta);
		return ret;
	}
	json_decref(meta);
	/* the variants, then the original, the metadata last: a DELETE cut
	 * short is done again by the next one */
	snprintf(key, sizeof(key), "imgv/%s/", o->id);
	ret = st->list(state, key, collect, o->marks);
	if (ret && ret != -ENOENT)
		return ret;
	json_array_foreach(o->marks, i, v)
	{
		ret = forget_variant(st, state, json_string_value(v));
		if (ret)
			return ret;
	}
	job_image_key(o->id, key, sizeof(key));
	ret = forget(st, state, key);
	return ret ? ret : forget(st, state, mkey);
}

static void delete_drop(struct exec_op *op)
{
	struct delete_op *o = (struct delete_op *)op;

	json_decref(o->marks);
	free(o);
}

static enum MHD_Result deleted(struct request *r)
{
	struct delete_op *o = (struct delete_op *)r->io_op;
	int ret = r->io_ret;
	enum MHD_Result answer;

	r->io_op = NULL;
	if (o && ret == -ENOENT)
		answer = unknown_image(r);
	else if (!o || ret)
		answer = ingress_unavailable(r, &r->in->storage_ex, ret,
		                             "unable to delete the image");
	else {
		log_info(COMPONENT, "image %s id=%s variants=%zu",
		         o->released ? "released" : "deleted", r->image,
		         json_array_size(o->marks));
		answer = ingress_respond(
		        r, MHD_HTTP_NO_CONTENT,
		        MHD_create_response_from_buffer(0, NULL,
		                                        MHD_RESPMEM_PERSISTENT),
		        0);
	}
	ingress_io_free(o ? &o->op : NULL);
	return answer;
}

static struct exec_op *delete_op(struct request *r)
{
	struct delete_op *o = calloc(1, sizeof(*o));

	if (!o || !(o->marks = json_array())) {
		free(o);
		return NULL;
	}
	o->op.run = delete_run;
	o->op.drop = delete_drop;
	o->set = &r->in->set;
	o->signed_read = r->signed_read;
	snprintf(o->id, sizeof(o->id), "%s", r->image);
	snprintf(o->key_id, sizeof(o->key_id), "%s", r->key_id);
	return &o->op;
}

/* ---- GET /v1/images/ID/VARIANT ---- */

/*
 * Finding or creating a variant's job, on the storage's executor: its
 * result if it is there; else its marker (for DELETE) and its record,
 * created exclusively; or the record another request created.
 */
struct claim_op {
	struct exec_op op;
	struct ingress *in;
	char mark[JOB_KEY_MAX];
	char meta_key[JOB_KEY_MAX + 8];
	json_t *rec; /* new; or as found */
	int64_t image_us; /* the image's "created" */
	bool created; /* ours to publish */
	struct ingress_result res; /* a done one's */
};

static int claim_run(struct exec_op *op, void *state)
{
	struct claim_op *o = (struct claim_op *)op;
	const struct plugin_set *set = &o->in->set;
	const struct imgnode_storage_ops *st = storage_ops(set);
	const char *id = json_string_value(json_object_get(o->rec, "id"));
	const char *result =
	        json_string_value(json_object_get(o->rec, "result"));
	char key[JOB_KEY_MAX];
	json_t *out, *found;
	int ret;

	/* made already (by a variant, or a job of the same image): done */
	out = meta_get(set, state, o->meta_key, &ret);
	if (out) {
		json_object_set_new(o->rec, "output", out);
		job_record_set_status(o->rec, JOB_DONE, NULL);
		return ingress_io_result(o->in, o->rec, &o->res);
	}
	if (ret != -ENOENT && ret != -EBADMSG)
		return ret;
	ret = st->put(state, o->mark, result, strlen(result));
	if (ret)
		return ret;
	job_record_key(id, key, sizeof(key));
	ret = meta_put(set, state, key, o->rec, true);
	if (ret != -EEXIST) {
		o->created = !ret;
		return ret;
	}
	found = job_record_get(set->storage, id, &ret);
	if (!found)
		return ret == -ENOENT ? -EAGAIN : ret; /* deleted meanwhile */
	/* failed before this image was stored (it was deleted, then
	 * uploaded again): not this image's failure; made again */
	if (job_record_status(found) == JOB_FAILED &&
	    job_stamp_us(found, "created") < o->image_us) {
		json_decref(found);
		ret = st->del(state, key);
		if (ret && ret != -ENOENT)
			return ret;
		ret = meta_put(set, state, key, o->rec, true);
		o->created = !ret;
		return ret == -EEXIST ? -EAGAIN : ret;
	}
	json_decref(o->rec);
	o->rec = found;
	return ingress_io_result(o->in, found, &o->res);
}

static void claim_drop(struct exec_op *op)
{
	struct claim_op *o = (struct claim_op *)op;

	json_decref(o->rec);
	ingress_result_free(&o->res);
	free(o);
}

/* Waits for the variant's job (r->id), or answers from its record. */
static enum MHD_Result wait_variant(struct request *r)
{
	r->wait_ms = r->in->conf->app->ingress.variant_wait;
	if (r->wait_ms > 0 && ingress_wait_suspend(r))
		return MHD_YES;
	return ingress_answer_from_record(r);
}

/* The job of a variant not published after all: its record and marker
 * deleted, then the refusal noted in r answered. */
static enum MHD_Result answer_undone(struct request *r)
{
	ingress_io_free(r->io_op);
	r->io_op = NULL;
	return ingress_answer_fail(r);
}

static enum MHD_Result undo(struct request *r)
{
	char record[JOB_KEY_MAX], mark[JOB_KEY_MAX];

	job_record_key(r->id, record, sizeof(record));
	job_variant_mark_key(r->image, r->id, mark, sizeof(mark));
	return ingress_io_begin(
	        r, &r->in->storage_ex,
	        ingress_io_delete_op(r->in, r->id, record, mark),
	        answer_undone);
}

static enum MHD_Result published(struct request *r)
{
	struct ingress *in = r->in;
	int ret = r->io_ret;

	ingress_io_free(r->io_op);
	r->io_op = NULL;
	if (ret) {
		ingress_pending_finish(in, r->id);
		ingress_fail_unavailable(r, &in->transport_ex, ret,
		                         "unable to queue the variant's job");
		return undo(r);
	}
	atomic_fetch_add(&in->metrics->accepted, 1);
	log_debug(COMPONENT, "variant queued id=%s image=%s pipeline=%s", r->id,
	          r->image, r->pl->canonical);
	return wait_variant(r);
}

static enum MHD_Result claimed(struct request *r)
{
	struct ingress *in = r->in;
	struct claim_op *o = (struct claim_op *)r->io_op;
	struct job_msg m = {.pipeline = r->pl->canonical,
	                    .request_id = r->request_id};
	enum job_status st;
	enum MHD_Result answer;
	size_t len = 0;
	char *body;
	int ret;

	r->io_op = NULL;
	if (!o || r->io_ret) {
		ingress_io_free(o ? &o->op : NULL);
		return ingress_unavailable(r, &in->storage_ex, r->io_ret,
		                           "unable to look up the variant");
	}
	st = job_record_status(o->rec);
	if (!o->created && job_status_final(st)) { /* made, or refused */
		if (st == JOB_DONE)
			atomic_fetch_add(&in->metrics->cache_hits, 1);
		answer = ingress_answer_job(r, o->rec, &o->res, false);
		ingress_io_free(&o->op);
		return answer;
	}
	if (!o->created) { /* another request's: wait on it */
		ingress_io_free(&o->op);
		if (ingress_pending_watch(in, r->id))
			return ingress_fail_now(
			        r, MHD_HTTP_SERVICE_UNAVAILABLE,
			        "internal error",
			        "unable to wait for the variant");
		return wait_variant(r);
	}
	atomic_fetch_add(&in->metrics->cache_misses, 1);
	memcpy(m.id, r->id, sizeof(m.id));
	m.result = (char *)json_string_value(json_object_get(o->rec, "result"));
	body = job_msg_encode(&m, &len);
	ingress_io_free(&o->op);
	/* a draining node makes it, uncounted: the drain does not wait on
	 * what its readers keep asking for */
	ret = atomic_load(&in->metrics->draining)
	              ? ingress_pending_watch(in, r->id)
	              : ingress_pending_add(in, r->id, r->client);
	if (ret == -ENOMEM) {
		free(body);
		ingress_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "internal error",
		             "unable to count the variant's job");
		return undo(r);
	}
	if (ret) {
		free(body);
		ingress_fail(
		        r, MHD_HTTP_TOO_MANY_REQUESTS, "too many jobs", "%s",
		        ret == -EDQUOT
		                ? "this client has as many jobs in flight as it may ([ingress] max_inflight_per_client)"
		                : "the node has as many jobs in flight as it may ([ingress] max_inflight)");
		r->fail_limit = ret == -EDQUOT ? "max_inflight_per_client"
		                               : "max_inflight";
		return undo(r);
	}
	return ingress_io_begin(
	        r, &in->transport_ex,
	        body ? ingress_io_publish_op(in, body, len) : NULL, published);
}

/* The image's metadata read: the pipeline checked against its header,
 * then the variant looked up or its job created. */
static enum MHD_Result variant_meta(struct request *r)
{
	struct ingress *in = r->in;
	char result[JOB_KEY_MAX];
	const char *hex;
	struct image_info info;
	struct claim_op *o;
	enum MHD_Result answer;
	int64_t image_us;
	json_t *meta = meta_take(r, &answer);

	if (!meta)
		return answer;
	hex = json_string_value(json_object_get(meta, "sha256"));
	image_us = job_stamp_us(meta, "created");
	if (!info_of(meta, &info) || !hex) {
		json_decref(meta);
		return ingress_fail_now(
		        r, MHD_HTTP_INTERNAL_SERVER_ERROR, "bad record",
		        "the metadata of image %s is not whole", r->image);
	}
	if (ingress_pipeline_admit(r, &info)) {
		json_decref(meta);
		return ingress_answer_fail(r);
	}
	if (job_result_key_of(hex, r->pl, &in->set, info.format,
	                      in->conf->app->limits.keep_metadata, result,
	                      sizeof(result)) ||
	    job_variant_id(result, r->id)) {
		json_decref(meta);
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make the variant's key");
	}
	o = calloc(1, sizeof(*o));
	if (o)
		o->rec = ingress_job_record(
		        r, hex,
		        (uint64_t)json_integer_value(
		                json_object_get(meta, "bytes")),
		        result, &info);
	json_decref(meta);
	if (!o || !o->rec) {
		free(o);
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "internal error",
		                        "unable to make the variant's record");
	}
	json_object_set_new(o->rec, "image", json_string(r->image));
	o->image_us = image_us;
	o->op.run = claim_run;
	o->op.drop = claim_drop;
	o->in = in;
	o->res.ret = -ENOENT;
	snprintf(o->meta_key, sizeof(o->meta_key), "%s.meta", result);
	job_variant_mark_key(r->image, r->id, o->mark, sizeof(o->mark));
	return ingress_io_begin(r, &in->storage_ex, &o->op, claimed);
}

/* The variant's pipeline, from a preset's name or the text itself. 0, or
 * -1 with the refusal noted. */
static int variant_pipeline(struct request *r)
{
	const struct conf *conf = r->in->conf;
	char why[128];

	if (!request_text_ok(r->variant, strlen(r->variant), why, sizeof(why)))
		return ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                    "the variant: %s", why);
	if (ingress_preset_find(conf, r->variant))
		return ingress_pipeline_resolve(r, r->variant, true);
	if (conf->app->ingress.presets_only)
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, "presets only",
		        "this node makes variants of presets only ([ingress] presets_only), and \"%.64s\" names none: see GET /v1/presets",
		        r->variant);
	return ingress_pipeline_resolve(r, r->variant, false);
}

enum MHD_Result ingress_images_get(struct request *r)
{
	bool del = strcmp(r->method, MHD_HTTP_METHOD_DELETE) == 0;

	if (!r->image[0])
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown image",
		                        "an image id is 32 hex digits");
	if (r->route == ROUTE_IMAGE)
		return ingress_io_begin(r, &r->in->storage_ex,
		                        del ? delete_op(r) : meta_op(r),
		                        del ? deleted : meta_read);
	if (variant_pipeline(r))
		return ingress_answer_fail(r);
	return ingress_io_begin(r, &r->in->storage_ex, meta_op(r),
	                        variant_meta);
}
