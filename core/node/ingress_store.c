/*
 * Storing a new job (ingress_store.h): its record, then, on the storage's
 * executor, its Idempotency-Key claimed, the result cache looked up, and
 * the original and the record written at once. And the upload's memory
 * ([ingress] upload_memory), which its request or the op storing it holds
 * and gives back.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "callback.h"
#include "idempotency.h"
#include "image_info.h"
#include "ingress.h"
#include "ingress_store.h"
#include "metrics.h"
#include "node_conf.h"
#include "pipeline.h"
#include "startup.h"
#include "storer.h"

#define COMPONENT "ingress"

/* Gives back reserved bytes of in's upload memory and frees body. */
static void give_back(struct ingress *in, char **body, size_t *reserved)
{
	if (*reserved) {
		atomic_fetch_sub(&in->upload_bytes, (int64_t)*reserved);
		atomic_fetch_sub(&in->uploads, 1);
	}
	*reserved = 0;
	free(*body);
	*body = NULL;
}

void ingress_upload_take(struct request *r, struct ingress_upload *up)
{
	up->in = r->in;
	up->body = r->body;
	up->len = r->len;
	up->reserved = r->reserved;
	r->body = NULL;
	r->reserved = 0;
	r->cap = 0;
}

void ingress_upload_free(struct ingress_upload *up)
{
	give_back(up->in, &up->body, &up->reserved);
}

void ingress_upload_release(struct request *r)
{
	give_back(r->in, &r->body, &r->reserved);
	r->cap = 0;
}

/*
 * A renditions job's fields (renditions.h) in its new record rec:
 * "renditions", "pipeline" as all of them joined with ";", and every
 * rendition's filters in plugins (rec's). 0 or -ENOMEM.
 */
static int renditions_record(struct request *r, json_t *rec, json_t *plugins)
{
	json_t *names = json_array();
	size_t len = 0, off = 0;
	char *joined;

	for (size_t i = 0; i < r->nrend; i++)
		len += strlen(r->rend[i]->canonical) + 1;
	joined = malloc(len);
	if (!names || !joined) {
		json_decref(names);
		free(joined);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->nrend; i++) {
		const struct pipeline *pl = r->rend[i];

		off += (size_t)snprintf(joined + off, len - off, "%s%s",
		                        i ? ";" : "", pl->canonical);
		json_array_append_new(names, json_string(pl->canonical));
		for (size_t k = 0; k < pl->n; k++)
			json_object_set_new(
			        plugins, pl->steps[k].name,
			        json_string(pl->steps[k].version
			                            ? pl->steps[k].version
			                            : "?"));
	}
	json_object_set_new(rec, "renditions", names);
	json_object_set_new(rec, "pipeline", json_string(joined));
	free(joined);
	return 0;
}

json_t *ingress_job_record(struct request *r, const char *hex, uint64_t bytes,
                           const char *result, const struct image_info *info)
{
	json_t *plugins = json_object(), *rec;
	char now[40];

	for (size_t i = 0; i < r->pl->n; i++) {
		const char *v = r->pl->steps[i].version;

		json_object_set_new(plugins, r->pl->steps[i].name,
		                    json_string(v ? v : "?"));
	}
	job_timestamp(now, sizeof(now));
	rec = json_pack("{s:s, s:s, s:s, s:n, s:n, s:s, "
	                "s:{s:I, s:s, s:s, s:i, s:i, s:i}, "
	                "s:n, s:n, s:i, s:o, s:I, s:s, s:b}",
	                "id", r->id, "status", job_status_name(JOB_QUEUED),
	                "created", now, "started", "finished", "pipeline",
	                r->pl->canonical, "input", "bytes", (json_int_t)bytes,
	                "sha256", hex, "format", info->format, "width",
	                info->width, "height", info->height, "pages",
	                info->pages, "output", "error", "attempts", 0,
	                "plugins", plugins, "generation",
	                (json_int_t)r->in->node->generation, "result", result,
	                "cached", 0);
	if (rec)
		json_object_set_new(rec, "request_id",
		                    json_string(r->request_id));
	if (rec && r->callback) /* its delivery's state, kept by the notifier */
		json_object_set_new(rec, "callback",
		                    json_pack("{s:s, s:s, s:i}", "url",
		                              r->callback, "state", "pending",
		                              "attempts", 0));
	if (rec && r->key_id[0]) /* its ID, never the key */
		json_object_set_new(rec, "api_key_id", json_string(r->key_id));
	if (rec && r->rend && renditions_record(r, rec, plugins)) {
		json_decref(rec);
		return NULL;
	}
	return rec;
}

/*
 * If out/KEY.meta exists the result is there already; the job is done
 * now. 0 (a hit, record stored), -ENOENT (no result yet), or another
 * -errno (storage failed).
 */
static int cache_hit(struct store_op *o)
{
	const struct imgnode_storage_ops *st = storage_ops(&o->in->set);
	void *st_state = o->in->set.storage->state;
	json_t *meta, *out, *rec = o->rec;
	void *buf = NULL;
	size_t len = 0;
	int ret;

	ret = st->get(st_state, o->meta, JOB_META_MAX, &buf, &len);
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
	return job_record_put(o->in->set.storage, rec);
}

