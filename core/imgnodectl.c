/*
 * imgnodectl: talks to a running imgnode over its control socket (see
 * control.h for the protocol). It sends one request, waits for the one-line
 * answer (under a timeout: a reload validates plugins in a child and may
 * take a while) and prints it, for people or, with --json, as it came.
 *
 * Exit codes (s6 convention): 0 ok, 1 the node answered with an error (the
 * reason is printed), 100 usage error, 111 the node could not be reached or
 * did not answer in time.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "config.h"
#include "node/ctl_process.h"
#include "node/node_conf.h"
#include "submit.h"

#ifndef IMGNODE_SYSCONFDIR
#define IMGNODE_SYSCONFDIR "/etc"
#endif

#define EXIT_REFUSED 1

#define DEFAULT_SOCKET "/run/imgnode/control.sock"
#define DEFAULT_CONFIG IMGNODE_SYSCONFDIR "/imgnode/imgnode.ini"
#define MAX_REPLY (16 * 1024 * 1024)

/* The commands this imgnodectl knows, and whether they take an argument. */
static const struct command {
	const char *name;
	const char *arg; /* its name in the help, or NULL: none */
	const char *help;
} commands[] = {
        {"status", NULL,
         "the supervision tree: each child's pid, state, uptime, restarts and last exit"},
        {"restart", "ID",
         "restart the child ID (a nested supervisor restarts with its children)"},
        {"reload", NULL,
         "re-read the config and plugins, then roll the workers onto them;\n"
         "                if refused, print why and exit 1 (the old ones keep running)"},
        {"stop", NULL, "stop the node: children in reverse start order"},
        {"drain", NULL,
         "take no new uploads (503, /readyz 503), wait until every job in\n"
         "                flight has finished, printing how many are left (-t bounds the wait)"},
        {"undrain", NULL, "take uploads again (after drain)"},
        {"resume", NULL, "the same as undrain"},
        {"process", "IN PIPELINE OUT",
         "\n                run PIPELINE on the file IN (- for stdin) into OUT (- for stdout),\n"
         "                here, with the workers' code and the config's plugins; no node needed"},
        {"submit", "INPUT...",
         "\n                send files, folders or a list on stdin (-) through pipelines to a\n"
         "                node's HTTP API, results into a folder (imgnodectl submit -h)"},
        {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: imgnodectl [-s SOCKET] [-c FILE] [--json] [-t SECONDS] COMMAND [ARG]\n"
	        "commands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(out, "  %-8s %-4s %s\n", c->name, c->arg ? c->arg : "",
		        c->help);
	fprintf(out,
	        "options:\n"
	        "  -s, --socket SOCKET   the node's control socket (default: [supervisor]\n"
	        "                        control_socket of the config, else %s)\n"
	        "  -c, --config FILE     the config naming the socket, and submit's URL\n"
	        "                        (default %s)\n"
	        "  -j, --json            print the node's JSON answer as it is\n"
	        "  -t, --timeout SECONDS give up waiting after SECONDS (default 30)\n"
	        "  -V, --version         print the version\n"
	        "  -h, --help            this help\n"
	        "exit: 0 ok, 1 the node refused (reason on stderr), 100 usage error,\n"
	        "      111 the node cannot be reached or did not answer in time\n",
	        DEFAULT_SOCKET, DEFAULT_CONFIG);
}

static void die_usage(const char *fmt, ...) IMGNODE_PRINTF(1, 2);

static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("imgnodectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (imgnodectl -h for help)\n", stderr);
	exit(EXIT_PERMANENT);
}

/* Waits for events on fd until deadline; 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = {fd, events, 0};
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			return 0;
	}
}

/* Connects to path, retrying while its backlog is full; fd or -errno. */
static int ctl_connect(const char *path, int64_t deadline)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	int fd, ret;

	if (len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		if (ret == -EINTR)
			continue;
		if (ret != -EAGAIN || now_ms() >= deadline) {
			close(fd);
			return ret == -EAGAIN ? -ETIMEDOUT : ret;
		}
		poll(NULL, 0, 10); /* the node is busy accepting */
	}
	return fd;
}

/* Sends all of line before deadline; 0 or -errno (-ETIMEDOUT). */
static int ctl_send(int fd, const char *line, int64_t deadline)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		int ret;

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Reads one line before deadline. Returns 0 with the line (newline
 * removed) in *line, which the caller frees, or -errno: -ETIMEDOUT, -EPROTO
 * for an end of file before the newline, -EMSGSIZE past MAX_REPLY.
 */
