/*
 * The node's process tree, run by the supervisor (docs/design.md §1):
 *
 *   imgnode        root, one_for_one
 *   ├── ingress    a pool of one: the HTTP API
 *   ├── workers    simple_one_for_one pool of [workers] count
 *   ├── reaper     the dead-letter queue, the sweep, retention
 *   └── notifier   webhooks (callback= of a job)
 *
 * plus what the root process does beside supervising: the control socket
 * (imgnodectl), signals (SIGTERM/SIGINT stop, SIGHUP reloads), and the
 * service manager's notifications (READY, STATUS, WATCHDOG).
 *
 * A reload re-reads the config, checks it and the plugin directory in a
 * throwaway child, and only if that passes starts a new generation: the
 * ingress is restarted and the workers are rolled (a new one ready before
 * an old one drains). A reload that fails changes nothing.
 */
#include "node.h"
#include "../base.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../control.h"
#include "../log.h"
#include "../loop.h"
#include "../notify.h"
#include "../spawn.h"
#include "../supervisor.h"
#include "../util.h"
#include "image.h"
#include "metrics.h"
#include "node_conf.h"
#include "pipeline.h"
#include "startup.h"

struct reload {
	struct control_conn *conn; /* who asked (NULL: SIGHUP) */
	struct reload *next;
};

struct node_run {
	struct node node;
	const char *path;
	struct loop *loop;
	struct sup *root;
	struct control *control;
	struct sup_spec root_spec, pool_spec, ingress_spec;
	struct sup_child_spec children[4], worker, ingress;
	int64_t started;
	int exit_code;
	bool ready;
	/* the reload under way: its check child, its output, its waiters */
	pid_t check_pid;
	int check_fd;
	struct conf *next_conf;
	struct reload *waiters;
	bool reload_again; /* asked for while one was under way */
	struct control_conn *stop_conn;
	struct control_conn *drain_conn; /* answered once drained */
	int64_t drain_started;
	bool drained_logged;
	unsigned restarts_seen;
	struct sup_pool_counts workers; /* as published to the metrics */
	int64_t workers_wanted;
	bool workers_lost; /* none ready since some were */
};

static void start_reload(struct node_run *r, struct control_conn *conn);

/* The specs follow the config; called again after a reload. */
static void build_specs(struct node_run *r)
{
	const struct conf *c = r->node.conf;
	const struct supervisor_conf *s = &c->supervisor;

	r->worker = (struct sup_child_spec){
	        .id = "worker",
	        .type = SUP_WORKER,
	        .restart = SUP_PERMANENT,
	        /* a draining worker finishes its job first */
	        .shutdown_ms =
	                c->app->workers.job_timeout + s->shutdown_timeout,
	        .start = worker_main,
	        .arg = &r->node,
	        .start_timeout_ms = s->start_timeout,
	        .heartbeat_ms = c->app->workers.heartbeat,
	        .max_rss = c->app->workers.max_rss,
	};
	r->pool_spec = (struct sup_spec){
	        .id = "workers",
	        .strategy = SUP_SIMPLE_ONE_FOR_ONE,
	        .intensity = c->app->workers.intensity,
	        .period_ms = s->period,
	        .backoff_min_ms = s->backoff_min,
	        .backoff_max_ms = c->app->workers.backoff_max,
	        .children = &r->worker,
	        .nchildren = 1,
	        .count = (size_t)c->app->workers.count,
	};
	/* the ingress is a pool of one, so a reload can roll it: the new one
	 * listens (SO_REUSEPORT) before the old one stops accepting */
	r->ingress = (struct sup_child_spec){
	        .id = "ingress",
	        .type = SUP_WORKER,
	        .restart = SUP_PERMANENT,
	        .shutdown_ms = s->shutdown_timeout,
	        .start = ingress_main,
	        .arg = &r->node,
	        .start_timeout_ms = s->start_timeout,
	        .heartbeat_ms = c->app->workers.heartbeat,
	};
	r->ingress_spec = r->pool_spec;
	r->ingress_spec.id = "ingress";
	r->ingress_spec.backoff_max_ms = s->backoff_max;
	r->ingress_spec.children = &r->ingress;
	r->ingress_spec.count = 1;
	r->children[0] = (struct sup_child_spec){
	        .id = "ingress",
	        .type = SUP_SUPERVISOR,
	        .restart = SUP_PERMANENT,
	        .sup = &r->ingress_spec,
	};
	r->children[1] = (struct sup_child_spec){
	        .id = "workers",
	        .type = SUP_SUPERVISOR,
	        .restart = SUP_PERMANENT,
	        .sup = &r->pool_spec,
	};
	r->children[2] = (struct sup_child_spec){
	        .id = "reaper",
	        .type = SUP_WORKER,
	        .restart = SUP_PERMANENT,
	        .shutdown_ms = s->shutdown_timeout,
	        .start = reaper_main,
	        .arg = &r->node,
	        .start_timeout_ms = s->start_timeout,
	        .heartbeat_ms = c->app->workers.heartbeat,
	};
	r->children[3] = r->children[2];
	r->children[3].id = "notifier";
	r->children[3].start = notifier_main;
	r->root_spec = (struct sup_spec){
	        .id = "imgnode",
	        .strategy = SUP_ONE_FOR_ONE,
	        .intensity = s->intensity,
	        .period_ms = s->period,
	        .backoff_min_ms = s->backoff_min,
	        .backoff_max_ms = s->backoff_max,
	        .children = r->children,
	        .nchildren = 4,
	};
}

