/*
 * Opening a connection for the amqp plugin: TCP or TLS socket, login,
 * channels, the topology (amqp.c's opening comment), confirm mode,
 * prefetch, then the reply queue and the consumers the process had. Runs
 * in the I/O thread (or init) on a connection nobody else sees yet, so
 * without the lock. Also the translation of librabbitmq's and the
 * broker's errors into -errno and one line of text, and the small helpers
 * the plugin's other files share (queue names, error texts). The files
 * call one way: amqp.c (the operations) -> io.c (the I/O thread) ->
 * connect.c, which calls neither.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "mq.h"

/* ---- helpers for every file ---- */

/* The broker's name of queue q (reply: the reply queue named reply). */
const char *mq_queue_name(const struct amqp *s, int q, const char *reply)
{
	return q == IMGNODE_QUEUE_JOBS   ? s->conf->queue
	       : q == IMGNODE_QUEUE_DEAD ? s->conf->dead_queue
	                                 : reply;
}

/* snprintf that may cut (error texts nest other error texts). */
void mq_say(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

/*
 * Copies n bytes of src (or up to its NUL) to dst: control bytes become
 * spaces; cut to fit at a UTF-8 boundary.
 */
void mq_sanitize(char *dst, size_t len, const char *src, size_t n)
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

/* True for a reply queue name as reply_open makes them. */
bool mq_reply_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0, p = strlen(REPLY_PREFIX);

	if (n <= p || n >= REPLY_MAX || strncmp(s, REPLY_PREFIX, p) != 0)
		return false;
	for (size_t i = p; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* ---- errors ---- */

/* The -errno for a librabbitmq status. */
int mq_status_errno(int st)
{
	switch (st) {
	case AMQP_STATUS_TIMEOUT:
	case AMQP_STATUS_HEARTBEAT_TIMEOUT: return -ETIMEDOUT;
	case AMQP_STATUS_NO_MEMORY: return -ENOMEM;
	case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED: return -EHOSTUNREACH;
	case AMQP_STATUS_SOCKET_ERROR:
	case AMQP_STATUS_TCP_ERROR: return -ECONNREFUSED;
	case AMQP_STATUS_CONNECTION_CLOSED:
	case AMQP_STATUS_SOCKET_CLOSED: return -ECONNRESET;
	case AMQP_STATUS_BAD_URL:
	case AMQP_STATUS_INVALID_PARAMETER: return -EINVAL;
	case AMQP_STATUS_SSL_ERROR:
	case AMQP_STATUS_SSL_CONNECTION_FAILED: return -ECONNRESET;
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
	case AMQP_STATUS_BROKER_UNSUPPORTED_SASL_METHOD:
	case AMQP_STATUS_INCOMPATIBLE_AMQP_VERSION: return -EPROTO;
	default: return -EIO;
	}
}

/* The -errno for a server's close code (text: its reply text). */
static int code_errno(int code, const char *text, bool channel)
{
	switch (code) {
	case AMQP_ACCESS_REFUSED: return -EACCES;
	case AMQP_NOT_FOUND: return -ENOENT;
	case AMQP_PRECONDITION_FAILED: return -EINVAL;
	case AMQP_RESOURCE_LOCKED: return -EBUSY;
	case AMQP_NOT_ALLOWED:
		return strstr(text, "not found") ? -ENOENT : -EACCES;
	case AMQP_CONNECTION_FORCED: return -ECONNRESET;
	case AMQP_RESOURCE_ERROR: return -EAGAIN;
	default: return channel ? -EIO : -EPROTO;
	}
}

/* A refusal that trying again will not cure (a config or broker setup). */
bool mq_permanent(int err)
{
	return err == -EACCES || err == -ENOENT || err == -EINVAL ||
	       err == -EPROTO;
}

/*
 * Describes a failed RPC reply in why; returns its -errno. A server's
 * connection.close is answered with close-ok.
 */
int mq_rpc_error(amqp_connection_state_t c, amqp_rpc_reply_t r, char *why,
                 size_t len)
{
	const amqp_connection_close_t *cc;
	const amqp_channel_close_t *ch;
	amqp_connection_close_ok_t ok;
	char text[WHY_MAX];

	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL: return 0;
	case AMQP_RESPONSE_NONE:
		mq_say(why, len, "no reply from the broker");
		return -EPROTO;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		mq_say(why, len, "%s", amqp_error_string2(r.library_error));
		return mq_status_errno(r.library_error);
	case AMQP_RESPONSE_SERVER_EXCEPTION: break;
	}
	if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		cc = r.reply.decoded;
		mq_sanitize(text, sizeof(text), cc->reply_text.bytes,
		            cc->reply_text.len);
		mq_say(why, len, "%s (code %u)", text, cc->reply_code);
		amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		return code_errno(cc->reply_code, text, false);
	}
	if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		ch = r.reply.decoded;
		mq_sanitize(text, sizeof(text), ch->reply_text.bytes,
		            ch->reply_text.len);
		mq_say(why, len, "%s (code %u)", text, ch->reply_code);
		return code_errno(ch->reply_code, text, true);
	}
	mq_say(why, len, "unexpected method 0x%08x from the broker",
	       (unsigned)r.reply.id);
	return -EPROTO;
}