static int store_job(struct store_op *o, void *state)
{
	struct ingress *in = o->in;
	const struct imgnode_storage_ops *st = storage_ops(&in->set);
	int ret, oret;

	/* the notifier finds the job through this, before its record */
	if (o->callback[0]) {
		const char *id =
		        json_string_value(json_object_get(o->rec, "id"));

		o->what = "unable to store the callback";
		ret = st->put(state, o->callback, id, strlen(id));
		if (ret)
			return ret;
		callback_hint_push(o->in->metrics, id);
	}
	o->what = "unable to look up the result cache";
	/* a renditions job: its worker looks for each output instead */
	ret = o->meta[0] ? cache_hit(o) : -ENOENT;
	if (ret == 0) {
		o->hit = o->stored = true;
		/* its answer may be the result: read what that needs now */
		if (o->wait)
			ingress_io_result(in, o->rec, &o->res);
		return 0;
	}
	if (ret != -ENOENT)
		return ret;
	/* the original on the storer's instance, the record on ours, at once */
	storer_put(in->storer, o->orig, o->up.body, o->up.len);
	ret = job_record_put(in->set.storage, o->rec);
	oret = storer_wait(in->storer);
	if (oret) {
		o->what = "unable to store the original";
		if (!ret)
			st->del(state, o->record);
		return oret;
	}
	if (ret) {
		o->what = "unable to store the job record";
		st->del(state, o->orig);
	}
	o->stored = !ret;
	return ret;
}

/* The status of the job of another request's claim (o->found) into
 * o->replay_status; -ENOENT if its record is gone. */
static int replay_status(struct store_op *o)
{
	json_t *rec;
	int ret;

	rec = job_record_get(o->in->set.storage, o->found.job, &ret);
	if (!rec)
		return ret;
	snprintf(o->replay_status, sizeof(o->replay_status), "%s",
	         job_status_name(job_record_status(rec)));
	json_decref(rec);
	return 0;
}

/*
 * Claims o's Idempotency-Key: 0 (ours now), -EEXIST (another request's:
 * o->verdict says what to answer) or another -errno. A replayed job whose
 * record retention deleted no longer holds its key.
 */
static int claim(struct store_op *o, void *state)
{
	const struct imgnode_storage_ops *st = storage_ops(&o->in->set);
	int ret = 0;

	for (int tries = 0; tries < 2; tries++) {
		o->mine.at_ms = idem_wall_ms();
		o->mine.stale_ms =
		        3 * o->in->conf->app->ingress.dependency_wait +
		        IDEM_PENDING_MARGIN_MS;
		ret = idem_claim(st, state, o->idem, &o->mine, o->mine.at_ms,
		                 o->window, &o->found, &o->verdict);
		if (ret != -EEXIST || o->verdict != IDEM_REPLAY)
			break;
		ret = replay_status(o);
		if (ret != -ENOENT)
			return ret ? ret : -EEXIST;
		ret = st->del(state, o->idem);
		if (ret && ret != -ENOENT)
			return ret;
		ret = -EEXIST;
		o->verdict = IDEM_IN_PROGRESS; /* if claimed again meanwhile */
	}
	o->claimed = !ret;
	return ret;
}

char *ingress_store_accepted(struct store_op *o)
{
	o->mine.state = IDEM_ACCEPTED;
	return idem_record_encode(&o->mine);
}

int ingress_store_run(struct exec_op *op, void *state)
{
	struct store_op *o = (struct store_op *)op;
	const struct imgnode_storage_ops *st = storage_ops(&o->in->set);
	char *text;
	int ret;

	if (o->idem[0]) {
		o->what = "unable to claim the Idempotency-Key";
		ret = claim(o, state);
		if (ret == -EEXIST) /* answered from o->verdict */
			return 0;
		if (ret)
			return ret;
	}
	ret = store_job(o, state);
	if (ret && o->claimed) {
		st->del(state, o->idem);
		o->claimed = false;
	}
	if (ret || !o->claimed || !o->hit)
		return ret;
	/* done from the cache: nothing left to publish */
	text = ingress_store_accepted(o);
	ret = text ? st->put(state, o->idem, text, strlen(text)) : -ENOMEM;
	if (ret)
		log_warn(
		        COMPONENT,
		        "job id=%s done, its Idempotency-Key left pending: %s; a retry gets 409 until it is taken for stale",
		        o->mine.job, strerror(-ret));
	free(text);
	return 0;
}

void ingress_store_drop(struct exec_op *op)
{
	struct store_op *o = (struct store_op *)op;

	/* stored after its request had its 503 (on the executor's thread,
	 * which drops an op nobody waits for): nobody will hear of the job */
	if (o->op.orphan && o->stored) {
		const struct imgnode_storage_ops *st = storage_ops(&o->in->set);
		void *state = o->in->set.storage->state;

		log_debug(COMPONENT, "undoing job id=%s stored too late",
		          json_string_value(json_object_get(o->rec, "id")));
		st->del(state, o->record);
		st->del(state, o->orig);
		if (o->claimed)
			st->del(state, o->idem);
	}
	ingress_upload_free(&o->up);
	ingress_result_free(&o->res);
	json_decref(o->rec);
	free(o);
}
