/*
 * spool: the embedded transport, a durable directory queue shared by the
 * processes of one machine. Users see the same contract as amqp (a RabbitMQ
 * quorum queue with a delivery limit and a dead-letter queue): at-least-once
 * delivery, a message held by a consumer that died is delivered again, and a
 * message delivered delivery_limit times without an ack is dead-lettered.
 *
 * Layout under dir (default <state_dir>/spool), all on one file system:
 *   tmp/           files being written: PID.SEQ (removed once PID is dead)
 *   ready/         jobs waiting: ID.N
 *   claimed/       jobs being processed: ID.N.PID.MS
 *   dead/          dead letters waiting for the reaper: ID.N
 *   dead.claimed/  dead letters being processed: ID.N.PID.MS
 *   reply/PID.HEX/ one reply queue per process; files named ID, raw body
 * ID is "<CLOCK_REALTIME ns, 20 digits>.<publisher pid, 10>.<seq, 10>", so
 * names sort in publish order (FIFO as far as the wall clock goes; a message
 * handed back keeps its ID, so it returns near the head, as in RabbitMQ). N
 * counts the deliveries so far: from ready/ for jobs, from dead/ for dead
 * letters. PID is the holder and MS the claim time (ms since the epoch); the
 * lease runs from the later of MS and the file's mtime, which tick() renews
 * (a worker ticks from a thread while its job runs). The host refuses a
 * lease shorter than [workers] job_timeout.
 *
 * A message file is a small text header, then the body:
 *   imgnode-spool 1\n
 *   reply-to: PID.HEX\n        (if the publisher gave one)
 *   reason: TEXT\n             (in dead/: why; control bytes become spaces)
 *   \n
 *   BODY
 *
 * Every move is a rename(2) within the file system, which is atomic: of the
 * processes that try to claim ready/ID.N (as claimed/ID.N+1.PID.MS) one wins
 * and the others get ENOENT and try the next name. The holder settles only
 * names it claimed itself, so it never touches another consumer's message;
 * if its lease was lost, the file is gone and settling fails with ETIMEDOUT.
 * publish: write tmp/, fsync, rename to ready/ID.0, fsync ready/. ack: unlink
 * and fsync. reject: rewrite with the reason into dead/ID.0, fsync, unlink.
 * release: rename back to ready/ID.N (N kept: the next delivery counts +1).
 * A claimed file whose holder is dead (kill(pid, 0) fails with ESRCH) or
 * whose lease expired is taken over by whichever consumer notices first (a
 * rename to its own claimed name: one wins) and released as above; the check
 * runs when consume starts and every lease/2 (at most every second) while it
 * waits. All processes must share a pid namespace; a zombie counts as alive
 * until reaped (its lease still expires).
 *
 * delivery_limit D is the most deliveries a job gets. A job that comes back
 * after its D-th delivery (release, crash, lapsed lease) goes to dead/ with
 * "delivery limit (D) exceeded" instead of being delivered again; consume
 * checks again (for a limit lowered since). RabbitMQ's x-delivery-limit
 * counts failed returns and dead-letters when they exceed it, so the same
 * behaviour there is x-delivery-limit = D - 1. Dead letters have no limit;
 * rejecting one drops it (a dead-letter queue without its own DLX).
 *
 * Waiting: pollfd() is one inotify fd, non-blocking, watching for names
 * renamed into the directories this process consumes: ready/ from its first
 * consume(JOBS), dead/ from its first consume(DEAD), its reply dir from
 * reply_open(). A poll loop calls consume(q, 0) until -ETIMEDOUT before it
 * polls; consume drains the fd only when it finds nothing, so a process that
 * consumes several queues calls consume on each after a wake-up. Every
 * consumer waiting on ready/ wakes for a publish and one of them wins it.
 *
 * A state belongs to the process that called init (no use across fork).
 * This file: the configuration keys, init and fini, and the operations;
 * spool.h lists the plugin's other files.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

#define OFF(f) offsetof(struct spool_conf, f)
static const struct imgnode_conf_key spool_keys[] = {
        {"dir", IMGNODE_CONF_PATH, "", 0, 0, NULL,
         "Directory of the queue, shared by the node's processes; empty means <state_dir>/spool. Created if missing.",
         OFF(dir)},
        {"delivery_limit", IMGNODE_CONF_INT, "5", 1, 1000, NULL,
         "Most deliveries of a job: one that comes back after this many is dead-lettered with \"delivery limit (N) exceeded\" (RabbitMQ's x-delivery-limit is this minus one).",
         OFF(delivery_limit)},
        {"lease", IMGNODE_CONF_DURATION, "2m", 100, 24 * 3600 * 1000, NULL,
         "How long a claimed job stays claimed without tick() renewing it (workers renew it while a job runs); at least [workers] job_timeout. A job held by a process that died returns within a second.",
         OFF(lease)},
        {"max_message", IMGNODE_CONF_SIZE, "64K", 1, MESSAGE_MAX, NULL,
         "Largest message body that publish and reply accept (messages carry keys, never images).",
         OFF(max_message)},
        {"fsync", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
         "fsync messages and directories before publish, ack and reject return (no: faster, but a machine crash may lose or repeat jobs).",
         OFF(fsync)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static int try_once(struct spool *s, int q, struct imgnode_delivery *d)
{
	struct held *h = NULL;
	int r;

	if (q == IMGNODE_QUEUE_REPLY)
		return spool_reply_take(s, d);
	r = spool_claim_next(s, q, &h);
	if (r == 0)
		*d = (struct imgnode_delivery){
		        .body = h->m.body,
		        .len = h->m.len,
		        .tag = h->tag,
		        .attempt = h->n,
		        .reply_to = h->m.reply_to[0] ? h->m.reply_to : NULL,
		        .reason = q != IMGNODE_QUEUE_DEAD ? NULL
		                  : h->m.reason[0]        ? h->m.reason
		                                          : "unknown",
		};
	return r;
}

/*
 * Waits up to timeout_ms (<= 0: not at all) for a message on q. -ETIMEDOUT
 * if none came, -EINTR if a signal interrupted the wait.
 */