static void send_status(struct node_run *r)
{
	char summary[128], msg[160];

	if (!r->root)
		return;
	sup_summary(r->root, summary, sizeof(summary));
	snprintf(msg, sizeof(msg), "STATUS=generation %u: %s",
	         r->node.generation, summary);
	notify_send(msg);
}

/* ---- the control socket ---- */

/* Jobs this node accepted and has not finished, plus uploads being taken. */
static int64_t drain_left(struct node_run *r)
{
	return metrics_inflight(r->node.metrics) +
	       atomic_load(&r->node.metrics->submitting);
}

static void cmd_status(struct control_conn *conn, json_t *req, void *arg)
{
	struct node_run *r = arg;
	json_t *reply;

	(void)req;
	reply = json_pack(
	        "{s:b, s:o, s:{s:s, s:s, s:i, s:I, s:I, s:b, s:b, s:I}}", "ok",
	        1, "tree", sup_status(r->root), "node", "version",
	        IMGNODE_VERSION, "config", r->path, "pid", (int)getpid(),
	        "generation", (json_int_t)r->node.generation, "uptime_ms",
	        (json_int_t)(now_ms() - r->started), "reloading",
	        r->check_pid > 0, "draining",
	        atomic_load(&r->node.metrics->draining), "inflight",
	        (json_int_t)drain_left(r));
	control_reply(conn, reply);
}

static void cmd_restart(struct control_conn *conn, json_t *req, void *arg)
{
	struct node_run *r = arg;
	const char *id = json_string_value(json_object_get(req, "id"));
	int ret;

	if (!id) {
		control_reply_error(conn, "restart needs an \"id\"");
		return;
	}
	ret = sup_restart_child(r->root, id);
	if (ret == -ENOENT)
		control_reply_error(
		        conn, "no child \"%s\" (see imgnodectl status)", id);
	else if (ret)
		control_reply_error(conn, "cannot restart %s: %s", id,
		                    strerror(-ret));
	else
		control_reply_ok(conn);
}

static void cmd_reload(struct control_conn *conn, json_t *req, void *arg)
{
	(void)req;
	start_reload(arg, conn);
}

static void cmd_stop(struct control_conn *conn, json_t *req, void *arg)
{
	struct node_run *r = arg;

	(void)req;
	if (r->stop_conn) {
		control_reply_error(conn, "already stopping");
		return;
	}
	r->stop_conn = conn; /* answered once the tree is down */
	notify_send("STOPPING=1");
	sup_shutdown(r->root);
}

/*
 * Every 100 ms while a drain waits: answered once nothing is in flight
 * (each upload taken has become a job and each job has finished).
 */
static void drain_check(struct loop *loop, void *arg)
{
	struct node_run *r = arg;
	int64_t left = drain_left(r);

	if (!r->drain_conn)
		return;
	if (!atomic_load(&r->node.metrics->draining)) {
		control_reply_error(r->drain_conn, "undrained before the end");
		r->drain_conn = NULL;
		return;
	}
	if (left > 0) {
		loop_timer_add(loop, 100, drain_check, r);
		return;
	}
	if (!r->drained_logged)
		log_info("node", "drained ms=%lld",
		         (long long)(now_ms() - r->drain_started));
	r->drained_logged = true;
	control_reply(r->drain_conn,
	              json_pack("{s:b, s:s, s:I}", "ok", 1, "message",
	                        "drained: no job in flight", "ms",
	                        (json_int_t)(now_ms() - r->drain_started)));
	r->drain_conn = NULL;
}

