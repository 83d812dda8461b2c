/*
 * amqp: the transport for many nodes, a RabbitMQ broker or cluster spoken to
 * with librabbitmq-c (0.11). Users see the spool contract: at-least-once
 * delivery, a job held by a consumer that died is delivered again, and a job
 * delivered delivery_limit times without an ack is dead-lettered with
 * "delivery limit (N) exceeded".
 *
 * Topology, declared by every process on every connect (idempotent):
 *   queue      durable quorum queue: x-delivery-limit = delivery_limit - 1
 *              (RabbitMQ counts failed returns and dead-letters the message
 *              when they exceed it: N - 1 returns means N deliveries),
 *              x-dead-letter-exchange = dead_queue,
 *              x-dead-letter-strategy = at-least-once (so x-overflow =
 *              reject-publish, which that strategy requires)
 *   dead_queue a fanout exchange and a durable quorum queue, both named
 *              dead_queue, bound together; no limit, no further dead letter
 *   replies    imgnode.reply.HOST.PID.RANDOM: exclusive, auto-delete; the
 *              name is the process's for its life and the queue is declared
 *              again after a reconnect, so a reply sent after the reconnect
 *              still arrives (direct reply-to would change name with the
 *              connection and is tied to the publishing channel)
 * One connection per process, three channels: 1 declares, then publishes
 * jobs and dead-letter copies in confirm mode; 2 consumes (manual acks,
 * basic.qos prefetch) jobs, dead letters and, without acks, replies; 3
 * sends replies (transient, no confirms) and answers ping.
 *
 * Counting: attempt is the x-delivery-count header + 1 (absent on a first
 * delivery), on the dead-letter queue as well. release is basic.reject
 * with requeue, which a quorum queue counts as a delivery (measured on
 * 3.10.8). reject republishes the job to the dead-letter exchange with its
 * reason in the x-imgnode-reason header, waits for the confirm, then acks
 * the job: a crash in between leaves a duplicate, never a loss. The broker's
 * own dead letters carry x-death; reason "delivery_limit" becomes "delivery
 * limit (N) exceeded". A message prefetched but never handed to the caller
 * when the process closes would count as a delivery too (the broker's rule:
 * a worker recycled after [workers] max_jobs would use up an attempt of
 * each job it was sent ahead), so fini gives such jobs back first: it
 * cancels the job consumer (a quorum queue may deliver for a moment after
 * cancel-ok: give_back waits for it to go quiet), publishes a copy of each
 * with the deliveries it had in the x-imgnode-attempts header, waits for
 * the confirm, then acks the original (a crash in between leaves a
 * duplicate, never a loss; the copy goes to the back of the queue). attempt
 * is x-delivery-count + x-imgnode-attempts + 1, and consume dead-letters a
 * copy whose attempt passes delivery_limit itself, since the broker counts
 * the copy's returns afresh.
 *
 * Threads: librabbitmq answers heartbeats only inside its calls, and a
 * worker spends up to [workers] job_timeout in libvips without calling the
 * plugin. So each state runs one I/O thread that owns the socket's read
 * side: it sends heartbeats, reads every frame (confirms, deliveries,
 * closes), and reconnects after a loss, with a backoff of 100 ms doubling to
 * 2 s, trying the URLs in turn. Callers send (publish, ack) and run RPCs
 * under the same mutex, then wait: publish on a condition variable until
 * basic.ack (or its timeout), consume in poll() on a per-queue eventfd. A
 * new connection is opened and set up (topology, reply queue, consumers)
 * without the lock; then, locked, it replaces the old one and the
 * unconfirmed publishes are sent again (so a confirmed job may be delivered
 * twice, never lost). Deliveries carry the connection they came on: settling
 * one from an earlier connection does nothing and returns -ESTALE (the
 * broker delivers it again); acking its tag on the new connection could
 * settle another message. Publishes are mandatory: one that comes back
 * unroutable (someone deleted the queue) fails with -ENOENT and makes the
 * plugin reconnect, which declares the queue again.
 *
 * pollfd is an eventfd, readable while a consumed queue holds a message the
 * caller has not taken, not the socket: the I/O thread reads the socket, so
 * its readiness tells the caller nothing (and librabbitmq may hold whole
 * frames in its buffers with the socket quiet). A process that consumes
 * several queues calls consume on each after a wake-up.
 *
 * Errors: what the broker refuses at init (bad credentials, a missing
 * vhost, a queue declared with other arguments, a TLS name mismatch) fails
 * init with one line naming the URL and -EACCES, -ENOENT, -EINVAL or
 * -EPROTO; an unreachable broker does not (init succeeds, the I/O thread
 * retries, operations return -ENOTCONN meanwhile). Later failures are
 * logged once per change, not once per retry.
 *
 * Limits: a send blocks while the socket buffer is full (librabbitmq 0.11
 * has no send deadline), which only a frozen broker with full buffers
 * causes. A state belongs to the process that called init (no use across
 * fork); its functions may be called from several threads.
 *
 * Files, each calling only those after it: amqp.c (keys, operations,
 * life), io.c (the I/O thread), connect.c (opening a connection, errors,
 * shared helpers); mq.h (what they share).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>

#include <amqp_ssl_socket.h>

#include "mq.h"

#define OFF(f) offsetof(struct amqp_conf, f)
static const struct imgnode_conf_key amqp_keys[] = {
        {"url", IMGNODE_CONF_LIST | IMGNODE_CONF_SECRET,
         "amqp://guest:guest@localhost:5672/%2f", 0, 0, NULL,
         "Broker URLs, amqp://user:pass@host:port/vhost (vhost / is %2f), amqps:// for TLS; several (a cluster) are tried in turn; a long list goes on over indented lines after a comma. They hold the password: imgnode -T prints <redacted>.",
         OFF(url)},
        {"queue", IMGNODE_CONF_STRING, "imgnode.jobs", 0, 0, NULL,
         "The job queue (a durable quorum queue, declared if missing).",
         OFF(queue)},
        {"dead_queue", IMGNODE_CONF_STRING, "imgnode.dead", 0, 0, NULL,
         "The dead-letter exchange and queue (both this name) the reaper consumes.",
         OFF(dead_queue)},
        {"prefetch", IMGNODE_CONF_INT, "1", 1, 65535, NULL,
         "Messages the broker hands a consumer ahead of its acks (1 for workers: a job waits for a free worker, not behind a busy one).",
         OFF(prefetch)},
        {"delivery_limit", IMGNODE_CONF_INT, "5", 1, 1000, NULL,
         "Most deliveries of a job: one that comes back after this many is dead-lettered with \"delivery limit (N) exceeded\" (declared as x-delivery-limit = N - 1; changing it needs the queue deleted or a policy).",
         OFF(delivery_limit)},
        {"heartbeat", IMGNODE_CONF_DURATION, "10s", 1000, 600000, NULL,
         "AMQP heartbeat (whole seconds): a silent broker is given up after about twice this. A thread keeps it going while a job runs.",
         OFF(heartbeat)},
        {"connect_timeout", IMGNODE_CONF_DURATION, "5s", 100, 300000, NULL,
         "Deadline of a TCP (and TLS) connect and of the AMQP handshake, per URL.",
         OFF(connect_timeout)},
        {"rpc_timeout", IMGNODE_CONF_DURATION, "10s", 100, 300000, NULL,
         "Deadline of each broker round trip (declare, consume, ping) and of the confirm of a dead-letter copy.",
         OFF(rpc_timeout)},
        {"max_message", IMGNODE_CONF_SIZE, "64K", 1, MESSAGE_MAX, NULL,
         "Largest message body that publish and reply accept (messages carry keys, never images).",
         OFF(max_message)},
        {"tls_ca", IMGNODE_CONF_PATH, "", 0, 0, NULL,
         "amqps: CA certificates (PEM) to verify the broker with; empty: the system's.",
         OFF(tls_ca)},
        {"tls_cert", IMGNODE_CONF_PATH, "", 0, 0, NULL,
         "amqps: client certificate (PEM), with tls_key; empty: none.",
         OFF(tls_cert)},
        {"tls_key", IMGNODE_CONF_PATH, "", 0, 0, NULL,
         "amqps: the client certificate's private key (PEM).", OFF(tls_key)},
        {"tls_verify", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
         "amqps: verify the broker's certificate and host name (connect to the name in its certificate, e.g. localhost, not 127.0.0.1).",
         OFF(tls_verify)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

/* ---- operations ---- */