static int spool_consume(void *state, enum imgnode_queue q,
                         struct imgnode_delivery *d, int64_t timeout_ms)
{
	struct spool *s = state;
	bool drained = false;
	int64_t deadline;
	char buf[4096];
	int r;

	if (q != IMGNODE_QUEUE_JOBS && q != IMGNODE_QUEUE_DEAD &&
	    q != IMGNODE_QUEUE_REPLY)
		return -EINVAL;
	if (q == IMGNODE_QUEUE_REPLY) {
		if (!s->reply[0]) {
			LOG(s, ERROR,
			    "unable to consume replies: no reply_open");
			return -EINVAL;
		}
		s->h->free(s->reply_buf);
		s->reply_buf = NULL;
	}
	r = spool_watch(s, q);
	if (r)
		return r;
	deadline = now_ms(CLOCK_MONOTONIC) + (timeout_ms > 0 ? timeout_ms : 0);
	if (q != IMGNODE_QUEUE_REPLY)
		spool_recover_if_due(s);
	for (;;) {
		r = try_once(s, q, d);
		if (r != -EAGAIN)
			return r;
		if (!drained) {
			/* then look again: nothing can slip in between */
			while (read(s->ifd, buf, sizeof(buf)) > 0)
				;
			drained = true;
			continue;
		}
		for (;;) {
			struct pollfd pfd = {.fd = s->ifd, .events = POLLIN};
			int64_t now = now_ms(CLOCK_MONOTONIC);
			int64_t wait = deadline - now;

			if (wait <= 0)
				return -ETIMEDOUT;
			if (q != IMGNODE_QUEUE_REPLY &&
			    s->next_scan - now < wait)
				wait = s->next_scan > now ? s->next_scan - now
				                          : 0;
			r = poll(&pfd, 1, wait > INT_MAX ? INT_MAX : (int)wait);
			if (r < 0) {
				r = -errno;
				if (r != -EINTR)
					LOG(s, ERROR, "unable to wait: %s",
					    strerror(-r));
				return r;
			}
			if (r > 0)
				break;
			/* what this hands back wakes the fd */
			if (q != IMGNODE_QUEUE_REPLY)
				spool_recover_if_due(s);
		}
		drained = false;
	}
}

