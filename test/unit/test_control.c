/*
 * Unit tests for the control socket: a server in the test's own loop and
 * clients that are non-blocking sockets driven by the same loop, so every
 * test is one process, deterministic and fast.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base.h"
#include "control.h"
#include "log.h"
#include "loop.h"

struct fixture {
	char dir[32];
	char path[64];
	struct loop *loop;
	struct control *ctl;
	int calls; /* handler calls */
	struct control_conn *held; /* by the "hold" command */
};

/* A client: sends out, then reads until the server closes. */
struct client {
	struct fixture *f;
	int fd;
	const char *out;
	size_t outlen, off;
	char in[4096];
	size_t inlen;
	int err; /* errno of a failed send or recv */
	bool close_after_send;
	bool done;
	int *pending;
};

static int pending;

static void finish(struct client *cl)
{
	loop_del_fd(cl->f->loop, cl->fd);
	close(cl->fd);
	cl->fd = -1;
	cl->done = true;
	if (--*cl->pending == 0)
		loop_stop(cl->f->loop, 0);
}

static void on_client(struct loop *loop, int fd, short revents, void *arg)
{
	struct client *cl = arg;
	ssize_t n;

	(void)revents;
	if (cl->off < cl->outlen) {
		n = send(fd, cl->out + cl->off, cl->outlen - cl->off,
		         MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			/* the server may have answered before it closed */
			cl->err = errno;
			cl->outlen = cl->off;
			loop_mod_fd(loop, fd, POLLIN);
			return;
		}
		cl->off += (size_t)n;
		if (cl->off < cl->outlen)
			return;
		if (cl->close_after_send) {
			finish(cl);
			return;
		}
		loop_mod_fd(loop, fd, POLLIN);
		return;
	}
	n = recv(fd, cl->in + cl->inlen, sizeof(cl->in) - 1 - cl->inlen, 0);
	if (n < 0) {
		if (errno == EAGAIN)
			return;
		cl->err = errno;
		finish(cl);
		return;
	}
	cl->inlen += (size_t)n;
	cl->in[cl->inlen] = '\0';
	if (n == 0 || cl->inlen == sizeof(cl->in) - 1)
		finish(cl);
}

