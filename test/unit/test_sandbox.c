/*
 * Unit tests for the workers' (and probers') sandbox: what the system call
 * filter keeps out and what it lets through (each case in a forked child,
 * since a filter cannot be removed), the address-space limit, and the
 * secrets forgotten.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "node/node_conf.h"
#include "node/sandbox.h"

/* What the child found: 0, or the number of the first check that failed,
 * as its exit code (cmocka's asserts do not cross a fork). */
enum {
	BAD_ENTER = 1,
	BAD_NNP,
	BAD_UNIX,
	BAD_INET,
	BAD_NETLINK,
	BAD_FORK,
	BAD_EXEC,
	BAD_KILL_OTHER,
	BAD_KILL_SELF,
	BAD_THREAD,
	BAD_FILES,
	BAD_PTRACE,
	BAD_SETRLIMIT,
	BAD_UNSHARE,
	BAD_EXECUTED = 77, /* exec went through: the shell's exit code */
};

static void *thread_main(void *arg)
{
	return arg;
}

/* true if the call failed with EPERM (what the filter answers) */
static bool denied(int ret)
{
	return ret < 0 && errno == EPERM;
}

static int filtered_child(void)
{
	char err[256], buf[16];
	struct rlimit rl;
	pthread_t th;
	void *got = NULL;
	int fd, ok;
	pid_t pid;

	if (sandbox_enter(true, err, sizeof(err)))
		return BAD_ENTER;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return BAD_NNP;
	/* the control socket and every other Unix socket */
	if (!denied(socket(AF_UNIX, SOCK_STREAM, 0)))
		return BAD_UNIX;
	/* what librados and librabbitmq reconnect with */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return BAD_INET;
	close(fd);
	fd = socket(AF_NETLINK, SOCK_RAW, 0);
	if (fd < 0)
		return BAD_NETLINK;
	close(fd);
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (!(pid < 0 && errno == EPERM))
		return BAD_FORK;
	if (!denied(execl("/bin/sh", "sh", "-c", "exit 77", (char *)NULL)))
		return BAD_EXEC;
	if (!denied(kill(getppid(), SIGCONT)))
		return BAD_KILL_OTHER;
	/* signal 0: is it alive? (the spool plugin asks) */
	if (kill(getppid(), 0) < 0 || kill(getpid(), SIGCONT) < 0)
		return BAD_KILL_SELF;
	if (pthread_create(&th, NULL, thread_main, &ok) != 0 ||
	    pthread_join(th, &got) != 0 || got != &ok)
		return BAD_THREAD;
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ok = fd >= 0 && read(fd, buf, sizeof(buf)) > 0;
	if (fd >= 0)
		close(fd);
	if (!ok)
		return BAD_FILES;
	if (!denied(ptrace(PTRACE_TRACEME, 0, NULL, NULL)))
		return BAD_PTRACE;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (!denied(setrlimit(RLIMIT_NOFILE, &rl)))
		return BAD_SETRLIMIT;
	if (!denied(unshare(CLONE_NEWUSER)))
		return BAD_UNSHARE;
	return 0;
}

static int run_forked(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("the child died: status 0x%x", (unsigned)status);
	return WEXITSTATUS(status);
}

static void test_filter(void **state)
{
	(void)state;
	/* 0: every check passed; otherwise the first that failed */
	assert_int_equal(run_forked(filtered_child), 0);
}

/* A prober's filter: the workers' less sockets and files opened by name;
 * what it already holds (a socket, its own memory) still works. */
static int prober_child(void)
{
	char err[256], buf[16];
	struct stat st;
	int sv[2], fd, ok;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return BAD_ENTER;
	if (sandbox_enter_prober(true, err, sizeof(err)))
		return BAD_ENTER;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return BAD_NNP;
	if (!denied(socket(AF_UNIX, SOCK_STREAM, 0)))
		return BAD_UNIX;
	if (!denied(socket(AF_INET, SOCK_STREAM, 0)))
		return BAD_INET;
	if (!denied(socket(AF_NETLINK, SOCK_RAW, 0)))
		return BAD_NETLINK;
	if (!denied(open("/proc/self/status", O_RDONLY | O_CLOEXEC)) ||
	    !denied(openat(AT_FDCWD, "/proc/self/status", O_RDONLY)) ||
	    !denied(access("/proc/self/status", R_OK)) ||
	    !denied(unlink("/tmp/imgnode-test-no-such-file")) ||
	    !denied(mkdir("/tmp/imgnode-test-no-such-dir", 0700)))
		return BAD_FILES;
	if (!denied(execl("/bin/sh", "sh", "-c", "exit 77", (char *)NULL)))
		return BAD_EXEC;
	/* what it held before: a file, its socket, fstat */
	ok = read(fd, buf, sizeof(buf)) > 0 && fstat(fd, &st) == 0 &&
	     write(sv[0], "x", 1) == 1 && read(sv[1], buf, 1) == 1;
	return ok ? 0 : BAD_THREAD;
}

