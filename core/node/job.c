/*
 * The job protocol (see job.h): statuses, small JSON documents in storage,
 * in messages and in replies, handled with jansson, and result keys.
 */
#include "job.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../plugin.h"
#include "pipeline.h"

static const char hex[] = "0123456789abcdef";

static const char *const status_names[] = {
        [JOB_QUEUED] = "queued",
        [JOB_RUNNING] = "running",
        [JOB_DONE] = "done",
        [JOB_FAILED] = "failed",
};

const char *job_status_name(enum job_status status)
{
	return status <= JOB_FAILED ? status_names[status] : NULL;
}

enum job_status job_status_parse(const char *s)
{
	if (!s)
		return JOB_STATUS_MISSING;
	for (int i = JOB_QUEUED; i <= JOB_FAILED; i++)
		if (strcmp(s, status_names[i]) == 0)
			return (enum job_status)i;
	return JOB_STATUS_UNKNOWN;
}

enum job_status job_record_status(json_t *rec)
{
	return job_status_parse(
	        json_string_value(json_object_get(rec, "status")));
}

int job_new_id(char id[JOB_ID_LEN + 1])
{
	unsigned char raw[JOB_ID_LEN / 2];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		id[2 * i] = hex[raw[i] >> 4];
		id[2 * i + 1] = hex[raw[i] & 15];
	}
	id[JOB_ID_LEN] = '\0';
	return 0;
}

int job_id_valid(const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if (!strchr(hex, id[i]) || !id[i])
			return 0;
	return i == JOB_ID_LEN;
}

void job_orig_key(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "orig/%s", id);
}

void job_record_key(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "jobs/%s", id);
}

void job_image_id(const unsigned char sha256[32], char id[JOB_ID_LEN + 1])
{
	char hex64[65];

	job_sha256_hex(sha256, hex64);
	memcpy(id, hex64, JOB_ID_LEN);
	id[JOB_ID_LEN] = '\0';
}

void job_image_key(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "img/%s", id);
}

void job_image_meta_key(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "imgs/%s", id);
}

void job_variant_mark_key(const char *image, const char *vid, char *buf,
                          size_t len)
{
	snprintf(buf, len, "imgv/%s/%s", image, vid);
}

int job_variant_id(const char *result_key, char id[JOB_ID_LEN + 1])
{
	const char *hex = result_key + 4;

	if (strncmp(result_key, "out/", 4) != 0 || strlen(hex) != 64 ||
	    strspn(hex, "0123456789abcdef") != 64)
		return -EINVAL;
	memcpy(id, hex, JOB_ID_LEN);
	id[JOB_ID_LEN] = '\0';
	return 0;
}

void job_input_key(json_t *rec, const char *id, char *buf, size_t len)
{
	const char *image = json_string_value(json_object_get(rec, "image"));

	if (image && job_id_valid(image))
		job_image_key(image, buf, len);
	else
		job_orig_key(id, buf, len);
}

void job_result_key(const unsigned char sha256[32], const char *canonical,
                    const char *versions, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char out[2 * 32 + 1];

	/* fields separated by a byte none of them can contain */
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, sha256, 32) ||
	    !EVP_DigestUpdate(ctx, "\n", 1) ||
	    !EVP_DigestUpdate(ctx, canonical, strlen(canonical)) ||
	    !EVP_DigestUpdate(ctx, "\n", 1) ||
	    !EVP_DigestUpdate(ctx, versions, strlen(versions)) ||
	    !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < 32) {
		EVP_MD_CTX_free(ctx);
		snprintf(buf, len, "out/invalid");
		return;
	}
	EVP_MD_CTX_free(ctx);
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	snprintf(buf, len, "out/%s", out);
}

int job_result_key_hex(const char *sha256_hex, const char *canonical,
                       const char *versions, char *buf, size_t len)
{
	unsigned char sha[32];

	if (!sha256_hex || strlen(sha256_hex) != 64)
		return -EINVAL;
	for (size_t i = 0; i < 32; i++) {
		const char *hi = strchr(hex, sha256_hex[2 * i]);
		const char *lo = strchr(hex, sha256_hex[2 * i + 1]);
		if (!hi || !lo || !*hi || !*lo)
			return -EINVAL;
		sha[i] = (unsigned char)((hi - hex) << 4 | (lo - hex));
	}
	job_result_key(sha, canonical, versions, buf, len);
	return 0;
}

/* Appends to buf what fits of the text and counts all of it in *off. */
static void IMGNODE_PRINTF(4, 5)
        put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(*off < len ? buf + *off : NULL,
	              *off < len ? len - *off : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

size_t job_versions(const struct pipeline *pl, const struct plugin_set *set,
                    const char *format, bool keep_metadata, char *buf,
                    size_t len)
{
	const struct plugin *enc = NULL;
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < pl->n; i++)
		put(buf, len, &off, "%s%s=%s", i ? "," : "", pl->steps[i].name,
		    pl->steps[i].version ? pl->steps[i].version : "?");
	if (set && format && !pipeline_has_encoder(pl))
		enc = pipeline_default_encoder(set, format);
	if (enc)
		put(buf, len, &off, "%s%s=%s", off ? "," : "", enc->desc->name,
		    enc->desc->version ? enc->desc->version : "?");
	/* results made before metadata was stripped keep their keys */
	if (!keep_metadata)
		put(buf, len, &off, "%smetadata=stripped", off ? "," : "");
	return off;
}

