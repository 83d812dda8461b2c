/*
 * The spool plugin's internals, shared by its files (plugins/transport/spool/):
 *   spool.c  the layout and contract, the configuration keys, init and the
 *            transport operations (consume, publish, settling, depth)
 *   claim.c  messages this process holds: claiming, leases, handing back,
 *            dead-lettering, and taking over those whose holder is gone
 *   reply.c  reply queues: one directory per process, opened, fed, removed
 *   file.c   the queue's names and files: message names, message files
 *            written, read and parsed, directory scans and inotify watches
 * Calls go one way: spool.c calls the others, claim.c and reply.c call
 * file.c, which calls none of them.
 * A state belongs to the process that called init (no use across fork).
 * Nothing here is exported from the .so (-fvisibility=hidden).
 */
#ifndef IMGNODE_SPOOL_SPOOL_H
#define IMGNODE_SPOOL_SPOOL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

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

/* The [transport] keys (spool.c's table), filled by the host. */
struct spool_conf {
	char *dir;
	int64_t delivery_limit;
	int64_t lease; /* ms */
	int64_t max_message; /* bytes */
	bool fsync;
};

/* The queue's directories (spool.c's opening comment), named in file.c. */
enum { D_TMP, D_READY, D_CLAIMED, D_DEAD, D_DEAD_CLAIMED, D_REPLY, D_N };
extern const char *const spool_dir_name[D_N];

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

static inline int64_t now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The directory q's messages wait in. */
static inline int q_src(int q)
{
	return q == IMGNODE_QUEUE_DEAD ? D_DEAD : D_READY;
}

/* The directory q's claimed messages are held in. */
static inline int q_held(int q)
{
	return q == IMGNODE_QUEUE_DEAD ? D_DEAD_CLAIMED : D_CLAIMED;
}

/* Frees h and its buffer (both from the host's allocator). */
static inline void held_free(struct spool *s, struct held *h)
{
	s->h->free(h->buf);
	s->h->free(h);
}

/* file.c: names */

/* True if a process pid exists (a zombie counts). */
bool spool_pid_alive(uint64_t pid);
/* Writes a new message ID (time.pid.seq, sortable) to id. */
void spool_make_id(char *id, size_t len);
/* Reads a decimal number at *p that ends with stop; moves *p past stop. */
bool spool_field(const char **p, char stop, uint64_t *v);
/* Parses a queue name: "ID.N", or "ID.N.PID.MS" if held. */
bool spool_name_parse(const char *s, bool held, struct mname *mn);
/* True for a reply queue name as reply_open makes them: "PID.HEX16". */
bool spool_reply_name_valid(const char *s);
/* Copies n bytes of src to dst, control bytes made spaces, cut at UTF-8. */
void spool_sanitize(char *dst, size_t len, const char *src, size_t n);

/* file.c: directories and message files (each 0 or -errno, logged) */

/* Calls fn for each entry of dirfd (named where in logs) but dot files. */
int spool_dir_scan(struct spool *s, int dirfd, const char *where, entry_fn *fn,
                   void *arg);
/* fsyncs directory d if the fsync option is on. */
int spool_fsync_dir(struct spool *s, int d);
/* Stores m as d/name through tmp/ (raw: the body only, not made durable). */
int spool_deposit(struct spool *s, const struct msg *m, bool raw, int d,
                  const char *name);
/* -EMSGSIZE (logged as op) for a body larger than max_message. */
int spool_check_size(struct spool *s, const char *op, size_t len);
/* Reads dirfd/name whole into *bufp (host allocator; the caller frees). */
int spool_read_whole(struct spool *s, int dirfd, const char *where,
                     const char *name, char **bufp, size_t *lenp);
/* Splits a message file into m (body points into buf); -EBADMSG. */
int spool_msg_parse(const char *buf, size_t len, struct msg *m);
/* Makes the inotify fd watch what consume(q) waits for. */
int spool_watch(struct spool *s, int q);

/* claim.c: messages this process holds */

/* Claims the oldest message of q (JOBS or DEAD); -EAGAIN if none. */
int spool_claim_next(struct spool *s, int q, struct held **out);
/* Hands back claimed files whose holder died or lease expired, if due. */
void spool_recover_if_due(struct spool *s);
/* Gives h back to its queue, or to dead/ after its last delivery. */
int spool_hand_back(struct spool *s, struct held *h);
/* Moves held d/name to dead/ID.0 with reason; -ETIMEDOUT if lease lost. */
int spool_dead_letter(struct spool *s, int d, const char *name, const char *id,
                      const struct msg *m, const char *reason);
/* Takes the held message d names off the list; NULL (logged) if none. */
struct held *spool_held_take(struct spool *s, const struct imgnode_delivery *d,
                             const char *op);
/* Deletes a held file (ack, or reject of a dead letter). */
int spool_held_delete(struct spool *s, const struct held *h, const char *op);
/* The tick operation: renews the leases of what this process holds. */
int spool_tick(void *state);

/* reply.c: reply queues */

/* Takes the oldest reply of this process's queue; -EAGAIN if none. */
int spool_reply_take(struct spool *s, struct imgnode_delivery *d);
/* Removes reply/name and the replies in it. */
void spool_reply_remove(struct spool *s, const char *name);
/* dir_scan callback: removes tmp/ and reply/ entries of dead processes. */
void spool_gc_entry(struct spool *s, int dirfd, const char *name, void *arg);
/* The reply_open operation: makes this process's reply queue. */
int spool_reply_open(void *state, char *name, size_t len);
/* The reply operation: a raw file in reply_to's queue, dropped if gone. */
int spool_reply(void *state, const char *reply_to, const void *body,
                size_t len);

#endif