/*
 * drain: uploads get 503 and /readyz 503 (a balancer sends work elsewhere);
 * answered once what is in flight has finished, or at once with the count
 * left if the request says "wait": false (imgnodectl asks so, repeatedly,
 * to show progress). The workers go on.
 */
static void cmd_drain(struct control_conn *conn, json_t *req, void *arg)
{
	struct node_run *r = arg;
	json_t *wait = json_object_get(req, "wait");

	if (!atomic_exchange(&r->node.metrics->draining, true)) {
		r->drain_started = now_ms();
		r->drained_logged = false;
		log_info("node", "draining inflight=%lld",
		         (long long)drain_left(r));
		notify_send("STATUS=draining");
	}
	if (json_is_false(wait)) {
		int64_t left = drain_left(r);

		if (!left && !r->drained_logged)
			log_info("node", "drained ms=%lld",
			         (long long)(now_ms() - r->drain_started));
		r->drained_logged |= !left;
		control_reply(conn, json_pack("{s:b, s:I}", "ok", 1, "inflight",
		                              (json_int_t)left));
		return;
	}
	if (r->drain_conn) {
		control_reply_error(conn, "a drain is already waiting");
		return;
	}
	r->drain_conn = conn;
	drain_check(r->loop, r);
}

static void cmd_undrain(struct control_conn *conn, json_t *req, void *arg)
{
	struct node_run *r = arg;

	(void)req;
	if (atomic_exchange(&r->node.metrics->draining, false))
		log_info("node", "taking work again");
	drain_check(r->loop, r); /* a drain still waiting is answered */
	send_status(r);
	control_reply(conn, json_pack("{s:b, s:s}", "ok", 1, "message",
	                              "taking work"));
}

static const struct control_cmd commands[] = {
        {"status", cmd_status},  {"restart", cmd_restart},
        {"reload", cmd_reload},  {"stop", cmd_stop},
        {"drain", cmd_drain},    {"undrain", cmd_undrain},
        {"resume", cmd_undrain}, {NULL, NULL},
};

/* ---- reload ---- */

/* The check child: the new config's plugins, loaded where it is safe. */
static int check_main(void *arg)
{
	struct node_run *r = arg;
	char err[CONF_ERR_MAX];
	int ret;

	log_set_process("reload-check");
	/* already a throwaway child: check here, no second fork */
	ret = plugin_validate(r->next_conf, node_check, NULL, err, sizeof(err));
	if (ret) {
		util_write_all(PROC_STATUS_FD, err, strlen(err));
		return EXIT_PERMANENT;
	}
	return 0;
}

static void answer_waiters(struct node_run *r, const char *error)
{
	struct reload *w, *next;

	for (w = r->waiters; w; w = next) {
		next = w->next;
		if (!w->conn)
			;
		else if (error)
			control_reply_error(w->conn, "reload refused: %s",
			                    error);
		else
			control_reply(
			        w->conn,
			        json_pack("{s:b, s:I}", "ok", 1, "generation",
			                  (json_int_t)r->node.generation));
		free(w);
	}
	r->waiters = NULL;
}

/* The workers have rolled (sup_when_settled): the ingress follows. */
static void roll_ingress(struct sup *root, void *arg)
{
	(void)arg;
	sup_roll(root, "ingress");
}

static void on_check_exit(pid_t pid, int status, void *arg)
{
	struct node_run *r = arg;
	char err[CONF_ERR_MAX] = "";
	ssize_t n;

	if (pid != r->check_pid)
		return;
	r->check_pid = 0;
	n = util_read_all(r->check_fd, err, sizeof(err) - 1);
	close(r->check_fd);
	err[n > 0 ? n : 0] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		plugin_check_status(status, r->next_conf, err, sizeof(err));
		log_error("node", "reload refused, keeping generation %u: %s",
		          r->node.generation, err);
		conf_free(r->next_conf);
		r->next_conf = NULL;
		answer_waiters(r, err);
	} else {
		struct conf *old = r->node.conf;
		size_t count;

		r->node.conf = r->next_conf;
		r->next_conf = NULL;
		r->node.generation++;
		sup_set_generation(r->root, r->node.generation);
		conf_free(old);
		log_set_level(r->node.conf->node.log_level);
		log_set_format(r->node.conf->node.log_format);
		build_specs(r);
		count = (size_t)r->node.conf->app->workers.count;
		log_info("node", "reloaded config=%s generation=%u", r->path,
		         r->node.generation);
		/*
		 * New children load the new generation; old ones drain. The
		 * workers roll first: the ingress, which decides what the API
		 * accepts, follows once every worker can run what it accepts.
		 */
		sup_restart_child(r->root, "reaper");
		sup_restart_child(r->root, "notifier");
		sup_roll(r->root, "workers");
		sup_resize(r->root, "workers", count);
		sup_when_settled(r->root, "workers", roll_ingress, r);
		answer_waiters(r, NULL);
		send_status(r);
	}
	if (r->reload_again) {
		r->reload_again = false;
		start_reload(r, NULL);
	}
}