static int spool_publish(void *state, const void *body, size_t len,
                         const char *reply_to, int64_t timeout_ms)
{
	struct spool *s = state;
	struct msg m = {.body = body, .len = len};
	char id[ID_LEN + 8], dst[NAME_LEN];

	(void)timeout_ms; /* a local disk has no broker to wait for */
	if (spool_check_size(s, "publish", len))
		return -EMSGSIZE;
	if (reply_to && !spool_reply_name_valid(reply_to)) {
		LOG(s, ERROR, "unable to publish: bad reply queue name");
		return -EINVAL;
	}
	if (reply_to)
		memcpy(m.reply_to, reply_to, strlen(reply_to) + 1);
	spool_make_id(id, sizeof(id));
	snprintf(dst, sizeof(dst), "%s.0", id);
	return spool_deposit(s, &m, false, D_READY, dst);
}

static int spool_ack(void *state, const struct imgnode_delivery *d)
{
	struct spool *s = state;
	struct held *h = spool_held_take(s, d, "ack");
	int r;

	if (!h)
		return -EINVAL;
	r = spool_held_delete(s, h, "ack");
	held_free(s, h);
	return r;
}

static int spool_reject(void *state, const struct imgnode_delivery *d,
                        const char *reason)
{
	struct spool *s = state;
	struct held *h = spool_held_take(s, d, "reject");
	char why[REASON_MAX];
	int r;

	if (!h)
		return -EINVAL;
	if (h->q == IMGNODE_QUEUE_JOBS) {
		r = spool_dead_letter(s, D_CLAIMED, h->name, h->id, &h->m,
		                      reason);
	} else {
		/* a dead letter has nowhere further to go */
		r = spool_held_delete(s, h, "reject");
		spool_sanitize(why, sizeof(why), reason ? reason : "",
		               reason ? strlen(reason) : 0);
		if (!r)
			LOG(s, WARN, "dropped dead letter %s: %s", h->id, why);
	}
	held_free(s, h);
	return r;
}

static int spool_release(void *state, const struct imgnode_delivery *d)
{
	struct spool *s = state;
	struct held *h = spool_held_take(s, d, "release");
	int r;

	if (!h)
		return -EINVAL;
	r = spool_hand_back(s, h);
	held_free(s, h);
	return r;
}

static int spool_pollfd(void *state)
{
	return ((struct spool *)state)->ifd;
}

static int spool_ping(void *state)
{
	struct spool *s = state;
	char name[32];
	int fd, r;

	snprintf(name, sizeof(name), "%d.ping", (int)s->pid);
	fd = openat(s->dfd[D_TMP], name,
	            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		LOG(s, ERROR, "unable to write in %s/tmp/: %s", s->root,
		    strerror(-r));
		return r;
	}
	close(fd);
	unlinkat(s->dfd[D_TMP], name, 0);
	return 0;
}

static void count_entry(struct spool *s, int dirfd, const char *name, void *arg)
{
	(void)s, (void)dirfd, (void)name;
	++*(uint64_t *)arg;
}

/* The files in ready/ (jobs) or dead/: messages no one holds. */
static int spool_depth(void *state, enum imgnode_queue q, uint64_t *n)
{
	struct spool *s = state;
	int d = q == IMGNODE_QUEUE_JOBS   ? D_READY
	        : q == IMGNODE_QUEUE_DEAD ? D_DEAD
	                                  : -1;

	*n = 0;
	if (d < 0)
		return -EINVAL;
	return spool_dir_scan(s, s->dfd[d], spool_dir_name[d], count_entry, n);
}