static int check_size(struct amqp *s, const char *op, size_t len)
{
	if (len <= (uint64_t)s->conf->max_message)
		return 0;
	LOG(s, ERROR,
	    "unable to %s: message of %zu bytes is larger than max_message (%lld)",
	    op, len, (long long)s->conf->max_message);
	return -EMSGSIZE;
}

static struct pending *pending_new(struct amqp *s, const void *body, size_t len,
                                   const char *reply_to)
{
	struct pending *p = s->h->alloc(sizeof(*p) + len);

	if (!p)
		return NULL;
	memset(p, 0, sizeof(*p));
	memcpy(p->body, body, len);
	p->len = len;
	snprintf(p->reply_to, sizeof(p->reply_to), "%s",
	         reply_to ? reply_to : "");
	snprintf(p->id, sizeof(p->id), "%d.%" PRIu64, (int)getpid(),
	         ++s->msg_count);
	return p;
}

static void pending_unlink(struct amqp *s, struct pending *p)
{
	for (struct pending **pp = &s->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

/*
 * Sends p (now, or once connected) and waits until deadline for its
 * confirm. Locked. Returns 0 when the broker took it, -EIO (nack), -ENOENT
 * (unroutable), -ESTALE (a dead-letter copy lost with the connection),
 * -ETIMEDOUT (sent, not confirmed) or -ENOTCONN (never sent). p is unlinked,
 * not freed.
 */
static int publish_wait(struct amqp *s, struct pending *p, int64_t deadline)
{
	struct timespec ts;
	struct pending **tail = &s->pending;

	while (*tail)
		tail = &(*tail)->next;
	*tail = p;
	if (usable(s))
		mq_send_pending(s, p);
	while (p->state == P_WAIT && now_ms() < deadline) {
		ts.tv_sec = deadline / 1000;
		ts.tv_nsec = (deadline % 1000) * 1000000;
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pending_unlink(s, p);
	switch (p->state) {
	case P_ACKED: return 0;
	case P_NACKED: return -EIO;
	case P_RETURNED: return -ENOENT;
	case P_LOST: return -ESTALE;
	case P_WAIT: break;
	}
	return p->sent ? -ETIMEDOUT : -ENOTCONN;
}

static int amqp_publish_(void *state, const void *body, size_t len,
                         const char *reply_to, int64_t timeout_ms)
{
	struct amqp *s = state;
	struct pending *p;
	int r;

	if (check_size(s, "publish", len))
		return -EMSGSIZE;
	if (reply_to && !mq_reply_name_valid(reply_to)) {
		LOG(s, ERROR, "unable to publish: bad reply queue name");
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	p = pending_new(s, body, len, reply_to);
	if (!p) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}
	r = publish_wait(s, p, now_ms() + (timeout_ms > 0 ? timeout_ms : 0));
	switch (r) {
	case 0: break;
	case -EIO:
		LOG(s, ERROR,
		    "unable to publish to %s: the broker refused the message (basic.nack: queue full or unavailable)",
		    s->conf->queue);
		break;
	case -ENOENT:
		LOG(s, ERROR,
		    "unable to publish to %s: no such queue (message returned unroutable)",
		    s->conf->queue);
		break;
	default:
		LOG(s, WARN, "unable to publish to %s: %s", s->conf->queue,
		    r == -ETIMEDOUT ? "no confirm from the broker in time"
		                    : "not connected to the broker");
	}
	pthread_mutex_unlock(&s->lock);
	s->h->free(p);
	return r;
}

static void hand_out(struct amqp *s, int q, struct held *h,
                     struct imgnode_delivery *d)
{
	*d = (struct imgnode_delivery){
	        .body = h->body,
	        .len = h->len,
	        .attempt = h->attempt,
	        .reply_to = h->reply_to[0] ? h->reply_to : NULL,
	        .reason = q == IMGNODE_QUEUE_DEAD ? h->reason : NULL,
	};
	if (q == IMGNODE_QUEUE_REPLY) {
		d->attempt = 1;
		s->reply_last = h;
		return;
	}
	h->tag = ++s->last_tag;
	d->tag = h->tag;
	h->next = s->held;
	s->held = h;
}

static int dead_letter(struct amqp *s, struct held *h, const char *why);

/*
 * A job given back by a process that closed (x-imgnode-attempts) that has
 * had delivery_limit deliveries: dead-lettered (and freed) here, as the
 * broker would have, since it counts the copy's returns afresh. Locked.
 */
static bool over_limit(struct amqp *s, int q, struct held *h)
{
	char why[64];

	if (q != IMGNODE_QUEUE_JOBS || h->attempt <= s->conf->delivery_limit)
		return false;
	snprintf(why, sizeof(why), "delivery limit (%lld) exceeded",
	         (long long)s->conf->delivery_limit);
	if (h->gen == s->gen && usable(s))
		dead_letter(s, h, why);
	held_free(s, h);
	return true;
}

/*
 * Waits up to timeout_ms (<= 0: not at all) for a message on q. -ETIMEDOUT
 * if none came, -ENOTCONN if none came and the broker is unreachable,
 * -EINTR if a signal interrupted the wait.
 */
static int amqp_consume_(void *state, enum imgnode_queue q,
                         struct imgnode_delivery *d, int64_t timeout_ms)
{
	struct amqp *s = state;
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0), wait;
	struct held *h;
	int r;

	if (q != IMGNODE_QUEUE_JOBS && q != IMGNODE_QUEUE_DEAD &&
	    q != IMGNODE_QUEUE_REPLY)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (q == IMGNODE_QUEUE_REPLY) {
		if (!s->reply[0]) {
			pthread_mutex_unlock(&s->lock);
			LOG(s, ERROR,
			    "unable to consume replies: no reply_open");
			return -EINVAL;
		}
		if (s->reply_last)
			held_free(s, s->reply_last);
		s->reply_last = NULL;
	}
	s->want[q] = true;
	if (usable(s) && !s->subscribed[q])
		mq_subscribe(s, q);
	for (;;) {
		struct pollfd pfd = {.fd = s->q_fd[q], .events = POLLIN};

		if ((h = mq_inbox_pop(s, q))) {
			if (over_limit(s, q, h))
				continue;
			hand_out(s, q, h, d);
			r = 0;
			break;
		}
		wait = deadline - now_ms();
		if (wait <= 0) {
			r = usable(s) ? -ETIMEDOUT : -ENOTCONN;
			break;
		}
		pthread_mutex_unlock(&s->lock);
		r = poll(&pfd, 1, wait > INT_MAX ? INT_MAX : (int)wait);
		r = r < 0 ? -errno : 0;
		pthread_mutex_lock(&s->lock);
		if (r == -EINTR)
			break;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/*
 * Finds and unlinks the held message d names: NULL (logged) if none, or
 * if it came on an earlier connection (then freed and *r = -ESTALE).
 */
static struct held *held_take(struct amqp *s, const struct imgnode_delivery *d,
                              const char *op, int *r)
{
	struct held **pp, *h;

	for (pp = &s->held; d && *pp; pp = &(*pp)->next) {
		if ((*pp)->tag != d->tag)
			continue;
		h = *pp;
		*pp = h->next;
		if (h->gen == s->gen && usable(s))
			return h;
		LOG(s, WARN,
		    "unable to %s delivery %llu: the connection it came on was lost; the broker delivers it again",
		    op, (unsigned long long)d->tag);
		held_free(s, h);
		*r = -ESTALE;
		return NULL;
	}
	LOG(s, ERROR,
	    "unable to %s: delivery tag %llu is not held by this process", op,
	    d ? (unsigned long long)d->tag : 0);
	*r = -EINVAL;
	return NULL;
}

/* Sends basic.ack (requeue < 0) or basic.reject; 0 or -ENOTCONN. */
static int settle(struct amqp *s, struct held *h, int requeue)
{
	int st = requeue < 0
	                 ? amqp_basic_ack(s->conn, CH_CON, h->dtag, 0)
	                 : amqp_basic_reject(s->conn, CH_CON, h->dtag, requeue);

	if (st == AMQP_STATUS_OK)
		return 0;
	mq_broke(s, "unable to settle a delivery: %s", amqp_error_string2(st));
	return -ENOTCONN;
}

static int amqp_ack_(void *state, const struct imgnode_delivery *d)
{
	struct amqp *s = state;
	struct held *h;
	int r;

	pthread_mutex_lock(&s->lock);
	h = held_take(s, d, "ack", &r);
	if (h) {
		r = settle(s, h, -1);
		held_free(s, h);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int amqp_release_(void *state, const struct imgnode_delivery *d)
{
	struct amqp *s = state;
	struct held *h;
	int r;

	pthread_mutex_lock(&s->lock);
	h = held_take(s, d, "release", &r);
	if (h) {
		r = settle(s, h, 1);
		held_free(s, h);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* A job: republished to the dead-letter exchange with its reason, then
 * acked. Locked. */
static int dead_letter(struct amqp *s, struct held *h, const char *why)
{
	struct pending *p = pending_new(s, h->body, h->len, h->reply_to);
	int r;

	if (!p)
		return -ENOMEM;
	p->once = true;
	snprintf(p->reason, sizeof(p->reason), "%s", why);
	r = publish_wait(s, p, now_ms() + s->conf->rpc_timeout);
	s->h->free(p);
	if (r == 0 && (h->gen != s->gen || !usable(s)))
		r = -ESTALE;
	if (r == 0) {
		r = settle(s, h, -1);
		if (!r)
			LOG(s, INFO, "dead-lettered a job of %s: %s",
			    s->conf->queue, why);
		return r;
	}
	s->h->log(r == -ESTALE ? IMGNODE_LOG_WARN : IMGNODE_LOG_ERROR, "amqp",
	          "unable to dead-letter a job of %s to %s: %s", s->conf->queue,
	          s->conf->dead_queue,
	          r == -ESTALE ? "connection lost; the broker delivers it again"
	          : r == -ETIMEDOUT ? "no confirm from the broker in time"
	          : r == -ENOENT    ? "exchange has no queue bound"
	                            : strerror(-r));
	/* given back: a later delivery (or the limit) deals with it */
	if (r != -ESTALE && h->gen == s->gen && usable(s))
		settle(s, h, 1);
	return r;
}

static int amqp_reject_(void *state, const struct imgnode_delivery *d,
                        const char *reason)
{
	struct amqp *s = state;
	char why[REASON_MAX];
	struct held *h;
	int r;

	reason = reason && *reason ? reason : "rejected";
	mq_sanitize(why, sizeof(why), reason, strlen(reason));
	pthread_mutex_lock(&s->lock);
	h = held_take(s, d, "reject", &r);
	if (h && h->q == IMGNODE_QUEUE_JOBS) {
		r = dead_letter(s, h, why);
	} else if (h) {
		/* a dead letter has nowhere further to go */
		r = settle(s, h, 0);
		if (!r)
			LOG(s, WARN, "dropped a dead letter of %s: %s",
			    s->conf->dead_queue, why);
	}
	if (h)
		held_free(s, h);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int amqp_reply_open_(void *state, char *name, size_t len)
{
	struct amqp *s = state;
	char host[41] = "";
	uint64_t rnd;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (!s->reply[0]) {
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			r = -errno;
			LOG(s, ERROR, "unable to name a reply queue: %s",
			    strerror(-r));
			goto out;
		}
		gethostname(host, sizeof(host) - 1);
		for (char *c = host; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') ||
			      (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '-'))
				*c = '-';
		snprintf(s->reply, sizeof(s->reply),
		         REPLY_PREFIX "%s.%d.%016" PRIx64,
		         host[0] ? host : "host", (int)getpid(), rnd);
		if (usable(s)) {
			r = mq_declare_reply(s);
			if (r) {
				LOG(s, ERROR, "%s", s->why);
				s->reply[0] = '\0';
				goto out;
			}
		}
		/* consumed from now on, so replies never wait unread */
		s->want[IMGNODE_QUEUE_REPLY] = true;
		if (usable(s))
			mq_subscribe(s, IMGNODE_QUEUE_REPLY);
	}
	if (strlen(s->reply) >= len)
		r = -ERANGE;
	else
		memcpy(name, s->reply, strlen(s->reply) + 1);
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int amqp_reply_(void *state, const char *reply_to, const void *body,
                       size_t len)
{
	struct amqp *s = state;
	amqp_basic_properties_t props = {
	        ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 1};
	char shown[64];
	int st, r = 0;

	if (!mq_reply_name_valid(reply_to)) {
		reply_to = reply_to ? reply_to : "(null)";
		mq_sanitize(shown, sizeof(shown), reply_to, strlen(reply_to));
		LOG(s, ERROR, "unable to reply: \"%s\" is not a reply queue",
		    shown);
		return -EINVAL;
	}
	if (check_size(s, "reply", len))
		return -EMSGSIZE;
	pthread_mutex_lock(&s->lock);
	if (!usable(s)) {
		r = -ENOTCONN;
		LOG(s, WARN, "unable to reply to %s: not connected", reply_to);
	} else {
		/* unroutable (nobody waits there any more): dropped */
		st = amqp_basic_publish(
		        s->conn, CH_REPLY, amqp_empty_bytes,
		        amqp_cstring_bytes(reply_to), 0, 0, &props,
		        (amqp_bytes_t){.len = len, .bytes = (void *)body});
		if (st != AMQP_STATUS_OK) {
			mq_broke(s, "unable to reply: %s",
			         amqp_error_string2(st));
			r = -ENOTCONN;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int amqp_pollfd_(void *state)
{
	return ((struct amqp *)state)->any_fd;
}

static int amqp_tick_(void *state)
{
	struct amqp *s = state;
	int r;

	pthread_mutex_lock(&s->lock);
	r = usable(s) ? 0 : -ENOTCONN;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* A round trip: a passive declare of the job queue. */
static int amqp_ping_(void *state)
{
	struct amqp *s = state;
	char what[300];
	int r = -ENOTCONN;

	pthread_mutex_lock(&s->lock);
	if (usable(s)) {
		amqp_queue_declare(s->conn, CH_REPLY,
		                   amqp_cstring_bytes(s->conf->queue), 1, 0, 0,
		                   0, amqp_empty_table);
		snprintf(what, sizeof(what), "check queue %s on %s",
		         s->conf->queue, s->urls[s->url_cur].shown);
		r = mq_rpc_check(s, what);
		if (r)
			LOG(s, ERROR, "%s", s->why);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Messages ready in the job or dead-letter queue: a passive declare
 * answers with the count (RabbitMQ counts ready messages, not unacked). */
static int amqp_depth_(void *state, enum imgnode_queue q, uint64_t *n)
{
	struct amqp *s = state;
	amqp_queue_declare_ok_t *ok;
	const char *name;
	char what[300];
	int r = -ENOTCONN;

	*n = 0;
	if (q != IMGNODE_QUEUE_JOBS && q != IMGNODE_QUEUE_DEAD)
		return -EINVAL;
	name = q == IMGNODE_QUEUE_JOBS ? s->conf->queue : s->conf->dead_queue;
	pthread_mutex_lock(&s->lock);
	if (usable(s)) {
		ok = amqp_queue_declare(s->conn, CH_REPLY,
		                        amqp_cstring_bytes(name), 1, 0, 0, 0,
		                        amqp_empty_table);
		snprintf(what, sizeof(what), "count queue %s on %s", name,
		         s->urls[s->url_cur].shown);
		r = mq_rpc_check(s, what);
		if (!r && ok)
			*n = ok->message_count;
		else if (!r)
			r = -EPROTO;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- life ---- */

static void amqp_free(struct amqp *s)
{
	struct pending *p;
	struct held *h;

	for (int q = 0; q < NQ; q++)
		while ((h = mq_inbox_pop(s, q)))
			held_free(s, h);
	while ((h = s->held)) {
		s->held = h->next;
		held_free(s, h);
	}
	while ((p = s->pending)) {
		s->pending = p->next;
		s->h->free(p);
	}
	if (s->reply_last)
		held_free(s, s->reply_last);
	if (s->in.h)
		held_free(s, s->in.h);
	for (size_t i = 0; i < s->nurls; i++)
		s->h->free(s->urls[i].buf);
	s->h->free(s->urls);
	for (int i = 0; i < NQ; i++)
		if (s->q_fd[i] >= 0)
			close(s->q_fd[i]);
	if (s->kick_fd >= 0)
		close(s->kick_fd);
	if (s->any_fd >= 0)
		close(s->any_fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	s->h->free(s);
}

/* Parses the url list into s->urls; -EINVAL (logged) for a bad one. */
static int parse_urls(struct amqp *s)
{
	const struct imgnode_list *l = &s->conf->url;

	if (l->n == 0) {
		LOG(s, ERROR, "no url: set [transport] url");
		return -EINVAL;
	}
	s->urls = s->h->alloc(l->n * sizeof(*s->urls));
	if (!s->urls)
		return -ENOMEM;
	memset(s->urls, 0, l->n * sizeof(*s->urls));
	for (size_t i = 0; i < l->n; i++) {
		struct url *u = &s->urls[i];
		size_t n = strlen(l->items[i]);

		u->buf = s->h->alloc(n + 1);
		if (!u->buf)
			return -ENOMEM;
		s->nurls = i + 1;
		memcpy(u->buf, l->items[i], n + 1);
		if (amqp_parse_url(u->buf, &u->ci) != AMQP_STATUS_OK) {
			LOG(s, ERROR,
			    "url %zu is not amqp://user:pass@host:port/vhost or amqps://...",
			    i + 1);
			return -EINVAL;
		}
		snprintf(u->shown, sizeof(u->shown), "%s://%s@%s%s%s:%d/%s",
		         u->ci.ssl ? "amqps" : "amqp", u->ci.user,
		         strchr(u->ci.host, ':') ? "[" : "", u->ci.host,
		         strchr(u->ci.host, ':') ? "]" : "", u->ci.port,
		         strcmp(u->ci.vhost, "/") == 0 ? "%2f" : u->ci.vhost);
	}
	return 0;
}

static int amqp_init_(const struct imgnode_host *host, const void *conf,
                      void **state)
{
	const struct amqp_conf *c = conf;
	struct amqp *s = host->alloc(sizeof(*s));
	pthread_condattr_t ca;
	char why[WHY_MAX], hn[64] = "";
	struct session ses = {{false}, ""};
	amqp_connection_state_t conn;
	size_t url;
	int r, err;

	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->h = host;
	s->conf = c;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->any_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	for (int i = 0; i < NQ; i++)
		s->q_fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->kick_fd < 0 || s->any_fd < 0 || s->q_fd[0] < 0 ||
	    s->q_fd[1] < 0 || s->q_fd[2] < 0) {
		r = -errno;
		LOG(s, ERROR, "unable to create an eventfd: %s", strerror(-r));
		goto out_free;
	}
	if (strlen(c->queue) == 0 || strlen(c->queue) > 200 ||
	    strlen(c->dead_queue) == 0 || strlen(c->dead_queue) > 200 ||
	    strcmp(c->queue, c->dead_queue) == 0) {
		LOG(s, ERROR,
		    "queue and dead_queue must be two different names of 1 to 200 bytes");
		r = -EINVAL;
		goto out_free;
	}
	if (!!c->tls_cert[0] != !!c->tls_key[0]) {
		LOG(s, ERROR, "tls_cert and tls_key go together");
		r = -EINVAL;
		goto out_free;
	}
	r = parse_urls(s);
	if (r)
		goto out_free;
	gethostname(hn, sizeof(hn) - 1);
	snprintf(s->conn_name, sizeof(s->conn_name), "imgnode %s pid %d", hn,
	         (int)getpid());

	conn = mq_connect_any(s, 0, &ses, &url, &err, why, sizeof(why));
	if (conn) {
		mq_adopt(s, conn, url, &ses);
	} else if (mq_permanent(err)) {
		LOG(s, ERROR, "%s (%s)", why, strerror(-err));
		r = err;
		goto out_free;
	} else {
		LOG(s, WARN, "%s (%s); retrying in the background", why,
		    strerror(-err));
		snprintf(s->last_fail, sizeof(s->last_fail), "%s", why);
		s->failures = 1;
		s->url_next = (url + 1) % s->nurls;
		s->backoff = BACKOFF_MIN;
		s->retry_at = now_ms() + s->backoff;
	}
	r = -pthread_create(&s->thread, NULL, mq_io_main, s);
	if (r) {
		LOG(s, ERROR, "unable to start the I/O thread: %s",
		    strerror(-r));
		goto out_close;
	}
	s->thread_started = true;
	*state = s;
	return 0;

out_close:
	if (s->conn)
		amqp_destroy_connection(s->conn);
out_free:
	amqp_free(s);
	return r;
}

/*
 * Publishes a copy of h (a job sent ahead, never handed out) with the
 * deliveries it had, and acks h once the copy is confirmed; frees h. 0, or
 * -errno when h goes back with the close (counted). Locked.
 */
static int give_back_one(struct amqp *s, struct held *h)
{
	struct pending *p = NULL;
	int r = -ENOTCONN;

	if (h->gen == s->gen && usable(s))
		p = pending_new(s, h->body, h->len, h->reply_to);
	if (p) {
		p->carried = h->attempt - 1;
		r = publish_wait(s, p, now_ms() + s->conf->rpc_timeout);
		s->h->free(p);
	}
	if (!r && (h->gen != s->gen || !usable(s)))
		r = -ESTALE;
	if (!r)
		r = settle(s, h, -1);
	held_free(s, h);
	return r;
}

/*
 * Gives back the jobs the broker sent ahead that were never handed out,
 * without using up a delivery of theirs (the opening comment). The
 * consumer is cancelled first; a quorum queue may still deliver for a
 * moment after cancel-ok (measured on 3.10.8: a job sent when a slot
 * freed just before), so jobs are given back as they come until the queue
 * has been quiet for GIVE_BACK_QUIET_MS (at most GIVE_BACK_MAX_MS in all):
 * one later than that goes back with the close, counted, as before. Locked.
 */
#define GIVE_BACK_QUIET_MS 200
#define GIVE_BACK_MAX_MS 3000
static void give_back(struct amqp *s)
{
	const int q = IMGNODE_QUEUE_JOBS;
	int64_t end = now_ms() + GIVE_BACK_MAX_MS;
	unsigned n = 0, lost = 0;
	struct held *h;

	if (!usable(s) || !s->subscribed[q])
		return;
	amqp_basic_cancel(s->conn, CH_CON, amqp_cstring_bytes(q_name[q]));
	if (mq_rpc_check(s, "cancel the job consumer"))
		return;
	s->subscribed[q] = s->want[q] = false;
	/* the deliveries sent before cancel-ok, which the RPC queued */
	mq_pump(s);
	for (;;) {
		struct pollfd pfd = {.fd = s->q_fd[q], .events = POLLIN};
		int64_t wait = end - now_ms();

		while ((h = mq_inbox_pop(s, q))) {
			if (give_back_one(s, h))
				lost++;
			else
				n++;
		}
		if (!usable(s) || wait <= 0)
			break;
		/* the I/O thread fills the inbox meanwhile */
		pthread_mutex_unlock(&s->lock);
		wait = poll(&pfd, 1,
		            (int)(wait < GIVE_BACK_QUIET_MS
		                          ? wait
		                          : GIVE_BACK_QUIET_MS));
		pthread_mutex_lock(&s->lock);
		if (wait == 0)
			break;
	}
	if (n || lost)
		s->h->log(
		        lost ? IMGNODE_LOG_WARN : IMGNODE_LOG_DEBUG, "amqp",
		        "gave back %u job%s sent ahead to %s unused%s", n,
		        n == 1 ? "" : "s", s->conf->queue,
		        lost ? "; others go back with the connection, counted as a delivery"
		             : "");
}

static int amqp_cancel_(void *state, enum imgnode_queue q)
{
	struct amqp *s = state;

	if (q != IMGNODE_QUEUE_JOBS)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->want[q] = false; /* not consumed again after a reconnect */
	give_back(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Closes the connection: jobs sent ahead are given back unused, what is
 * still held goes back to the broker. */
static void amqp_fini_(void *state)
{
	struct amqp *s = state;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	give_back(s);
	s->stop = true;
	kick(s);
	pthread_mutex_unlock(&s->lock);
	if (s->thread_started)
		pthread_join(s->thread, NULL);
	if (s->conn) {
		if (!s->broken)
			amqp_connection_close(s->conn, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(s->conn);
	}
	for (size_t i = 0; i < s->nurls; i++)
		if (s->urls[i].ci.ssl) {
			/* librabbitmq's OpenSSL setup; refused (and kept) while
			 * another state has a TLS connection */
			amqp_uninitialize_ssl_library();
			break;
		}
	amqp_free(s);
}

static const struct imgnode_transport_ops amqp_ops = {
        .publish = amqp_publish_,
        .consume = amqp_consume_,
        .ack = amqp_ack_,
        .reject = amqp_reject_,
        .release = amqp_release_,
        .reply_open = amqp_reply_open_,
        .reply = amqp_reply_,
        .pollfd = amqp_pollfd_,
        .tick = amqp_tick_,
        .ping = amqp_ping_,
        .depth = amqp_depth_,
        .cancel = amqp_cancel_,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_TRANSPORT),
        .name = "amqp",
        .version = "1.0.0",
        .description = "RabbitMQ (AMQP 0-9-1) quorum queues, via librabbitmq",
        .conf_keys = amqp_keys,
        .conf_size = sizeof(struct amqp_conf),
        .init = amqp_init_,
        .fini = amqp_fini_,
        .ops = &amqp_ops,
};
