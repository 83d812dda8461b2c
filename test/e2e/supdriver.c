/*
 * supdriver: runs a supervision tree described in JSON with the real
 * supervisor (core/supervisor.c), for the end-to-end supervision tests.
 * Children are real processes whose behaviour the spec sets: when to report
 * ready, when to exit and how, whether to heartbeat, to ignore SIGTERM, to
 * grow their memory, to work silently ("busy MS") or to ask for recycling.
 *
 *   supdriver SPEC.json
 *
 * Children append "start ID PID" and "term ID PID" lines to $SUPDRIVER_LOG.
 * On SIGUSR1 the driver writes the live tree (sup_status) to
 * $SUPDRIVER_STATUS (via a temp file and rename); on SIGUSR2 it resizes the
 * pool named in the file $SUPDRIVER_RESIZE ("ID COUNT"); on SIGHUP it rolls
 * the pool called "pool" (a new generation of workers). SIGTERM shuts the tree
 * down; the driver exits with the root's code.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "log.h"
#include "loop.h"
#include "proc.h"
#include "supervisor.h"

struct behaviour {
	int64_t ready_after; /* ms before "ready"; -1: never */
	int64_t exit_after; /* ms before exiting; -1: never */
	int exit_code;
	int64_t heartbeat_every; /* ms; 0: no heartbeats */
	int64_t hang_after; /* stop heartbeating after ms; -1: never */
	bool ignore_term;
	int64_t grow_rss; /* bytes to allocate and touch once ready */
	int64_t recycle_after; /* say "recycle" and exit 0 after ms */
	int64_t busy; /* once ready, say "busy MS" and go silent; 0: no */
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void event(const char *what, const char *id)
{
	const char *path = getenv("SUPDRIVER_LOG");
	char line[160];
	int fd, n;

	if (!path)
		return;
	n = snprintf(line, sizeof(line), "%s %s %d\n", what, id, (int)getpid());
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) < 0)
			perror("supdriver: log");
		close(fd);
	}
}

static const char *child_id;
static char *ballast; /* grow_rss: memory held until the child exits */

static void on_term(int sig)
{
	(void)sig;
	event("term", child_id);
	_exit(0);
}

static int child_run(void *arg, const char *id)
{
	const struct behaviour *b = arg;
	int64_t t = 0, step = 10;

	child_id = id;
	event("start", id);
	signal(SIGTERM, b->ignore_term ? SIG_IGN : on_term);
	if (b->ready_after < 0) {
		for (;;)
			pause();
	}
	sleep_ms(b->ready_after);
	if (b->grow_rss > 0) {
		ballast = malloc((size_t)b->grow_rss);
		if (ballast)
			memset(ballast, 1, (size_t)b->grow_rss);
	}
	proc_notify_ready();
	if (b->busy > 0)
		proc_notify_busy(b->busy);
	for (;; t += step) {
		if (b->exit_after >= 0 && t >= b->exit_after)
			return b->exit_code;
		if (b->recycle_after >= 0 && t >= b->recycle_after) {
			proc_notify_recycle();
			return 0;
		}
		if (b->heartbeat_every && t % b->heartbeat_every == 0 &&
		    (b->hang_after < 0 || t < b->hang_after))
			proc_notify_alive();
		sleep_ms(step);
	}
}

static int64_t get_int(json_t *o, const char *key, int64_t def)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

static int pick(const char *s, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (s && strcmp(s, names[i]) == 0)
			return i;
	fprintf(stderr, "supdriver: unknown value \"%s\"\n", s ? s : "");
	exit(2);
}

static const char *get_str(json_t *o, const char *key, const char *def)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : def;
}

/* Builds a sup_spec from JSON; leaks on purpose (lives as long as we do). */
static struct sup_spec *build(json_t *j)
{
	static const char *const strategies[] = {"one_for_one", "one_for_all",
	                                         "rest_for_one",
	                                         "simple_one_for_one", NULL};
	static const char *const restarts[] = {"permanent", "transient",
	                                       "temporary", NULL};
	struct sup_spec *spec = calloc(1, sizeof(*spec));
	json_t *children = json_object_get(j, "children");
	struct sup_child_spec *cs;

