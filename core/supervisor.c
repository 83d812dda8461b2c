/*
 * Supervision trees: the API (see supervisor.h). A root supervisor is
 * built and attached to the loop here; what it then does lives in
 * sup_machine.c (the operation queue, each child's life, the table of what
 * follows a child's exit) and sup_deadline.c (SIGCHLD and the deadlines,
 * armed by the earliest: no tick). sup_tree.h draws the files.
 */
#include "sup_tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"

struct sup *sup_start(struct loop *loop, const struct sup_spec *spec,
                      sup_ready_fn *on_ready, sup_exit_fn *on_exit, void *arg)
{
	struct sup *root;
	int ret;

	root = sup_new(loop, spec, NULL, NULL);
	if (!root)
		return NULL;
	ret = sup_deadline_attach(root);
	if (ret) {
		sup_deadline_detach(root);
		sup_destroy(root);
		errno = -ret;
		return NULL;
	}
	root->on_ready = on_ready;
	root->on_exit = on_exit;
	root->generation = 1; /* sup_set_generation moves it on */
	root->arg = arg;
	log_info("supervisor", "starting id=%s strategy=%s children=%zu",
	         spec->id, sup_strategy_names[spec->strategy], root->nch);
	sup_pump(root);
	return root;
}

void sup_free(struct sup *root)
{
	if (!root)
		return;
	sup_deadline_detach(root);
	sup_destroy(root);
}

void sup_shutdown(struct sup *root)
{
	log_info("supervisor", "shutting down id=%s", root->spec->id);
	sup_fail(root, 0); /* keeps the code of a failure under way */
}

int sup_restart_child(struct sup *root, const char *id)
{
	struct ch *c = sup_find_id(root, id);
	struct sup *s;

	if (!c)
		return -ENOENT;
	s = c->parent;
	if (s->state != SUP_RUNNING && s->state != SUP_STARTING)
		return -EBUSY;
	log_info("supervisor", "restart requested id=%s", id);
	sup_drop_queued(s, c);
	sup_push_op(s, OP_STOP, c);
	sup_push_op(s, OP_START, c);
	c->not_before = 0;
	sup_pump(s);
	return 0;
}

void sup_on_foreign_exit(struct sup *root, sup_foreign_fn *fn, void *arg)
{
	root->on_foreign = fn;
	root->foreign_arg = arg;
}

void sup_when_settled(struct sup *root, const char *id, sup_settled_fn *fn,
                      void *arg)
{
	root->settle_id = id;
	root->on_settled = fn;
	root->settled_arg = arg;
}

int sup_roll(struct sup *root, const char *id)
{
	struct sup *s = sup_find_pool(root, id);
	size_t n;
	struct ch **old;

	if (!s)
		return -ENOENT;
	if (s->spec->strategy != SUP_SIMPLE_ONE_FOR_ONE)
		return -EINVAL;
	n = s->nch;
	old = malloc((n ? n : 1) * sizeof(*old));
	if (!old)
		return -ENOMEM;
	memcpy(old, s->ch, n * sizeof(*old));
	log_info("supervisor", "rolling id=%s members=%zu", id, n);
	for (size_t i = 0; i < n; i++) {
		struct ch *fresh;

		if (old[i]->removing)
			continue;
		fresh = sup_pool_grow(s);
		if (!fresh) {
			free(old);
			return -ENOMEM;
		}
		old[i]->removing = true;
		sup_push_op(s, OP_START, fresh);
		sup_push_op(s, OP_STOP, old[i]);
	}
	free(old);
	sup_pump(s);
	return 0;
}

int sup_resize(struct sup *root, const char *id, size_t count)
{
	struct sup *s = sup_find_pool(root, id);
	size_t live = 0;

	if (!s)
		return -ENOENT;
	if (s->spec->strategy != SUP_SIMPLE_ONE_FOR_ONE)
		return -EINVAL;
	for (size_t i = 0; i < s->nch; i++)
		live += !s->ch[i]->removing;
	log_info("supervisor", "resizing id=%s from=%zu to=%zu", id, live,
	         count);
	for (; live < count; live++) {
		struct ch *added = sup_pool_grow(s);
		if (!added)
			return -ENOMEM;
		sup_push_op(s, OP_START, added);
	}
	for (size_t i = s->nch; i-- > 0 && live > count;) {
		if (s->ch[i]->removing)
			continue;
		s->ch[i]->removing = true;
		sup_push_op(s, OP_STOP, s->ch[i]);
		live--;
	}
	sup_pump(s);
	return 0;
}

void sup_set_generation(struct sup *root, unsigned generation)
{
	root->generation = generation;
}
