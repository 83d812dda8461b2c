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
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <imgnode/plugin.h>

#define MAGIC "imgnode-spool 1\n"
#define ID_LEN 42 /* 20 + 1 + 10 + 1 + 10 */
#define NAME_LEN 96
#define BATCH_MAX 64 /* oldest names kept from one directory scan */
#define REASON_MAX 512
#define REPLY_NAME_MAX 32 /* "PID.HEX16" */
#define HEADER_MAX 640
#define MESSAGE_MAX (16 << 20)
#define SCAN_MAX_MS 1000

#define LOG(s, level, ...)                                                     \
	(s)->h->log(IMGNODE_LOG_##level, "spool", __VA_ARGS__)

struct spool_conf {
	char *dir;
	int64_t delivery_limit;
	int64_t lease; /* ms */
	int64_t max_message; /* bytes */
	bool fsync;
};

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

enum { D_TMP, D_READY, D_CLAIMED, D_DEAD, D_DEAD_CLAIMED, D_REPLY, D_N };
static const char *const dir_name[D_N] = {"tmp",  "ready",        "claimed",
                                          "dead", "dead.claimed", "reply"};

/* A message file's header fields and body. */
struct msg {
	char reply_to[REPLY_NAME_MAX]; /* "" if none */
	char reason[REASON_MAX]; /* "" if none */
	const char *body;
	size_t len;
};

/* A message this process claimed and has not settled. */
struct held {
	struct held *next;
	uint64_t tag;
	int q; /* IMGNODE_QUEUE_JOBS or IMGNODE_QUEUE_DEAD */
	unsigned n; /* deliveries, this one included */
	bool lost; /* tick found the lease gone */
	char *buf; /* the whole file (host allocator); m.body points into it */
	struct msg m;
	char id[ID_LEN + 1];
	char name[NAME_LEN]; /* in claimed/ or dead.claimed/ */
};

/* The oldest names of ready/ or dead/ at the last scan, in order. */
struct batch {
	char names[BATCH_MAX][NAME_LEN];
	size_t n, next;
};

struct spool {
	const struct imgnode_host *h;
	const struct spool_conf *conf;
	char root[PATH_MAX - 64];
	int dfd[D_N];
	int ifd; /* inotify */
	int wd[3]; /* watch per enum imgnode_queue, -1 until consumed */
	pid_t pid;
	uint64_t last_tag;
	struct held *held;
	struct batch batch[2];
	int64_t next_scan; /* CLOCK_MONOTONIC ms of the next lease check */
	char reply[REPLY_NAME_MAX]; /* own reply queue, "" until reply_open */
	int reply_fd;
	char *reply_buf; /* the last reply delivered */
};

/* Parsed "ID.N" or "ID.N.PID.MS". */
struct mname {
	char id[ID_LEN + 1];
	uint64_t n, pid, ms;
};

/* Called for each entry of a directory but dot files. */
typedef void entry_fn(struct spool *s, int dirfd, const char *name, void *arg);

static uint32_t seq; /* names made by this process */

static int64_t now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int q_src(int q)
{
	return q == IMGNODE_QUEUE_DEAD ? D_DEAD : D_READY;
}

static int q_held(int q)
{
	return q == IMGNODE_QUEUE_DEAD ? D_DEAD_CLAIMED : D_CLAIMED;
}

static bool pid_alive(uint64_t pid)
{
	return pid > 0 && pid <= INT_MAX &&
	       (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static void make_id(char *id, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, len, "%020" PRIu64 ".%010d.%010" PRIu32,
	         (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
	         (int)getpid(), ++seq);
}

/* Reads a decimal number at *p that ends with stop; moves *p past stop. */
static bool field(const char **p, char stop, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	if (*s != stop)
		return false;
	*p = stop ? s + 1 : s;
	*v = x;
	return true;
}

/* Parses a queue name: "ID.N", or "ID.N.PID.MS" if held. */
static bool name_parse(const char *s, bool held, struct mname *mn)
{
	const char *p = s;
	uint64_t v;

	if (!field(&p, '.', &v) || !field(&p, '.', &v) || !field(&p, '.', &v) ||
	    p != s + ID_LEN + 1)
		return false;
	memcpy(mn->id, s, ID_LEN);
	mn->id[ID_LEN] = '\0';
	if (!held)
		return field(&p, '\0', &mn->n) && mn->n < 1000000;
	return field(&p, '.', &mn->n) && mn->n < 1000000 &&
	       field(&p, '.', &mn->pid) && field(&p, '\0', &mn->ms);
}

/* True for a reply queue name as reply_open makes them: "PID.HEX16". */
static bool reply_name_valid(const char *s)
{
	uint64_t pid;

	if (!s || !field(&s, '.', &pid) || pid == 0 || pid > INT_MAX)
		return false;
	for (int i = 0; i < 16; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[16] == '\0';
}

/*
 * Copies n bytes of src (or up to its NUL) to dst: control bytes become
 * spaces; cut to fit at a UTF-8 boundary.
 */
static void sanitize(char *dst, size_t len, const char *src, size_t n)
{
	size_t i;

	for (i = 0; i < n && src[i] && i + 1 < len; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f)
		                 ? ' '
		                 : src[i];
	if (i < n && src[i])
		while (i > 0 && ((unsigned char)src[i] & 0xc0) == 0x80)
			i--;
	dst[i] = '\0';
}

/*
 * Calls fn for each entry of dirfd (named where in logs) but dot files.
 * 0 or -errno, logged.
 */
static int dir_scan(struct spool *s, int dirfd, const char *where, entry_fn *fn,
                    void *arg)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *e;

	if (!dir) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		LOG(s, ERROR, "unable to list %s/: %s", where, strerror(-r));
		return r;
	}
	while ((errno = 0, e = readdir(dir)))
		if (e->d_name[0] != '.')
			fn(s, dirfd, e->d_name, arg);
	if (errno) {
		r = -errno;
		LOG(s, ERROR, "unable to list %s/: %s", where, strerror(-r));
	}
	closedir(dir);
	return r;
}

static int fsync_dir(struct spool *s, int d)
{
	int r;

	if (!s->conf->fsync || fsync(s->dfd[d]) == 0)
		return 0;
	r = -errno;
	LOG(s, ERROR, "unable to fsync %s/: %s", dir_name[d], strerror(-r));
	return r;
}

static int write_all(int fd, const void *buf, size_t len)
{
	for (const char *p = buf; len;) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno != EINTR)
			return -errno;
		if (w > 0) {
			p += w;
			len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Stores m as dir d/name: written to tmp/ (header and all, or raw: the body
 * only), renamed into place and, unless raw, made durable (fsync option).
 * 0 or -errno, logged but for ENOENT/ENOTDIR of a raw rename (a reply queue
 * that is gone).
 */
static int deposit(struct spool *s, const struct msg *m, bool raw, int d,
                   const char *name)
{
	bool sync = !raw && s->conf->fsync;
	char hdr[HEADER_MAX], tmp[32];
	int n = 0, fd, r;

	snprintf(tmp, sizeof(tmp), "%d.%" PRIu32, (int)s->pid, ++seq);
	if (!raw)
		n = snprintf(hdr, sizeof(hdr), "%s%s%s%s%s%s%s\n", MAGIC,
		             m->reply_to[0] ? "reply-to: " : "", m->reply_to,
		             m->reply_to[0] ? "\n" : "",
		             m->reason[0] ? "reason: " : "", m->reason,
		             m->reason[0] ? "\n" : "");
	fd = openat(s->dfd[D_TMP], tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	            0600);
	if (fd < 0) {
		r = -errno;
		LOG(s, ERROR, "unable to create tmp/%s: %s", tmp, strerror(-r));
		return r;
	}
	r = write_all(fd, hdr, (size_t)n);
	if (!r)
		r = write_all(fd, m->body, m->len);
	if (!r && sync && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (r) {
		LOG(s, ERROR, "unable to write tmp/%s: %s", tmp, strerror(-r));
		goto out_unlink;
	}
	if (renameat(s->dfd[D_TMP], tmp, s->dfd[d], name) == 0)
		return raw ? 0 : fsync_dir(s, d);
	r = -errno;
	if (!raw || (r != -ENOENT && r != -ENOTDIR))
		LOG(s, ERROR, "unable to move tmp/%s to %s/%s: %s", tmp,
		    dir_name[d], name, strerror(-r));
out_unlink:
	unlinkat(s->dfd[D_TMP], tmp, 0);
	return r;
}

/* Refuses a body larger than max_message (logged as op). */
static int check_size(struct spool *s, const char *op, size_t len)
{
	if (len <= (uint64_t)s->conf->max_message)
		return 0;
	LOG(s, ERROR,
	    "unable to %s: message of %zu bytes is larger than max_message (%lld)",
	    op, len, (long long)s->conf->max_message);
	return -EMSGSIZE;
}

/*
 * Reads dirfd/name (where: the directory, for logs) whole into a
 * NUL-terminated buffer from the host's allocator; the caller frees it.
 * -EBADMSG, not logged, for what cannot be a message file.
 */
static int read_whole(struct spool *s, int dirfd, const char *where,
                      const char *name, char **bufp, size_t *lenp)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;
	size_t got = 0, size;
	struct stat st;
	char *buf = NULL;
	ssize_t n = 1;

	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MESSAGE_MAX + HEADER_MAX) {
		r = -EBADMSG;
		goto out;
	}
	size = (size_t)st.st_size;
	buf = s->h->alloc(size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (got < size && (n = read(fd, buf + got, size - got)) != 0) {
		if (n < 0 && errno != EINTR) {
			r = -errno;
			s->h->free(buf);
			goto out;
		}
		got += n > 0 ? (size_t)n : 0;
	}
	buf[got] = '\0';
	*bufp = buf;
	*lenp = got;
out:
	if (fd >= 0)
		close(fd);
	if (r && r != -EBADMSG)
		LOG(s, ERROR, "unable to read %s/%s: %s", where, name,
		    strerror(-r));
	return r;
}

/* Splits a message file into m (body points into buf); -EBADMSG. */
static int msg_parse(const char *buf, size_t len, struct msg *m)
{
	const char *p = buf + strlen(MAGIC), *end = buf + len, *nl;

	memset(m, 0, sizeof(*m));
	if (len < strlen(MAGIC) || memcmp(buf, MAGIC, strlen(MAGIC)) != 0)
		return -EBADMSG;
	for (; (nl = memchr(p, '\n', (size_t)(end - p))) != p; p = nl + 1) {
		if (!nl)
			return -EBADMSG;
		if (strncmp(p, "reply-to: ", 10) == 0)
			sanitize(m->reply_to, sizeof(m->reply_to), p + 10,
			         (size_t)(nl - p - 10));
		else if (strncmp(p, "reason: ", 8) == 0)
			sanitize(m->reason, sizeof(m->reason), p + 8,
			         (size_t)(nl - p - 8));
	}
	if (m->reply_to[0] && !reply_name_valid(m->reply_to))
		return -EBADMSG;
	m->body = nl + 1;
	m->len = (size_t)(end - m->body);
	return 0;
}

static void held_free(struct spool *s, struct held *h)
{
	s->h->free(h->buf);
	s->h->free(h);
}

/*
 * Moves a message this process holds as dir d/name to dead/ID.0 with reason.
 * The lease is renewed first so that nobody hands the message back while it
 * is rewritten; -ETIMEDOUT if it was already lost.
 */
static int dead_letter(struct spool *s, int d, const char *name, const char *id,
                       const struct msg *m, const char *reason)
{
	char dst[NAME_LEN];
	struct msg dm = *m;
	int r;

	if (utimensat(s->dfd[d], name, NULL, 0) < 0) {
		r = -errno;
		s->h->log(r == -ENOENT ? IMGNODE_LOG_WARN : IMGNODE_LOG_ERROR,
		          "spool", "unable to dead-letter %s/%s: %s",
		          dir_name[d], name,
		          r == -ENOENT ? "lease lost" : strerror(-r));
		return r == -ENOENT ? -ETIMEDOUT : r;
	}
	reason = reason && *reason ? reason : "rejected";
	sanitize(dm.reason, sizeof(dm.reason), reason, strlen(reason));
	snprintf(dst, sizeof(dst), "%s.0", id);
	r = deposit(s, &dm, false, D_DEAD, dst);
	if (r)
		return r;
	if (unlinkat(s->dfd[d], name, 0) < 0) {
		r = -errno;
		LOG(s, ERROR, "unable to delete %s/%s: %s", dir_name[d], name,
		    strerror(-r));
		return r;
	}
	LOG(s, INFO, "dead-lettered %s: %s", id, dm.reason);
	return fsync_dir(s, d);
}

/*
 * Reads the file this process just claimed (q's held dir/name) into a new
 * struct held; the caller frees it with held_free. What cannot be a message
 * is deleted, a malformed job is dead-lettered as it is (both -EBADMSG), a
 * malformed dead letter is delivered as it is.
 */
static int held_load(struct spool *s, int q, const char *name,
                     const struct mname *mn, struct held **out)
{
	int d = q_held(q), r;
	struct held *h = s->h->alloc(sizeof(*h));
	size_t len;

	if (!h) {
		LOG(s, ERROR, "unable to read %s/%s: %s", dir_name[d], name,
		    strerror(ENOMEM));
		return -ENOMEM;
	}
	memset(h, 0, sizeof(*h));
	r = read_whole(s, s->dfd[d], dir_name[d], name, &h->buf, &len);
	if (r == -EBADMSG) {
		unlinkat(s->dfd[d], name, 0);
		LOG(s, WARN, "deleted %s/%s: not a message file", dir_name[d],
		    name);
	}
	if (r)
		goto out_free;
	memcpy(h->id, mn->id, sizeof(h->id));
	if (msg_parse(h->buf, len, &h->m) != 0) {
		h->m.reply_to[0] = '\0';
		h->m.body = h->buf;
		h->m.len = len;
		snprintf(h->m.reason, sizeof(h->m.reason),
		         "malformed message file");
		if (q == IMGNODE_QUEUE_JOBS) {
			dead_letter(s, d, name, h->id, &h->m, h->m.reason);
			r = -EBADMSG;
			goto out_free;
		}
	}
	h->q = q;
	h->n = (unsigned)mn->n;
	snprintf(h->name, sizeof(h->name), "%s", name);
	*out = h;
	return 0;

out_free:
	held_free(s, h);
	return r;
}

/* Gives h back to its queue, or to dead/ after its last delivery. */
static int hand_back(struct spool *s, struct held *h)
{
	char to[NAME_LEN], why[64];
	int d = q_held(h->q), r;

	if (h->q == IMGNODE_QUEUE_JOBS &&
	    h->n >= (unsigned)s->conf->delivery_limit) {
		snprintf(why, sizeof(why), "delivery limit (%d) exceeded",
		         (int)s->conf->delivery_limit);
		return dead_letter(s, d, h->name, h->id, &h->m, why);
	}
	/* no fsync: after a crash it would be handed back from d anyway */
	snprintf(to, sizeof(to), "%s.%u", h->id, h->n);
	if (renameat(s->dfd[d], h->name, s->dfd[q_src(h->q)], to) == 0)
		return 0;
	r = -errno;
	if (r == -ENOENT) {
		LOG(s, WARN, "unable to hand back %s/%s: lease lost",
		    dir_name[d], h->name);
		return -ETIMEDOUT;
	}
	LOG(s, ERROR, "unable to hand back %s/%s: %s", dir_name[d], h->name,
	    strerror(-r));
	return r;
}

static void batch_add(struct spool *s, int dirfd, const char *name, void *arg)
{
	struct batch *b = arg;
	size_t i, len = strlen(name);
	struct mname mn;

	(void)s;
	(void)dirfd;
	if (len >= NAME_LEN || !name_parse(name, false, &mn) ||
	    (b->n == BATCH_MAX && strcmp(name, b->names[BATCH_MAX - 1]) >= 0))
		return;
	i = b->n < BATCH_MAX ? b->n++ : BATCH_MAX - 1;
	for (; i > 0 && strcmp(b->names[i - 1], name) > 0; i--)
		memcpy(b->names[i], b->names[i - 1], NAME_LEN);
	memcpy(b->names[i], name, len + 1);
}

/*
 * Claims the oldest message of q (JOBS or DEAD), dead-lettering jobs past
 * the delivery limit on the way. 0 and *out, -EAGAIN if there is none.
 */
static int claim_next(struct spool *s, int q, struct held **out)
{
	struct batch *b = &s->batch[q];
	int src = q_src(q), dst = q_held(q), r;
	char name[NAME_LEN], held[NAME_LEN], why[64];
	struct mname mn;
	struct held *h;

	for (;;) {
		if (b->next >= b->n) {
			b->n = b->next = 0;
			r = dir_scan(s, s->dfd[src], dir_name[src], batch_add,
			             b);
			if (r || b->n == 0)
				return r ? r : -EAGAIN;
		}
		memcpy(name, b->names[b->next++], NAME_LEN);
		if (!name_parse(name, false, &mn))
			continue;
		snprintf(held, sizeof(held), "%s.%" PRIu64 ".%d.%" PRId64,
		         mn.id, ++mn.n, (int)s->pid, now_ms(CLOCK_REALTIME));
		if (renameat(s->dfd[src], name, s->dfd[dst], held) < 0) {
			if (errno == ENOENT)
				continue; /* another consumer won it */
			r = -errno;
			LOG(s, ERROR, "unable to claim %s/%s: %s",
			    dir_name[src], name, strerror(-r));
			return r;
		}
		r = held_load(s, q, held, &mn, &h);
		if (r == -EBADMSG)
			continue;
		if (r)
			return r;
		if (q == IMGNODE_QUEUE_JOBS &&
		    h->n > (unsigned)s->conf->delivery_limit) {
			snprintf(why, sizeof(why),
			         "delivery limit (%d) exceeded",
			         (int)s->conf->delivery_limit);
			dead_letter(s, dst, h->name, h->id, &h->m, why);
			held_free(s, h);
			continue;
		}
		h->tag = ++s->last_tag;
		h->next = s->held;
		s->held = h;
		*out = h;
		return 0;
	}
}

/*
 * For each claimed file of the queue *arg: if its holder is dead or its
 * lease expired, take it over (so that one process does the rest), then
 * hand it back to its queue or dead-letter it.
 */
static void recover_entry(struct spool *s, int dirfd, const char *name,
                          void *arg)
{
	int q = *(int *)arg;
	const char *why = "its holder died";
	char own[NAME_LEN];
	struct mname mn;
	struct stat st;
	struct held *h;

	if (!name_parse(name, true, &mn))
		return;
	if (mn.pid == (uint64_t)s->pid || pid_alive(mn.pid)) {
		int64_t start;

		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return;
		start = (int64_t)st.st_mtim.tv_sec * 1000 +
		        st.st_mtim.tv_nsec / 1000000;
		if ((int64_t)mn.ms > start)
			start = (int64_t)mn.ms;
		if (now_ms(CLOCK_REALTIME) - start <= s->conf->lease)
			return;
		why = "its lease expired";
	}
	snprintf(own, sizeof(own), "%s.%" PRIu64 ".%d.%" PRId64, mn.id, mn.n,
	         (int)s->pid, now_ms(CLOCK_REALTIME));
	if (renameat(dirfd, name, dirfd, own) < 0 ||
	    held_load(s, q, own, &mn, &h) != 0)
		return;
	LOG(s, WARN, "handing back %s/%s: %s", dir_name[q_held(q)], name, why);
	hand_back(s, h);
	held_free(s, h);
}

static void recover_if_due(struct spool *s)
{
	int64_t now = now_ms(CLOCK_MONOTONIC), every = s->conf->lease / 2;

	if (now < s->next_scan)
		return;
	s->next_scan = now + (every < SCAN_MAX_MS ? every : SCAN_MAX_MS);
	for (int q = IMGNODE_QUEUE_JOBS; q <= IMGNODE_QUEUE_DEAD; q++)
		dir_scan(s, s->dfd[q_held(q)], dir_name[q_held(q)],
		         recover_entry, &q);
}

static void oldest(struct spool *s, int dirfd, const char *name, void *arg)
{
	char *best = arg;
	size_t n = strlen(name);

	(void)s;
	(void)dirfd;
	if (n < NAME_LEN && (!best[0] || strcmp(name, best) < 0))
		memcpy(best, name, n + 1);
}

/* Takes the oldest reply of this process's reply queue; -EAGAIN if none. */
static int reply_take(struct spool *s, struct imgnode_delivery *d)
{
	char best[NAME_LEN] = "", where[64];
	size_t len;
	int r;

	snprintf(where, sizeof(where), "reply/%s", s->reply);
	r = dir_scan(s, s->reply_fd, where, oldest, best);
	if (r || !best[0])
		return r ? r : -EAGAIN;
	r = read_whole(s, s->reply_fd, where, best, &s->reply_buf, &len);
	if (r && r != -EBADMSG)
		return r;
	unlinkat(s->reply_fd, best, 0);
	if (r)
		return -EAGAIN;
	*d = (struct imgnode_delivery){
	        .body = s->reply_buf, .len = len, .attempt = 1};
	return 0;
}

/* Makes the inotify fd watch what consume(q) waits for. */
static int watch(struct spool *s, int q)
{
	char path[PATH_MAX];
	int r;

	if (s->wd[q] >= 0)
		return 0;
	if (q == IMGNODE_QUEUE_REPLY)
		snprintf(path, sizeof(path), "%s/reply/%s", s->root, s->reply);
	else
		snprintf(path, sizeof(path), "%s/%s", s->root,
		         dir_name[q_src(q)]);
	s->wd[q] = inotify_add_watch(s->ifd, path, IN_MOVED_TO | IN_ONLYDIR);
	if (s->wd[q] >= 0)
		return 0;
	r = -errno;
	LOG(s, ERROR, "unable to watch %s: %s", path, strerror(-r));
	return r;
}

static int try_once(struct spool *s, int q, struct imgnode_delivery *d)
{
	struct held *h = NULL;
	int r;

	if (q == IMGNODE_QUEUE_REPLY)
		return reply_take(s, d);
	r = claim_next(s, q, &h);
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
	r = watch(s, q);
	if (r)
		return r;
	deadline = now_ms(CLOCK_MONOTONIC) + (timeout_ms > 0 ? timeout_ms : 0);
	if (q != IMGNODE_QUEUE_REPLY)
		recover_if_due(s);
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
				recover_if_due(s);
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
	if (check_size(s, "publish", len))
		return -EMSGSIZE;
	if (reply_to && !reply_name_valid(reply_to)) {
		LOG(s, ERROR, "unable to publish: bad reply queue name");
		return -EINVAL;
	}
	if (reply_to)
		memcpy(m.reply_to, reply_to, strlen(reply_to) + 1);
	make_id(id, sizeof(id));
	snprintf(dst, sizeof(dst), "%s.0", id);
	return deposit(s, &m, false, D_READY, dst);
}

/* Finds and unlinks the held message d names; NULL (logged) if none. */
static struct held *held_take(struct spool *s, const struct imgnode_delivery *d,
                              const char *op)
{
	struct held **pp, *h;

	for (pp = &s->held; d && *pp; pp = &(*pp)->next) {
		if ((*pp)->tag != d->tag)
			continue;
		h = *pp;
		*pp = h->next;
		return h;
	}
	LOG(s, ERROR,
	    "unable to %s: delivery tag %llu is not held by this process", op,
	    d ? (unsigned long long)d->tag : 0);
	return NULL;
}

/* Deletes a held file: ack, or reject of a dead letter. */
static int held_delete(struct spool *s, const struct held *h, const char *op)
{
	int d = q_held(h->q), r;

	if (unlinkat(s->dfd[d], h->name, 0) == 0)
		return fsync_dir(s, d);
	r = -errno;
	if (r == -ENOENT) {
		LOG(s, WARN,
		    "unable to %s %s/%s: lease lost (it expired, or this process seemed dead); the message was handed back",
		    op, dir_name[d], h->name);
		return -ETIMEDOUT;
	}
	LOG(s, ERROR, "unable to %s %s/%s: %s", op, dir_name[d], h->name,
	    strerror(-r));
	return r;
}

static int spool_ack(void *state, const struct imgnode_delivery *d)
{
	struct spool *s = state;
	struct held *h = held_take(s, d, "ack");
	int r;

	if (!h)
		return -EINVAL;
	r = held_delete(s, h, "ack");
	held_free(s, h);
	return r;
}

static int spool_reject(void *state, const struct imgnode_delivery *d,
                        const char *reason)
{
	struct spool *s = state;
	struct held *h = held_take(s, d, "reject");
	char why[REASON_MAX];
	int r;

	if (!h)
		return -EINVAL;
	if (h->q == IMGNODE_QUEUE_JOBS) {
		r = dead_letter(s, D_CLAIMED, h->name, h->id, &h->m, reason);
	} else {
		/* a dead letter has nowhere further to go */
		r = held_delete(s, h, "reject");
		sanitize(why, sizeof(why), reason ? reason : "",
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
	struct held *h = held_take(s, d, "release");
	int r;

	if (!h)
		return -EINVAL;
	r = hand_back(s, h);
	held_free(s, h);
	return r;
}

static void unlink_entry(struct spool *s, int dirfd, const char *name,
                         void *arg)
{
	(void)s;
	(void)arg;
	unlinkat(dirfd, name, 0);
}

/* Removes reply/name and the replies in it. */
static void reply_remove(struct spool *s, const char *name)
{
	int fd = openat(s->dfd[D_REPLY], name,
	                O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	if (fd >= 0) {
		dir_scan(s, fd, "reply", unlink_entry, NULL);
		close(fd);
	}
	if (unlinkat(s->dfd[D_REPLY], name, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		LOG(s, WARN, "unable to remove reply/%s: %s", name,
		    strerror(errno));
}

/* Removes tmp/PID.* and reply/PID.* left by processes that are gone. */
static void gc_entry(struct spool *s, int dirfd, const char *name, void *arg)
{
	const char *p = name;
	uint64_t pid;

	(void)arg;
	if (!field(&p, '.', &pid) || pid == (uint64_t)s->pid || pid_alive(pid))
		return;
	if (dirfd == s->dfd[D_TMP])
		unlinkat(dirfd, name, 0);
	else if (reply_name_valid(name))
		reply_remove(s, name);
}

static int spool_reply_open(void *state, char *name, size_t len)
{
	struct spool *s = state;
	uint64_t rnd;
	int r;

	if (!s->reply[0]) {
		dir_scan(s, s->dfd[D_REPLY], "reply", gc_entry, NULL);
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			r = -errno;
			LOG(s, ERROR, "unable to name a reply queue: %s",
			    strerror(-r));
			return r;
		}
		snprintf(s->reply, sizeof(s->reply), "%d.%016" PRIx64,
		         (int)s->pid, rnd);
		if (mkdirat(s->dfd[D_REPLY], s->reply, 0700) < 0) {
			r = -errno;
			LOG(s, ERROR, "unable to create reply/%s: %s", s->reply,
			    strerror(-r));
			s->reply[0] = '\0';
			return r;
		}
		s->reply_fd = openat(s->dfd[D_REPLY], s->reply,
		                     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->reply_fd < 0) {
			r = -errno;
			LOG(s, ERROR, "unable to open reply/%s: %s", s->reply,
			    strerror(-r));
			goto out_remove;
		}
		r = watch(s, IMGNODE_QUEUE_REPLY);
		if (r)
			goto out_remove;
	}
	if (strlen(s->reply) >= len)
		return -ERANGE;
	memcpy(name, s->reply, strlen(s->reply) + 1);
	return 0;

out_remove:
	if (s->reply_fd >= 0)
		close(s->reply_fd);
	s->reply_fd = -1;
	unlinkat(s->dfd[D_REPLY], s->reply, AT_REMOVEDIR);
	s->reply[0] = '\0';
	return r;
}

static int spool_reply(void *state, const char *reply_to, const void *body,
                       size_t len)
{
	struct spool *s = state;
	struct msg m = {.body = body, .len = len};
	char id[ID_LEN + 8], dst[NAME_LEN], shown[64];
	int r;

	if (!reply_name_valid(reply_to)) {
		reply_to = reply_to ? reply_to : "(null)";
		sanitize(shown, sizeof(shown), reply_to, strlen(reply_to));
		LOG(s, ERROR, "unable to reply: \"%s\" is not a reply queue",
		    shown);
		return -EINVAL;
	}
	if (check_size(s, "reply", len))
		return -EMSGSIZE;
	make_id(id, sizeof(id));
	snprintf(dst, sizeof(dst), "%s/%s", reply_to, id);
	r = deposit(s, &m, true, D_REPLY, dst);
	if (r == -ENOENT || r == -ENOTDIR) {
		/* nobody waits there any more: dropped, as amqp would */
		LOG(s, DEBUG, "reply queue %s is gone; reply dropped",
		    reply_to);
		return 0;
	}
	return r;
}

static int spool_pollfd(void *state)
{
	return ((struct spool *)state)->ifd;
}

static int spool_tick(void *state)
{
	struct spool *s = state;
	int r = 0;

	for (struct held *h = s->held; h; h = h->next) {
		const char *dir = dir_name[q_held(h->q)];

		if (h->lost ||
		    utimensat(s->dfd[q_held(h->q)], h->name, NULL, 0) == 0)
			continue;
		if (errno == ENOENT) {
			h->lost = true;
			LOG(s, WARN, "lease of %s/%s lost", dir, h->name);
			continue;
		}
		r = -errno;
		LOG(s, ERROR, "unable to renew the lease of %s/%s: %s", dir,
		    h->name, strerror(-r));
	}
	return r;
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
		if (mkdirat(root, dir_name[i], 0700) < 0 && errno != EEXIST)
			break;
		s->dfd[i] = openat(root, dir_name[i],
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
	dir_scan(s, s->dfd[D_TMP], "tmp", gc_entry, NULL);
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
			hand_back(s, h);
		held_free(s, h);
	}
	if (s->reply[0])
		reply_remove(s, s->reply);
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
