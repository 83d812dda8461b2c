/*
 * The prober (see prober.h). Why a separate program: the ingress is
 * multi-threaded and holds the API secrets, so a loader bug reached by an
 * upload there is the worst place for it; and libvips cannot be used in a
 * child forked from a process that used it (nor should a multi-threaded
 * process run library code after fork), so a prober is posix_spawn'ed from
 * /proc/self/exe (the running binary, even once a package upgrade replaced
 * the file) with a clean environment, fd 0 its socket to the ingress and
 * fd 1 /dev/null; it closes every other descriptor it inherited, limits
 * its address space, starts libvips and enters the workers' system call
 * allow-list less sockets and opening files (sandbox_enter_prober) before
 * it says it is ready. It never reads
 * the config: the limits come with each request.
 *
 * A pool of [ingress] probers: a request takes a free one (or waits), and
 * one found dead between requests is replaced silently; one that dies or
 * overruns probe_timeout during a probe is killed and reaped, that upload
 * gets 422, and the next request gets a new one.
 *
 * The protocol, on a stream socketpair, machine words (both ends are the
 * same binary): a request header, the formats accepted (comma-separated),
 * the upload's bytes; then a reply (image_probe's result, the header's
 * facts, the reason).
 */
#include "prober.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base.h"
#include "../log.h"
#include "../spawn.h"
#include "image.h"
#include "node_conf.h"
#include "sandbox.h"

#define COMPONENT "prober"
#define MAGIC_REQ 0x696d6770u /* "imgp" */
#define MAGIC_REPLY 0x696d6772u
#define MAGIC_READY 0x696d6779u
#define MAGIC_ACK 0x696d6761u
#define FORMATS_MAX 1024
#define REASON_MAX 512

struct probe_req {
	uint32_t magic;
	uint32_t formats_len;
	uint64_t len;
	int64_t max_pixels;
	int64_t max_pixels_interlaced;
	int64_t max_dimension;
	int64_t max_frames;
};

struct probe_reply {
	uint32_t magic;
	int32_t ret;
	struct image_info info;
	char err[REASON_MAX];
};

struct prober {
	pid_t pid; /* 0: none running */
	int fd; /* the ingress's end, non-blocking */
	bool busy;
};

struct prober_pool {
	const struct conf *conf;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	size_t n;
	struct prober probers[];
};

/*
 * Moves len bytes from or to fd (non-blocking) by deadline (ms,
 * monotonic). 0, -ETIMEDOUT, -EPIPE when the prober is gone, or -errno.
 */
static int transfer(int fd, void *buf, size_t len, bool out, int64_t deadline)
{
	char *p = buf;

	while (len) {
		struct pollfd pfd = {fd, out ? POLLOUT : POLLIN, 0};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) < 0 &&
		    errno != EINTR)
			return -errno;
		n = out ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
		if (n == 0)
			return -EPIPE;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Kills and reaps p's process (if any), describing how it ended. */
static void stop(struct prober *p, char *how, size_t howlen)
{
	int status = 0;

	if (how && howlen)
		snprintf(how, howlen, "not running");
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (how && howlen)
		proc_describe_status(status, how, howlen);
	p->pid = 0;
}

/* Starts a prober in p and waits for it to be ready. 0 or -errno. */
static int start(struct prober_pool *pool, struct prober *p, char *err,
                 size_t errlen)
{
	const struct conf *conf = pool->conf;
	char mem[32], seccomp[4], body[32], level[8], how[64];
	char *argv[] = {"imgnode", "--probe-helper", mem, seccomp, body, level,
	                NULL};
	const char *journal = getenv("JOURNAL_STREAM");
	char journal_env[128], *envp[] = {NULL, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct probe_reply ready;
	sigset_t none, all;
	int sv[2], ret;

	snprintf(mem, sizeof(mem), "%lld",
	         (long long)conf->app->workers.max_memory);
	snprintf(seccomp, sizeof(seccomp), "%d", conf->app->workers.seccomp);
	snprintf(body, sizeof(body), "%lld",
	         (long long)conf->app->ingress.max_body);
	snprintf(level, sizeof(level), "%d", log_get_level());
	if (journal) { /* the prober logs as the ingress does */
		snprintf(journal_env, sizeof(journal_env), "JOURNAL_STREAM=%s",
		         journal);
		envp[0] = journal_env;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		ret = -errno;
		snprintf(err, errlen, "unable to start a prober: %s",
		         strerror(errno));
		return ret;
	}
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	                                        POSIX_SPAWN_SETSIGDEF);
	ret = -posix_spawn(&p->pid, "/proc/self/exe", &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (ret) {
		p->pid = 0;
		close(sv[0]);
		snprintf(err, errlen, "unable to start a prober: %s",
		         strerror(-ret));
		return ret;
	}
	p->fd = sv[0];
	fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK);
	ret = transfer(p->fd, &ready, sizeof(ready), false,
	               now_ms() + conf->app->ingress.probe_timeout);
	if (!ret && ready.magic == MAGIC_READY && ready.ret == 0) {
		log_debug(COMPONENT, "prober pid=%d ready", (int)p->pid);
		return 0;
	}
	if (!ret && ready.magic == MAGIC_READY) {
		ready.err[sizeof(ready.err) - 1] = '\0';
		snprintf(err, errlen, "a prober cannot start: %s", ready.err);
		ret = ready.ret < 0 ? ready.ret : -EIO;
	} else {
		stop(p, how, sizeof(how));
		snprintf(err, errlen, "a prober did not start (%s)",
		         ret == -ETIMEDOUT ? "timed out" : how);
		return ret == -ETIMEDOUT ? ret : -EIO;
	}
	stop(p, NULL, 0);
	return ret;
}

