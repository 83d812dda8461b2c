/*
 * Webhooks, the parts the ingress and the notifier share (callback.c):
 * which callback URLs a job may name ([ingress] callback_hosts), the keys
 * of the pending index and of a delivery's claim, the signature and the
 * backoff. docs/webhooks.md is the receiver's side.
 *
 * Storage layout:
 *   callbacks/ID  a job with a callback not yet delivered nor given up:
 *                 written by the ingress before the record, deleted by
 *                 the notifier once the record says delivered or failed
 *   claims/ID     the node sending that callback now (put_excl)
 * The state itself lives in the record's "callback" object: url, state
 * (pending, delivered, failed), attempts, next_attempt, last_error,
 * delivered_at.
 */
#ifndef IMGNODE_NODE_CALLBACK_H
#define IMGNODE_NODE_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <imgnode/plugin.h>

#define CALLBACK_URL_MAX 2048

struct webhooks_conf;

/* True for an item of [ingress] callback_hosts: host, host:port, [v6] or
 * [v6]:port, the host of [A-Za-z0-9.-] (or the brackets' [0-9a-fA-F:.]). */
bool callback_host_item_ok(const char *item);

/*
 * Whether url may be a job's callback: an absolute http or https URL with
 * no user or password whose host (and port, the scheme's default if it
 * names none) is an item of hosts. 0, or -EINVAL with the reason in why.
 */
int callback_url_check(const char *url, const struct imgnode_list *hosts,
                       char *why, size_t len);

struct metrics;

/*
 * Tells this node's notifier of a job with a callback (a hint in the
 * node's shared memory: it need not list the store to find it). Any
 * thread or process of the node.
 */
void callback_hint_push(struct metrics *m, const char *id);

/*
 * The next hint after *tail into id: 1 (got one), 0 (none yet) or -1
 * (hints were overwritten before they were read: list the store).
 */
int callback_hint_pop(struct metrics *m, uint64_t *tail, char id[33]);

/* "callbacks/ID" and "claims/ID" into buf. */
void callback_index_key(const char *id, char *buf, size_t len);
void callback_claim_key(const char *id, char *buf, size_t len);

/* hex(HMAC-SHA256(secret, "TIMESTAMP." + body)) into out; 0, -ENOMEM or
 * -EIO. */
int callback_sign(const char *secret, long long timestamp, const char *body,
                  size_t len, char out[65]);

/* The wait after the attempts-th failed attempt, in ms: backoff_min
 * doubling, capped at backoff_max. */
int64_t callback_backoff_ms(const struct webhooks_conf *wc, int64_t attempts);

#endif
