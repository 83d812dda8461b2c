/*
 * The storage and transport operations of the ingress, each run on its
 * dependency's executor (executor.h), never on an HTTP thread or the main
 * thread: a request waits for one at most [ingress] dependency_wait (or
 * request_deadline, if shorter), and while the dependency is known down it
 * does not wait at all. Each operation owns a copy of what it needs, so
 * that one whose caller stopped waiting can finish and be freed alone.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config.h"
#include "../log.h"
#include "child.h"
#include "ingress.h"

#define COMPONENT "ingress"

int64_t ingress_io_deadline(const struct ingress *in)
{
	int64_t wait = in->conf->ingress.dependency_wait;

	if (wait > in->conf->ingress.request_deadline)
		wait = in->conf->ingress.request_deadline;
	return ingress_now_ms() + wait;
}

/* ---- a job's record ---- */

struct record_op {
	struct exec_op op;
	const struct plugin *storage;
	char id[JOB_ID_LEN + 1];
	json_t *rec;
	int ret;
};

static int record_run(struct exec_op *op, void *state)
{
	struct record_op *o = (struct record_op *)op;

	(void)state; /* job_record_get takes the plugin, whose state it is */
	o->rec = job_record_get(o->storage, o->id, &o->ret);
	return o->rec ? 0 : o->ret;
}

static void record_drop(struct exec_op *op)
{
	struct record_op *o = (struct record_op *)op;

	json_decref(o->rec);
	free(o);
}

json_t *ingress_io_record(struct ingress *in, const char *id, int *ret)
{
	struct record_op *o = calloc(1, sizeof(*o));
	json_t *rec;

	if (!o) {
		*ret = -ENOMEM;
		return NULL;
	}
	o->op.run = record_run;
	o->op.drop = record_drop;
	o->storage = in->set.storage;
	snprintf(o->id, sizeof(o->id), "%s", id);
	*ret = executor_call(&in->storage_ex, &o->op, ingress_io_deadline(in));
	if (*ret == -ETIME)
		return NULL; /* o is the executor's now */
	rec = o->rec;
	o->rec = NULL;
	if (!rec && !*ret)
		*ret = o->ret;
	record_drop(&o->op);
	return rec;
}

/* ---- objects: stat, get, read ---- */

struct object_op {
	struct exec_op op;
	const struct imgnode_storage_ops *ops;
	enum { OBJ_STAT, OBJ_GET, OBJ_READ } kind;
	char key[IMGNODE_KEY_MAX + 1];
	struct imgnode_stat sb;
	uint64_t off;
	size_t max;
	void *buf; /* OBJ_GET: the plugin's; OBJ_READ: ours, max bytes */
	size_t len;
};

static int object_run(struct exec_op *op, void *state)
{
	struct object_op *o = (struct object_op *)op;

	switch (o->kind) {
	case OBJ_STAT: return o->ops->stat(state, o->key, &o->sb);
	case OBJ_GET:
		return o->ops->get(state, o->key, o->max, &o->buf, &o->len);
	case OBJ_READ:
		return o->ops->read(state, o->key, o->off, o->buf, o->max,
		                    &o->len);
	}
	return -EINVAL;
}

static void object_drop(struct exec_op *op)
{
	struct object_op *o = (struct object_op *)op;

	free(o->buf);
	free(o);
}

/* Runs o (made by object_new) and, unless it is the executor's now,
 * leaves it to the caller. */
static int object_call(struct ingress *in, struct object_op *o)
{
	return executor_call(&in->storage_ex, &o->op, ingress_io_deadline(in));
}

static struct object_op *object_new(struct ingress *in, int kind,
                                    const char *key)
{
	struct object_op *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->op.run = object_run;
	o->op.drop = object_drop;
	o->ops = storage_ops(&in->set);
	o->kind = kind;
	snprintf(o->key, sizeof(o->key), "%s", key);
	return o;
}

int ingress_io_stat(struct ingress *in, const char *key,
                    struct imgnode_stat *sb)
{
	struct object_op *o = object_new(in, OBJ_STAT, key);
	int ret;

	if (!o)
		return -ENOMEM;
	ret = object_call(in, o);
	if (ret == -ETIME)
		return ret;
	*sb = o->sb;
	object_drop(&o->op);
	return ret;
}