/* Connects cl to path and queues out (len bytes) for sending. */
static void client_start(struct fixture *f, struct client *cl, const char *path,
                         const char *out, size_t len)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	memset(cl, 0, sizeof(*cl));
	cl->f = f;
	cl->out = out;
	cl->outlen = len;
	cl->pending = &pending;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	assert_int_equal(
	        connect(cl->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(loop_add_fd(f->loop, cl->fd, len ? POLLOUT : POLLIN,
	                             on_client, cl),
	                 0);
	pending++;
}

static void on_guard(struct loop *loop, void *arg)
{
	*(bool *)arg = true;
	loop_stop(loop, 1);
}

/* Runs the loop until every started client is done (or 5 s passed). */
static void run_clients(struct fixture *f)
{
	bool fired = false;
	struct loop_timer *guard =
	        loop_timer_add(f->loop, 5000, on_guard, &fired);

	assert_int_equal(loop_run(f->loop), 0);
	assert_false(fired);
	loop_timer_cancel(f->loop, guard);
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct fixture *f, int64_t ms)
{
	bool fired = false;

	loop_timer_add(f->loop, ms, on_guard, &fired);
	loop_run(f->loop);
	assert_true(fired);
}

/* Runs the loop until the "hold" handler has a request (or 5 s passed). */
static void run_until_held(struct fixture *f)
{
	bool fired = false;
	struct loop_timer *guard =
	        loop_timer_add(f->loop, 5000, on_guard, &fired);

	while (!f->held && !fired)
		loop_run(f->loop);
	assert_false(fired);
	loop_timer_cancel(f->loop, guard);
}

/* The reply of cl, parsed; asserts it is one JSON line. */
static json_t *reply_of(const struct client *cl)
{
	json_error_t jerr;
	json_t *r;

	assert_true(cl->done);
	assert_true(cl->inlen > 0);
	assert_int_equal(cl->in[cl->inlen - 1], '\n');
	assert_null(memchr(cl->in, '\n', cl->inlen - 1));
	r = json_loadb(cl->in, cl->inlen, 0, &jerr);
	assert_non_null(r);
	return r;
}

static void assert_error_reply(const struct client *cl, const char *text)
{
	json_t *r = reply_of(cl);
	const char *e = json_string_value(json_object_get(r, "error"));

	assert_true(json_is_false(json_object_get(r, "ok")));
	assert_non_null(e);
	if (!strstr(e, text))
		fail_msg("error \"%s\" does not contain \"%s\"", e, text);
	json_decref(r);
}

static void cmd_status(struct control_conn *conn, json_t *req, void *arg)
{
	struct fixture *f = arg;

	(void)req;
	f->calls++;
	control_reply(conn, json_pack("{s:b, s:{s:s, s:[]}}", "ok", 1, "tree",
	                              "id", "imgnode", "children"));
}

struct later {
	struct control_conn *conn;
	json_t *tag;
};

static void on_later(struct loop *loop, void *arg)
{
	struct later *l = arg;

	(void)loop;
	control_reply(l->conn, json_pack("{s:b, s:o}", "ok", 1, "tag", l->tag));
	free(l);
}

/* Answers {"ok":true,"tag":TAG} after the request's "ms". */
static void cmd_later(struct control_conn *conn, json_t *req, void *arg)
{
	struct fixture *f = arg;
	struct later *l = malloc(sizeof(*l));

	assert_non_null(l);
	f->calls++;
	l->conn = conn;
	l->tag = json_incref(json_object_get(req, "tag"));
	assert_non_null(loop_timer_add(
	        f->loop, json_integer_value(json_object_get(req, "ms")),
	        on_later, l));
}

/* Keeps the request unanswered; the test answers it. */
static void cmd_hold(struct control_conn *conn, json_t *req, void *arg)
{
	struct fixture *f = arg;

	(void)req;
	f->calls++;
	f->held = conn;
	loop_stop(f->loop, 0);
}

static const struct control_cmd cmds[] = {
        {"status", cmd_status},
        {"later", cmd_later},
        {"hold", cmd_hold},
        {NULL, NULL},
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/imgnode-ctl-XXXXXX");
	if (!mkdtemp(f->dir))
		goto out_free;
	snprintf(f->path, sizeof(f->path), "%s/control.sock", f->dir);
	f->loop = loop_new();
	if (!f->loop)
		goto out_rmdir;
	f->ctl = control_open(f->loop, f->path, cmds, f, err, sizeof(err));
	if (!f->ctl) {
		fprintf(stderr, "control_open: %s\n", err);
		goto out_free_loop;
	}
	pending = 0;
	*state = f;
	return 0;

out_free_loop:
	loop_free(f->loop);
out_rmdir:
	rmdir(f->dir);
out_free:
	free(f);
	return -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[320];
	DIR *d;
	struct dirent *e;

	control_close(f->ctl);
	loop_free(f->loop);
	d = opendir(f->dir);
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

#define REQ(s) (s), sizeof(s) - 1

static void test_status_round_trip(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	json_t *r;

	client_start(f, &cl, f->path, REQ("{\"cmd\":\"status\"}\n"));
	run_clients(f);
	r = reply_of(&cl);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(
	                            json_object_get(r, "tree"), "id")),
	                    "imgnode");
	json_decref(r);
	assert_int_equal(f->calls, 1);
}

/* Replies from timers, in another order than the requests came. */
static void test_reply_later(void **state)
{
	struct fixture *f = *state;
	struct client a, b;
	int64_t t0 = now_ms();
	json_t *r;

	client_start(f, &a, f->path,
	             REQ("{\"cmd\":\"later\",\"ms\":80,\"tag\":\"a\"}\n"));
	client_start(f, &b, f->path,
	             REQ("{\"cmd\":\"later\",\"ms\":10,\"tag\":\"b\"}\n"));
	run_clients(f);
	assert_true(now_ms() - t0 >= 80);
	r = reply_of(&a);
	assert_string_equal(json_string_value(json_object_get(r, "tag")), "a");
	json_decref(r);
	r = reply_of(&b);
	assert_string_equal(json_string_value(json_object_get(r, "tag")), "b");
	json_decref(r);
}

/* Bad requests are answered with the reason; no handler runs. */
static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	struct client c[5];

	client_start(f, &c[0], f->path, REQ("{\"cmd\":\"status\"\n"));
	client_start(f, &c[1], f->path, REQ("[\"status\"]\n"));
	client_start(f, &c[2], f->path, REQ("{\"command\":\"status\"}\n"));
	client_start(f, &c[3], f->path, REQ("{\"cmd\":\"explode\"}\n"));
	client_start(f, &c[4], f->path, REQ("\n"));
	run_clients(f);
	assert_error_reply(&c[0], "invalid JSON request");
	assert_error_reply(&c[1], "not a JSON object");
	assert_error_reply(&c[2], "no \"cmd\" string");
	assert_error_reply(
	        &c[3],
	        "unknown command \"explode\" (known: status, later, hold)");
	assert_error_reply(&c[4], "invalid JSON request");
	assert_int_equal(f->calls, 0);
}