static void start_reload(struct node_run *r, struct control_conn *conn)
{
	char err[CONF_ERR_MAX];
	struct reload *w = calloc(1, sizeof(*w));
	pid_t pid;

	if (!w) {
		if (conn)
			control_reply_error(conn, "out of memory");
		return;
	}
	w->conn = conn;
	w->next = r->waiters;
	r->waiters = w;
	if (r->check_pid > 0) {
		r->reload_again = true; /* one more after this one */
		return;
	}
	log_info("node", "reloading config=%s", r->path);
	r->next_conf = conf_load(r->path, err, sizeof(err));
	if (!r->next_conf) {
		log_error("node", "reload refused, keeping generation %u: %s",
		          r->node.generation, err);
		answer_waiters(r, err);
		return;
	}
	pid = proc_spawn(check_main, r, &r->check_fd);
	if (pid < 0) {
		snprintf(err, sizeof(err), "cannot fork the check: %s",
		         strerror(-pid));
		conf_free(r->next_conf);
		r->next_conf = NULL;
		answer_waiters(r, err);
		return;
	}
	r->check_pid = pid;
}

int node_check(struct plugin_set *set, struct conf *conf, void *arg, char *err,
               size_t errlen)
{
	char why[CONF_ERR_MAX];
	int ret;

	(void)arg;
	/* every filter starts and passes its self-test, in this throwaway
	 * process, before any worker loads it */
	ret = image_init(1, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "libvips: %s", why);
		return ret;
	}
	for (struct plugin *p = set->head; p; p = p->next) {
		const struct imgnode_filter_ops *ops = p->desc->ops;

		if (p->desc->kind != IMGNODE_KIND_FILTER)
			continue;
		why[0] = '\0';
		ret = plugin_start(p, why, sizeof(why));
		if (!ret && ops->selftest) {
			ret = ops->selftest(p->state, why, sizeof(why));
			if (!ret && why[0])
				log_warn("node", "filter %s: %s", p->desc->name,
				         why);
		}
		if (ret) {
			snprintf(err, errlen,
			         "%s: filter %s self-test failed: %s", p->path,
			         p->desc->name, why);
			return ret;
		}
	}
	for (const struct preset *p = conf->app->presets; p; p = p->next) {
		char why[512];
		struct pipeline *pl =
		        pipeline_parse(p->pipeline, set, why, sizeof(why));

		if (!pl) {
			snprintf(err, errlen, "%s:%d: [preset.%s] pipeline: %s",
			         p->where->file, p->where->line, p->name, why);
			return -EINVAL;
		}
		pipeline_free(pl);
	}
	return 0;
}

/* ---- signals, readiness, the end ---- */

static void on_signal(struct loop *loop, int sig, void *arg)
{
	struct node_run *r = arg;

	(void)loop;
	if (sig == SIGHUP) {
		start_reload(r, NULL);
		return;
	}
	log_info("node", "stopping signal=SIG%s", sigabbrev_np(sig));
	notify_send("STOPPING=1");
	sup_shutdown(r->root);
}

/*
 * The workers pool, when it changed, into the shared metrics for /readyz
 * (the ingress is another process). One line when none is ready any more
 * and one when some are again.
 */
static void publish_workers(struct node_run *r)
{
	struct sup_pool_counts n, *was = &r->workers;
	int64_t wanted = r->node.conf->app->workers.count;
	struct metrics *m = r->node.metrics;

	if (sup_pool_counts(r->root, "workers", &n))
		n = (struct sup_pool_counts){0};
	if (n.members == was->members && n.ready == was->ready &&
	    n.alive == was->alive && n.starting == was->starting &&
	    n.next_start == was->next_start && wanted == r->workers_wanted)
		return;
	atomic_store(&m->workers.wanted, wanted);
	atomic_store(&m->workers.alive, (int64_t)n.alive);
	atomic_store(&m->workers.starting, (int64_t)n.starting);
	atomic_store(&m->workers.next_start, n.next_start);
	atomic_store(&m->workers.ready, (int64_t)n.ready);
	if (n.ready == 0 && wanted > 0 && was->ready > 0) {
		r->workers_lost = true;
		log_warn("node", "no worker ready alive=%zu of=%lld", n.alive,
		         (long long)wanted);
	} else if (n.ready > 0 && r->workers_lost) {
		r->workers_lost = false;
		log_info("node", "workers ready again ready=%zu", n.ready);
	}
	*was = n;
	r->workers_wanted = wanted;
}

