/*
 * Child processes and the status protocol (see spawn.h). Children are forked,
 * not exec'd: they initialise libvips, librados and plugins themselves, after
 * the fork, from a parent that never touched them.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "util.h"

/* Closes every descriptor from first up (close_range, or a scan). */
static void close_from(int first)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)first, ~0u, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	for (int fd = first; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
		close(fd);
}

pid_t proc_spawn(proc_main_fn *fn, void *arg, int *status_fd)
{
	pid_t parent = getpid(), pid;
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(pfd[0]);
		close(pfd[1]);
		return -err;
	}
	if (pid == 0) {
		util_reset_signals();
		/* Ctrl-C reaches the terminal's whole process group: only the
		 * root acts on it, stopping its children in order (SIGTERM) */
		signal(SIGINT, SIG_IGN);
		/* a supervisor that dies (even by SIGKILL) takes its children
		 * with it; their jobs are redelivered */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(EXIT_TEMPORARY); /* it died before prctl took effect */
		if (pfd[1] != PROC_STATUS_FD) {
			if (dup2(pfd[1], PROC_STATUS_FD) < 0)
				_exit(EXIT_TEMPORARY);
		} else {
			fcntl(PROC_STATUS_FD, F_SETFD, 0);
		}
		close_from(PROC_STATUS_FD + 1);
		setenv("IMGNODE_STATUS_FD", "3", 1);
		_exit(fn(arg));
	}
	close(pfd[1]);
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	*status_fd = pfd[0];
	return pid;
}

void proc_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(status));
		snprintf(buf, len, "signal SIG%s%s", abbrev ? abbrev : "?",
		         WCOREDUMP(status) ? " (core dumped)" : "");
	} else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
}

int64_t proc_rss(pid_t pid)
{
	char path[64], buf[128];
	long long size, resident;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (sscanf(buf, "%lld %lld", &size, &resident) != 2)
		return -EIO;
	return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

static void notify(const char *line)
{
	static int fd = -2;

	if (fd == -2) {
		const char *s = getenv("IMGNODE_STATUS_FD");
		char *end;
		long v = s ? strtol(s, &end, 10) : -1;

		fd = (s && *end == '\0' && v >= 0 && v < 1024) ? (int)v : -1;
	}
	if (fd >= 0 && util_write_all(fd, line, strlen(line)) < 0)
		fd = -1; /* the supervisor is gone; stop trying */
}

void proc_notify_ready(void)
{
	notify("ready\n");
}

void proc_notify_alive(void)
{
	notify("alive\n");
}

void proc_notify_busy(int64_t ms)
{
	char line[48];

	snprintf(line, sizeof(line), "busy %lld\n", (long long)ms);
	notify(line);
}

void proc_notify_idle(void)
{
	notify("idle\n");
}

void proc_notify_recycle(void)
{
	notify("recycle\n");
}
