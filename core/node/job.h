/*
 * The job protocol, in one place: ids, the message a job travels as (keys,
 * never images), the reply a worker sends back to the ingress that waits,
 * the record in storage that is the truth about a job, its status, and the
 * content-derived key of its result.
 *
 * Storage layout:
 *   orig/ID       the uploaded original
 *   jobs/ID       the record (JSON)
 *   out/KEY       the result; KEY = sha256(original's sha256, canonical
 *                 pipeline, filter versions), so a redelivered or
 *                 repeated job finds it
 *   out/KEY.meta  JSON (mime, format, size), written after the image: it
 *                 marks the image complete
 *   img/ID        an image kept as a resource (POST /v1/images), ID its
 *                 content's; imgs/ID its metadata, imgv/ID/VID a marker
 *                 (naming the result) of each of its variants, whose
 *                 record jobs/VID names "image": ID
 *
 * Whose key counts: the worker's. The ingress derives the key when it
 * accepts a job, to find a cached result and to put in the message; the
 * worker derives it again, from the record's original and format with the
 * filters it runs, and stores the result and writes the record's "result"
 * under that key, which the ingress then answers from. A hot swap between
 * submit and run can change a filter's version: the result is then made by
 * the new filter, and filed under the message's key it would be served
 * later as if the old one had made it (to an ingress still on the old
 * version, during a roll). So the key always names the versions that made
 * the result; the message's key is only the ingress's prediction, used by
 * the worker when the record has no readable original hash. Both sides
 * derive it with job_result_key_of, which builds the versions in one
 * buffer of JOB_VERSIONS_MAX (larger ones on the heap, never cut short),
 * so the same pipeline and filters always give the same key.
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
#define JOB_VERSIONS_MAX 4096 /* the versions text of a key, usually */
#define JOB_REPLY_MAX 128

struct pipeline;
struct plugin;
struct plugin_set;

/* A job's status, as its record and its reply name it. */
enum job_status {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
	JOB_FAILED,
	JOB_STATUS_UNKNOWN, /* a status none of the above */
	JOB_STATUS_MISSING, /* no status at all */
};

/* "queued", "running", "done", "failed"; NULL for the last two. */
const char *job_status_name(enum job_status status);

/* The status named s (NULL: JOB_STATUS_MISSING). */
enum job_status job_status_parse(const char *s);

/* The status of record rec. */
enum job_status job_record_status(json_t *rec);

/* True once a job is over: done or failed. */
static inline bool job_status_final(enum job_status status)
{
	return status == JOB_DONE || status == JOB_FAILED;
}

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
 * Images kept as a resource (POST /v1/images): an image's id is the first
 * JOB_ID_LEN hex digits of its bytes' SHA-256 (128 bits), so the same
 * bytes always get the same id and job_id_valid accepts it; its original
 * is stored under "img/ID".
 */
void job_image_id(const unsigned char sha256[32], char id[JOB_ID_LEN + 1]);
void job_image_key(const char *id, char *buf, size_t len);

/*
 * The rest of an image's keys (ingress_images.c): "imgs/ID", its metadata
 * (JSON: format, width, height, bytes, sha256, created, owners), and
 * "imgv/ID/VID", a marker (empty) for each variant made of it, listed to
 * find them all: VID is the variant's job id, its record "jobs/VID" (with
 * "image": ID), its result the record's "result". A variant's job id is
 * the first JOB_ID_LEN hex digits of its result key's, so identical
 * requests, on any node, name one job (job_variant_id: 0, or -EINVAL for
 * a key that is not "out/" and 64 hex digits).
 */
void job_image_meta_key(const char *id, char *buf, size_t len);
void job_variant_mark_key(const char *image, const char *vid, char *buf,
                          size_t len);
int job_variant_id(const char *result_key, char id[JOB_ID_LEN + 1]);

/*
 * Where the original of the job of record rec (id) is: "img/IMAGE" for a
 * variant (its record names "image"), else "orig/ID".
 */
void job_input_key(json_t *rec, const char *id, char *buf, size_t len);

/*
 * The versions of the filters pl uses: "thumbnail=1.0,webp=1.0", with the
 * encoder an input of format gets when pl names none (set and format may
 * be NULL to leave it out), and ",metadata=stripped" unless keep_metadata:
 * what goes into a result's key, so that a result made under one metadata
 * policy is never served under the other. Writes at most len bytes to buf
 * (as snprintf does) and returns the length of the whole text.
 */
size_t job_versions(const struct pipeline *pl, const struct plugin_set *set,
                    const char *format, bool keep_metadata, char *buf,
                    size_t len);

/*
 * The result key of a job, as both the ingress and the worker derive it:
 * "out/HEX" from its original's SHA-256 (sha256_hex, as records keep it),
 * its pipeline and job_versions(pl, set, format, keep_metadata). 0,
 * -EINVAL (sha256_hex is not 64 hex digits) or -ENOMEM.
 */
int job_result_key_of(const char *sha256_hex, const struct pipeline *pl,
                      const struct plugin_set *set, const char *format,
                      bool keep_metadata, char *buf, size_t len);

/*
 * The result key "out/HEX" for an original's SHA-256, a canonical pipeline
 * and the versions of the filters it names ("thumbnail=1.0,webp=1.0").
 */
void job_result_key(const unsigned char sha256[32], const char *canonical,
                    const char *versions, char *buf, size_t len);

/* The same from the SHA-256 in hex (as records keep it); 0 or -EINVAL. */
int job_result_key_hex(const char *sha256_hex, const char *canonical,
                       const char *versions, char *buf, size_t len);

/* sha256 as 64 lowercase hex digits (as records keep it). */
void job_sha256_hex(const unsigned char sha256[32], char out[65]);

/* The message body (JSON); caller frees with free(). NULL on ENOMEM. */
char *job_msg_encode(const struct job_msg *m, size_t *len);
/* Parses a body; 0 or -EINVAL with the reason. Free with job_msg_clear. */
int job_msg_decode(const void *body, size_t len, struct job_msg *m, char *err,
                   size_t errlen);
void job_msg_clear(struct job_msg *m);

/* A reply (worker or reaper -> the ingress that waits): the job is over. */
struct job_reply {
	char id[JOB_ID_LEN + 1];
	enum job_status status; /* JOB_STATUS_MISSING if it names none */
};

/* The reply body for id and status in buf (at least JOB_REPLY_MAX
 * bytes); returns its length, or -ENOSPC. */
int job_reply_encode(const char *id, enum job_status status, char *buf,
                     size_t len);

/* Parses a reply body: 0, or -EINVAL without a valid job id. */
int job_reply_decode(const void *body, size_t len, struct job_reply *r);

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
void job_record_set_status(json_t *rec, enum job_status status,
                           const char *error);

#endif
