/*
 * The control socket: a Unix stream socket (mode 0600) on which imgnodectl
 * asks the running node for its status, a child restart, a reload or a
 * stop. It runs in the supervisor's loop and never blocks it.
 *
 * Protocol, one request per connection: the client sends one line of JSON,
 * an object with a "cmd" string ({"cmd":"restart","id":"worker.2"}), and
 * reads one line back, {"ok":true,...} or {"ok":false,"error":"reason"};
 * then the server closes the connection. Requests are capped at
 * CONTROL_MAX_REQUEST bytes and must arrive within the timeout (5 s); a
 * request that is not JSON, has no "cmd" or names an unknown command is
 * answered here, with the reason, without calling any handler.
 */
#ifndef IMGNODE_CONTROL_H
#define IMGNODE_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <imgnode/plugin.h>

#define CONTROL_MAX_REQUEST (64 * 1024)
#define CONTROL_TIMEOUT_MS 5000

struct loop;
struct control;
struct control_conn;

/*
 * Handles one request. request is borrowed for the call (json_incref it to
 * keep it). The handler must answer exactly once, now or later from the
 * loop, with control_reply; conn stays valid until then, even if the client
 * has gone away.
 */
typedef void control_request_fn(struct control_conn *conn, json_t *request,
                                void *arg);

/* One command: its name (the request's "cmd") and its handler. */
struct control_cmd {
	const char *name;
	control_request_fn *fn;
};

/*
 * Creates the socket at path and serves it in loop. cmds is a table ending
 * with a NULL name, borrowed for the socket's life; arg is passed to every
 * handler. A socket left behind by a dead node is replaced; a live one (or
 * anything that is not a socket) is refused. A lock file "PATH.lock" is
 * held while the socket is open, so two nodes starting at once cannot both
 * take the path; it is left in place on close. The directory must exist.
 * Returns the socket or NULL with the reason in err. Free with
 * control_close.
 */
struct control *control_open(struct loop *loop, const char *path,
                             const struct control_cmd *cmds, void *arg,
                             char *err, size_t errlen);

/*
 * Closes the socket and every connection, and unlinks the socket (not the
 * lock file). Replies being written get one last non-blocking attempt;
 * clients still waiting for a handler get {"ok":false,"error":"imgnode is
 * stopping"}, and their conn stays valid until the handler's control_reply,
 * which then only frees it.
 */
void control_close(struct control *ctl);

/* Sets how long a client may take to send its request or read its reply. */
void control_set_timeout(struct control *ctl, int64_t ms);

/*
 * Answers a request and closes the connection once the line is written (or
 * the client has gone: that is not an error). Steals reply's reference.
 * conn is freed; don't use it after this call.
 */
void control_reply(struct control_conn *conn, json_t *reply);

/* Answers {"ok":false,"error":"<formatted>"}; conn is freed. */
void control_reply_error(struct control_conn *conn, const char *fmt, ...)
        IMGNODE_PRINTF(2, 3);

/* Answers {"ok":true}; conn is freed. */
void control_reply_ok(struct control_conn *conn);

#endif
