/*
 * A breaker per dependency of the ingress (storage, transport): the
 * dependency is up or down, and why. A failure that says the dependency is
 * away (a timeout, a lost connection, an I/O error; breaker_counts) opens
 * it; any answer closes it. The caller logs the two changes, and only
 * those: breaker_fail says when it just opened, breaker_ok how long it had
 * been open when it just closed. No lock inside: the executor that owns it
 * holds its own (executor.h).
 */
#ifndef IMGNODE_NODE_BREAKER_H
#define IMGNODE_NODE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define BREAKER_WHY_MAX 384

struct breaker {
	bool open;
	int64_t since_ms; /* opened at (monotonic) */
	char why[BREAKER_WHY_MAX]; /* why it opened, printable ASCII */
	uint64_t opened; /* times it opened */
};

/* True if err (a -errno from a plugin, or -ETIME: the caller's deadline
 * passed) says the dependency is away rather than refusing one request. */
bool breaker_counts(int err);

/*
 * Notes a failure at now because of why (copied; what is not printable
 * ASCII becomes '?'). True if that opened the breaker (log it); an open
 * breaker keeps its first reason.
 */
bool breaker_fail(struct breaker *b, int64_t now, const char *why);

/* Notes an answer at now. If that closed the breaker, how long it had
 * been open, in ms (log it); else -1. */
int64_t breaker_ok(struct breaker *b, int64_t now);

#endif