static void on_ready(struct sup *root, void *arg)
{
	struct node_run *r = arg;

	(void)root;
	r->ready = true;
	publish_workers(r); /* /readyz knows before "ready" is logged */
	log_info("node", "ready config=%s listen=%s:%lld workers=%lld", r->path,
	         r->node.conf->app->ingress.listen,
	         (long long)r->node.conf->app->ingress.port,
	         (long long)r->node.conf->app->workers.count);
	notify_send("READY=1");
	send_status(r);
}

static void on_exit_tree(struct sup *root, int code, void *arg)
{
	struct node_run *r = arg;

	(void)root;
	r->exit_code = code;
	if (r->drain_conn) {
		control_reply_error(r->drain_conn, "imgnode stopped");
		r->drain_conn = NULL;
	}
	if (r->stop_conn) {
		control_reply_ok(r->stop_conn);
		r->stop_conn = NULL;
	}
	loop_stop(r->loop, code);
}

static void on_watchdog(struct loop *loop, void *arg)
{
	struct node_run *r = arg;
	int64_t ms = notify_watchdog_ms();

	notify_send("WATCHDOG=1");
	if (ms > 0)
		loop_timer_add(loop, ms / 2, on_watchdog, r);
}

/*
 * Before the loop sleeps, after any event: restarts and the workers pool
 * into the shared metrics, STATUS if the restarts changed.
 */
static void publish_restarts(struct loop *loop, void *arg)
{
	struct node_run *r = arg;
	unsigned restarts = sup_restarts(r->root);

	(void)loop;
	publish_workers(r);
	atomic_store(&r->node.metrics->restarts, restarts);
	if (restarts != r->restarts_seen) {
		r->restarts_seen = restarts;
		send_status(r);
	}
}

int node_run(const char *path, struct conf **confp)
{
	struct node_run r = {.path = path, .check_fd = -1};
	struct conf *conf = *confp;
	char err[CONF_ERR_MAX];
	int ret;

	r.node.conf = conf;
	r.node.generation = 1;
	r.started = now_ms();
	for (int i = 0; i < 2; i++) {
		const char *dir =
		        i ? conf->node.runtime_dir : conf->node.state_dir;
		ret = util_mkdir_p(dir, 0750);
		if (ret) {
			log_error("node", "unable to create %s: %s", dir,
			          strerror(-ret));
			return EXIT_PERMANENT;
		}
	}
	r.node.metrics = metrics_create();
	r.loop = loop_new();
	if (!r.node.metrics || !r.loop) {
		log_error("node", "out of memory");
		return EXIT_TEMPORARY;
	}
	build_specs(&r);
	loop_on_signal(r.loop, SIGTERM, on_signal, &r);
	loop_on_signal(r.loop, SIGINT, on_signal, &r);
	loop_on_signal(r.loop, SIGHUP, on_signal, &r);
	signal(SIGPIPE, SIG_IGN);
	r.control = control_open(r.loop, conf->supervisor.control_socket,
	                         commands, &r, err, sizeof(err));
	if (!r.control) {
		log_error("node", "%s", err);
		loop_free(r.loop);
		return EXIT_PERMANENT;
	}
	r.root = sup_start(r.loop, &r.root_spec, on_ready, on_exit_tree, &r);
	if (!r.root) {
		log_error("node", "cannot start the supervisor: %s",
		          strerror(errno));
		control_close(r.control);
		loop_free(r.loop);
		return EXIT_TEMPORARY;
	}
	sup_on_foreign_exit(r.root, on_check_exit, &r);
	sup_set_generation(r.root, r.node.generation);
	loop_prepare_add(r.loop, publish_restarts, &r);
	if (notify_watchdog_ms() > 0)
		loop_timer_add(r.loop, notify_watchdog_ms() / 2, on_watchdog,
		               &r);
	loop_run(r.loop);
	control_close(r.control);
	sup_free(r.root);
	loop_free(r.loop);
	answer_waiters(&r, "imgnode is stopping");
	conf_free(r.next_conf);
	*confp = r.node.conf;
	log_info("node", "stopped code=%d", r.exit_code);
	return r.exit_code;
}