static int ctl_recv(int fd, char **line, int64_t deadline)
{
	size_t got = 0, cap = 4096;
	char *buf = malloc(cap), *nl = NULL;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (!nl) {
		ssize_t n;

		if (got + 1 >= cap) {
			char *p =
			        cap < MAX_REPLY ? realloc(buf, cap * 2) : NULL;

			if (!p) {
				ret = cap < MAX_REPLY ? -ENOMEM : -EMSGSIZE;
				break;
			}
			buf = p;
			cap *= 2;
		}
		n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n > 0) {
			nl = memchr(buf + got, '\n', (size_t)n);
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			ret = -EPROTO;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			ret = -errno;
			break;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret)
			break;
	}
	if (ret) {
		free(buf);
		return ret;
	}
	*nl = '\0';
	*line = buf;
	return 0;
}

/*
 * Sends line to the node at path and reads its one-line answer. Returns 0
 * with the answer in *reply (the caller frees it), or -errno with the
 * reason in err.
 */
static int ctl_call(const char *path, const char *line, int64_t timeout_ms,
                    char **reply, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	double secs = (double)timeout_ms / 1000;
	int fd, ret;

	*reply = NULL;
	fd = ctl_connect(path, deadline);
	if (fd < 0) {
		if (fd == -ETIMEDOUT)
			snprintf(
			        err, errlen,
			        "cannot connect to %s: it accepted nobody within %.3g s",
			        path, secs);
		else
			snprintf(err, errlen, "cannot connect to %s: %s%s",
			         path, strerror(-fd),
			         fd == -ENOENT || fd == -ECONNREFUSED
			                 ? " (is imgnode running?)"
			         : fd == -EACCES
			                 ? " (run as root or as imgnode's user)"
			                 : "");
		return fd;
	}
	ret = ctl_send(fd, line, deadline);
	if (ret && ret != -ETIMEDOUT && ctl_recv(fd, reply, deadline) == 0)
		ret = 0; /* the node answered (why) before it hung up */
	else if (ret == -ETIMEDOUT)
		snprintf(
		        err, errlen,
		        "%s did not take the request within %.3g s (-t to wait longer)",
		        path, secs);
	else if (ret)
		snprintf(err, errlen, "unable to send the request to %s: %s",
		         path, strerror(-ret));
	if (ret || *reply)
		goto out_close;
	ret = ctl_recv(fd, reply, deadline);
	if (ret == -ETIMEDOUT)
		snprintf(err, errlen,
		         "no answer from %s within %.3g s (-t to wait longer)",
		         path, secs);
	else if (ret == -EPROTO)
		snprintf(err, errlen,
		         "%s closed the connection without an answer", path);
	else if (ret == -EMSGSIZE)
		snprintf(err, errlen, "the answer from %s is over %d bytes",
		         path, MAX_REPLY);
	else if (ret)
		snprintf(err, errlen, "unable to read the answer from %s: %s",
		         path, strerror(-ret));
out_close:
	close(fd);
	return ret;
}

/* "3s", "5m12s", "2h3m", "4d7h". */
static void fmt_duration(json_int_t ms, char *buf, size_t len)
{
	long long s = (long long)(ms / 1000);

	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
}

/* A signal number as its name: 9 -> "SIGKILL". */
static void fmt_signal(json_t *sig, char *buf, size_t len)
{
	const char *abbrev;

	if (json_is_string(sig)) {
		snprintf(buf, len, "signal %s", json_string_value(sig));
		return;
	}
	abbrev = sigabbrev_np((int)json_integer_value(sig));
	if (abbrev)
		snprintf(buf, len, "signal SIG%s", abbrev);
	else
		snprintf(buf, len, "signal %lld",
		         (long long)json_integer_value(sig));
}

/*
 * The last exit as the node gives it: a string ("signal SIGKILL",
 * "exit 1"), an exit code, or an object with "signal" or "code" and an
 * optional "reason".
 */
static void fmt_exit(json_t *v, char *buf, size_t len)
{
	json_t *sig, *code, *reason;
	char what[64] = "";

	if (json_is_string(v) && json_string_length(v) > 0) {
		snprintf(buf, len, "%s", json_string_value(v));
		return;
	}
	if (json_is_integer(v)) {
		snprintf(buf, len, "exit %lld",
		         (long long)json_integer_value(v));
		return;
	}
	if (!json_is_object(v)) {
		snprintf(buf, len, "-");
		return;
	}
	sig = json_object_get(v, "signal");
	code = json_object_get(v, "code");
	if (!code)
		code = json_object_get(v, "status");
	reason = json_object_get(v, "reason");
	if (json_is_string(sig) || json_is_integer(sig))
		fmt_signal(sig, what, sizeof(what));
	else if (json_is_integer(code))
		snprintf(what, sizeof(what), "exit %lld",
		         (long long)json_integer_value(code));
	if (json_is_string(reason))
		snprintf(buf, len, what[0] ? "%s (%s)" : "%s%s", what,
		         json_string_value(reason));
	else
		snprintf(buf, len, "%s", what[0] ? what : "-");
}

