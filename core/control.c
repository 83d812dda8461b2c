/*
 * The control socket's server side. Each connection is a small state
 * machine driven by the loop: READING (until a newline, under a timeout),
 * HANDLING (the command's handler owns it until control_reply), WRITING
 * (until the reply line is out, under a timeout), then closed. Every
 * descriptor is non-blocking and close-on-exec; replies are sent with
 * MSG_NOSIGNAL, so a client that went away costs nothing but the reply.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

/* More clients than this at once are turned away (the socket is 0600). */
#define CONTROL_MAX_CONNS 32
/* After EMFILE and friends, accepting pauses this long. */
#define ACCEPT_PAUSE_MS 1000

enum conn_state { CONN_READING, CONN_HANDLING, CONN_WRITING };

struct control_conn {
	struct control *ctl; /* NULL once orphaned by control_close */
	int fd;
	enum conn_state state;
	bool watched;
	char *buf; /* the request as read, then the reply line */
	size_t len, cap, off;
	struct loop_timer *timer;
	pid_t pid;
	uid_t uid;
	struct control_conn *prev, *next;
};

struct control {
	struct loop *loop;
	char *path;
	int fd;
	int lock_fd;
	const struct control_cmd *cmds;
	void *arg;
	int64_t timeout_ms;
	struct loop_timer *accept_timer;
	struct control_conn *conns;
	size_t nconns;
};

static const char *const state_names[] = {"reading", "handling", "writing"};

static const char busy[] =
        "{\"ok\":false,\"error\":\"too many control clients at once\"}\n";

/* Closes and frees c; its pointer is dead afterwards. */
static void conn_free(struct control_conn *c)
{
	struct control *ctl = c->ctl;

	if (ctl) {
		if (c->timer)
			loop_timer_cancel(ctl->loop, c->timer);
		if (c->watched)
			loop_del_fd(ctl->loop, c->fd);
		if (c->prev)
			c->prev->next = c->next;
		else
			ctl->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		ctl->nconns--;
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

static void on_conn_timeout(struct loop *loop, void *arg)
{
	struct control_conn *c = arg;

	(void)loop;
	c->timer = NULL; /* the loop frees a timer that fired */
	log_warn("control", "client timed out while %s, closing pid=%d",
	         state_names[c->state], (int)c->pid);
	conn_free(c);
}

static void conn_arm_timer(struct control_conn *c)
{
	struct control *ctl = c->ctl;

	if (c->timer)
		loop_timer_cancel(ctl->loop, c->timer);
	c->timer =
	        loop_timer_add(ctl->loop, ctl->timeout_ms, on_conn_timeout, c);
}

static void conn_unwatch(struct control_conn *c)
{
	if (c->timer) {
		loop_timer_cancel(c->ctl->loop, c->timer);
		c->timer = NULL;
	}
	if (c->watched) {
		loop_del_fd(c->ctl->loop, c->fd);
		c->watched = false;
	}
}

static void on_conn_event(struct loop *loop, int fd, short revents, void *arg);

/* Watches c for events (replacing what it watched); 0 or -errno. */
static int conn_watch(struct control_conn *c, short events)
{
	int ret;

	if (c->watched)
		return loop_mod_fd(c->ctl->loop, c->fd, events);
	ret = loop_add_fd(c->ctl->loop, c->fd, events, on_conn_event, c);
	if (ret == 0)
		c->watched = true;
	return ret;
}

/*
 * Sends what is left of the reply. Returns true when c is finished with
 * (all sent, or the client is gone) and false when it would block.
 */
static bool conn_send(struct control_conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return false;
			log_debug(
			        "control",
			        "client went away before its reply: %s pid=%d",
			        strerror(errno), (int)c->pid);
			return true;
		}
		c->off += (size_t)n;
	}
	return true;
}

static void conn_flush(struct control_conn *c)
{
	int ret;

	if (conn_send(c)) {
		conn_free(c);
		return;
	}
	ret = conn_watch(c, POLLOUT);
	if (ret) {
		log_error("control", "unable to watch a client: %s",
		          strerror(-ret));
		conn_free(c);
	}
}