/* A request may end at end of file; bytes after the newline are ignored. */
static void test_request_framing(void **state)
{
	struct fixture *f = *state;
	struct client a, b;
	json_t *r;

	client_start(f, &a, f->path, REQ("{\"cmd\":\"status\"}"));
	client_start(f, &b, f->path,
	             REQ("{\"cmd\":\"status\"}\n{\"cmd\":\"hold\"}\n"));
	/* a: send, then half-close so the server sees end of file */
	while (a.off < a.outlen) {
		ssize_t n = send(a.fd, a.out + a.off, a.outlen - a.off, 0);
		assert_true(n > 0);
		a.off += (size_t)n;
	}
	assert_int_equal(shutdown(a.fd, SHUT_WR), 0);
	loop_mod_fd(f->loop, a.fd, POLLIN);
	run_clients(f);
	r = reply_of(&a);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	r = reply_of(&b);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	assert_int_equal(f->calls, 2);
	assert_null(f->held);
}

static void test_refuses_live_socket(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char err[256], other[64];
	struct control *ctl;
	int fd;

	/* a second node on the same path: the lock says no */
	ctl = control_open(f->loop, f->path, cmds, f, err, sizeof(err));
	assert_null(ctl);
	assert_non_null(strstr(err, "another imgnode is running on"));
	assert_non_null(strstr(err, f->path));

	/* something listening without the lock: the probe says no */
	snprintf(other, sizeof(other), "%s/other.sock", f->dir);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", other);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 1), 0);
	ctl = control_open(f->loop, other, cmds, f, err, sizeof(err));
	assert_null(ctl);
	assert_non_null(strstr(err, "another imgnode is running on"));
	close(fd);

	/* the first node still serves */
	struct client cl;
	client_start(f, &cl, f->path, REQ("{\"cmd\":\"status\"}\n"));
	run_clients(f);
	json_decref(reply_of(&cl));
}