static void test_filter_prober(void **state)
{
	(void)state;
	assert_int_equal(run_forked(prober_child), 0);
}

static int unfiltered_child(void)
{
	char err[256];
	int fd;

	if (sandbox_enter(false, err, sizeof(err)))
		return BAD_ENTER;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return BAD_NNP;
	/* no filter: a Unix socket is allowed (seccomp = no) */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return BAD_UNIX;
	close(fd);
	return 0;
}

static void test_filter_off(void **state)
{
	(void)state;
	assert_int_equal(run_forked(unfiltered_child), 0);
}

static int limited_child(void)
{
	char err[256];
	struct rlimit rl;
	bool got;
	void *p;

	if (sandbox_limit_memory(INT64_C(256) << 20, err, sizeof(err)))
		return 1;
	if (getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur != (rlim_t)256 << 20 ||
	    rl.rlim_max != (rlim_t)256 << 20)
		return 2;
	/* past the limit, an allocation fails (it does not kill) */
	p = malloc((size_t)512 << 20);
	got = p != NULL;
	free(p);
	return got ? 3 : 0;
}

static void test_memory_limit(void **state)
{
	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	skip(); /* ASan's shadow memory: no RLIMIT_AS under SAN=1 */
#endif
	assert_int_equal(run_forked(limited_child), 0);
}

static char *write_file(const char *text)
{
	char *p = strdup("/tmp/imgnode-test-XXXXXX");
	int fd = mkstemp(p);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return p;
}

static void test_forget_secrets(void **state)
{
	char err[CONF_ERR_MAX] = "";
	char *path = write_file(
	        "[ingress]\napi_keys = key-one-1234, key-two-5678\n"
	        "hmac_keys = k1:hmac-secret-0123456789\n"
	        "hmac_key = hmac-secret-9abc\nhmac_v1 = yes\nport = 8081\n");
	struct conf *c = conf_load(path, err, sizeof(err));
	const struct conf_entry *e;

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->app->ingress.api_keys.n, 2);
	assert_int_equal(c->app->ingress.hmac_keys.n, 1);
	sandbox_forget_secrets(c);
	assert_int_equal(c->app->ingress.api_keys.n, 0);
	assert_int_equal(c->app->ingress.hmac_keys.n, 0);
	assert_string_equal(c->app->ingress.hmac_key, "");
	e = conf_find(c, "ingress", "api_keys");
	assert_non_null(e);
	assert_string_equal(e->value, "");
	e = conf_find(c, "ingress", "hmac_keys");
	assert_string_equal(e->value, "");
	e = conf_find(c, "ingress", "hmac_key");
	assert_string_equal(e->value, "");
	/* the rest of the config is untouched */
	assert_int_equal(c->app->ingress.port, 8081);
	assert_string_equal(conf_find(c, "ingress", "port")->value, "8081");
	conf_free(c);
	unlink(path);
	free(path);
}

static void test_max_memory_floor(void **state)
{
	char err[CONF_ERR_MAX] = "";
	char *path = write_file("[workers]\nmax_memory = 100M\n");
	struct conf *c = conf_load(path, err, sizeof(err));

	(void)state;
	assert_null(c);
	if (!strstr(err, ":2: [workers] max_memory: 100M is too small"))
		fail_msg("unexpected error \"%s\"", err);
	unlink(path);
	free(path);
	path = write_file("[workers]\nmax_memory = 0\n");
	c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->app->workers.max_memory, 0);
	assert_true(c->app->workers.seccomp);
	conf_free(c);
	unlink(path);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_filter),
	        cmocka_unit_test(test_filter_prober),
	        cmocka_unit_test(test_filter_off),
	        cmocka_unit_test(test_memory_limit),
	        cmocka_unit_test(test_forget_secrets),
	        cmocka_unit_test(test_max_memory_floor),
	};

	node_conf_register();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
