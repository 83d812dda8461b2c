/*
 * The storage and transport calls of the ingress, each run on its
 * dependency's executor (executor.h), never on an HTTP thread or the main
 * thread. A request hands its call over and its connection is suspended
 * (ingress_io_begin): the HTTP thread goes on serving other connections,
 * /healthz among them, and the request goes on (its io_next) when the
 * call ends, or answers 503 once [ingress] dependency_wait (or
 * request_deadline, if shorter) has passed, or at once while the
 * dependency is known down. Each call owns a copy of what it needs, so
 * that one whose request stopped waiting can finish and be freed alone.
 *
 * One call still waits on the HTTP thread, bounded: each piece of a
 * streamed result (libmicrohttpd asks for it from that thread; at most
 * dependency_wait, not at all while the storage is down).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base.h"
#include "../log.h"
#include "ingress.h"
#include "metrics.h"
#include "node_conf.h"
#include "renditions.h"
#include "startup.h"

#define COMPONENT "ingress"
#define RESULT_MAX ((size_t)1 << 32) /* a result read whole */

int64_t ingress_io_deadline(const struct ingress *in)
{
	int64_t wait = in->conf->app->ingress.dependency_wait;

	if (wait > in->conf->app->ingress.request_deadline)
		wait = in->conf->app->ingress.request_deadline;
	return now_ms() + wait;
}

/* ---- a request's call ---- */

/* On the executor's thread, or the main thread's expiry: wakes r. */
static void io_done(struct exec_op *op, int ret, void *arg)
{
	struct request *r = arg;

	r->io_op = ret == -ETIME || ret == -ECANCELED ? NULL : op;
	r->io_ret = ret;
	r->phase = PHASE_IO_DONE;
	MHD_resume_connection(r->conn);
}

enum MHD_Result ingress_io_begin(struct request *r, struct executor *ex,
                                 struct exec_op *op,
                                 enum MHD_Result (*next)(struct request *r))
{
	return ingress_io_begin_until(r, ex, op, ingress_io_deadline(r->in),
	                              next);
}

enum MHD_Result
ingress_io_begin_until(struct request *r, struct executor *ex,
                       struct exec_op *op, int64_t deadline,
                       enum MHD_Result (*next)(struct request *r))
{
	r->io_next = next;
	r->io_op = NULL;
	if (!op) {
		r->io_ret = -ENOMEM;
		return next(r);
	}
	if (!executor_up(ex, NULL, 0, NULL)) { /* known down: no wait */
		op->drop(op);
		r->io_ret = -ECANCELED;
		return next(r);
	}
	ingress_conn_answering(r); /* read whole: the deadline is ours now */
	r->phase = PHASE_IO;
	MHD_suspend_connection(r->conn); /* before: io_done may come at once */
	if (executor_begin(ex, op, deadline, io_done, r)) {
		op->drop(op); /* down since, or stopping */
		io_done(NULL, -ECANCELED, r);
	}
	return MHD_YES;
}

void ingress_io_free(struct exec_op *op)
{
	if (op)
		op->drop(op);
}

/* ---- a job's record, and its result ---- */

struct record_op {
	struct exec_op op;
	const struct plugin_set *set;
	char id[JOB_ID_LEN + 1];
	bool with_result;
	long index; /* the output of a renditions job to read */
	json_t *rec;
	int ret;
	struct ingress_result res;
};

/*
 * On the storage's thread: what res needs to answer with rec's result
 * (done jobs only; else res->ret = -ENOENT). Returns the call's -errno
 * that may say the storage is away, else 0.
 */
static int fetch_result(const struct plugin_set *set, void *state, json_t *rec,
                        struct ingress_result *res)
{
	const struct imgnode_storage_ops *st = storage_ops(set);
	const char *status = json_string_value(json_object_get(rec, "status"));
	json_t *output = json_object_get(rec, "output");
	const char *key = json_string_value(json_object_get(rec, "result"));
	struct imgnode_stat sb;

	res->ret = -ENOENT;
	if (!status || strcmp(status, "done") != 0)
		return 0;
	if (!key)
		key = json_string_value(json_object_get(output, "key"));
	if (!key || !imgnode_key_valid(key)) {
		res->ret = -EBADMSG;
		return 0;
	}
	snprintf(res->key, sizeof(res->key), "%s", key);
	memset(&sb, 0, sizeof(sb));
	res->ret = st->stat(state, key, &sb);
	res->size = sb.size;
	res->mtime_ms = res->ret ? 0 : sb.mtime_ms; /* for Last-Modified */
	if (!res->ret && !storage_reads_ranges(set))
		res->ret =
		        st->get(state, key, RESULT_MAX, &res->buf, &res->len);
	return res->ret;
}

void ingress_result_free(struct ingress_result *res)
{
	free(res->buf);
	res->buf = NULL;
}