	spec->id = get_str(j, "id", "root");
	spec->strategy =
	        pick(get_str(j, "strategy", "one_for_one"), strategies);
	spec->intensity = get_int(j, "intensity", 3);
	spec->period_ms = get_int(j, "period", 5000);
	spec->backoff_min_ms = get_int(j, "backoff_min", 0);
	spec->backoff_max_ms = get_int(j, "backoff_max", 0);
	spec->count = (size_t)get_int(j, "count", 0);
	spec->nchildren = json_array_size(children);
	cs = calloc(spec->nchildren + 1, sizeof(*cs));
	for (size_t i = 0; i < spec->nchildren; i++) {
		json_t *c = json_array_get(children, i);
		json_t *bj = json_object_get(c, "behaviour");
		struct behaviour *b = calloc(1, sizeof(*b));

		cs[i].id = get_str(c, "id", "child");
		cs[i].restart =
		        pick(get_str(c, "restart", "permanent"), restarts);
		cs[i].shutdown_ms = get_int(c, "shutdown", 1000);
		cs[i].start_timeout_ms = get_int(c, "start_timeout", 5000);
		cs[i].heartbeat_ms = get_int(c, "heartbeat", 0);
		cs[i].max_rss = get_int(c, "max_rss", 0);
		if (json_object_get(c, "sup")) {
			cs[i].type = SUP_SUPERVISOR;
			cs[i].sup = build(json_object_get(c, "sup"));
			continue;
		}
		b->ready_after = get_int(bj, "ready_after", 0);
		b->exit_after = get_int(bj, "exit_after", -1);
		b->exit_code = (int)get_int(bj, "exit_code", 0);
		b->heartbeat_every = get_int(bj, "heartbeat_every", 0);
		b->hang_after = get_int(bj, "hang_after", -1);
		b->ignore_term =
		        json_is_true(json_object_get(bj, "ignore_term"));
		b->grow_rss = get_int(bj, "grow_rss", 0);
		b->recycle_after = get_int(bj, "recycle_after", -1);
		b->busy = get_int(bj, "busy", 0);
		cs[i].type = SUP_WORKER;
		cs[i].start = child_run;
		cs[i].arg = b;
	}
	spec->children = cs;
	return spec;
}

static struct sup *root;
static int exit_code;

static void on_exit_cb(struct sup *s, int code, void *arg)
{
	(void)s;
	exit_code = code;
	loop_stop(arg, code);
}

static void on_ready_cb(struct sup *s, void *arg)
{
	(void)s;
	(void)arg;
	log_info("supdriver", "ready");
}

static void on_signal(struct loop *loop, int sig, void *arg)
{
	(void)loop;
	(void)arg;
	if (sig == SIGTERM || sig == SIGINT) {
		sup_shutdown(root);
	} else if (sig == SIGUSR1) {
		const char *path = getenv("SUPDRIVER_STATUS");
		char tmp[4200];
		json_t *st = sup_status(root);

		if (path) {
			snprintf(tmp, sizeof(tmp), "%s.tmp", path);
			if (json_dump_file(st, tmp, JSON_INDENT(1)) == 0)
				rename(tmp, path);
		}
		json_decref(st);
	} else if (sig == SIGHUP) {
		log_info("supdriver", "roll pool: %d", sup_roll(root, "pool"));
	} else if (sig == SIGUSR2) {
		/* resize: the file $SUPDRIVER_RESIZE says "ID COUNT" */
		const char *path = getenv("SUPDRIVER_RESIZE");
		FILE *f = path ? fopen(path, "r") : NULL;
		char id[64];
		unsigned n;

		if (f && fscanf(f, "%63s %u", id, &n) == 2)
			log_info("supdriver", "resize %s: %d", id,
			         sup_resize(root, id, n));
		if (f)
			fclose(f);
	}
}

int main(int argc, char **argv)
{
	json_error_t jerr;
	struct loop *loop;
	json_t *j;

	if (argc != 2) {
		fprintf(stderr, "usage: supdriver SPEC.json\n");
		return 2;
	}
	j = json_load_file(argv[1], 0, &jerr);
	if (!j) {
		fprintf(stderr, "supdriver: %s:%d: %s\n", argv[1], jerr.line,
		        jerr.text);
		return 2;
	}
	log_set_process("supdriver");
	loop = loop_new();
	loop_on_signal(loop, SIGTERM, on_signal, NULL);
	loop_on_signal(loop, SIGINT, on_signal, NULL);
	loop_on_signal(loop, SIGUSR1, on_signal, NULL);
	loop_on_signal(loop, SIGUSR2, on_signal, NULL);
	loop_on_signal(loop, SIGHUP, on_signal, NULL);
	root = sup_start(loop, build(j), on_ready_cb, on_exit_cb, loop);
	if (!root) {
		perror("supdriver: sup_start");
		return EXIT_TEMPORARY;
	}
	loop_run(loop);
	sup_free(root);
	loop_free(loop);
	json_decref(j);
	return exit_code;
}
