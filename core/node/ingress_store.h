/*
 * Storing a new job (ingress_submit.c's POST /v1/jobs): its record, and
 * the work done on the storage's executor thread for it: the
 * Idempotency-Key claimed (idempotency.h), the result cache looked up,
 * then the original (on the storer's instance) and the record (on ours)
 * at once. What it stored is undone when a step fails; what it holds (the
 * upload and its share of upload_memory, the record) is its own, so that
 * it can finish alone if its request stops waiting.
 */
#ifndef IMGNODE_INGRESS_STORE_H
#define IMGNODE_INGRESS_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "executor.h"
#include "idempotency.h"
#include "ingress.h"
#include "job.h"

/* One new job on its way into storage: the request fills it, the
 * executor runs ingress_store_run on it, the request reads the outcome. */
struct store_op {
	struct exec_op op;
	struct ingress *in;
	json_t *rec;
	struct ingress_upload up; /* taken from the request */
	char meta[JOB_KEY_MAX + 8], orig[JOB_KEY_MAX], record[JOB_KEY_MAX];
	char callback[JOB_KEY_MAX]; /* the pending index, if any: "" */
	bool wait; /* a ?wait= request: a hit answers with the result */
	bool stored; /* the record is written (a hit's too) */
	bool hit; /* done from the result cache */
	struct ingress_result res; /* a hit's result, with wait */
	const char *what; /* the step that failed */
	/* with an Idempotency-Key: its claim's storage key ("": none), ours
	 * and, if another request holds it, theirs and what it means */
	char idem[IDEM_STORAGE_KEY_MAX];
	struct idem_record mine, found;
	enum idem_verdict verdict;
	int64_t window; /* [ingress] idempotency_window */
	bool claimed; /* ours is stored */
	char replay_status[16]; /* a replayed job's status now */
};

/* The executor's run: claims the key (if any), then stores the job, or
 * finds it done in the result cache. 0 (o->verdict answers a key held by
 * another request), or -errno with o->what the step that failed. */
int ingress_store_run(struct exec_op *op, void *state);

/* The executor's drop: undoes a job stored after its request was answered
 * 503, then frees the op. */
void ingress_store_drop(struct exec_op *op);

/* o's claim marked accepted (its job stored and published, or done), as
 * the claim's new text (malloc'd), or NULL. */
char *ingress_store_accepted(struct store_op *o);

#endif
