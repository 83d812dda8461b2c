/*
 * The ingress's connections, from accept to close: the list of those open
 * (libmicrohttpd's socket context), and the deadline of [ingress]
 * request_deadline by which each request must have arrived whole, which
 * the main thread enforces here (libmicrohttpd has only an idle timeout);
 * and libmicrohttpd's own log lines, at most a few per interval, so that a
 * flood of connections refused at the limits is not a flood of lines.
 *
 * The list is under conns (ingress.h). Nothing here calls another file of
 * the ingress.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../base.h"
#include "../log.h"
#include "ingress.h"
#include "node_conf.h"

#define COMPONENT "ingress"
#define LOG_INTERVAL_MS 10000 /* lines about refused connections: */
#define LOG_BURST 5 /* ... at most this many per interval */

void ingress_conn_answering(struct request *r)
{
	if (!r->cn)
		return;
	pthread_mutex_lock(&r->in->conns);
	r->cn->since_ms = -1;
	pthread_mutex_unlock(&r->in->conns);
}

void ingress_conn_next_request(struct request *r)
{
	if (!r->cn)
		return;
	pthread_mutex_lock(&r->in->conns);
	r->cn->since_ms = now_ms();
	pthread_mutex_unlock(&r->in->conns);
}

/* libmicrohttpd's notice of a connection accepted or closed (it calls
 * CLOSED before it closes the socket, so fd stays ours to shut down). */
void ingress_conn_notify(void *cls, struct MHD_Connection *conn,
                         void **socket_ctx,
                         enum MHD_ConnectionNotificationCode code)
{
	struct ingress *in = cls;
	struct ingress_conn *cn = *socket_ctx;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(
		        conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		cn = info ? calloc(1, sizeof(*cn)) : NULL;
		if (!cn)
			return; /* not swept; the idle timeout still applies */
		cn->fd = info->connect_fd;
		cn->since_ms = now_ms();
		pthread_mutex_lock(&in->conns);
		cn->next = in->conn_list;
		if (in->conn_list)
			in->conn_list->prev = cn;
		in->conn_list = cn;
		in->nconns++;
		pthread_mutex_unlock(&in->conns);
		*socket_ctx = cn;
		return;
	}
	if (!cn)
		return;
	pthread_mutex_lock(&in->conns);
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		in->conn_list = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	in->nconns--;
	pthread_mutex_unlock(&in->conns);
	free(cn);
	*socket_ctx = NULL;
}

/*
 * libmicrohttpd's lines: at most LOG_BURST per LOG_INTERVAL_MS, so that a
 * flood of connections refused at the limits is not a flood of lines; one
 * line counts those left out once their interval is over.
 */
static struct {
	pthread_mutex_t lock;
	int64_t window_ms; /* the interval began */
	unsigned long shown, dropped; /* in it */
} mhd_quota = {PTHREAD_MUTEX_INITIALIZER, -LOG_INTERVAL_MS, 0, 0};

/*
 * Counts a line at now when take is set, and logs how many the last
 * interval left out, if it is over. True if the line may be shown.
 */
static bool mhd_quota_take(int64_t now, bool take)
{
	unsigned long left_out = 0;
	bool show = false;

	pthread_mutex_lock(&mhd_quota.lock);
	if (now - mhd_quota.window_ms >= LOG_INTERVAL_MS) {
		left_out = mhd_quota.dropped;
		mhd_quota.window_ms = now;
		mhd_quota.shown = mhd_quota.dropped = 0;
	}
	if (take) {
		show = mhd_quota.shown < LOG_BURST;
		if (show)
			mhd_quota.shown++;
		else
			mhd_quota.dropped++;
	}
	pthread_mutex_unlock(&mhd_quota.lock);
	if (left_out)
		log_warn(
		        COMPONENT,
		        "libmicrohttpd: messages=%lu not shown (at most %d every %ds)",
		        left_out, LOG_BURST, LOG_INTERVAL_MS / 1000);
	return show;
}

/* libmicrohttpd's own messages, one log line each, within mhd_quota. */
void ingress_conn_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	if (!mhd_quota_take(now_ms(), true))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_warn(COMPONENT, "libmicrohttpd: %s", line);
}

void ingress_conn_sweep(struct ingress *in, int64_t now)
{
	int64_t deadline = in->conf->app->ingress.request_deadline;
	uint64_t n;

	pthread_mutex_lock(&in->conns);
	for (struct ingress_conn *cn = in->conn_list; cn; cn = cn->next) {
		if (cn->cut || cn->since_ms < 0 ||
		    now - cn->since_ms <= deadline)
			continue;
		/* the connection's thread sees the end of its input and
		 * closes it */
		shutdown(cn->fd, SHUT_RDWR);
		cn->cut = true;
		in->cut_since_log++;
		in->cut_total++;
	}
	n = in->cut_since_log;
	if (n && now - in->cut_logged_ms >= LOG_INTERVAL_MS) {
		in->cut_since_log = 0;
		in->cut_logged_ms = now;
	} else {
		n = 0;
	}
	pthread_mutex_unlock(&in->conns);
	mhd_quota_take(now, false);
	if (n)
		log_warn(
		        COMPONENT,
		        "closed connections=%llu whose request had not arrived within request_deadline (%llds); at most one such line every %ds",
		        (unsigned long long)n, (long long)(deadline / 1000),
		        LOG_INTERVAL_MS / 1000);
}
