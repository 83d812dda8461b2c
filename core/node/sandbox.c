/*
 * A worker's sandbox (see sandbox.h).
 *
 * Memory: RLIMIT_AS, not RLIMIT_DATA or RSS. RLIMIT_DATA misses file
 * mappings, and nothing in the kernel limits a process's resident size
 * (RLIMIT_RSS is ignored); only a cgroup could, and the node's cgroup is
 * the service's (MemoryMax= in the unit), shared by every process. The
 * address space is what a decoder asks for, so an allocation past the limit
 * fails at the malloc or mmap that asks, in the worker that asked: libvips
 * reports it as an error (a clean job failure) or, where glib aborts on a
 * failed g_malloc, the worker dies and is replaced. It counts reservations,
 * not use: every thread's stack (8 MiB each, libvips' and librados'),
 * glibc's malloc arenas (64 MiB each, at most two: image_init), librados'
 * and the libraries' mappings. An idle worker reserves 300-500 MB of which
 * 30-50 MB is resident, so the limit sits well above [workers] max_rss.
 * The node as a whole is bounded by its cgroup (MemoryMax= in the unit);
 * when that runs out, the kernel kills a worker first (oom_score_adj).
 *
 * System calls: an allow-list, installed after the plugins connected and
 * libvips started, on every thread (TSYNC: librados and the amqp plugin
 * run threads of their own). A call outside it fails with EPERM rather
 * than killing the worker: an image that steers a decoder into an unusual
 * call then fails one job (libraries handle EPERM) instead of crashing
 * workers until the pool's restart intensity gives up, which would let one
 * upload take the node down. Either way the call does not happen. Kept
 * out: exec, fork (clone without CLONE_THREAD), ptrace and the other
 * process-inspection calls, Unix and raw sockets (the control socket, other
 * services on the host), listening, signals to other processes (signal 0,
 * which only asks whether a process exists, is allowed), setting
 * limits, namespaces, mount, bpf, keyrings, io_uring and the like.
 * Sockets stay possible for IPv4/IPv6 and NETLINK_ROUTE (getaddrinfo's
 * AI_ADDRCONFIG): librados and librabbitmq reconnect on their own. Other
 * architectures' calls (x32, i386) kill the process (libseccomp's default).
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "../log.h"
#include "node_conf.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

int sandbox_limit_memory(int64_t bytes, char *err, size_t errlen)
{
	struct rlimit rl = {(rlim_t)bytes, (rlim_t)bytes};

	if (bytes <= 0)
		return 0;
#ifdef UNDER_ASAN
	(void)rl;
	(void)err;
	(void)errlen;
	log_warn(
	        "sandbox",
	        "[workers] max_memory ignored: AddressSanitizer reserves more address space than any limit");
	return 0;
#else
	/* the hard limit too: a worker cannot raise it back */
	if (setrlimit(RLIMIT_AS, &rl) < 0) {
		int ret = -errno;
		snprintf(err, errlen,
		         "unable to limit the address space to %lld bytes: %s",
		         (long long)bytes, strerror(errno));
		return ret;
	}
	return 0;
#endif
}