int job_result_key_of(const char *sha256_hex, const struct pipeline *pl,
                      const struct plugin_set *set, const char *format,
                      bool keep_metadata, char *buf, size_t len)
{
	char versions[JOB_VERSIONS_MAX], *text = versions;
	size_t need = job_versions(pl, set, format, keep_metadata, versions,
	                           sizeof(versions));
	int ret;

	if (need >= sizeof(versions)) { /* never cut short: see job.h */
		text = malloc(need + 1);
		if (!text)
			return -ENOMEM;
		job_versions(pl, set, format, keep_metadata, text, need + 1);
	}
	ret = job_result_key_hex(sha256_hex, pl->canonical, text, buf, len);
	if (text != versions)
		free(text);
	return ret;
}

void job_sha256_hex(const unsigned char sha256[32], char out[65])
{
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[sha256[i] >> 4];
		out[2 * i + 1] = hex[sha256[i] & 15];
	}
	out[64] = '\0';
}

bool job_request_id_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > JOB_REQUEST_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

char *job_msg_encode(const struct job_msg *m, size_t *len)
{
	json_t *j = json_pack("{s:s, s:s, s:s}", "id", m->id, "pipeline",
	                      m->pipeline, "result", m->result);
	char *s;

	if (j && m->request_id)
		json_object_set_new(j, "request_id",
		                    json_string(m->request_id));
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (s)
		*len = strlen(s);
	return s;
}

int job_msg_decode(const void *body, size_t len, struct job_msg *m, char *err,
                   size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	const char *id, *pipeline, *result, *rid;
	bool rid_ok;

	memset(m, 0, sizeof(*m));
	if (!j) {
		snprintf(err, errlen, "message is not JSON: %s", jerr.text);
		return -EINVAL;
	}
	if (json_unpack(j, "{s:s, s:s, s:s}", "id", &id, "pipeline", &pipeline,
	                "result", &result) ||
	    !job_id_valid(id) || strncmp(result, "out/", 4) != 0) {
		snprintf(err, errlen,
		         "message lacks a valid id, pipeline or result key");
		json_decref(j);
		return -EINVAL;
	}
	memcpy(m->id, id, JOB_ID_LEN + 1);
	m->pipeline = strdup(pipeline);
	m->result = strdup(result);
	/* optional (newer ingresses); one unfit for logs is left out */
	rid = json_string_value(json_object_get(j, "request_id"));
	rid_ok = job_request_id_valid(rid);
	if (rid_ok)
		m->request_id = strdup(rid);
	json_decref(j); /* rid points into j: not read after this */
	if (!m->pipeline || !m->result || (rid_ok && !m->request_id)) {
		job_msg_clear(m);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

void job_msg_clear(struct job_msg *m)
{
	free(m->pipeline);
	free(m->result);
	free(m->request_id);
	m->pipeline = m->result = m->request_id = NULL;
}

int job_reply_encode(const char *id, enum job_status status, char *buf,
                     size_t len)
{
	const char *name = job_status_name(status);
	int n = snprintf(buf, len, "{\"id\":\"%s\",\"status\":\"%s\"}", id,
	                 name ? name : "");

	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int job_reply_decode(const void *body, size_t len, struct job_reply *r)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "id"));
	int ret = -EINVAL;

	if (id && job_id_valid(id)) {
		memcpy(r->id, id, JOB_ID_LEN + 1);
		r->status = job_status_parse(
		        json_string_value(json_object_get(j, "status")));
		ret = 0;
	}
	json_decref(j);
	return ret;
}

void job_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

int64_t job_stamp_us(json_t *rec, const char *field)
{
	const char *s = json_string_value(json_object_get(rec, field));
	struct tm tm = {0};
	int ms = 0, end = 0;

	/* widths keep sscanf from overflowing; a record from storage may be
	 * anything, and out-of-range fields would overflow below */
	if (!s ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
	           &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms,
	           &end) != 7 ||
	    !end || s[end] || tm.tm_year < 1970 || tm.tm_mon < 1 ||
	    tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
	    tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60 || ms < 0)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000000 + ms * 1000;
}

json_t *job_record_get(const struct plugin *storage, const char *id, int *ret)
{
	const struct imgnode_storage_ops *ops = storage->desc->ops;
	char key[JOB_KEY_MAX];
	json_error_t jerr;
	void *buf = NULL;
	size_t len = 0;
	json_t *rec;

	job_record_key(id, key, sizeof(key));
	*ret = ops->get(storage->state, key, JOB_RECORD_MAX, &buf, &len);
	if (*ret)
		return NULL;
	rec = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!rec || !json_is_object(rec)) {
		json_decref(rec);
		*ret = -EBADMSG;
		return NULL;
	}
	return rec;
}

int job_record_put(const struct plugin *storage, json_t *rec)
{
	const struct imgnode_storage_ops *ops = storage->desc->ops;
	const char *id = json_string_value(json_object_get(rec, "id"));
	char key[JOB_KEY_MAX];
	char *text;
	int ret;

	if (!id || !job_id_valid(id))
		return -EINVAL;
	job_record_key(id, key, sizeof(key));
	text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	ret = ops->put(storage->state, key, text, strlen(text));
	free(text);
	return ret;
}

void job_record_set_status(json_t *rec, enum job_status status,
                           const char *error)
{
	const char *name = job_status_name(status);
	char now[40];

	if (!name)
		return; /* only the four statuses are ever written */
	job_timestamp(now, sizeof(now));
	json_object_set_new(rec, "status", json_string(name));
	if (status == JOB_RUNNING)
		json_object_set_new(rec, "started", json_string(now));
	if (job_status_final(status))
		json_object_set_new(rec, "finished", json_string(now));
	json_object_set_new(rec, "error",
	                    error ? json_string(error) : json_null());
}