static int record_run(struct exec_op *op, void *state)
{
	struct record_op *o = (struct record_op *)op;
	int ret;

	o->rec = job_record_get(o->set->storage, o->id, &o->ret);
	if (!o->rec)
		return o->ret;
	/* output K of a renditions job: rec answers as if it were its own */
	ret = o->with_result && renditions_pick(o->rec, o->index) == 0
	              ? fetch_result(o->set, state, o->rec, &o->res)
	              : 0;
	return breaker_counts(ret) ? ret : 0;
}

static void record_drop(struct exec_op *op)
{
	struct record_op *o = (struct record_op *)op;

	json_decref(o->rec);
	ingress_result_free(&o->res);
	free(o);
}

struct exec_op *ingress_io_record_op(struct ingress *in, const char *id,
                                     bool with_result)
{
	struct record_op *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->op.run = record_run;
	o->op.drop = record_drop;
	o->set = &in->set;
	o->with_result = with_result;
	o->res.ret = -ENOENT;
	snprintf(o->id, sizeof(o->id), "%s", id);
	return &o->op;
}

struct exec_op *ingress_io_result_op(struct ingress *in, const char *id,
                                     long index)
{
	struct exec_op *op = ingress_io_record_op(in, id, true);

	if (op)
		((struct record_op *)op)->index = index;
	return op;
}

json_t *ingress_io_record_take(struct exec_op *op, int *ret,
                               struct ingress_result *res)
{
	struct record_op *o = (struct record_op *)op;
	json_t *rec = o->rec;

	*ret = rec ? 0 : o->ret;
	o->rec = NULL;
	if (res) {
		*res = o->res;
		o->res.buf = NULL;
	}
	return rec;
}

int ingress_io_result(struct ingress *in, json_t *rec,
                      struct ingress_result *res)
{
	return fetch_result(&in->set, in->set.storage->state, rec, res);
}

/* ---- a piece of a result ---- */

struct read_op {
	struct exec_op op;
	const struct imgnode_storage_ops *ops;
	char key[IMGNODE_KEY_MAX + 1];
	uint64_t off;
	size_t max;
	void *buf; /* ours, max bytes */
	size_t len;
};

static int read_run(struct exec_op *op, void *state)
{
	struct read_op *o = (struct read_op *)op;

	return o->ops->read(state, o->key, o->off, o->buf, o->max, &o->len);
}

static void read_drop(struct exec_op *op)
{
	struct read_op *o = (struct read_op *)op;

	free(o->buf);
	free(o);
}

int ingress_io_read(struct ingress *in, const char *key, uint64_t off,
                    void *buf, size_t max, size_t *got)
{
	struct read_op *o = calloc(1, sizeof(*o));
	int ret;

	if (!o || !(o->buf = malloc(max ? max : 1))) {
		free(o);
		return -ENOMEM;
	}
	o->op.run = read_run;
	o->op.drop = read_drop;
	o->ops = storage_ops(&in->set);
	snprintf(o->key, sizeof(o->key), "%s", key);
	o->off = off;
	o->max = max;
	ret = executor_call(&in->storage_ex, &o->op, ingress_io_deadline(in));
	if (ret == -ETIME)
		return ret; /* o is the executor's now */
	if (!ret) {
		*got = o->len <= max ? o->len : max;
		memcpy(buf, o->buf, *got);
	}
	read_drop(&o->op);
	return ret;
}

/* ---- deleting what a refused upload stored ---- */

struct delete_op {
	struct exec_op op;
	struct ingress *in;
	const struct imgnode_storage_ops *ops;
	char id[JOB_ID_LEN + 1]; /* the refused job's, or "" */
	char keys[3][JOB_KEY_MAX]; /* the third: ingress_io_delete_also */
};

/*
 * The record of a refused job could not be deleted: marks it failed with
 * the reason, so it is never left queued; if storage refuses that too,
 * the reaper's sweep takes it up after [workers] stuck_after.
 */
static void fail_refused(struct delete_op *o)
{
	struct metrics *m = o->in->metrics;
	int ret;
	json_t *rec = job_record_get(o->in->set.storage, o->id, &ret);

	if (rec) {
		job_record_set_status(rec, JOB_FAILED,
		                      "not queued: the upload was refused");
		ret = job_record_put(o->in->set.storage, rec);
		json_decref(rec);
	}
	if (!rec && ret == -ENOENT)
		return;
	if (ret) {
		atomic_fetch_add(&m->unqueued_left, 1);
		log_warn(
		        COMPONENT,
		        "job record id=%s left queued: unable to remove it or mark it failed: %s; the reaper's sweep takes it up after [workers] stuck_after",
		        o->id, strerror(-ret));
		return;
	}
	atomic_fetch_add(&m->unqueued_failed, 1);
}

