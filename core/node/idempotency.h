/*
 * Idempotency keys (idempotency.c): a client's Idempotency-Key on POST
 * /v1/jobs names its submission, so that a retry of it (on any node) is
 * answered with the job the first one made instead of making another.
 *
 * One record per key in the shared storage, at idem/HEX, HEX the SHA-256
 * of the API key's ID and the Idempotency-Key (so two API keys never
 * share one): {"job": ID, "hash": the request's, "state": "pending" or
 * "accepted", "at_ms": when it was claimed}. It is created with put_excl
 * before the job is stored (the claim: of two requests at once, on any
 * nodes, one makes the job), marked accepted once the job is published,
 * and deleted if the job is refused. A record older than [ingress]
 * idempotency_window counts as absent; retention deletes it.
 */
#ifndef IMGNODE_NODE_IDEMPOTENCY_H
#define IMGNODE_NODE_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../plugin.h"
#include "job.h"

#define IDEM_KEY_MAX 255 /* characters of an Idempotency-Key */
#define IDEM_PREFIX "idem/"
#define IDEM_STORAGE_KEY_MAX (sizeof(IDEM_PREFIX) + 64)
/* a claim of a record without stale_ms (older nodes) still pending after
 * this is taken for a dead node's */
#define IDEM_PENDING_STALE_MS (5 * 60 * 1000)
/* past 3 x [ingress] dependency_wait after its claim (the store, the
 * publish, marking the claim accepted: at most one such wait each), the
 * request that made a claim has had its answer, and a store that ends
 * later is undone: a pending claim that old is stale, this margin on top.
 * Taking over a claim too early at worst makes the job twice (at least
 * once): the same result. */
#define IDEM_PENDING_MARGIN_MS (5 * 1000)

enum idem_state { IDEM_PENDING, IDEM_ACCEPTED };

/* One key's record. */
struct idem_record {
	char job[JOB_ID_LEN + 1];
	char hash[65]; /* hex SHA-256 of what defines the job */
	enum idem_state state;
	int64_t at_ms; /* claimed, ms since the epoch */
	int64_t stale_ms; /* pending for this long after at_ms: stale */
};

/* What a request finds under its key (idem_judge). */
enum idem_verdict {
	IDEM_FREE, /* none, or expired or stale: the request may claim it */
	IDEM_REPLAY, /* the same request, accepted: answer its job */
	IDEM_IN_PROGRESS, /* the same request, not yet accepted: 409 */
	IDEM_MISMATCH, /* another request under that key: 422 */
};

/*
 * Checks an Idempotency-Key header's value and copies the key into key
 * (IDEM_KEY_MAX + 1 bytes): 1 to IDEM_KEY_MAX printable ASCII characters
 * (no space, '"' or '\'), or the same in double quotes (a structured
 * field string, as the IETF draft writes it), unquoted. 0, or -EINVAL
 * with the reason in why.
 */
int idem_key_check(const char *value, char *key, char *why, size_t whylen);

/* The storage key of key for the API key of ID key_id ("": none) into out
 * (IDEM_STORAGE_KEY_MAX bytes). 0, or -EIO if hashing failed. */
int idem_storage_key(const char *key_id, const char *key, char *out);

/* The hash of a request, into hex (65 bytes): of def, what the request
 * defines besides its upload (idem_define), and the upload's SHA-256. */
void idem_request_hash(const unsigned char def[32],
                       const unsigned char image[32], char *hex);

/*
 * def: the SHA-256 of what defines a job besides its upload, its
 * pipelines (canonical, before format auto is negotiated) and its
 * callback (NULL: none). 0 or -EIO.
 */
int idem_define(const char *const *pipelines, size_t n, const char *callback,
                unsigned char def[32]);

/* rec as stored; new (free), or NULL. */
char *idem_record_encode(const struct idem_record *rec);

/* Reads a stored record; 0 or -EBADMSG. */
int idem_record_decode(const void *buf, size_t len, struct idem_record *rec);

/* The wall clock, ms since the epoch (records' at_ms). */
int64_t idem_wall_ms(void);

/* What a request of hash finds in the record found at now_ms. */
enum idem_verdict idem_judge(const struct idem_record *found, const char *hash,
                             int64_t now_ms, int64_t window_ms);

/*
 * On the storage's executor: claims the key skey for mine (put_excl). 0
 * (claimed), or -EEXIST with the verdict of another's record in *verdict
 * and the record in found, or another -errno. An expired, stale or
 * unreadable record is deleted and the claim made again, once.
 */
int idem_claim(const struct imgnode_storage_ops *st, void *state,
               const char *skey, const struct idem_record *mine, int64_t now_ms,
               int64_t window_ms, struct idem_record *found,
               enum idem_verdict *verdict);

#endif