amqp_table_entry_t mq_str_entry(const char *k, const char *v)
{
	amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};

	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = amqp_cstring_bytes(v);
	return e;
}

static amqp_table_entry_t int_entry(const char *k, int64_t v)
{
	amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};

	e.value.kind = AMQP_FIELD_KIND_I64;
	e.value.value.i64 = v;
	return e;
}

static amqp_table_entry_t bool_entry(const char *k, bool v)
{
	amqp_table_entry_t e = {.key = amqp_cstring_bytes(k)};

	e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
	e.value.value.boolean = v;
	return e;
}

/* Runs the RPC just made on c; 0, or -errno with "unable to WHAT: ..." in
 * why. */
static int step(amqp_connection_state_t c, const char *what, const char *name,
                char *why, size_t len)
{
	char detail[WHY_MAX];
	int r = mq_rpc_error(c, amqp_get_rpc_reply(c), detail, sizeof(detail));

	if (r)
		mq_say(why, len, "unable to %s%s%s: %s", what, name ? " " : "",
		       name ? name : "", detail);
	return r;
}

static int open_socket(struct amqp *s, amqp_connection_state_t c,
                       const struct url *u, char *why, size_t len)
{
	const struct amqp_conf *cf = s->conf;
	struct timeval tv = tv_ms(cf->connect_timeout);
	amqp_socket_t *sock;
	int st;

	sock = u->ci.ssl ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c);
	if (!sock) {
		mq_say(why, len, "unable to create a socket");
		return -ENOMEM;
	}
	if (u->ci.ssl) {
		amqp_ssl_socket_set_verify_peer(sock, cf->tls_verify);
		amqp_ssl_socket_set_verify_hostname(sock, cf->tls_verify);
		if (cf->tls_ca[0] &&
		    amqp_ssl_socket_set_cacert(sock, cf->tls_ca) != 0) {
			mq_say(why, len, "unable to load tls_ca %s",
			       cf->tls_ca);
			return -EINVAL;
		}
		if (cf->tls_cert[0] &&
		    amqp_ssl_socket_set_key(sock, cf->tls_cert, cf->tls_key) !=
		            0) {
			mq_say(why, len,
			       "unable to load tls_cert %s / tls_key %s",
			       cf->tls_cert, cf->tls_key);
			return -EINVAL;
		}
	}
	st = amqp_socket_open_noblock(sock, u->ci.host, u->ci.port, &tv);
	if (st != AMQP_STATUS_OK) {
		mq_say(why, len, "unable to connect: %s",
		       amqp_error_string2(st));
		return mq_status_errno(st);
	}
	return 0;
}

/* Declares the dead-letter exchange and queue and the job queue. */
static int declare_topology(struct amqp *s, amqp_connection_state_t c,
                            char *why, size_t len)
{
	const struct amqp_conf *cf = s->conf;
	amqp_bytes_t dead = amqp_cstring_bytes(cf->dead_queue);
	amqp_table_entry_t dq[] = {mq_str_entry("x-queue-type", "quorum")};
	amqp_table_entry_t jq[] = {
	        mq_str_entry("x-queue-type", "quorum"),
	        int_entry("x-delivery-limit", cf->delivery_limit - 1),
	        mq_str_entry("x-dead-letter-exchange", cf->dead_queue),
	        mq_str_entry("x-dead-letter-strategy", "at-least-once"),
	        mq_str_entry("x-overflow", "reject-publish"),
	};
	amqp_table_t dt = {1, dq}, jt = {5, jq};
	int r;

	amqp_exchange_declare(c, CH_PUB, dead, amqp_cstring_bytes("fanout"), 0,
	                      1, 0, 0, amqp_empty_table);
	r = step(c, "declare exchange", cf->dead_queue, why, len);
	if (!r) {
		amqp_queue_declare(c, CH_PUB, dead, 0, 1, 0, 0, dt);
		r = step(c, "declare queue", cf->dead_queue, why, len);
	}
	if (!r) {
		amqp_queue_bind(c, CH_PUB, dead, dead, amqp_empty_bytes,
		                amqp_empty_table);
		r = step(c, "bind queue", cf->dead_queue, why, len);
	}
	if (!r) {
		amqp_queue_declare(c, CH_PUB, amqp_cstring_bytes(cf->queue), 0,
		                   1, 0, 0, jt);
		r = step(c, "declare queue", cf->queue, why, len);
	}
	return r;
}