static int delete_run(struct exec_op *op, void *state)
{
	struct delete_op *o = (struct delete_op *)op;
	int ret = 0;

	for (int i = 0; i < 3; i++) {
		int r = o->keys[i][0] ? o->ops->del(state, o->keys[i]) : 0;
		if (r && r != -ENOENT) {
			log_warn(COMPONENT, "unable to delete %s: %s",
			         o->keys[i], strerror(-r));
			ret = ret ? ret : r;
			if (i == 0 && o->id[0])
				fail_refused(o);
		}
	}
	return ret;
}

static void delete_drop(struct exec_op *op)
{
	free(op);
}

struct exec_op *ingress_io_delete_op(struct ingress *in, const char *id,
                                     const char *a, const char *b)
{
	struct delete_op *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->op.run = delete_run;
	o->op.drop = delete_drop;
	o->in = in;
	o->ops = storage_ops(&in->set);
	snprintf(o->id, sizeof(o->id), "%s", id ? id : "");
	snprintf(o->keys[0], sizeof(o->keys[0]), "%s", a ? a : "");
	snprintf(o->keys[1], sizeof(o->keys[1]), "%s", b ? b : "");
	return &o->op;
}

void ingress_io_delete_also(struct exec_op *op, const char *key)
{
	struct delete_op *o = (struct delete_op *)op;

	snprintf(o->keys[2], sizeof(o->keys[2]), "%s", key);
}

struct put_op {
	struct exec_op op;
	const struct imgnode_storage_ops *ops;
	char key[JOB_KEY_MAX];
	char *body;
};

static int put_run(struct exec_op *op, void *state)
{
	struct put_op *o = (struct put_op *)op;

	return o->ops->put(state, o->key, o->body, strlen(o->body));
}

static void put_drop(struct exec_op *op)
{
	free(((struct put_op *)op)->body);
	free(op);
}

struct exec_op *ingress_io_put_op(struct ingress *in, const char *key,
                                  char *body)
{
	struct put_op *o = body ? calloc(1, sizeof(*o)) : NULL;

	if (!o) {
		free(body);
		return NULL;
	}
	o->op.run = put_run;
	o->op.drop = put_drop;
	o->ops = storage_ops(&in->set);
	snprintf(o->key, sizeof(o->key), "%s", key);
	o->body = body;
	return &o->op;
}

/* ---- the transport ---- */

struct publish_op {
	struct exec_op op;
	const struct imgnode_transport_ops *ops;
	char *body;
	size_t len;
	const char *reply_to; /* the ingress's, which outlives the executor */
	int64_t timeout_ms;
};

static int publish_run(struct exec_op *op, void *state)
{
	struct publish_op *o = (struct publish_op *)op;

	return o->ops->publish(state, o->body, o->len, o->reply_to,
	                       o->timeout_ms);
}

static void publish_drop(struct exec_op *op)
{
	struct publish_op *o = (struct publish_op *)op;

	free(o->body);
	free(o);
}

struct exec_op *ingress_io_publish_op(struct ingress *in, char *body,
                                      size_t len)
{
	struct publish_op *o = calloc(1, sizeof(*o));

	if (!o) {
		free(body);
		return NULL;
	}
	o->op.run = publish_run;
	o->op.drop = publish_drop;
	o->ops = transport_ops(&in->set);
	o->body = body;
	o->len = len;
	o->reply_to = in->reply_to;
	/* the plugin's verdict (-ENOTCONN: never sent, -ETIMEDOUT: sent, not
	 * confirmed) comes before ours, so its reason is the one told */
	o->timeout_ms = ingress_io_deadline(in) - now_ms();
	o->timeout_ms -= o->timeout_ms / 10 < 250 ? o->timeout_ms / 10 : 250;
	return &o->op;
}

struct depth_op {
	struct exec_op op;
	const struct imgnode_transport_ops *ops;
	uint64_t depth[2];
	int ret[2];
};

static int depth_run(struct exec_op *op, void *state)
{
	struct depth_op *o = (struct depth_op *)op;

	for (int q = 0; q < 2; q++)
		o->ret[q] = o->ops->depth(
		        state, q ? IMGNODE_QUEUE_DEAD : IMGNODE_QUEUE_JOBS,
		        &o->depth[q]);
	return breaker_counts(o->ret[0]) ? o->ret[0] : 0;
}

static void depth_drop(struct exec_op *op)
{
	free(op);
}

struct exec_op *ingress_io_depth_op(struct ingress *in)
{
	struct depth_op *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->op.run = depth_run;
	o->op.drop = depth_drop;
	o->op.patient = true; /* /metrics waits less than a request would */
	o->ops = transport_ops(&in->set);
	o->ret[0] = o->ret[1] = -ENOTCONN;
	return &o->op;
}

void ingress_io_depth_take(struct exec_op *op, uint64_t depth[2], int ret[2])
{
	struct depth_op *o = (struct depth_op *)op;

	memcpy(depth, o->depth, sizeof(o->depth));
	memcpy(ret, o->ret, sizeof(o->ret));
}