/* Makes "text\n" the reply; takes text (from json_dumps) or NULL. */
static int conn_set_reply(struct control_conn *c, char *text)
{
	static const char fallback[] =
	        "{\"ok\":false,\"error\":\"reply could not be encoded\"}";
	size_t len = text ? strlen(text) : sizeof(fallback) - 1;
	char *line = malloc(len + 1);

	if (!line) {
		free(text);
		return -ENOMEM;
	}
	memcpy(line, text ? text : fallback, len);
	line[len] = '\n';
	free(text);
	free(c->buf);
	c->buf = line;
	c->len = len + 1;
	c->cap = len + 1;
	c->off = 0;
	return 0;
}

void control_reply(struct control_conn *conn, json_t *reply)
{
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

	json_decref(reply);
	if (!conn->ctl) {
		/* orphaned by control_close: the client had its answer */
		free(text);
		conn_free(conn);
		return;
	}
	if (conn->state != CONN_HANDLING) {
		log_error(
		        "control",
		        "control_reply on a request not being handled (bug) pid=%d",
		        (int)conn->pid);
		free(text);
		return;
	}
	if (conn_set_reply(conn, text)) {
		log_error("control", "unable to reply: %s", strerror(ENOMEM));
		conn_free(conn);
		return;
	}
	conn->state = CONN_WRITING;
	conn_arm_timer(conn);
	conn_flush(conn);
}

