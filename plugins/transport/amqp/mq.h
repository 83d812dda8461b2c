/*
 * The amqp plugin's internals, shared by its files (plugins/transport/amqp/):
 *   amqp.c     the configuration keys and the transport operations
 *   io.c       the I/O thread: frames, confirms, deliveries, reconnects
 *   connect.c  opening a connection: login, channels, topology; errors;
 *              the small helpers all three share
 * Each calls only those below it.
 * One mutex (struct amqp.lock) guards the connection and everything below
 * it; every function here expects it held unless it says otherwise.
 * Nothing here is exported from the .so (-fvisibility=hidden).
 */
#ifndef IMGNODE_AMQP_MQ_H
#define IMGNODE_AMQP_MQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>

#include <imgnode/plugin.h>

/* The channels of a connection (amqp.c's opening comment). */
#define CH_PUB 1 /* declares, then jobs and dead-letter copies, confirmed */
#define CH_CON 2 /* consumers and their acks */
#define CH_REPLY 3 /* replies (transient, unconfirmed) and ping */

#define FRAME_MAX 131072
#define BACKOFF_MIN 100 /* ms */
#define BACKOFF_MAX 2000
#define REASON_MAX 512
#define REPLY_MAX 128
#define REPLY_PREFIX "imgnode.reply."
#define WHY_MAX 512
#define MESSAGE_MAX (16 << 20)
#define REPLY_INBOX_MAX 4096 /* replies kept for a process not reading them */
#define NQ 3

#define LOG(s, level, ...) (s)->h->log(IMGNODE_LOG_##level, "amqp", __VA_ARGS__)

/* The [transport] keys (amqp.c's table), filled by the host. */
struct amqp_conf {
	struct imgnode_list url;
	char *queue;
	char *dead_queue;
	int64_t prefetch;
	int64_t delivery_limit;
	int64_t heartbeat; /* ms */
	int64_t connect_timeout; /* ms */
	int64_t rpc_timeout; /* ms */
	int64_t max_message; /* bytes */
	char *tls_ca;
	char *tls_cert;
	char *tls_key;
	bool tls_verify;
};

/* A parsed URL: ci points into buf. shown has no password (for logs). */
struct url {
	char *buf;
	struct amqp_connection_info ci;
	char shown[256];
};

enum pub_state { P_WAIT, P_ACKED, P_NACKED, P_RETURNED, P_LOST };

/* A message sent (or to be sent) on channel 1 and not yet confirmed. */
struct pending {
	struct pending *next;
	uint64_t seq; /* delivery tag on the current connection; 0: unsent */
	bool sent; /* went out at least once */
	bool once; /* a dead-letter copy: never sent again after a loss */
	uint32_t carried; /* deliveries the job had before this copy */
	enum pub_state state;
	char id[40]; /* message-id, to match a basic.return */
	char reply_to[REPLY_MAX];
	char reason[REASON_MAX]; /* dead-letter copies only */
	size_t len;
	char body[];
};

/* A delivered message, from its content header until it is settled (a
 * reply: until the next consume of replies). Host-allocated. */
struct held {
	struct held *next;
	uint64_t tag; /* handed to the caller */
	uint64_t dtag; /* the broker's, on connection gen */
	uint64_t gen;
	int q;
	uint32_t attempt;
	char reply_to[REPLY_MAX];
	char reason[REASON_MAX];
	size_t len, got;
	char body[];
};

/* The content that follows a basic.deliver or basic.return. */
struct incoming {
	int kind; /* 0 none, 1 delivery, 2 return */
	int q;
	uint64_t dtag;
	uint64_t size, got;
	struct held *h; /* NULL: the body is counted, not kept */
};

/* Messages received and not yet handed to the caller, oldest first. */
struct inbox {
	struct held *head, *tail;
	size_t n;
};

/* What a new connection sets up besides the topology: a snapshot taken
 * under the lock, used without it. */
struct session {
	bool want[NQ]; /* queues to consume */
	char reply[REPLY_MAX]; /* reply queue to declare, or "" */
};

/* One process's state (init's *state). */
struct amqp {
	const struct imgnode_host *h;
	const struct amqp_conf *conf;
	struct url *urls;
	size_t nurls, url_next, url_cur;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a confirm came, or the connection changed */
	pthread_t thread;
	bool thread_started, stop;
	int kick_fd; /* wakes the I/O thread */
	int any_fd; /* pollfd: some inbox holds a message */
	int q_fd[NQ]; /* readable while inbox[q] holds a message */

	amqp_connection_state_t conn; /* NULL while down */
	uint64_t gen; /* connections made so far */
	bool broken; /* an error was seen; the I/O thread tears down */
	char why[WHY_MAX];
	char last_fail[WHY_MAX]; /* last connect failure logged */
	unsigned failures;
	int64_t retry_at, backoff; /* ms, CLOCK_MONOTONIC */