enum {
	COL_ID,
	COL_PID,
	COL_STATE,
	COL_GEN,
	COL_UPTIME,
	COL_RESTARTS,
	COL_EXIT,
	NCOL
};

struct row {
	char col[NCOL][160];
};

struct table {
	struct row *rows;
	size_t n, cap;
};

static const char *const headers[NCOL] = {
        "ID", "PID", "STATE", "GEN", "UPTIME", "RESTARTS", "LAST EXIT",
};
static const bool right_aligned[NCOL] = {false, true, false, true,
                                         true,  true, false};

static struct row *add_row(struct table *t)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct row *rows = realloc(t->rows, cap * sizeof(*rows));

		if (!rows) {
			fprintf(stderr, "imgnodectl: %s\n", strerror(ENOMEM));
			exit(EXIT_TEMPORARY);
		}
		t->rows = rows;
		t->cap = cap;
	}
	memset(&t->rows[t->n], 0, sizeof(t->rows[0]));
	return &t->rows[t->n++];
}

/* One row per node, children after their supervisor, indented by depth. */
static void add_node(struct table *t, json_t *node, int depth)
{
	json_t *children = json_object_get(node, "children");
	const char *id = json_string_value(json_object_get(node, "id"));
	const char *strategy =
	        json_string_value(json_object_get(node, "strategy"));
	const char *state = json_string_value(json_object_get(node, "state"));
	json_t *pid = json_object_get(node, "pid");
	json_t *uptime = json_object_get(node, "uptime_ms");
	json_t *restarts = json_object_get(node, "restarts");
	struct row *r = add_row(t);
	size_t i;

	if (depth > 16)
		depth = 16;
	snprintf(r->col[COL_ID], sizeof(r->col[COL_ID]), "%*s%s%s%s%s",
	         depth * 2, "", id ? id : "?", strategy ? " (" : "",
	         strategy ? strategy : "", strategy ? ")" : "");
	if (json_is_integer(pid) && json_integer_value(pid) > 0)
		snprintf(r->col[COL_PID], sizeof(r->col[COL_PID]), "%lld",
		         (long long)json_integer_value(pid));
	else
		snprintf(r->col[COL_PID], sizeof(r->col[COL_PID]), "-");
	snprintf(r->col[COL_STATE], sizeof(r->col[COL_STATE]), "%s",
	         state ? state : "-");
	/* the generation of plugins a child runs: two show during a roll */
	if (json_is_integer(json_object_get(node, "generation")))
		snprintf(r->col[COL_GEN], sizeof(r->col[COL_GEN]), "%lld",
		         (long long)json_integer_value(
		                 json_object_get(node, "generation")));
	else
		snprintf(r->col[COL_GEN], sizeof(r->col[COL_GEN]), "-");
	if (json_is_integer(uptime) && json_integer_value(uptime) >= 0)
		fmt_duration(json_integer_value(uptime), r->col[COL_UPTIME],
		             sizeof(r->col[COL_UPTIME]));
	else
		snprintf(r->col[COL_UPTIME], sizeof(r->col[COL_UPTIME]), "-");
	if (json_is_integer(restarts))
		snprintf(r->col[COL_RESTARTS], sizeof(r->col[COL_RESTARTS]),
		         "%lld", (long long)json_integer_value(restarts));
	else
		snprintf(r->col[COL_RESTARTS], sizeof(r->col[COL_RESTARTS]),
		         "-");
	fmt_exit(json_object_get(node, "last_exit"), r->col[COL_EXIT],
	         sizeof(r->col[COL_EXIT]));
	for (i = 0; i < json_array_size(children); i++)
		add_node(t, json_array_get(children, i), depth + 1);
}