static json_t *error_reply(const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

void control_reply_error(struct control_conn *conn, const char *fmt, ...)
{
	va_list ap;
	json_t *reply;

	va_start(ap, fmt);
	reply = error_reply(fmt, ap);
	va_end(ap);
	control_reply(conn, reply);
}

void control_reply_ok(struct control_conn *conn)
{
	control_reply(conn, json_pack("{s:b}", "ok", 1));
}

/* "status, restart, stop, reload": the commands of ctl, for errors. */
static void list_cmds(const struct control *ctl, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const struct control_cmd *cmd = ctl->cmds; cmd->name; cmd++) {
		int n = snprintf(buf + used, len - used, "%s%s",
		                 used ? ", " : "", cmd->name);

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* The first linelen bytes of c->buf are a request: parse and dispatch. */
static void conn_dispatch(struct control_conn *c, size_t linelen)
{
	struct control *ctl = c->ctl;
	const struct control_cmd *cmd;
	json_error_t jerr;
	const char *name;
	char known[256];
	json_t *req;

	c->state = CONN_HANDLING;
	conn_unwatch(c);
	req = json_loadb(c->buf, linelen, JSON_REJECT_DUPLICATES, &jerr);
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
	if (!req) {
		control_reply_error(c, "invalid JSON request: %s (column %d)",
		                    jerr.text, jerr.column);
		return;
	}
	if (!json_is_object(req)) {
		json_decref(req);
		control_reply_error(c, "the request is not a JSON object");
		return;
	}
	name = json_string_value(json_object_get(req, "cmd"));
	if (!name) {
		json_decref(req);
		control_reply_error(c, "the request has no \"cmd\" string");
		return;
	}
	for (cmd = ctl->cmds; cmd->name; cmd++)
		if (strcmp(cmd->name, name) == 0)
			break;
	if (!cmd->name) {
		list_cmds(ctl, known, sizeof(known));
		control_reply_error(c, "unknown command \"%s\" (known: %s)",
		                    name, known);
		json_decref(req);
		return;
	}
	log_debug("control", "request cmd=%s pid=%d uid=%u", name, (int)c->pid,
	          (unsigned)c->uid);
	/* c may be freed by the handler: touch only locals after this */
	cmd->fn(c, req, ctl->arg);
	json_decref(req);
}

static void conn_too_large(struct control_conn *c)
{
	log_warn("control", "request over %d bytes, refused pid=%d",
	         CONTROL_MAX_REQUEST, (int)c->pid);
	c->state = CONN_HANDLING;
	conn_unwatch(c);
	control_reply_error(c, "request too large (over %d bytes)",
	                    CONTROL_MAX_REQUEST);
}

/* Reads what has arrived; dispatches on a newline or end of file. */
static void conn_read(struct control_conn *c)
{
	for (;;) {
		ssize_t n;
		char *nl;

		if (c->len == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 1024;
			char *buf;

			if (c->cap > CONTROL_MAX_REQUEST) {
				conn_too_large(c);
				return;
			}
			if (cap > CONTROL_MAX_REQUEST + 1)
				cap = CONTROL_MAX_REQUEST + 1;
			buf = realloc(c->buf, cap);
			if (!buf) {
				log_error("control",
				          "unable to read a request: %s",
				          strerror(ENOMEM));
				conn_free(c);
				return;
			}
			c->buf = buf;
			c->cap = cap;
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_debug("control", "client read failed: %s",
				          strerror(errno));
				conn_free(c);
			}
			return;
		}
		if (n == 0) {
			/* A request without a newline ends at end of file; an
			 * empty one is a liveness probe (see control_open). */
			if (c->len == 0)
				conn_free(c);
			else
				conn_dispatch(c, c->len);
			return;
		}
		nl = memchr(c->buf + c->len, '\n', (size_t)n);
		if (nl) {
			conn_dispatch(c, (size_t)(nl - c->buf));
			return;
		}
		c->len += (size_t)n;
	}
}

static void on_conn_event(struct loop *loop, int fd, short revents, void *arg)
{
	struct control_conn *c = arg;

	(void)loop;
	(void)fd;
	(void)revents;
	if (c->state == CONN_READING)
		conn_read(c);
	else if (c->state == CONN_WRITING)
		conn_flush(c);
}

static void conn_new(struct control *ctl, int fd)
{
	struct control_conn *c = calloc(1, sizeof(*c));
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	int ret;

	if (!c) {
		log_error("control", "unable to accept a client: %s",
		          strerror(ENOMEM));
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->fd = fd;
	c->pid = -1;
	c->uid = (uid_t)-1;
	c->next = ctl->conns;
	if (ctl->conns)
		ctl->conns->prev = c;
	ctl->conns = c;
	ctl->nconns++;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == 0) {
		c->pid = cred.pid;
		c->uid = cred.uid;
	}
	/* The 0600 mode lets only our user and root in; this says so again,
	 * should the mode ever be loosened. */
	if (c->uid != 0 && c->uid != geteuid()) {
		log_warn("control", "client refused: uid=%u pid=%d",
		         (unsigned)c->uid, (int)c->pid);
		c->state = CONN_HANDLING;
		control_reply_error(c, "permission denied for uid %u",
		                    (unsigned)c->uid);
		return;
	}
	ret = conn_watch(c, POLLIN);
	if (ret) {
		log_error("control", "unable to watch a client: %s",
		          strerror(-ret));
		conn_free(c);
		return;
	}
	conn_arm_timer(c);
}

static void on_accept(struct loop *loop, int fd, short revents, void *arg);

static void on_accept_resume(struct loop *loop, void *arg)
{
	struct control *ctl = arg;

	ctl->accept_timer = NULL;
	loop_mod_fd(loop, ctl->fd, POLLIN);
}

static void on_accept(struct loop *loop, int fd, short revents, void *arg)
{
	struct control *ctl = arg;

	(void)revents;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			log_warn(
			        "control",
			        "unable to accept a client, pausing for %d ms: %s",
			        ACCEPT_PAUSE_MS, strerror(errno));
			loop_mod_fd(loop, fd, 0);
			ctl->accept_timer = loop_timer_add(
			        loop, ACCEPT_PAUSE_MS, on_accept_resume, ctl);
			if (!ctl->accept_timer)
				loop_mod_fd(loop, fd, POLLIN);
			return;
		}
		if (ctl->nconns >= CONTROL_MAX_CONNS) {
			log_warn("control",
			         "over %d clients at once, closing one",
			         CONTROL_MAX_CONNS);
			(void)send(cfd, busy, sizeof(busy) - 1,
			           MSG_NOSIGNAL | MSG_DONTWAIT);
			close(cfd);
			continue;
		}
		conn_new(ctl, cfd);
	}
}

/*
 * Makes path free for a new socket: nothing there, or a socket nobody
 * answers on (a node that died), which is removed. 0 or -errno, with the
 * reason in err.
 */
static int clear_stale(const char *path, const struct sockaddr_un *addr,
                       char *err, size_t errlen)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		snprintf(err, errlen, "unable to check %s: %s", path,
		         strerror(errno));
		return ret;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(
		        err, errlen,
		        "%s exists and is not a socket; refusing to replace it",
		        path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "unable to create a socket: %s",
		         strerror(errno));
		return ret;
	}
	ret = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	ret = ret == 0 ? 0 : -errno;
	close(fd);
	if (ret == 0 || ret == -EAGAIN) {
		/* EAGAIN: alive, with a full backlog */
		snprintf(err, errlen, "another imgnode is running on %s", path);
		return -EADDRINUSE;
	}
	if (ret != -ECONNREFUSED) {
		snprintf(err, errlen, "unable to check %s: %s", path,
		         strerror(-ret));
		return ret;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		ret = -errno;
		snprintf(err, errlen,
		         "unable to remove the stale socket %s: %s", path,
		         strerror(errno));
		return ret;
	}
	log_info("control", "removed a stale control socket path=%s", path);
	return 0;
}