static void spool_free(struct spool *s)
{
	for (int i = 0; i < D_N; i++)
		if (s->dfd[i] >= 0)
			close(s->dfd[i]);
	if (s->ifd >= 0)
		close(s->ifd);
	if (s->reply_fd >= 0)
		close(s->reply_fd);
	s->h->free(s->reply_buf);
	s->h->free(s);
}

/* Creates s->root and its missing parents (mkdir -p). 0 or -errno, logged. */
static int make_dirs(struct spool *s)
{
	char *slash = s->root;
	int r = 0;

	while (slash && !r) {
		slash = strchr(slash + 1, '/');
		if (slash)
			*slash = '\0';
		if (mkdir(s->root, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			LOG(s, ERROR, "unable to create %s: %s", s->root,
			    strerror(-r));
		}
		if (slash)
			*slash = '/';
	}
	return r;
}

static int spool_init(const struct imgnode_host *host, const void *conf,
                      void **state)
{
	const struct spool_conf *c = conf;
	struct spool *s = host->alloc(sizeof(*s));
	const char *base = c->dir;
	int root = -1, r = -EINVAL;

	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->h = host;
	s->conf = c;
	s->pid = getpid();
	s->ifd = s->reply_fd = -1;
	for (int i = 0; i < D_N; i++)
		s->dfd[i] = -1;
	for (int i = 0; i < 3; i++)
		s->wd[i] = -1;
	if (!base || !base[0])
		base = host->config_get("node", "state_dir");
	if (!base || base[0] != '/' ||
	    (size_t)snprintf(s->root, sizeof(s->root), "%s%s", base,
	                     c->dir && c->dir[0] ? "" : "/spool") >=
	            sizeof(s->root)) {
		LOG(s, ERROR, "no usable dir: set dir or [node] state_dir");
		goto out_free;
	}
	r = make_dirs(s);
	if (r)
		goto out_free;
	root = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < D_N && root >= 0; i++) {
		if (mkdirat(root, spool_dir_name[i], 0700) < 0 &&
		    errno != EEXIST)
			break;
		s->dfd[i] = openat(root, spool_dir_name[i],
		                   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dfd[i] < 0)
			break;
	}
	if (root < 0 || s->dfd[D_N - 1] < 0) {
		r = -errno;
		LOG(s, ERROR, "unable to open the queue in %s: %s", s->root,
		    strerror(-r));
		goto out_close_root;
	}
	if (c->fsync)
		fsync(root);
	close(root);
	s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->ifd < 0) {
		r = -errno;
		LOG(s, ERROR, "unable to start inotify: %s", strerror(-r));
		goto out_free;
	}
	spool_dir_scan(s, s->dfd[D_TMP], "tmp", spool_gc_entry, NULL);
	*state = s;
	return 0;

out_close_root:
	if (root >= 0)
		close(root);
out_free:
	spool_free(s);
	return r;
}

/* Hands back what is still held (as a closed AMQP channel does). */
static void spool_fini(void *state)
{
	struct spool *s = state;
	struct held *h;

	if (!s)
		return;
	while ((h = s->held)) {
		s->held = h->next;
		if (!h->lost)
			spool_hand_back(s, h);
		held_free(s, h);
	}
	if (s->reply[0])
		spool_reply_remove(s, s->reply);
	spool_free(s);
}

static const struct imgnode_transport_ops spool_ops = {
        .publish = spool_publish,
        .consume = spool_consume,
        .ack = spool_ack,
        .reject = spool_reject,
        .release = spool_release,
        .reply_open = spool_reply_open,
        .reply = spool_reply,
        .pollfd = spool_pollfd,
        .tick = spool_tick,
        .ping = spool_ping,
        .depth = spool_depth,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_TRANSPORT),
        .name = "spool",
        .version = "1.0.0",
        .description =
                "Durable directory queue for the processes of one machine",
        .conf_keys = spool_keys,
        .conf_size = sizeof(struct spool_conf),
        .init = spool_init,
        .fini = spool_fini,
        .ops = &spool_ops,
};
