/*
 * The live tree as the supervisor shows it (see supervisor.h): JSON for
 * imgnodectl status, a line for sd_notify, the count of restarts. Reads the
 * tree's structures (sup_tree.h) and nothing else.
 */
#include "base.h"
#include "sup_tree.h"

#include <errno.h>
#include <stdio.h>

#include "loop.h"

static const char *const state_names[] = {"idle", "starting", "running",
                                          "stopping"};
static const char *const sup_state_names[] = {"starting", "running", "stopping",
                                              "down"};

static json_t *status_of(struct sup *s, const char *id)
{
	json_t *children = json_array();
	int64_t now = now_ms();

	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		json_t *j;

		if (c->sub) {
			j = status_of(c->sub, c->id);
		} else {
			j = json_pack(
			        "{s:s, s:s, s:s, s:I, s:i}", "id", c->id,
			        "type",
			        c->spec->type == SUP_SUPERVISOR ? "supervisor"
			                                        : "worker",
			        "state", state_names[c->state], "restarts",
			        (json_int_t)c->restarts, "pid", (int)c->pid);
			if (c->pid)
				json_object_set_new(
				        j, "uptime_ms",
				        json_integer(now - c->started));
			if (c->pid && c->generation)
				json_object_set_new(
				        j, "generation",
				        json_integer(c->generation));
		}
		json_object_set_new(j, "last_exit",
		                    c->last_exit[0] ? json_string(c->last_exit)
		                                    : json_null());
		json_object_set_new(j, "restarts",
		                    json_integer((json_int_t)c->restarts));
		json_array_append_new(children, j);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "id", id,
	                 "type", "supervisor", "strategy",
	                 sup_strategy_names[s->spec->strategy], "state",
	                 sup_state_names[s->state], "intensity",
	                 (json_int_t)s->spec->intensity, "period_ms",
	                 (json_int_t)s->spec->period_ms, "children", children);
}

json_t *sup_status(struct sup *root)
{
	return status_of(root, root->spec->id);
}

static void count_tree(struct sup *s, unsigned *running, unsigned *total,
                       unsigned *restarts)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct ch *c = s->ch[i];
		*restarts += c->restarts;
		if (c->sub) {
			count_tree(c->sub, running, total, restarts);
			continue;
		}
		(*total)++;
		*running += c->state == CH_RUNNING;
	}
}

void sup_summary(struct sup *root, char *buf, size_t len)
{
	unsigned running = 0, total = 0, restarts = 0;

	count_tree(root, &running, &total, &restarts);
	snprintf(buf, len, "%u of %u children running, %u restarts", running,
	         total, restarts);
}

unsigned sup_restarts(struct sup *root)
{
	unsigned running = 0, total = 0, restarts = 0;

	count_tree(root, &running, &total, &restarts);
	return restarts;
}

/*
 * A member counts as ready while it runs (a member leaving in a roll
 * serves until stopped), and while it is replaced after a recycle: that
 * replacement starts at once, with no backoff, and is no outage.
 */
int sup_pool_counts(struct sup *root, const char *id,
                    struct sup_pool_counts *out)
{
	struct sup *s = sup_find_pool(root, id);

	*out = (struct sup_pool_counts){0};
	if (!s || s->spec->strategy != SUP_SIMPLE_ONE_FOR_ONE)
		return -ENOENT;
	for (size_t i = 0; i < s->nch; i++) {
		const struct ch *c = s->ch[i];

		out->members += !c->removing;
		out->alive += c->state != CH_IDLE;
		out->starting += c->state == CH_STARTING;
		out->ready += c->state == CH_RUNNING ||
		              (c->state == CH_STARTING && c->replacing) ||
		              (c->state == CH_STOPPING && c->recycling &&
		               !c->removing);
		if (c->state == CH_IDLE && !c->removing && c->not_before &&
		    (!out->next_start || c->not_before < out->next_start))
			out->next_start = c->not_before;
	}
	return 0;
}