static void test_replaces_stale_socket(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char err[256], stale[64], file[64];
	struct control *ctl;
	struct client cl;
	struct stat st;
	json_t *r;
	int fd;

	/* a socket file nobody listens on: a node that died */
	snprintf(stale, sizeof(stale), "%s/stale.sock", f->dir);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", stale);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
	ctl = control_open(f->loop, stale, cmds, f, err, sizeof(err));
	if (!ctl)
		fail_msg("control_open: %s", err);
	client_start(f, &cl, stale, REQ("{\"cmd\":\"status\"}\n"));
	run_clients(f);
	r = reply_of(&cl);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	control_close(ctl);
	assert_int_equal(lstat(stale, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* a regular file is not ours to remove */
	snprintf(file, sizeof(file), "%s/file", f->dir);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	ctl = control_open(f->loop, file, cmds, f, err, sizeof(err));
	assert_null(ctl);
	assert_non_null(strstr(err, "is not a socket"));
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_socket_mode(void **state)
{
	struct fixture *f = *state;
	char err[256], path[64];
	struct control *ctl;
	struct stat st;
	mode_t old = umask(0);

	snprintf(path, sizeof(path), "%s/open.sock", f->dir);
	ctl = control_open(f->loop, path, cmds, f, err, sizeof(err));
	assert_int_equal(umask(old), 0); /* the caller's umask is kept */
	assert_non_null(ctl);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	control_close(ctl);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_path_too_long(void **state)
{
	struct fixture *f = *state;
	char err[256], path[200];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_null(control_open(f->loop, path, cmds, f, err, sizeof(err)));
	assert_non_null(strstr(err, "must be 1 to 107 bytes long"));
}

/* The client is gone before the (late) reply: nothing breaks. */
static void test_client_disconnects_early(void **state)
{
	struct fixture *f = *state;
	struct client cl, cl2;
	json_t *r;

	client_start(f, &cl, f->path, REQ("{\"cmd\":\"hold\"}\n"));
	cl.close_after_send = true;
	run_until_held(f);
	assert_true(cl.done);
	assert_non_null(f->held);
	control_reply_ok(f->held); /* EPIPE, without SIGPIPE */
	f->held = NULL;
	run_for(f, 20);

	client_start(f, &cl2, f->path, REQ("{\"cmd\":\"status\"}\n"));
	run_clients(f);
	r = reply_of(&cl2);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
}

/* A line of exactly CONTROL_MAX_REQUEST bytes is served; one more is not. */
static void test_request_size_limit(void **state)
{
	struct fixture *f = *state;
	size_t max = CONTROL_MAX_REQUEST;
	char *ok = malloc(max + 1), *big = malloc(max + 1);
	struct client a, b, c;
	json_t *r;
	int n;

	assert_non_null(ok);
	assert_non_null(big);
	n = snprintf(ok, max, "{\"cmd\":\"status\",\"pad\":\"");
	memset(ok + n, 'x', max - (size_t)n - 2);
	memcpy(ok + max - 2, "\"}\n", 3);
	memset(big, 'x', max + 1);

	client_start(f, &a, f->path, ok, max + 1);
	client_start(f, &b, f->path, big, max + 1);
	run_clients(f);
	r = reply_of(&a);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	assert_error_reply(&b, "request too large");
	assert_int_equal(f->calls, 1);

	client_start(f, &c, f->path, REQ("{\"cmd\":\"status\"}\n"));
	run_clients(f);
	json_decref(reply_of(&c));
	free(ok);
	free(big);
}

/* A client that never finishes its request is dropped. */
static void test_slow_client_dropped(void **state)
{
	struct fixture *f = *state;
	int64_t t0 = now_ms();
	struct client cl;

	control_set_timeout(f->ctl, 100);
	client_start(f, &cl, f->path, REQ("{\"cmd\":"));
	run_clients(f);
	assert_true(now_ms() - t0 >= 100);
	assert_int_equal(cl.inlen, 0);
	assert_int_equal(cl.err, 0);
	assert_int_equal(f->calls, 0);
}

/* Closing with a request in a handler: the client hears why. */
static void test_close_with_pending_request(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	struct stat st;

	client_start(f, &cl, f->path, REQ("{\"cmd\":\"hold\"}\n"));
	run_until_held(f);
	control_close(f->ctl);
	f->ctl = NULL;
	assert_int_equal(lstat(f->path, &st), -1);
	run_clients(f);
	assert_error_reply(&cl, "imgnode is stopping");
	control_reply_ok(f->held); /* frees the orphan */
	f->held = NULL;
}

/* Past 32 clients at once, the next one hears why it is turned away. */
static void test_too_many_clients(void **state)
{
	static struct client c[33];
	struct fixture *f = *state;
	json_t *r;

	for (int i = 0; i < 32; i++)
		client_start(f, &c[i], f->path,
		             REQ("{\"cmd\":\"later\",\"ms\":50,\"tag\":1}\n"));
	client_start(f, &c[32], f->path, REQ("{\"cmd\":\"status\"}\n"));
	run_clients(f);
	for (int i = 0; i < 32; i++) {
		r = reply_of(&c[i]);
		assert_true(json_is_true(json_object_get(r, "ok")));
		json_decref(r);
	}
	assert_error_reply(&c[32], "too many control clients at once");
	assert_int_equal(f->calls, 32);
}

/* Descriptors the test runner gave us: not ours to check. */
static bool inherited[1024];

/* Calls fn for each open descriptor above 2 but the directory's own. */
static void each_fd(void (*fn)(int fd, void *arg), void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end || e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		fn((int)fd, arg);
	}
	closedir(d);
}

static void note_inherited(int fd, void *arg)
{
	(void)arg;
	if (fd < (int)(sizeof(inherited) / sizeof(inherited[0])))
		inherited[fd] = true;
}

static void check_cloexec(int fd, void *arg)
{
	if (fd < (int)(sizeof(inherited) / sizeof(inherited[0])) &&
	    inherited[fd])
		return;
	if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
		fail_msg("fd %d is not close-on-exec", fd);
	(*(int *)arg)++;
}

/* Nothing leaks into forked children that exec. */
static void test_close_on_exec(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	int checked = 0;

	client_start(f, &cl, f->path, REQ("{\"cmd\":\"hold\"}\n"));
	run_until_held(f); /* a connection is open and held */
	each_fd(check_cloexec, &checked);
	assert_true(checked >= 4); /* listener, lock, conn, client */
	control_reply_ok(f->held);
	f->held = NULL;
	run_clients(f);
	json_decref(reply_of(&cl));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_status_round_trip, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_reply_later, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_bad_requests, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_request_framing, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_refuses_live_socket, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_replaces_stale_socket,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_socket_mode, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_path_too_long, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_client_disconnects_early,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_request_size_limit, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_slow_client_dropped, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_close_with_pending_request,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_too_many_clients, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_close_on_exec, setup,
	                                        teardown),
	};

	log_set_level(LOG_ERROR);
	each_fd(note_inherited, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
