/*
 * Idempotency keys (idempotency.h): the header's check, the record's
 * storage key, its text, and the claim in shared storage that lets one
 * request of several with the same key, on any nodes, make the job.
 */
#include "idempotency.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDEM_RECORD_MAX 1024

int64_t idem_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int idem_key_check(const char *value, char *key, char *why, size_t whylen)
{
	size_t len = strlen(value);

	if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
		value++;
		len -= 2;
	}
	if (!len || len > IDEM_KEY_MAX) {
		snprintf(why, whylen,
		         "Idempotency-Key has %zu characters; give 1 to %d",
		         len, IDEM_KEY_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\') {
			snprintf(
			        why, whylen,
			        "Idempotency-Key: character %zu is not allowed; give printable ASCII without spaces, '\"' or '\\' (a UUID, say)",
			        i + 1);
			return -EINVAL;
		}
	}
	memcpy(key, value, len);
	key[len] = '\0';
	return 0;
}

static void hex_of(const unsigned char *md, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * n] = '\0';
}

/* SHA-256 of n pieces, each followed by a '\n' (none holds one). */
static int sha_of(const char *const *parts, size_t n, unsigned char md[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

	for (size_t i = 0; ok && i < n; i++)
		ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i])) &&
		     EVP_DigestUpdate(ctx, "\n", 1);
	ok = ok && EVP_DigestFinal_ex(ctx, md, &len) && len == 32;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

int idem_storage_key(const char *key_id, const char *key, char *out)
{
	const char *parts[] = {key_id, key};
	unsigned char md[32];

	if (sha_of(parts, 2, md))
		return -EIO;
	memcpy(out, IDEM_PREFIX, sizeof(IDEM_PREFIX) - 1);
	hex_of(md, 32, out + sizeof(IDEM_PREFIX) - 1);
	return 0;
}

int idem_define(const char *const *pipelines, size_t n, const char *callback,
                unsigned char def[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

	/* pipelines hold neither ';' nor a newline: the separators say
	 * where each ends, and that the callback follows */
	for (size_t i = 0; ok && i < n; i++)
		ok = EVP_DigestUpdate(ctx, pipelines[i],
		                      strlen(pipelines[i])) &&
		     EVP_DigestUpdate(ctx, ";", 1);
	ok = ok && EVP_DigestUpdate(ctx, "\n", 1);
	if (ok && callback)
		ok = EVP_DigestUpdate(ctx, callback, strlen(callback));
	ok = ok && EVP_DigestFinal_ex(ctx, def, &len) && len == 32;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

void idem_request_hash(const unsigned char def[32],
                       const unsigned char image[32], char *hex)
{
	unsigned char both[64], md[32];
	unsigned int len = 0;

	memcpy(both, def, 32);
	memcpy(both + 32, image, 32);
	if (!EVP_Digest(both, sizeof(both), md, &len, EVP_sha256(), NULL))
		memset(md, 0, sizeof(md)); /* never matches a real one */
	hex_of(md, 32, hex);
}

char *idem_record_encode(const struct idem_record *rec)
{
	json_t *j = json_pack(
	        "{s:s, s:s, s:s, s:I, s:I}", "job", rec->job, "hash", rec->hash,
	        "state", rec->state == IDEM_ACCEPTED ? "accepted" : "pending",
	        "at_ms", (json_int_t)rec->at_ms, "stale_ms",
	        (json_int_t)rec->stale_ms);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(j);
	return text;
}

int idem_record_decode(const void *buf, size_t len, struct idem_record *rec)
{
	json_t *j = json_loadb(buf, len, 0, NULL);
	const char *job = json_string_value(json_object_get(j, "job"));
	const char *hash = json_string_value(json_object_get(j, "hash"));
	const char *state = json_string_value(json_object_get(j, "state"));
	json_t *at = json_object_get(j, "at_ms");
	json_t *stale = json_object_get(j, "stale_ms"); /* none: older node */
	int ret = -EBADMSG;

	if (job && job_id_valid(job) && hash && strlen(hash) == 64 && state &&
	    (strcmp(state, "pending") == 0 || strcmp(state, "accepted") == 0) &&
	    json_is_integer(at)) {
		snprintf(rec->job, sizeof(rec->job), "%s", job);
		snprintf(rec->hash, sizeof(rec->hash), "%s", hash);
		rec->state = strcmp(state, "accepted") == 0 ? IDEM_ACCEPTED
		                                            : IDEM_PENDING;
		rec->at_ms = json_integer_value(at);
		rec->stale_ms = json_integer_value(stale) > 0
		                        ? json_integer_value(stale)
		                        : IDEM_PENDING_STALE_MS;
		ret = 0;
	}
	json_decref(j);
	return ret;
}

enum idem_verdict idem_judge(const struct idem_record *found, const char *hash,
                             int64_t now_ms, int64_t window_ms)
{
	int64_t age = now_ms - found->at_ms;

	if (age >= window_ms)
		return IDEM_FREE;
	if (found->state == IDEM_PENDING && age >= found->stale_ms)
		return IDEM_FREE;
	if (strcmp(found->hash, hash) != 0)
		return IDEM_MISMATCH;
	return found->state == IDEM_ACCEPTED ? IDEM_REPLAY : IDEM_IN_PROGRESS;
}

int idem_claim(const struct imgnode_storage_ops *st, void *state,
               const char *skey, const struct idem_record *mine, int64_t now_ms,
               int64_t window_ms, struct idem_record *found,
               enum idem_verdict *verdict)
{
	char *text = idem_record_encode(mine);
	int ret = -ENOMEM;

	for (int tries = 0; text && tries < 2; tries++) {
		void *buf = NULL;
		size_t len = 0;

		ret = st->put_excl(state, skey, text, strlen(text));
		if (ret != -EEXIST)
			break;
		ret = st->get(state, skey, IDEM_RECORD_MAX, &buf, &len);
		if (ret == -ENOENT) /* deleted meanwhile: claim it again */
			continue;
		if (ret)
			break;
		ret = idem_record_decode(buf, len, found);
		free(buf);
		*verdict =
		        ret ? IDEM_FREE
		            : idem_judge(found, mine->hash, now_ms, window_ms);
		ret = -EEXIST;
		if (*verdict != IDEM_FREE)
			break;
		/* expired, stale or foreign: gone, then claimed anew */
		ret = st->del(state, skey);
		if (ret && ret != -ENOENT)
			break;
		ret = -EEXIST;
		*verdict = IDEM_IN_PROGRESS; /* if another claims it first */
	}
	if (ret == -ENOENT) { /* claimed and deleted by others, twice */
		ret = -EEXIST;
		*verdict = IDEM_IN_PROGRESS;
	}
	free(text);
	return ret;
}
