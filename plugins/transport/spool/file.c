/*
 * The spool queue's names and files: message IDs and queue names made and
 * parsed, message files written (through tmp/, renamed into place), read and
 * split into header and body, directories scanned and watched with inotify.
 * Everything else in the plugin moves messages with these.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

const char *const spool_dir_name[D_N] = {"tmp",  "ready",        "claimed",
                                         "dead", "dead.claimed", "reply"};

static uint32_t seq; /* names made by this process */

bool spool_pid_alive(uint64_t pid)
{
	return pid > 0 && pid <= INT_MAX &&
	       (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

void spool_make_id(char *id, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, len, "%020" PRIu64 ".%010d.%010" PRIu32,
	         (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
	         (int)getpid(), ++seq);
}

/* Reads a decimal number at *p that ends with stop; moves *p past stop. */
bool spool_field(const char **p, char stop, uint64_t *v)
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
bool spool_name_parse(const char *s, bool held, struct mname *mn)
{
	const char *p = s;
	uint64_t v;

	if (!spool_field(&p, '.', &v) || !spool_field(&p, '.', &v) ||
	    !spool_field(&p, '.', &v) || p != s + ID_LEN + 1)
		return false;
	memcpy(mn->id, s, ID_LEN);
	mn->id[ID_LEN] = '\0';
	if (!held)
		return spool_field(&p, '\0', &mn->n) && mn->n < 1000000;
	return spool_field(&p, '.', &mn->n) && mn->n < 1000000 &&
	       spool_field(&p, '.', &mn->pid) && spool_field(&p, '\0', &mn->ms);
}

/* True for a reply queue name as reply_open makes them: "PID.HEX16". */
bool spool_reply_name_valid(const char *s)
{
	uint64_t pid;

	if (!s || !spool_field(&s, '.', &pid) || pid == 0 || pid > INT_MAX)
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
void spool_sanitize(char *dst, size_t len, const char *src, size_t n)
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
int spool_dir_scan(struct spool *s, int dirfd, const char *where, entry_fn *fn,
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

int spool_fsync_dir(struct spool *s, int d)
{
	int r;

	if (!s->conf->fsync || fsync(s->dfd[d]) == 0)
		return 0;
	r = -errno;
	LOG(s, ERROR, "unable to fsync %s/: %s", spool_dir_name[d],
	    strerror(-r));
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
int spool_deposit(struct spool *s, const struct msg *m, bool raw, int d,
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
		return raw ? 0 : spool_fsync_dir(s, d);
	r = -errno;
	if (!raw || (r != -ENOENT && r != -ENOTDIR))
		LOG(s, ERROR, "unable to move tmp/%s to %s/%s: %s", tmp,
		    spool_dir_name[d], name, strerror(-r));
out_unlink:
	unlinkat(s->dfd[D_TMP], tmp, 0);
	return r;
}

/* Refuses a body larger than max_message (logged as op). */
int spool_check_size(struct spool *s, const char *op, size_t len)
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
int spool_read_whole(struct spool *s, int dirfd, const char *where,
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
int spool_msg_parse(const char *buf, size_t len, struct msg *m)
{
	const char *p = buf + strlen(MAGIC), *end = buf + len, *nl;

	memset(m, 0, sizeof(*m));
	if (len < strlen(MAGIC) || memcmp(buf, MAGIC, strlen(MAGIC)) != 0)
		return -EBADMSG;
	for (; (nl = memchr(p, '\n', (size_t)(end - p))) != p; p = nl + 1) {
		if (!nl)
			return -EBADMSG;
		if (strncmp(p, "reply-to: ", 10) == 0)
			spool_sanitize(m->reply_to, sizeof(m->reply_to), p + 10,
			               (size_t)(nl - p - 10));
		else if (strncmp(p, "reason: ", 8) == 0)
			spool_sanitize(m->reason, sizeof(m->reason), p + 8,
			               (size_t)(nl - p - 8));
	}
	if (m->reply_to[0] && !spool_reply_name_valid(m->reply_to))
		return -EBADMSG;
	m->body = nl + 1;
	m->len = (size_t)(end - m->body);
	return 0;
}

/* Makes the inotify fd watch what consume(q) waits for. */
int spool_watch(struct spool *s, int q)
{
	char path[PATH_MAX];
	int r;

	if (s->wd[q] >= 0)
		return 0;
	if (q == IMGNODE_QUEUE_REPLY)
		snprintf(path, sizeof(path), "%s/reply/%s", s->root, s->reply);
	else
		snprintf(path, sizeof(path), "%s/%s", s->root,
		         spool_dir_name[q_src(q)]);
	s->wd[q] = inotify_add_watch(s->ifd, path, IN_MOVED_TO | IN_ONLYDIR);
	if (s->wd[q] >= 0)
		return 0;
	r = -errno;
	LOG(s, ERROR, "unable to watch %s: %s", path, strerror(-r));
	return r;
}