/*
 * Opens a connection to u and sets it up: login, channels, topology,
 * confirm mode, prefetch, then the reply queue and consumers of ses.
 * Returns it, or NULL with -errno in *err and the reason in why.
 */
static amqp_connection_state_t open_conn(struct amqp *s, const struct url *u,
                                         const struct session *ses, int *err,
                                         char *why, size_t len)
{
	const struct amqp_conf *cf = s->conf;
	amqp_connection_state_t c = amqp_new_connection();
	struct timeval hs = tv_ms(cf->connect_timeout),
	               rpc = tv_ms(cf->rpc_timeout);
	amqp_table_entry_t caps[] = {bool_entry("consumer_cancel_notify", true),
	                             bool_entry("connection.blocked", true)};
	amqp_table_entry_t props[] = {
	        mq_str_entry("connection_name", s->conn_name),
	        {.key = amqp_cstring_bytes("capabilities")}};
	amqp_table_t pt = {2, props};
	int hb = (int)((cf->heartbeat + 999) / 1000);
	amqp_rpc_reply_t lr;
	int r;

	props[1].value.kind = AMQP_FIELD_KIND_TABLE;
	props[1].value.value.table = (amqp_table_t){2, caps};
	if (!c) {
		mq_say(why, len, "out of memory");
		*err = -ENOMEM;
		return NULL;
	}
	r = open_socket(s, c, u, why, len);
	if (r)
		goto out_destroy;
	amqp_set_handshake_timeout(c, &hs);
	amqp_set_rpc_timeout(c, &rpc);
	lr = amqp_login_with_properties(c, u->ci.vhost, 0, FRAME_MAX, hb, &pt,
	                                AMQP_SASL_METHOD_PLAIN, u->ci.user,
	                                u->ci.password);
	r = mq_rpc_error(c, lr, why, len);
	if (r) {
		char detail[WHY_MAX];

		snprintf(detail, sizeof(detail), "%s", why);
		mq_say(why, len, "unable to log in as %s to vhost %s: %s",
		       u->ci.user, u->ci.vhost, detail);
		goto out_destroy;
	}
	for (amqp_channel_t ch = CH_PUB; ch <= CH_REPLY && !r; ch++) {
		amqp_channel_open(c, ch);
		r = step(c, "open a channel", NULL, why, len);
	}
	if (!r)
		r = declare_topology(s, c, why, len);
	if (!r) {
		amqp_confirm_select(c, CH_PUB);
		r = step(c, "enable publisher confirms", NULL, why, len);
	}
	if (!r) {
		amqp_basic_qos(c, CH_CON, 0, (uint16_t)cf->prefetch, 0);
		r = step(c, "set prefetch", NULL, why, len);
	}
	if (!r && ses->reply[0]) {
		amqp_queue_declare(c, CH_CON, amqp_cstring_bytes(ses->reply), 0,
		                   0, 1, 1, amqp_empty_table);
		r = step(c, "declare reply queue", ses->reply, why, len);
	}
	for (int q = 0; q < NQ && !r; q++) {
		const char *name = mq_queue_name(s, q, ses->reply);

		if (!ses->want[q] || !name[0])
			continue;
		amqp_basic_consume(c, CH_CON, amqp_cstring_bytes(name),
		                   amqp_cstring_bytes(q_name[q]), 0,
		                   q == IMGNODE_QUEUE_REPLY,
		                   q == IMGNODE_QUEUE_REPLY, amqp_empty_table);
		r = step(c, "consume queue", name, why, len);
	}
	if (!r)
		return c;
out_destroy:
	amqp_destroy_connection(c);
	*err = r;
	return NULL;
}

/*
 * Tries each URL once, from first on. Returns a connection (the caller
 * destroys it), or NULL with the last -errno in *err (a permanent one if
 * any URL gave one) and its reason, naming the URL, in why. *tried is the
 * index of the URL last tried.
 */
amqp_connection_state_t mq_connect_any(struct amqp *s, size_t first,
                                       const struct session *ses, size_t *tried,
                                       int *err, char *why, size_t len)
{
	char detail[WHY_MAX];

	*err = 0;
	for (size_t k = 0; k < s->nurls; k++) {
		size_t i = (first + k) % s->nurls;
		int e = 0;
		amqp_connection_state_t c = open_conn(s, &s->urls[i], ses, &e,
		                                      detail, sizeof(detail));

		*tried = i;
		if (c)
			return c;
		if (!*err || !mq_permanent(*err)) {
			*err = e;
			mq_say(why, len, "%s: %s", s->urls[i].shown, detail);
		}
	}
	return NULL;
}