/* Takes PATH.lock; the fd, or -1 with the reason in err. */
static int take_lock(const char *path, char *err, size_t errlen)
{
	char lock[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	int fd;

	snprintf(lock, sizeof(lock), "%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "unable to open %s: %s", lock,
		         strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			snprintf(
			        err, errlen,
			        "another imgnode is running on %s (%s is locked)",
			        path, lock);
		else
			snprintf(err, errlen, "unable to lock %s: %s", lock,
			         strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct control *control_open(struct loop *loop, const char *path,
                             const struct control_cmd *cmds, void *arg,
                             char *err, size_t errlen)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	struct control *ctl;
	mode_t mask;
	int ret;

	if (len == 0 || len >= sizeof(addr.sun_path)) {
		snprintf(err, errlen,
		         "control socket path must be 1 to %zu bytes long: %s",
		         sizeof(addr.sun_path) - 1, path);
		return NULL;
	}
	memcpy(addr.sun_path, path, len + 1);
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return NULL;
	}
	ctl->loop = loop;
	ctl->cmds = cmds;
	ctl->arg = arg;
	ctl->timeout_ms = CONTROL_TIMEOUT_MS;
	ctl->path = strdup(path);
	if (!ctl->path) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto out_free_ctl;
	}
	ctl->lock_fd = take_lock(path, err, errlen);
	if (ctl->lock_fd < 0)
		goto out_free_path;
	if (clear_stale(path, &addr, err, errlen))
		goto out_close_lock;
	ctl->fd =
	        socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0) {
		snprintf(err, errlen, "unable to create a socket: %s",
		         strerror(errno));
		goto out_close_lock;
	}
	/* 0600 from the start: the supervisor is single-threaded, so the
	 * umask change is seen by this bind only. */
	mask = umask(0177);
	ret = bind(ctl->fd, (const struct sockaddr *)&addr, sizeof(addr));
	umask(mask);
	if (ret < 0) {
		snprintf(err, errlen, "unable to bind %s: %s", path,
		         strerror(errno));
		goto out_close_fd;
	}
	if (listen(ctl->fd, 64) < 0) {
		snprintf(err, errlen, "unable to listen on %s: %s", path,
		         strerror(errno));
		goto out_unlink;
	}
	ret = loop_add_fd(loop, ctl->fd, POLLIN, on_accept, ctl);
	if (ret) {
		snprintf(err, errlen, "unable to watch %s: %s", path,
		         strerror(-ret));
		goto out_unlink;
	}
	return ctl;

out_unlink:
	unlink(path);
out_close_fd:
	close(ctl->fd);
out_close_lock:
	close(ctl->lock_fd);
out_free_path:
	free(ctl->path);
out_free_ctl:
	free(ctl);
	return NULL;
}

void control_set_timeout(struct control *ctl, int64_t ms)
{
	ctl->timeout_ms = ms;
}

void control_close(struct control *ctl)
{
	static const char stopping[] =
	        "{\"ok\":false,\"error\":\"imgnode is stopping\"}\n";
	struct control_conn *c, *next;

	if (!ctl)
		return;
	for (c = ctl->conns; c; c = next) {
		next = c->next;
		switch (c->state) {
		case CONN_READING: conn_free(c); break;
		case CONN_WRITING:
			conn_send(c);
			conn_free(c);
			break;
		case CONN_HANDLING:
			/* The handler still holds c: answer for it, and leave
			 * c for its control_reply to free. */
			(void)send(c->fd, stopping, sizeof(stopping) - 1,
			           MSG_NOSIGNAL | MSG_DONTWAIT);
			close(c->fd);
			c->fd = -1;
			c->ctl = NULL;
			c->prev = c->next = NULL;
			break;
		}
	}
	if (ctl->accept_timer)
		loop_timer_cancel(ctl->loop, ctl->accept_timer);
	loop_del_fd(ctl->loop, ctl->fd);
	close(ctl->fd);
	unlink(ctl->path);
	close(ctl->lock_fd); /* after the unlink: the next node finds none */
	free(ctl->path);
	free(ctl);
}