void sandbox_oom_first(void)
{
	static const char adj[] = "500\n";
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, adj, sizeof(adj) - 1) < 0)
		log_warn("sandbox", "unable to raise oom_score_adj: %s",
		         strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void wipe(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
}

void sandbox_forget_secrets(struct conf *conf)
{
	for (const struct imgnode_conf_key *k = ingress_conf_keys; k->name;
	     k++) {
		void *dst = (char *)&conf->app->ingress + k->offset;

		if (!(k->type & IMGNODE_CONF_SECRET))
			continue;
		if (IMGNODE_CONF_TYPE(k) == IMGNODE_CONF_LIST) {
			struct imgnode_list *l = dst;

			for (size_t i = 0; i < l->n; i++) {
				wipe(l->items[i]);
				free(l->items[i]);
			}
			free(l->items);
			l->items = NULL;
			l->n = 0;
		} else if (IMGNODE_CONF_TYPE(k) == IMGNODE_CONF_STRING) {
			wipe(*(char **)dst); /* left as "", unset */
		}
		for (struct conf_entry *e = conf->entries; e; e = e->next)
			if (strcmp(e->section, "ingress") == 0 &&
			    strcmp(e->key, k->name) == 0)
				wipe(e->value);
	}
	/* the webhooks' signing key (only the notifier signs) */
	wipe(conf->app->webhooks.secret);
	for (struct conf_entry *e = conf->entries; e; e = e->next)
		if (strcmp(e->section, "webhooks") == 0 &&
		    strcmp(e->key, "secret") == 0)
			wipe(e->value);
}

/* Allowed whatever their arguments. */
static const char *const allowed[] = {
        /* memory (mmap with PROT_EXEC too: orc generates code) */
        "brk",
        "mmap",
        "munmap",
        "mremap",
        "mprotect",
        "madvise",
        "mincore",
        "membarrier",
        /* files: plugins' stores and queues, fonts, libvips' temp files */
        "read",
        "write",
        "readv",
        "writev",
        "pread64",
        "pwrite64",
        "preadv",
        "pwritev",
        "preadv2",
        "pwritev2",
        "open",
        "openat",
        "close",
        "close_range",
        "lseek",
        "fstat",
        "stat",
        "lstat",
        "newfstatat",
        "statx",
        "fstatfs",
        "statfs",
        "access",
        "faccessat",
        "faccessat2",
        "readlink",
        "readlinkat",
        "getdents",
        "getdents64",
        "fcntl",
        "dup",
        "dup2",
        "dup3",
        "pipe",
        "pipe2",
        "rename",
        "renameat",
        "renameat2",
        "unlink",
        "unlinkat",
        "mkdir",
        "mkdirat",
        "rmdir",
        "link",
        "linkat",
        "fsync",
        "fdatasync",
        "ftruncate",
        "fallocate",
        "fadvise64",
        "flock",
        "fchmod",
        "umask",
        "getcwd",
        "utimensat",
        "sendfile",
        "copy_file_range",
        /* waiting */
        "poll",
        "ppoll",
        "select",
        "pselect6",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_wait",
        "epoll_pwait",
        "epoll_pwait2",
        "eventfd",
        "eventfd2",
        "inotify_init1",
        "inotify_add_watch",
        "inotify_rm_watch",
        "timerfd_create",
        "timerfd_settime",
        "timerfd_gettime",
        /* time */
        "clock_gettime",
        "clock_getres",
        "gettimeofday",
        "time",
        "nanosleep",
        "clock_nanosleep",
        /* threads */
        "futex",
        "set_robust_list",
        "get_robust_list",
        "rseq",
        "set_tid_address",
        "gettid",
        "sched_yield",
        "sched_getaffinity",
        "sched_getparam",
        "sched_getscheduler",
        "sched_get_priority_min",
        "sched_get_priority_max",
        "getpriority",
        "getcpu",
        /* signals to itself, and their handlers */
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "rt_sigpending",
        "rt_sigtimedwait",
        "sigaltstack",
        "restart_syscall",
        "pause",
        /* sockets already open or opened by a reconnect */
        "connect",
        "bind",
        "getsockname",
        "getpeername",
        "setsockopt",
        "getsockopt",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "sendmmsg",
        "recvmmsg",
        "shutdown",
        /* who and where am I */
        "getpid",
        "getppid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "getgroups",
        "getresuid",
        "getresgid",
        "getpgrp",
        "uname",
        "getrlimit",
        "getrusage",
        "times",
        "sysinfo",
        "getrandom",
        /* the end */
        "exit",
        "exit_group",
};

/*
 * Of those, what a prober does not get: it has read its libraries and
 * libvips' modules before its filter, reads a header from memory and
 * answers on the socket it was given, so opening or changing a file by
 * its name is refused (measured: a header probe of every accepted format
 * makes none of these calls). The config, and its secrets, stay out of
 * reach even though the prober runs as the node's user.
 */
static const char *const prober_denied[] = {
        "open",       "openat",
        "rename",     "renameat",
        "renameat2",  "unlink",
        "unlinkat",   "mkdir",
        "mkdirat",    "rmdir",
        "link",       "linkat",
        "readlink",   "readlinkat",
        "getdents",   "getdents64",
        "utimensat",  "fchmod",
        "access",     "faccessat",
        "faccessat2", "inotify_add_watch",
        "connect",    "bind",
};

static bool denied_to_prober(const char *name)
{
	for (size_t i = 0; i < sizeof(prober_denied) / sizeof(*prober_denied);
	     i++)
		if (strcmp(prober_denied[i], name) == 0)
			return true;
	return false;
}

static int allow(scmp_filter_ctx ctx, const char *name, unsigned n,
                 const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	int ret;

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a call on this architecture */
	ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
	/* a pseudo-call of an architecture without it (open on arm64) */
	return ret == -EDOM && nr < 0 ? 0 : ret;
}

/* Argument arg equal to v (SCMP_CMP leaves datum_b to the compiler). */
static struct scmp_arg_cmp arg_eq(unsigned arg, scmp_datum_t v)
{
	return (struct scmp_arg_cmp){
	        .arg = arg, .op = SCMP_CMP_EQ, .datum_a = v, .datum_b = 0};
}

/* Allowed with one argument equal to a value. */
static int allow_if(scmp_filter_ctx ctx, const char *name, unsigned arg,
                    scmp_datum_t value)
{
	struct scmp_arg_cmp cmp = arg_eq(arg, value);

	return allow(ctx, name, 1, &cmp);
}

static int add_rules(scmp_filter_ctx ctx, bool prober)
{
	static const unsigned long ioctls[] = {TCGETS, FIONREAD, FIONBIO,
	                                       FIOCLEX, FIONCLEX};
	static const int prctls[] = {PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE,
	                             PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP};
	struct scmp_arg_cmp cmp[2];
	scmp_datum_t self = (scmp_datum_t)getpid();
	int ret = 0;

	for (size_t i = 0; !ret && i < sizeof(allowed) / sizeof(*allowed); i++)
		if (!prober || !denied_to_prober(allowed[i]))
			ret = allow(ctx, allowed[i], 0, NULL);
	/* threads, not processes (clone3: see load_clone3) */
	cmp[0] = (struct scmp_arg_cmp){.arg = 0,
	                               .op = SCMP_CMP_MASKED_EQ,
	                               .datum_a = CLONE_THREAD,
	                               .datum_b = CLONE_THREAD};
	if (!ret)
		ret = allow(ctx, "clone", 1, cmp);
	if (!ret)
		ret = allow(ctx, "clone3", 0, NULL);
	/* IPv4, IPv6, and routing netlink for getaddrinfo; no new socket
	 * at all for a prober */
	if (!ret && !prober)
		ret = allow_if(ctx, "socket", 0, AF_INET);
	if (!ret && !prober)
		ret = allow_if(ctx, "socket", 0, AF_INET6);
	cmp[0] = arg_eq(0, AF_NETLINK);
	cmp[1] = arg_eq(2, NETLINK_ROUTE);
	if (!ret && !prober)
		ret = allow(ctx, "socket", 2, cmp);
	/* signals only to itself (abort, libraries' thread wake-ups); signal
	 * 0 to anyone: the spool's test that a message's holder is alive */
	if (!ret)
		ret = allow_if(ctx, "kill", 0, self);
	if (!ret)
		ret = allow_if(ctx, "kill", 1, 0);
	if (!ret)
		ret = allow_if(ctx, "tgkill", 0, self);
	if (!ret)
		ret = allow_if(ctx, "rt_tgsigqueueinfo", 0, self);
	/* reading its limits, never setting them */
	cmp[0] = arg_eq(0, 0);
	cmp[1] = arg_eq(2, 0);
	if (!ret)
		ret = allow(ctx, "prlimit64", 2, cmp);
	for (size_t i = 0; !ret && i < sizeof(ioctls) / sizeof(*ioctls); i++)
		ret = allow_if(ctx, "ioctl", 1, ioctls[i]);
	for (size_t i = 0; !ret && i < sizeof(prctls) / sizeof(*prctls); i++)
		ret = allow_if(ctx, "prctl", 0, (scmp_datum_t)prctls[i]);
	return ret;
}

/*
 * clone3's flags are in memory, out of a filter's reach: it says ENOSYS and
 * glibc falls back to clone, whose flags the allow-list checks. A filter of
 * its own, not logged: every new thread calls it.
 */
static int load_clone3(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int ret;

	if (!ctx)
		return -ENOMEM;
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		                       SCMP_SYS(clone3), 0);
	if (!ret)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	return ret;
}

static int enter(bool filter, bool prober, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int ret;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		snprintf(err, errlen, "unable to set no_new_privs: %s",
		         strerror(errno));
		return ret;
	}
	if (!filter)
		return 0;
	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx) {
		snprintf(err, errlen, "seccomp: out of memory");
		return -ENOMEM;
	}
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	/* the kernel logs each call denied (audit type 1326: dmesg,
	 * journalctl -k), where its seccomp actions_logged allows */
	if (!ret && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1))
		log_debug("sandbox", "denied system calls will not be logged");
	if (!ret)
		ret = add_rules(ctx, prober);
	if (ret) {
		snprintf(err, errlen,
		         "unable to build the system call filter: %s",
		         strerror(-ret));
		goto out_release;
	}
	ret = load_clone3();
	if (!ret)
		ret = seccomp_load(ctx);
	if (ret)
		snprintf(err, errlen,
		         "unable to install the system call filter: %s",
		         strerror(-ret));

out_release:
	seccomp_release(ctx);
	return ret;
}

int sandbox_enter(bool filter, char *err, size_t errlen)
{
	return enter(filter, false, err, errlen);
}

int sandbox_enter_prober(bool filter, char *err, size_t errlen)
{
	return enter(filter, true, err, errlen);
}