	uint64_t next_seq; /* channel 1's next delivery tag */
	uint64_t msg_count; /* message-ids made */
	struct pending *pending; /* in publish order */

	bool want[NQ]; /* queues the process consumes */
	bool subscribed[NQ]; /* ... and has a consumer for on conn */
	struct inbox inbox[NQ];
	size_t inbox_total;
	struct incoming in; /* the message being received */
	struct held *held; /* handed out, not settled */
	struct held *reply_last; /* the last reply handed out */
	uint64_t last_tag;
	bool reply_dropped; /* a full reply inbox was reported */
	char reply[REPLY_MAX]; /* "" until reply_open */
	char conn_name[128]; /* shown by rabbitmqctl list_connections */
};

/* Consumer tags, by enum imgnode_queue. */
static const char *const q_name[NQ] = {"jobs", "dead", "reply"};

/* CLOCK_MONOTONIC in ms. */
static inline int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline struct timeval tv_ms(int64_t ms)
{
	return (struct timeval){.tv_sec = ms / 1000,
	                        .tv_usec = (ms % 1000) * 1000};
}

/* Makes an eventfd readable (on) or not. */
static inline void fd_level(int fd, bool on)
{
	uint64_t v = 1;
	ssize_t unused;

	unused = on ? write(fd, &v, sizeof(v)) : read(fd, &v, sizeof(v));
	(void)unused;
}

/* Wakes the I/O thread. */
static inline void kick(struct amqp *s)
{
	fd_level(s->kick_fd, true);
}

/* A connection, not known to be broken. */
static inline bool usable(const struct amqp *s)
{
	return s->conn && !s->broken;
}

static inline void held_free(struct amqp *s, struct held *h)
{
	s->h->free(h);
}

/* connect.c */

/* The broker's name of queue q (reply: the reply queue named reply). */
const char *mq_queue_name(const struct amqp *s, int q, const char *reply);
/* snprintf that may cut (error texts nest other error texts). */
void mq_say(char *dst, size_t len, const char *fmt, ...) IMGNODE_PRINTF(3, 4);
/* Copies n bytes of src (or up to its NUL) to dst: control bytes become
 * spaces; cut to fit at a UTF-8 boundary. */
void mq_sanitize(char *dst, size_t len, const char *src, size_t n);
/* True for a reply queue name as reply_open makes them. */
bool mq_reply_name_valid(const char *s);

/* The -errno for a librabbitmq status. */
int mq_status_errno(int st);
/* A refusal that trying again will not cure (a config or broker setup). */
bool mq_permanent(int err);
/* Describes a failed RPC reply in why; returns its -errno (0: none). */
int mq_rpc_error(amqp_connection_state_t c, amqp_rpc_reply_t r, char *why,
                 size_t len);
/* A table entry whose value is the UTF-8 string v (both borrowed). */
amqp_table_entry_t mq_str_entry(const char *k, const char *v);
/*
 * Tries each URL once, from first on, and sets up a connection for ses.
 * Runs without the lock. Returns the connection (the caller destroys it),
 * or NULL with -errno in *err and the reason, naming the URL, in why;
 * *tried is the index of the URL last tried.
 */
amqp_connection_state_t mq_connect_any(struct amqp *s, size_t first,
                                       const struct session *ses, size_t *tried,
                                       int *err, char *why, size_t len);

/* io.c */

/* Marks the connection broken (the first cause is kept) and wakes the I/O
 * thread to tear it down. */
void mq_broke(struct amqp *s, const char *fmt, ...) IMGNODE_PRINTF(2, 3);
/* Checks the RPC just made in a caller's thread: 0, or -errno with the
 * connection marked broken ("unable to WHAT: ..."). */
int mq_rpc_check(struct amqp *s, const char *what);
/* Sends p on channel 1 (confirm mode); 0 or -errno (then broken). */
int mq_send_pending(struct amqp *s, struct pending *p);
/* Runs every frame that is ready (those an RPC queued first), without
 * waiting. */
void mq_pump(struct amqp *s);
/* Starts consuming q on the current connection; 0 or -errno. */
int mq_subscribe(struct amqp *s, int q);
/* Declares the reply queue s->reply; 0 or -errno. */
int mq_declare_reply(struct amqp *s);
/* Makes c, set up for ses, the connection (see io.c). */
void mq_adopt(struct amqp *s, amqp_connection_state_t c, size_t url,
              const struct session *ses);
/* The oldest message of inbox q, or NULL; the caller owns it. */
struct held *mq_inbox_pop(struct amqp *s, int q);
/* The I/O thread (pthread start routine; arg is the struct amqp). */
void *mq_io_main(void *arg);

#endif