int ingress_io_get(struct ingress *in, const char *key, size_t max, void **buf,
                   size_t *len)
{
	struct object_op *o = object_new(in, OBJ_GET, key);
	int ret;

	if (!o)
		return -ENOMEM;
	o->max = max;
	ret = object_call(in, o);
	if (ret == -ETIME)
		return ret;
	if (!ret) {
		*buf = o->buf;
		*len = o->len;
		o->buf = NULL;
	}
	object_drop(&o->op);
	return ret;
}

int ingress_io_read(struct ingress *in, const char *key, uint64_t off,
                    void *buf, size_t max, size_t *got)
{
	struct object_op *o = object_new(in, OBJ_READ, key);
	int ret;

	if (!o)
		return -ENOMEM;
	o->buf = malloc(max ? max : 1);
	if (!o->buf) {
		free(o);
		return -ENOMEM;
	}
	o->off = off;
	o->max = max;
	ret = object_call(in, o);
	if (ret == -ETIME)
		return ret;
	if (!ret) {
		*got = o->len <= max ? o->len : max;
		memcpy(buf, o->buf, *got);
	}
	object_drop(&o->op);
	return ret;
}

/* ---- deleting what a refused upload stored ---- */

struct delete_op {
	struct exec_op op;
	const struct imgnode_storage_ops *ops;
	char keys[2][JOB_KEY_MAX];
};

static int delete_run(struct exec_op *op, void *state)
{
	struct delete_op *o = (struct delete_op *)op;
	int ret = 0;

	for (int i = 0; i < 2; i++) {
		int r = o->keys[i][0] ? o->ops->del(state, o->keys[i]) : 0;
		if (r && r != -ENOENT) {
			log_warn(COMPONENT, "unable to delete %s: %s",
			         o->keys[i], strerror(-r));
			ret = ret ? ret : r;
		}
	}
	return ret;
}

static void delete_drop(struct exec_op *op)
{
	free(op);
}

void ingress_io_delete(struct ingress *in, const char *a, const char *b)
{
	struct delete_op *o = calloc(1, sizeof(*o));

	if (!o)
		return;
	o->op.run = delete_run;
	o->op.drop = delete_drop;
	o->ops = storage_ops(&in->set);
	snprintf(o->keys[0], sizeof(o->keys[0]), "%s", a ? a : "");
	snprintf(o->keys[1], sizeof(o->keys[1]), "%s", b ? b : "");
	if (executor_call(&in->storage_ex, &o->op, ingress_io_deadline(in)) !=
	    -ETIME)
		delete_drop(&o->op);
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

int ingress_io_publish(struct ingress *in, char *body, size_t len)
{
	struct publish_op *o = calloc(1, sizeof(*o));
	int64_t deadline = ingress_io_deadline(in);
	int ret;

	if (!o) {
		free(body);
		return -ENOMEM;
	}
	o->op.run = publish_run;
	o->op.drop = publish_drop;
	o->ops = transport_ops(&in->set);
	o->body = body;
	o->len = len;
	o->reply_to = in->reply_to;
	/* the plugin's verdict (never sent: -ENOTCONN, so the caller undoes;
	 * sent but unconfirmed: -ETIMEDOUT, it keeps) comes before ours */
	o->timeout_ms = deadline - ingress_now_ms();
	o->timeout_ms -= o->timeout_ms / 10 < 250 ? o->timeout_ms / 10 : 250;
	ret = executor_call(&in->transport_ex, &o->op, deadline);
	if (ret != -ETIME)
		publish_drop(&o->op);
	return ret;
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

int ingress_io_depth(struct ingress *in, int64_t wait_ms, uint64_t depth[2],
                     int ret[2])
{
	struct depth_op *o = calloc(1, sizeof(*o));
	int r;

	if (!o)
		return -ENOMEM;
	o->op.run = depth_run;
	o->op.drop = depth_drop;
	o->op.patient = true; /* /metrics waits less than a request would */
	o->ops = transport_ops(&in->set);
	r = executor_call(&in->transport_ex, &o->op,
	                  ingress_now_ms() + wait_ms);
	if (r == -ETIME || r == -ECANCELED) {
		if (r == -ECANCELED)
			free(o);
		return r;
	}
	memcpy(depth, o->depth, sizeof(o->depth));
	memcpy(ret, o->ret, sizeof(o->ret));
	free(o);
	return 0;
}
