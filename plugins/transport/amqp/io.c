/*
 * The amqp plugin's I/O thread. librabbitmq answers heartbeats only inside
 * its calls, so this thread owns the socket's read side for the life of
 * the state: it sends heartbeats, reads every frame (confirms, deliveries
 * in pieces, closes from the broker) and dispatches them into the state,
 * and after a loss tears the connection down and opens another with
 * backoff. Callers send and run RPCs under the same lock; whatever frames
 * an RPC reads for other channels the library queues, and this thread runs
 * them next (rpc_check kicks it).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mq.h"

/* Marks the connection broken (the first cause is kept) and wakes the I/O
 * thread to tear it down. Called with the lock held. */
void mq_broke(struct amqp *s, const char *fmt, ...)
{
	va_list ap;

	if (s->broken)
		return;
	s->broken = true;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	kick(s);
}

/* After an RPC or a failed send in a caller's thread: a server close is
 * recorded as the cause, and the I/O thread runs frames the RPC queued. */
int mq_rpc_check(struct amqp *s, const char *what)
{
	char why[WHY_MAX];
	int r = mq_rpc_error(s->conn, amqp_get_rpc_reply(s->conn), why,
	                     sizeof(why));

	if (r)
		mq_broke(s, "unable to %s: %s", what, why);
	kick(s);
	return r;
}

static void inbox_push(struct amqp *s, int q, struct held *h)
{
	struct inbox *b = &s->inbox[q];

	h->next = NULL;
	if (b->tail)
		b->tail->next = h;
	else
		b->head = h;
	b->tail = h;
	if (b->n++ == 0)
		fd_level(s->q_fd[q], true);
	if (s->inbox_total++ == 0)
		fd_level(s->any_fd, true);
}

struct held *mq_inbox_pop(struct amqp *s, int q)
{
	struct inbox *b = &s->inbox[q];
	struct held *h = b->head;

	if (!h)
		return NULL;
	b->head = h->next;
	if (!b->head)
		b->tail = NULL;
	if (--b->n == 0)
		fd_level(s->q_fd[q], false);
	if (--s->inbox_total == 0)
		fd_level(s->any_fd, false);
	return h;
}

static const amqp_field_value_t *table_get(const amqp_table_t *t,
                                           const char *key)
{
	size_t n = strlen(key);

	for (int i = 0; t && i < t->num_entries; i++)
		if (t->entries[i].key.len == n &&
		    memcmp(t->entries[i].key.bytes, key, n) == 0)
			return &t->entries[i].value;
	return NULL;
}

static bool field_int(const amqp_field_value_t *v, int64_t *out)
{
	if (!v)
		return false;
	switch (v->kind) {
	case AMQP_FIELD_KIND_I8: *out = v->value.i8; return true;
	case AMQP_FIELD_KIND_U8: *out = v->value.u8; return true;
	case AMQP_FIELD_KIND_I16: *out = v->value.i16; return true;
	case AMQP_FIELD_KIND_U16: *out = v->value.u16; return true;
	case AMQP_FIELD_KIND_I32: *out = v->value.i32; return true;
	case AMQP_FIELD_KIND_U32: *out = v->value.u32; return true;
	case AMQP_FIELD_KIND_I64: *out = v->value.i64; return true;
	case AMQP_FIELD_KIND_U64:
		*out = v->value.u64 > INT64_MAX ? INT64_MAX
		                                : (int64_t)v->value.u64;
		return true;
	default: return false;
	}
}

static bool field_str(const amqp_field_value_t *v, char *dst, size_t len)
{
	if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 &&
	           v->kind != AMQP_FIELD_KIND_BYTES))
		return false;
	mq_sanitize(dst, len, v->value.bytes.bytes, v->value.bytes.len);
	return true;
}

