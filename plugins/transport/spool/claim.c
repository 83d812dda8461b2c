/*
 * The messages a spool process holds. A claim is a rename of ready/ID.N (or
 * dead/ID.N) to claimed/ID.N+1.PID.MS: of the processes that try, one wins.
 * The holder's lease runs from the claim and is renewed by tick; a message
 * is handed back to its queue (or dead-lettered after its last delivery)
 * when released, when its holder finishes without settling it, or when
 * another consumer finds its holder dead or its lease expired.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

/*
 * Moves a message this process holds as dir d/name to dead/ID.0 with reason.
 * The lease is renewed first so that nobody hands the message back while it
 * is rewritten; -ETIMEDOUT if it was already lost.
 */
int spool_dead_letter(struct spool *s, int d, const char *name, const char *id,
                      const struct msg *m, const char *reason)
{
	char dst[NAME_LEN];
	struct msg dm = *m;
	int r;

	if (utimensat(s->dfd[d], name, NULL, 0) < 0) {
		r = -errno;
		s->h->log(r == -ENOENT ? IMGNODE_LOG_WARN : IMGNODE_LOG_ERROR,
		          "spool", "unable to dead-letter %s/%s: %s",
		          spool_dir_name[d], name,
		          r == -ENOENT ? "lease lost" : strerror(-r));
		return r == -ENOENT ? -ETIMEDOUT : r;
	}
	reason = reason && *reason ? reason : "rejected";
	spool_sanitize(dm.reason, sizeof(dm.reason), reason, strlen(reason));
	snprintf(dst, sizeof(dst), "%s.0", id);
	r = spool_deposit(s, &dm, false, D_DEAD, dst);
	if (r)
		return r;
	if (unlinkat(s->dfd[d], name, 0) < 0) {
		r = -errno;
		LOG(s, ERROR, "unable to delete %s/%s: %s", spool_dir_name[d],
		    name, strerror(-r));
		return r;
	}
	LOG(s, INFO, "dead-lettered %s: %s", id, dm.reason);
	return spool_fsync_dir(s, d);
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
		LOG(s, ERROR, "unable to read %s/%s: %s", spool_dir_name[d],
		    name, strerror(ENOMEM));
		return -ENOMEM;
	}
	memset(h, 0, sizeof(*h));
	r = spool_read_whole(s, s->dfd[d], spool_dir_name[d], name, &h->buf,
	                     &len);
	if (r == -EBADMSG) {
		unlinkat(s->dfd[d], name, 0);
		LOG(s, WARN, "deleted %s/%s: not a message file",
		    spool_dir_name[d], name);
	}
	if (r)
		goto out_free;
	memcpy(h->id, mn->id, sizeof(h->id));
	if (spool_msg_parse(h->buf, len, &h->m) != 0) {
		h->m.reply_to[0] = '\0';
		h->m.body = h->buf;
		h->m.len = len;
		snprintf(h->m.reason, sizeof(h->m.reason),
		         "malformed message file");
		if (q == IMGNODE_QUEUE_JOBS) {
			spool_dead_letter(s, d, name, h->id, &h->m,
			                  h->m.reason);
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
int spool_hand_back(struct spool *s, struct held *h)
{
	char to[NAME_LEN], why[64];
	int d = q_held(h->q), r;

	if (h->q == IMGNODE_QUEUE_JOBS &&
	    h->n >= (unsigned)s->conf->delivery_limit) {
		snprintf(why, sizeof(why), "delivery limit (%d) exceeded",
		         (int)s->conf->delivery_limit);
		return spool_dead_letter(s, d, h->name, h->id, &h->m, why);
	}
	/* no fsync: after a crash it would be handed back from d anyway */
	snprintf(to, sizeof(to), "%s.%u", h->id, h->n);
	if (renameat(s->dfd[d], h->name, s->dfd[q_src(h->q)], to) == 0)
		return 0;
	r = -errno;
	if (r == -ENOENT) {
		LOG(s, WARN, "unable to hand back %s/%s: lease lost",
		    spool_dir_name[d], h->name);
		return -ETIMEDOUT;
	}
	LOG(s, ERROR, "unable to hand back %s/%s: %s", spool_dir_name[d],
	    h->name, strerror(-r));
	return r;
}

static void batch_add(struct spool *s, int dirfd, const char *name, void *arg)
{
	struct batch *b = arg;
	size_t i, len = strlen(name);
	struct mname mn;

	(void)s;
	(void)dirfd;
	if (len >= NAME_LEN || !spool_name_parse(name, false, &mn) ||
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
int spool_claim_next(struct spool *s, int q, struct held **out)
{
	struct batch *b = &s->batch[q];
	int src = q_src(q), dst = q_held(q), r;
	char name[NAME_LEN], held[NAME_LEN], why[64];
	struct mname mn;
	struct held *h;

	for (;;) {
		if (b->next >= b->n) {
			b->n = b->next = 0;
			r = spool_dir_scan(s, s->dfd[src], spool_dir_name[src],
			                   batch_add, b);
			if (r || b->n == 0)
				return r ? r : -EAGAIN;
		}
		memcpy(name, b->names[b->next++], NAME_LEN);
		if (!spool_name_parse(name, false, &mn))
			continue;
		snprintf(held, sizeof(held), "%s.%" PRIu64 ".%d.%" PRId64,
		         mn.id, ++mn.n, (int)s->pid, now_ms(CLOCK_REALTIME));
		if (renameat(s->dfd[src], name, s->dfd[dst], held) < 0) {
			if (errno == ENOENT)
				continue; /* another consumer won it */
			r = -errno;
			LOG(s, ERROR, "unable to claim %s/%s: %s",
			    spool_dir_name[src], name, strerror(-r));
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
			spool_dead_letter(s, dst, h->name, h->id, &h->m, why);
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

	if (!spool_name_parse(name, true, &mn))
		return;
	if (mn.pid == (uint64_t)s->pid || spool_pid_alive(mn.pid)) {
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
	LOG(s, WARN, "handing back %s/%s: %s", spool_dir_name[q_held(q)], name,
	    why);
	spool_hand_back(s, h);
	held_free(s, h);
}

void spool_recover_if_due(struct spool *s)
{
	int64_t now = now_ms(CLOCK_MONOTONIC), every = s->conf->lease / 2;

	if (now < s->next_scan)
		return;
	s->next_scan = now + (every < SCAN_MAX_MS ? every : SCAN_MAX_MS);
	for (int q = IMGNODE_QUEUE_JOBS; q <= IMGNODE_QUEUE_DEAD; q++)
		spool_dir_scan(s, s->dfd[q_held(q)], spool_dir_name[q_held(q)],
		               recover_entry, &q);
}

/* Finds and unlinks the held message d names; NULL (logged) if none. */
struct held *spool_held_take(struct spool *s, const struct imgnode_delivery *d,
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
int spool_held_delete(struct spool *s, const struct held *h, const char *op)
{
	int d = q_held(h->q), r;

	if (unlinkat(s->dfd[d], h->name, 0) == 0)
		return spool_fsync_dir(s, d);
	r = -errno;
	if (r == -ENOENT) {
		LOG(s, WARN,
		    "unable to %s %s/%s: lease lost (it expired, or this process seemed dead); the message was handed back",
		    op, spool_dir_name[d], h->name);
		return -ETIMEDOUT;
	}
	LOG(s, ERROR, "unable to %s %s/%s: %s", op, spool_dir_name[d], h->name,
	    strerror(-r));
	return r;
}

int spool_tick(void *state)
{
	struct spool *s = state;
	int r = 0;

	for (struct held *h = s->held; h; h = h->next) {
		const char *dir = spool_dir_name[q_held(h->q)];

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