struct prober_pool *prober_pool_new(const struct conf *conf, char *err,
                                    size_t errlen)
{
	size_t n = (size_t)conf->app->ingress.probers;
	struct prober_pool *pool =
	        calloc(1, sizeof(*pool) + n * sizeof(pool->probers[0]));

	if (!pool) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pool->conf = conf;
	pool->n = n;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->freed, NULL);
	for (size_t i = 0; i < n; i++)
		pool->probers[i].fd = -1;
	for (size_t i = 0; i < n; i++)
		if (start(pool, &pool->probers[i], err, errlen)) {
			prober_pool_free(pool);
			return NULL;
		}
	return pool;
}

void prober_pool_free(struct prober_pool *pool)
{
	if (!pool)
		return;
	for (size_t i = 0; i < pool->n; i++)
		stop(&pool->probers[i], NULL, 0);
	pthread_cond_destroy(&pool->freed);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

static struct prober *take(struct prober_pool *pool)
{
	struct prober *p = NULL;

	pthread_mutex_lock(&pool->lock);
	while (!p) {
		for (size_t i = 0; !p && i < pool->n; i++)
			if (!pool->probers[i].busy)
				p = &pool->probers[i];
		if (!p)
			pthread_cond_wait(&pool->freed, &pool->lock);
	}
	p->busy = true;
	pthread_mutex_unlock(&pool->lock);
	return p;
}

static void give_back(struct prober_pool *pool, struct prober *p)
{
	pthread_mutex_lock(&pool->lock);
	p->busy = false;
	pthread_cond_signal(&pool->freed);
	pthread_mutex_unlock(&pool->lock);
}

/* True if p's process is there and has said nothing since its last reply
 * (a dead one's socket reads as end of file). */
static bool alive(const struct prober *p)
{
	struct pollfd pfd = {p->fd, POLLIN, 0};

	return p->pid > 0 && p->fd >= 0 && poll(&pfd, 1, 0) == 0;
}

/*
 * One probe on a running p: 0 with the reply, -EAGAIN if p ended before it
 * had read the request (not this upload's doing: it acknowledges a whole
 * request before it probes), or another -errno of the exchange.
 */
static int exchange(struct prober *p, const void *buf, size_t len,
                    const struct limits_conf *lim, int64_t timeout,
                    struct probe_reply *reply)
{
	struct probe_req req = {
	        .magic = MAGIC_REQ,
	        .len = len,
	        .max_pixels = lim->max_pixels,
	        .max_pixels_interlaced = lim->max_pixels_interlaced,
	        .max_dimension = lim->max_dimension,
	        .max_frames = lim->max_frames,
	};
	char formats[FORMATS_MAX];
	int64_t deadline = now_ms() + timeout;
	uint32_t ack = 0;
	size_t off = 0;
	int ret;

	formats[0] = '\0';
	for (size_t i = 0; i < lim->formats.n && off < sizeof(formats); i++) {
		int n = snprintf(formats + off, sizeof(formats) - off, "%s%s",
		                 i ? "," : "", lim->formats.items[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	req.formats_len = (uint32_t)strlen(formats);
	ret = transfer(p->fd, &req, sizeof(req), true, deadline);
	if (!ret)
		ret = transfer(p->fd, formats, req.formats_len, true, deadline);
	if (!ret)
		ret = transfer(p->fd, (void *)buf, len, true, deadline);
	if (!ret)
		ret = transfer(p->fd, &ack, sizeof(ack), false, deadline);
	if (ret == -EPIPE) /* gone before it had read this upload */
		return -EAGAIN;
	if (!ret && ack != MAGIC_ACK)
		ret = -EPROTO;
	if (!ret)
		ret = transfer(p->fd, reply, sizeof(*reply), false, deadline);
	if (!ret && reply->magic != MAGIC_REPLY)
		ret = -EPROTO;
	return ret;
}

int prober_probe(struct prober_pool *pool, const void *buf, size_t len,
                 const struct limits_conf *lim, struct image_info *info,
                 char *err, size_t errlen)
{
	int64_t timeout = pool->conf->app->ingress.probe_timeout;
	struct prober *p = take(pool);
	struct probe_reply reply = {0};
	char how[64];
	int ret = 0;

	memset(info, 0, sizeof(*info));
	/* one found dead (or dying as it is given the upload) is replaced */
	for (int tries = 0; tries < 2; tries++) {
		ret = 0;
		if (tries || !alive(p)) {
			if (p->pid > 0) {
				stop(p, how, sizeof(how));
				log_warn(
				        COMPONENT,
				        "a prober ended between probes (%s); starting another",
				        how);
			}
			ret = start(pool, p, err, errlen);
		}
		if (!ret)
			ret = exchange(p, buf, len, lim, timeout, &reply);
		if (ret != -EAGAIN)
			break;
	}
	if (!ret) {
		reply.err[sizeof(reply.err) - 1] = '\0';
		*info = reply.info;
		info->format[sizeof(info->format) - 1] = '\0';
		snprintf(err, errlen, "%s", reply.err);
		ret = reply.ret;
	} else if (p->pid > 0) {
		bool late = ret == -ETIMEDOUT;
		stop(p, how, sizeof(how));
		if (late)
			snprintf(
			        err, errlen,
			        "the header probe timed out after %lld ms ([ingress] probe_timeout)",
			        (long long)timeout);
		else
			snprintf(err, errlen, "the header probe crashed (%s)",
			         how);
		log_warn(COMPONENT, "an upload of %zu bytes: %s", len, err);
		ret = late ? -ETIMEDOUT : -ECHILD;
	}
	give_back(pool, p);
	return ret;
}

/* The helper's side: blocking reads and writes of exactly len bytes. */
static bool read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Splits the comma-separated formats into list (which points into it). */
static void split_formats(char *formats, char **items, size_t max,
                          struct imgnode_list *list)
{
	char *save = NULL;

	list->n = 0;
	list->items = items;
	for (char *f = strtok_r(formats, ",", &save); f && list->n < max;
	     f = strtok_r(NULL, ",", &save))
		items[list->n++] = f;
}

/* Answers requests on fd 0 until the ingress closes it. */
static int serve(uint64_t max_body)
{
	const uint32_t ack = MAGIC_ACK;
	struct probe_req req;

	while (read_all(0, &req, sizeof(req))) {
		struct probe_reply reply = {.magic = MAGIC_REPLY};
		char formats[FORMATS_MAX + 1], *items[64];
		struct limits_conf lim = {0};
		void *buf;

		if (req.magic != MAGIC_REQ || req.formats_len > FORMATS_MAX ||
		    req.len > max_body ||
		    !read_all(0, formats, req.formats_len))
			return EXIT_PERMANENT;
		formats[req.formats_len] = '\0';
		buf = malloc(req.len ? req.len : 1);
		if (!buf || !read_all(0, buf, req.len)) {
			free(buf);
			return buf ? 0 : EXIT_TEMPORARY;
		}
		if (!write_all(0, &ack, sizeof(ack))) {
			free(buf);
			return 0;
		}
		lim.max_pixels = req.max_pixels;
		lim.max_pixels_interlaced = req.max_pixels_interlaced;
		lim.max_dimension = req.max_dimension;
		lim.max_frames = req.max_frames;
		split_formats(formats, items, sizeof(items) / sizeof(*items),
		              &lim.formats);
		reply.ret = image_probe(buf, req.len, &lim, &reply.info,
		                        reply.err, sizeof(reply.err));
		free(buf);
		if (!write_all(0, &reply, sizeof(reply)))
			return 0;
	}
	return 0;
}

int prober_main(int argc, char **argv)
{
	struct probe_reply ready = {.magic = MAGIC_READY};
	long long max_memory, max_body;
	int seccomp, level, ret;

	if (argc != 6 || sscanf(argv[2], "%lld", &max_memory) != 1 ||
	    sscanf(argv[3], "%d", &seccomp) != 1 ||
	    sscanf(argv[4], "%lld", &max_body) != 1 ||
	    sscanf(argv[5], "%d", &level) != 1) {
		fprintf(stderr,
		        "imgnode: --probe-helper is run by the ingress, not by hand\n");
		return EXIT_PERMANENT;
	}
	/* nothing of the ingress but the socket (fd 0) and stdio */
	close_range(3, ~0u, 0);
	log_set_level(level);
	log_set_process("prober");
	sandbox_oom_first();
	ret = sandbox_limit_memory(max_memory, ready.err, sizeof(ready.err));
	if (!ret)
		ret = image_init(1, ready.err, sizeof(ready.err));
	if (!ret)
		ret = sandbox_enter_prober(seccomp != 0, ready.err,
		                           sizeof(ready.err));
	ready.ret = ret;
	if (!write_all(0, &ready, sizeof(ready)) || ret)
		return EXIT_PERMANENT;
	return serve((uint64_t)max_body);
}
