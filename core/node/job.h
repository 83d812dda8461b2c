/*
 * Jobs: ids, the message a job travels as (keys, never images), the record
 * in storage that is the truth about a job, and the content-derived key of
 * its result.
 *
 * Storage layout:
 *   orig/ID         the uploaded original
 *   jobs/ID         the record (JSON)
 *   out/KEY         the result; KEY = sha256(original's sha256, canonical
 *                   pipeline, filter versions), so a redelivered or repeated
 *   out/KEY.meta    job finds it; .meta (JSON: mime, format, size) is written
 *                   after the image and marks it complete
 */
#ifndef IMGNODE_JOB_H
#define IMGNODE_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_ID_LEN 32 /* hex characters */
#define JOB_KEY_MAX 128
#define JOB_RECORD_MAX (256 * 1024)
#define JOB_META_MAX (16 * 1024)

struct plugin;

/* A job as it travels through the transport. Strings are owned. */
struct job_msg {
	char id[JOB_ID_LEN + 1];
	char *pipeline; /* canonical */
	char *result; /* out/KEY */
	char *request_id; /* the upload's X-Request-ID; NULL if none */
};

#define JOB_REQUEST_ID_MAX 128

/* True for a request id fit for logs and records as it is: 1 to
 * JOB_REQUEST_ID_MAX printable ASCII, no space, quote or backslash. */
bool job_request_id_valid(const char *s);

/* A new random id (128 bits, hex). 0 or -errno. */
int job_new_id(char id[JOB_ID_LEN + 1]);

/* True for a well-formed id (so it is safe in a storage key). */
int job_id_valid(const char *id);

/* "orig/ID", "jobs/ID" into buf. */
void job_orig_key(const char *id, char *buf, size_t len);
void job_record_key(const char *id, char *buf, size_t len);

/*
 * The result key "out/HEX" for an original's SHA-256, a canonical pipeline
 * and the versions of the filters it names ("thumbnail=1.0,webp=1.0").
 */
void job_result_key(const unsigned char sha256[32], const char *canonical,
                    const char *versions, char *buf, size_t len);

/* The same from the SHA-256 in hex (as records keep it); 0 or -EINVAL. */
int job_result_key_hex(const char *sha256_hex, const char *canonical,
                       const char *versions, char *buf, size_t len);

/* The message body (JSON); caller frees with free(). NULL on ENOMEM. */
char *job_msg_encode(const struct job_msg *m, size_t *len);
/* Parses a body; 0 or -EINVAL with the reason. Free with job_msg_clear. */
int job_msg_decode(const void *body, size_t len, struct job_msg *m, char *err,
                   size_t errlen);
void job_msg_clear(struct job_msg *m);

/* Now as "2026-11-24T20:30:00.123Z". */
void job_timestamp(char *buf, size_t len);

/* The record's timestamp field (as job_timestamp writes it) in
 * microseconds since the epoch, or 0 if it is missing or malformed. */
int64_t job_stamp_us(json_t *rec, const char *field);

/*
 * Record I/O through a storage plugin. get returns a new reference or NULL
 * with *ret = -errno (-ENOENT: unknown job). put overwrites.
 */
json_t *job_record_get(const struct plugin *storage, const char *id, int *ret);
int job_record_put(const struct plugin *storage, json_t *rec);

/*
 * Sets status and its timestamp field (started for running, finished for
 * done/failed), and error for failed (may be NULL).
 */
void job_record_set_status(json_t *rec, const char *status, const char *error);

#endif
