/*
 * The spool's reply queues: reply/PID.HEX/, one directory per process that
 * asks for one (reply_open), watched with inotify; a reply is a raw file
 * named by a message ID (no header, not fsynced: replies are transient, as
 * in amqp). The queues of processes that are gone are removed when another
 * process opens its own (spool_gc_entry, which init runs on tmp/ too).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

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
int spool_reply_take(struct spool *s, struct imgnode_delivery *d)
{
	char best[NAME_LEN] = "", where[64];
	size_t len;
	int r;

	snprintf(where, sizeof(where), "reply/%s", s->reply);
	r = spool_dir_scan(s, s->reply_fd, where, oldest, best);
	if (r || !best[0])
		return r ? r : -EAGAIN;
	r = spool_read_whole(s, s->reply_fd, where, best, &s->reply_buf, &len);
	if (r && r != -EBADMSG)
		return r;
	unlinkat(s->reply_fd, best, 0);
	if (r)
		return -EAGAIN;
	*d = (struct imgnode_delivery){
	        .body = s->reply_buf, .len = len, .attempt = 1};
	return 0;
}

static void unlink_entry(struct spool *s, int dirfd, const char *name,
                         void *arg)
{
	(void)s;
	(void)arg;
	unlinkat(dirfd, name, 0);
}

/* Removes reply/name and the replies in it. */
void spool_reply_remove(struct spool *s, const char *name)
{
	int fd = openat(s->dfd[D_REPLY], name,
	                O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	if (fd >= 0) {
		spool_dir_scan(s, fd, "reply", unlink_entry, NULL);
		close(fd);
	}
	if (unlinkat(s->dfd[D_REPLY], name, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		LOG(s, WARN, "unable to remove reply/%s: %s", name,
		    strerror(errno));
}

/* Removes tmp/PID.* and reply/PID.* left by processes that are gone. */
void spool_gc_entry(struct spool *s, int dirfd, const char *name, void *arg)
{
	const char *p = name;
	uint64_t pid;

	(void)arg;
	if (!spool_field(&p, '.', &pid) || pid == (uint64_t)s->pid ||
	    spool_pid_alive(pid))
		return;
	if (dirfd == s->dfd[D_TMP])
		unlinkat(dirfd, name, 0);
	else if (spool_reply_name_valid(name))
		spool_reply_remove(s, name);
}

int spool_reply_open(void *state, char *name, size_t len)
{
	struct spool *s = state;
	uint64_t rnd;
	int r;

	if (!s->reply[0]) {
		spool_dir_scan(s, s->dfd[D_REPLY], "reply", spool_gc_entry,
		               NULL);
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
		r = spool_watch(s, IMGNODE_QUEUE_REPLY);
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

int spool_reply(void *state, const char *reply_to, const void *body, size_t len)
{
	struct spool *s = state;
	struct msg m = {.body = body, .len = len};
	char id[ID_LEN + 8], dst[NAME_LEN], shown[64];
	int r;

	if (!spool_reply_name_valid(reply_to)) {
		reply_to = reply_to ? reply_to : "(null)";
		spool_sanitize(shown, sizeof(shown), reply_to,
		               strlen(reply_to));
		LOG(s, ERROR, "unable to reply: \"%s\" is not a reply queue",
		    shown);
		return -EINVAL;
	}
	if (spool_check_size(s, "reply", len))
		return -EMSGSIZE;
	spool_make_id(id, sizeof(id));
	snprintf(dst, sizeof(dst), "%s/%s", reply_to, id);
	r = spool_deposit(s, &m, true, D_REPLY, dst);
	if (r == -ENOENT || r == -ENOTDIR) {
		/* nobody waits there any more: dropped, as amqp would */
		LOG(s, DEBUG, "reply queue %s is gone; reply dropped",
		    reply_to);
		return 0;
	}
	return r;
}