/* The dead-letter reason of a message with headers t, into h->reason. */
static void dead_reason(struct amqp *s, const amqp_table_t *t, struct held *h)
{
	const amqp_field_value_t *death = table_get(t, "x-death");
	char why[64] = "";

	if (field_str(table_get(t, "x-imgnode-reason"), h->reason,
	              sizeof(h->reason)))
		return;
	if (death && death->kind == AMQP_FIELD_KIND_ARRAY &&
	    death->value.array.num_entries > 0 &&
	    death->value.array.entries[0].kind == AMQP_FIELD_KIND_TABLE)
		field_str(table_get(&death->value.array.entries[0].value.table,
		                    "reason"),
		          why, sizeof(why));
	if (!why[0])
		field_str(table_get(t, "x-first-death-reason"), why,
		          sizeof(why));
	if (strcmp(why, "delivery_limit") == 0)
		snprintf(h->reason, sizeof(h->reason),
		         "delivery limit (%d) exceeded",
		         (int)s->conf->delivery_limit);
	else if (strcmp(why, "maxlen") == 0)
		snprintf(h->reason, sizeof(h->reason), "queue length limit");
	else
		snprintf(h->reason, sizeof(h->reason), "%s",
		         why[0] ? why : "unknown");
}

/* The content header of the message being received. */
static void on_header(struct amqp *s, const amqp_frame_t *f)
{
	const amqp_basic_properties_t *p = f->payload.properties.decoded;
	const amqp_table_t *t =
	        p && (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
	struct incoming *in = &s->in;
	struct held *h;
	int64_t count = 0, carried = 0;
	char id[40];

	in->size = f->payload.properties.body_size;
	in->got = 0;
	if (in->kind == 2) {
		/* a publish the broker could not route: fail its publisher,
		 * and declare the topology again (someone deleted a queue) */
		if (p && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
			mq_sanitize(id, sizeof(id), p->message_id.bytes,
			            p->message_id.len);
			for (struct pending *q = s->pending; q; q = q->next)
				if (strcmp(q->id, id) == 0)
					q->state = P_RETURNED;
		}
		mq_broke(
		        s,
		        "a message came back unroutable: queue %s or %s is missing",
		        s->conf->queue, s->conf->dead_queue);
		return;
	}
	if (in->size > MESSAGE_MAX) {
		/* counted, not kept: a job goes to the dead-letter queue */
		LOG(s, ERROR,
		    "%s a message of %" PRIu64 " bytes from %s: larger than %d",
		    in->q == IMGNODE_QUEUE_JOBS ? "dead-lettering" : "dropping",
		    in->size, mq_queue_name(s, in->q, s->reply), MESSAGE_MAX);
		if (in->q != IMGNODE_QUEUE_REPLY)
			amqp_basic_reject(s->conn, CH_CON, in->dtag, 0);
		return;
	}
	h = s->h->alloc(sizeof(*h) + in->size + 1);
	if (!h) {
		mq_broke(s, "out of memory for a message of %" PRIu64 " bytes",
		         in->size);
		return;
	}
	memset(h, 0, sizeof(*h));
	h->q = in->q;
	h->dtag = in->dtag;
	h->gen = s->gen;
	h->len = in->size;
	if (p && (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)) {
		mq_sanitize(h->reply_to, sizeof(h->reply_to), p->reply_to.bytes,
		            p->reply_to.len);
		if (!mq_reply_name_valid(h->reply_to))
			h->reply_to[0] = '\0';
	}
	field_int(table_get(t, "x-delivery-count"), &count);
	/* a copy given back unused by a process that closed (amqp.c) */
	if (in->q == IMGNODE_QUEUE_JOBS)
		field_int(table_get(t, "x-imgnode-attempts"), &carried);
	if (count < 0 || count >= UINT32_MAX / 2)
		count = 0;
	if (carried < 0 || carried >= UINT32_MAX / 2)
		carried = 0;
	h->attempt = (uint32_t)(count + carried) + 1;
	if (in->q == IMGNODE_QUEUE_DEAD)
		dead_reason(s, t, h);
	in->h = h;
}

/* The message is whole: to its inbox. */
static void on_complete(struct amqp *s)
{
	struct incoming *in = &s->in;
	struct held *h = in->h;

	in->kind = 0;
	in->h = NULL;
	if (!h)
		return;
	h->body[h->len] = '\0';
	if (h->q == IMGNODE_QUEUE_REPLY &&
	    s->inbox[IMGNODE_QUEUE_REPLY].n >= REPLY_INBOX_MAX) {
		if (!s->reply_dropped)
			LOG(s, WARN,
			    "dropping replies: %d are waiting unread on %s",
			    REPLY_INBOX_MAX, s->reply);
		s->reply_dropped = true;
		s->h->free(h);
		return;
	}
	inbox_push(s, h->q, h);
}

/* A basic.ack or basic.nack of tag (and those before it, if multiple). */
static void on_confirm(struct amqp *s, uint64_t tag, bool multiple, bool ok)
{
	for (struct pending *p = s->pending; p; p = p->next) {
		if (p->seq == 0 || p->state != P_WAIT ||
		    !(p->seq == tag || (multiple && p->seq < tag)))
			continue;
		p->state = ok ? P_ACKED : P_NACKED;
	}
	pthread_cond_broadcast(&s->cond);
	/*
	 * A nack is the queue refusing (no leader it could reach). RabbitMQ
	 * 3.10 keeps nacking on that channel even after a new leader is
	 * elected (seen when the leader's host was killed: every publish
	 * refused until that host came back): start again on a new
	 * connection, to the next broker of the list.
	 */
	if (!ok) {
		s->url_next = (s->url_cur + 1) % s->nurls;
		mq_broke(s, "the broker refused a message (basic.nack)");
	}
}

static void on_method(struct amqp *s, const amqp_frame_t *f)
{
	const amqp_method_t *m = &f->payload.method;
	char text[WHY_MAX];

	switch (m->id) {
	case AMQP_BASIC_ACK_METHOD: {
		const amqp_basic_ack_t *a = m->decoded;
		on_confirm(s, a->delivery_tag, a->multiple, true);
		return;
	}
	case AMQP_BASIC_NACK_METHOD: {
		const amqp_basic_nack_t *a = m->decoded;
		on_confirm(s, a->delivery_tag, a->multiple, false);
		return;
	}
	case AMQP_BASIC_DELIVER_METHOD: {
		const amqp_basic_deliver_t *d = m->decoded;
		int q = -1;
		for (int i = 0; i < NQ; i++)
			if (d->consumer_tag.len == strlen(q_name[i]) &&
			    memcmp(d->consumer_tag.bytes, q_name[i],
			           d->consumer_tag.len) == 0)
				q = i;
		if (q < 0 || f->channel != CH_CON || s->in.kind) {
			mq_broke(s, "unexpected delivery on channel %u",
			         f->channel);
			return;
		}
		s->in = (struct incoming){
		        .kind = 1, .q = q, .dtag = d->delivery_tag};
		return;
	}
	case AMQP_BASIC_RETURN_METHOD:
		s->in = (struct incoming){.kind = 2};
		return;
	case AMQP_BASIC_CANCEL_METHOD:
		mq_broke(s, "the broker cancelled a consumer (queue deleted?)");
		return;
	case AMQP_CONNECTION_BLOCKED_METHOD: {
		const amqp_connection_blocked_t *b = m->decoded;
		mq_sanitize(text, sizeof(text), b->reason.bytes, b->reason.len);
		LOG(s, WARN, "the broker blocks publishing: %s", text);
		return;
	}
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		LOG(s, INFO, "the broker accepts publishing again");
		return;
	case AMQP_CONNECTION_CLOSE_METHOD: {
		const amqp_connection_close_t *c = m->decoded;
		amqp_connection_close_ok_t ok;
		mq_sanitize(text, sizeof(text), c->reply_text.bytes,
		            c->reply_text.len);
		amqp_send_method(s->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
		                 &ok);
		mq_broke(s, "the broker closed the connection: %s (code %u)",
		         text, c->reply_code);
		return;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		const amqp_channel_close_t *c = m->decoded;
		mq_sanitize(text, sizeof(text), c->reply_text.bytes,
		            c->reply_text.len);
		mq_broke(s, "the broker closed channel %u: %s (code %u)",
		         f->channel, text, c->reply_code);
		return;
	}
	default: return; /* basic.consume-ok of a timed-out RPC and such */
	}
}

static void dispatch(struct amqp *s, const amqp_frame_t *f)
{
	struct incoming *in = &s->in;
	size_t n;

	switch (f->frame_type) {
	case AMQP_FRAME_METHOD: on_method(s, f); return;
	case AMQP_FRAME_HEADER:
		if (!in->kind) {
			mq_broke(s, "content header without a method");
			return;
		}
		on_header(s, f);
		break;
	case AMQP_FRAME_BODY:
		n = f->payload.body_fragment.len;
		if (!in->kind || in->got + n > in->size) {
			mq_broke(s, "unexpected content body");
			return;
		}
		if (in->h)
			memcpy(in->h->body + in->got,
			       f->payload.body_fragment.bytes, n);
		in->got += n;
		break;
	default: return;
	}
	if (in->kind && in->got == in->size)
		on_complete(s);
}

/* Runs every frame that is ready, without waiting; sends a heartbeat when
 * one is due. Called by the I/O thread, and by fini, locked. */
void mq_pump(struct amqp *s)
{
	struct timeval zero = {0, 0};
	amqp_frame_t f;
	int st;

	while (usable(s)) {
		st = amqp_simple_wait_frame_noblock(s->conn, &f, &zero);
		if (st == AMQP_STATUS_TIMEOUT)
			return;
		if (st != AMQP_STATUS_OK) {
			mq_broke(s, "%s", amqp_error_string2(st));
			return;
		}
		dispatch(s, &f);
		amqp_maybe_release_buffers_on_channel(s->conn, f.channel);
	}
}

int mq_send_pending(struct amqp *s, struct pending *p)
{
	amqp_table_entry_t hdr[] = {
	        mq_str_entry("x-imgnode-reason", p->reason)};
	amqp_table_entry_t carried = {
	        .key = amqp_cstring_bytes("x-imgnode-attempts"),
	        .value = {.kind = AMQP_FIELD_KIND_I64,
	                  .value.i64 = (int64_t)p->carried}};
	amqp_basic_properties_t props = {
	        ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG |
	                  AMQP_BASIC_MESSAGE_ID_FLAG,
	        .delivery_mode = 2,
	        .message_id = amqp_cstring_bytes(p->id),
	};
	const char *ex = p->once ? s->conf->dead_queue : "";
	int st;

	if (p->reply_to[0]) {
		props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
		props.reply_to = amqp_cstring_bytes(p->reply_to);
	}
	if (p->once) {
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
		props.headers = (amqp_table_t){1, hdr};
	} else if (p->carried) {
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
		props.headers = (amqp_table_t){1, &carried};
	}
	st = amqp_basic_publish(
	        s->conn, CH_PUB, amqp_cstring_bytes(ex),
	        amqp_cstring_bytes(s->conf->queue), 1, 0, &props,
	        (amqp_bytes_t){.len = p->len, .bytes = p->body});
	if (st != AMQP_STATUS_OK) {
		p->seq = 0;
		mq_broke(s, "unable to publish: %s", amqp_error_string2(st));
		return mq_status_errno(st);
	}
	p->seq = s->next_seq++;
	p->sent = true;
	return 0;
}

/* Starts consuming q on the current connection. */
int mq_subscribe(struct amqp *s, int q)
{
	const char *name = mq_queue_name(s, q, s->reply);
	char what[300];
	int r;

	amqp_basic_consume(s->conn, CH_CON, amqp_cstring_bytes(name),
	                   amqp_cstring_bytes(q_name[q]), 0,
	                   q == IMGNODE_QUEUE_REPLY, q == IMGNODE_QUEUE_REPLY,
	                   amqp_empty_table);
	snprintf(what, sizeof(what), "consume queue %s", name);
	r = mq_rpc_check(s, what);
	if (!r)
		s->subscribed[q] = true;
	return r;
}

int mq_declare_reply(struct amqp *s)
{
	char what[300];

	amqp_queue_declare(s->conn, CH_CON, amqp_cstring_bytes(s->reply), 0, 0,
	                   1, 1, amqp_empty_table);
	snprintf(what, sizeof(what), "declare reply queue %s", s->reply);
	return mq_rpc_check(s, what);
}

/* Makes c, set up for ses, the connection: what was asked for since ses
 * was taken is set up now, and the unconfirmed publishes go out again.
 * Locked. */
void mq_adopt(struct amqp *s, amqp_connection_state_t c, size_t url,
              const struct session *ses)
{
	s->conn = c;
	s->gen++;
	s->next_seq = 1;
	s->url_cur = url;
	s->url_next = url;
	s->backoff = 0;
	if (s->failures)
		LOG(s, INFO, "connected to %s after %u failed attempts",
		    s->urls[url].shown, s->failures);
	else
		LOG(s, DEBUG, "connected to %s", s->urls[url].shown);
	s->failures = 0;
	s->last_fail[0] = '\0';
	memcpy(s->subscribed, ses->want, sizeof(s->subscribed));
	if (s->reply[0] && !ses->reply[0] && mq_declare_reply(s) == 0)
		s->want[IMGNODE_QUEUE_REPLY] = true;
	for (int q = 0; q < NQ && usable(s); q++)
		if (s->want[q] && !s->subscribed[q])
			mq_subscribe(s, q);
	for (struct pending *p = s->pending; p && usable(s); p = p->next)
		if (p->state == P_WAIT)
			mq_send_pending(s, p);
	pthread_cond_broadcast(&s->cond);
}

/* Forgets the connection: what it delivered is the broker's again. Locked. */
static void teardown(struct amqp *s)
{
	struct held *h;

	if (!s->conn)
		return;
	LOG(s, WARN, "connection to %s lost: %s; reconnecting",
	    s->urls[s->url_cur].shown, s->why[0] ? s->why : "closed");
	amqp_destroy_connection(s->conn);
	s->conn = NULL;
	s->broken = false;
	s->why[0] = '\0';
	for (int q = IMGNODE_QUEUE_JOBS; q <= IMGNODE_QUEUE_DEAD; q++)
		while ((h = mq_inbox_pop(s, q)))
			held_free(s, h);
	memset(s->subscribed, 0, sizeof(s->subscribed));
	if (s->in.h)
		held_free(s, s->in.h);
	memset(&s->in, 0, sizeof(s->in));
	for (struct pending *p = s->pending; p; p = p->next) {
		p->seq = 0;
		if (p->once && p->state == P_WAIT)
			p->state = P_LOST;
	}
	s->backoff = BACKOFF_MIN;
	s->retry_at = now_ms() + s->backoff;
	pthread_cond_broadcast(&s->cond);
}

/* One reconnect attempt through every URL. Called locked; unlocks while
 * connecting. */
static void reconnect(struct amqp *s)
{
	char why[WHY_MAX];
	struct session ses;
	size_t url;
	int err;
	amqp_connection_state_t c;

	memcpy(ses.want, s->want, sizeof(ses.want));
	memcpy(ses.reply, s->reply, sizeof(ses.reply));
	pthread_mutex_unlock(&s->lock);
	c = mq_connect_any(s, s->url_next, &ses, &url, &err, why, sizeof(why));
	pthread_mutex_lock(&s->lock);
	if (c && s->stop) {
		amqp_destroy_connection(c);
		return;
	}
	if (c) {
		mq_adopt(s, c, url, &ses);
		return;
	}
	s->failures++;
	s->url_next = (url + 1) % s->nurls;
	if (strcmp(why, s->last_fail) != 0) {
		s->h->log(mq_permanent(err) ? IMGNODE_LOG_ERROR
		                            : IMGNODE_LOG_WARN,
		          "amqp", "%s (%s); retrying", why, strerror(-err));
		snprintf(s->last_fail, sizeof(s->last_fail), "%s", why);
	}
	s->backoff = s->backoff ? s->backoff * 2 : BACKOFF_MIN;
	if (s->backoff > BACKOFF_MAX)
		s->backoff = BACKOFF_MAX;
	s->retry_at = now_ms() + s->backoff;
}

/* The I/O thread: heartbeats, frames, reconnects. */
void *mq_io_main(void *arg)
{
	struct amqp *s = arg;
	int hb_ms = (int)s->conf->heartbeat / 4;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct pollfd pfd[2] = {{.fd = s->kick_fd, .events = POLLIN},
		                        {.fd = -1, .events = POLLIN}};
		int64_t wait = hb_ms < 1000 ? hb_ms : 1000;

		if (s->broken)
			teardown(s);
		if (!s->conn) {
			wait = s->retry_at - now_ms();
			if (wait <= 0) {
				reconnect(s);
				continue;
			}
		} else {
			mq_pump(s);
			if (s->broken)
				continue;
			pfd[1].fd = amqp_get_sockfd(s->conn);
		}
		pthread_mutex_unlock(&s->lock);
		if (poll(pfd, 2, (int)wait) > 0 && (pfd[0].revents & POLLIN))
			fd_level(s->kick_fd, false);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