/* Prints a scalar JSON value as text. */
static void print_scalar(FILE *out, json_t *v)
{
	if (json_is_string(v))
		fputs(json_string_value(v), out);
	else if (json_is_integer(v))
		fprintf(out, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		fprintf(out, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		fputs(json_is_true(v) ? "yes" : "no", out);
	else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		fputs(s ? s : "?", out);
		free(s);
	}
}

static void print_status(FILE *out, json_t *reply)
{
	json_t *node = json_object_get(reply, "node");
	json_t *tree = json_object_get(reply, "tree");
	struct table t = {0};
	size_t width[NCOL];

	if (json_is_object(node) && json_object_size(node) > 0) {
		for (void *it = json_object_iter(node); it;
		     it = json_object_iter_next(node, it)) {
			fprintf(out, "%-12s ", json_object_iter_key(it));
			print_scalar(out, json_object_iter_value(it));
			fputc('\n', out);
		}
		fputc('\n', out);
	}
	if (!json_is_object(tree)) {
		fprintf(out, "(no supervision tree in the answer)\n");
		return;
	}
	add_node(&t, tree, 0);
	for (int c = 0; c < NCOL; c++) {
		width[c] = strlen(headers[c]);
		for (size_t i = 0; i < t.n; i++)
			if (strlen(t.rows[i].col[c]) > width[c])
				width[c] = strlen(t.rows[i].col[c]);
	}
	for (size_t i = 0; i <= t.n; i++) {
		for (int c = 0; c < NCOL; c++) {
			const char *s =
			        i == 0 ? headers[c] : t.rows[i - 1].col[c];

			if (c == NCOL - 1)
				fprintf(out, "%s\n", s);
			else
				fprintf(out,
				        right_aligned[c] ? "%*s  " : "%-*s  ",
				        (int)width[c], s);
		}
	}
	free(t.rows);
}

/*
 * drain: asks the node to drain (answered at once), then asks again every
 * half second, printing the jobs left in flight when the count changes,
 * until none is left or timeout_ms has passed. Returns the exit code.
 */
static int drain(const char *path, int64_t timeout_ms, bool json_out)
{
	static const char line[] = "{\"cmd\":\"drain\",\"wait\":false}\n";
	int64_t deadline = now_ms() + timeout_ms, shown = -1, left = -1;
	char err[1024], *answer;
	json_t *reply;

	for (;;) {
		int64_t now = now_ms();

		if (ctl_call(path, line, deadline > now ? deadline - now : 1,
		             &answer, err, sizeof(err))) {
			fprintf(stderr, "imgnodectl: %s\n", err);
			return EXIT_TEMPORARY;
		}
		reply = json_loads(answer, 0, NULL);
		free(answer);
		if (!json_is_true(json_object_get(reply, "ok"))) {
			const char *e = json_string_value(
			        json_object_get(reply, "error"));

			fprintf(stderr, "imgnodectl: %s\n",
			        e ? e : "drain refused (no reason given)");
			json_decref(reply);
			return EXIT_REFUSED;
		}
		left = json_integer_value(json_object_get(reply, "inflight"));
		json_decref(reply);
		if (left <= 0)
			break;
		if (left != shown && !json_out)
			printf("draining: %lld in flight\n", (long long)left);
		fflush(stdout);
		shown = left;
		if (now_ms() + 500 > deadline) {
			fprintf(stderr,
			        "imgnodectl: %lld still in flight after %.3g s; the node stays draining (-t to wait longer)\n",
			        (long long)left, (double)timeout_ms / 1000);
			return EXIT_TEMPORARY;
		}
		usleep(500 * 1000);
	}
	if (json_out)
		printf("{\"ok\":true,\"inflight\":0}\n");
	else
		printf("drained: no job in flight\n");
	return 0;
}

/*
 * The socket path: -s, else [supervisor] control_socket of the config,
 * else the default. A config named with -c must load; the default one may
 * be missing (then the default socket is used).
 */
static char *socket_path(const char *sock, const char *config, bool explicit)
{
	char err[CONF_ERR_MAX];
	struct conf *conf;
	char *path;

	if (sock)
		return strdup(sock);
	if (!explicit && access(config, F_OK) < 0)
		return strdup(DEFAULT_SOCKET);
	conf = conf_load(config, err, sizeof(err));
	if (!conf) {
		if (explicit) {
			fprintf(stderr,
			        "imgnodectl: %s (-s SOCKET skips the config)\n",
			        err);
			exit(EXIT_PERMANENT);
		}
		fprintf(stderr, "imgnodectl: warning: %s; trying %s\n", err,
		        DEFAULT_SOCKET);
		return strdup(DEFAULT_SOCKET);
	}
	path = strdup(conf->supervisor.control_socket
	                      ? conf->supervisor.control_socket
	                      : DEFAULT_SOCKET);
	conf_free(conf);
	return path;
}

static double parse_timeout(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400 * 365)
		die_usage("-t wants a number of seconds above 0, not \"%s\"",
		          s);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"config", required_argument, NULL, 'c'},
	        {"json", no_argument, NULL, 'j'},
	        {"timeout", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *config = DEFAULT_CONFIG;
	bool explicit_config = false, json_out = false;
	double timeout = 30;
	const struct command *cmd;
	char err[1024], *path, *line, *answer;
	json_t *req, *reply;
	json_error_t jerr;
	int opt, ret;

	node_conf_register(); /* the config it reads is a node's */
	while ((opt = getopt_long(argc, argv, "+s:c:jt:hV", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'c':
			config = optarg;
			explicit_config = true;
			break;
		case 'j': json_out = true; break;
		case 't': timeout = parse_timeout(optarg); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("imgnodectl %s\n", IMGNODE_VERSION); return 0;
		default:
			fprintf(stderr, "imgnodectl -h for help\n");
			return EXIT_PERMANENT;
		}
	}
	if (optind >= argc)
		die_usage("no command given");
	for (cmd = commands; cmd->name; cmd++)
		if (strcmp(cmd->name, argv[optind]) == 0)
			break;
	if (!cmd->name)
		die_usage("unknown command \"%s\"", argv[optind]);
	if (strcmp(cmd->name, "process") == 0) {
		if (argc - optind != 4)
			die_usage("process takes IN PIPELINE OUT");
		return node_process(config, explicit_config, argv[optind + 1],
		                    argv[optind + 2], argv[optind + 3]);
	}
	if (strcmp(cmd->name, "submit") == 0)
		return ctl_submit(argc - optind, argv + optind, config,
		                  explicit_config, json_out);
	if (cmd->arg && argc - optind != 2)
		die_usage("%s takes one argument, %s", cmd->name, cmd->arg);
	if (!cmd->arg && argc - optind != 1)
		die_usage("%s takes no argument", cmd->name);

	req = cmd->arg ? json_pack("{s:s, s:s}", "cmd", cmd->name, "id",
	                           argv[optind + 1])
	               : json_pack("{s:s}", "cmd", cmd->name);
	line = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!line) {
		fprintf(stderr, "imgnodectl: unable to encode the request\n");
		return EXIT_PERMANENT;
	}
	/* one line: json_dumps escapes newlines inside strings */
	{
		size_t n = strlen(line);
		char *p = realloc(line, n + 2);

		if (!p) {
			free(line);
			fprintf(stderr, "imgnodectl: %s\n", strerror(ENOMEM));
			return EXIT_TEMPORARY;
		}
		line = p;
		memcpy(line + n, "\n", 2);
	}

	path = socket_path(sock, config, explicit_config);
	if (!path) {
		free(line);
		fprintf(stderr, "imgnodectl: %s\n", strerror(ENOMEM));
		return EXIT_TEMPORARY;
	}
	if (strcmp(cmd->name, "drain") == 0) {
		ret = drain(path, (int64_t)(timeout * 1000 + 0.5), json_out);
		free(line);
		free(path);
		return ret;
	}
	ret = ctl_call(path, line, (int64_t)(timeout * 1000 + 0.5), &answer,
	               err, sizeof(err));
	free(line);
	if (ret) {
		fprintf(stderr, "imgnodectl: %s\n", err);
		free(path);
		return EXIT_TEMPORARY;
	}
	reply = json_loads(answer, 0, &jerr);
	if (!json_is_object(reply)) {
		fprintf(stderr, "imgnodectl: %s sent an invalid answer: %s\n",
		        path, reply ? "not a JSON object" : jerr.text);
		json_decref(reply);
		free(answer);
		free(path);
		return EXIT_TEMPORARY;
	}
	free(path);

	ret = 0;
	if (json_out)
		printf("%s\n", answer);
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *e =
		        json_string_value(json_object_get(reply, "error"));

		if (e)
			fprintf(stderr, "imgnodectl: %s\n", e);
		else
			fprintf(stderr,
			        "imgnodectl: %s refused (no reason given)\n",
			        cmd->name);
		ret = EXIT_REFUSED;
	} else if (!json_out) {
		const char *msg =
		        json_string_value(json_object_get(reply, "message"));

		if (strcmp(cmd->name, "status") == 0)
			print_status(stdout, reply);
		else if (msg)
			printf("%s\n", msg);
	}
	json_decref(reply);
	free(answer);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "imgnodectl: unable to write the output: %s\n",
		        strerror(errno));
		return EXIT_TEMPORARY;
	}
	return ret;
}
