/*
 * Webhooks (see callback.h): the allow-list check of a callback URL, made
 * with libcurl's own URL parser so that the host checked is the host the
 * notifier's libcurl connects to; the keys; the signature; the backoff.
 */
#include "callback.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"
#include "node_conf.h"

/* Splits item into its host and port (0: none); false if malformed. */
static bool split_item(const char *item, char *host, size_t hostlen, long *port)
{
	const char *end, *colon;
	size_t n;

	*port = 0;
	if (item[0] == '[') {
		end = strchr(item, ']');
		if (!end || end == item + 1 ||
		    strspn(item + 1, "0123456789abcdefABCDEF:.") !=
		            (size_t)(end - item - 1))
			return false;
		end++;
		colon = *end == ':' ? end : NULL;
		if (*end && !colon)
			return false;
	} else {
		colon = strrchr(item, ':');
		end = colon ? colon : item + strlen(item);
		if (end == item ||
		    strspn(item, "abcdefghijklmnopqrstuvwxyz"
		                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
		            (size_t)(end - item))
			return false;
	}
	n = (size_t)(end - item);
	if (n >= hostlen)
		return false;
	memcpy(host, item, n);
	host[n] = '\0';
	if (colon) {
		char *stop;

		if (!colon[1] ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1))
			return false;
		*port = strtol(colon + 1, &stop, 10);
		if (*port < 1 || *port > 65535)
			return false;
	}
	return true;
}

bool callback_host_item_ok(const char *item)
{
	char host[256];
	long port;

	return split_item(item, host, sizeof(host), &port);
}

/* A part of u as curl gives it (flags: CURLU_DEFAULT_PORT...), or NULL;
 * free with curl_free. */
static char *part(CURLU *u, CURLUPart what, unsigned flags)
{
	char *s = NULL;

	return curl_url_get(u, what, &s, flags) == CURLUE_OK ? s : NULL;
}

int callback_url_check(const char *url, const struct imgnode_list *hosts,
                       char *why, size_t len)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
	int ret = -EINVAL;

	if (!hosts->n) {
		snprintf(
		        why, len,
		        "callbacks are off on this node ([ingress] callback_hosts is empty)");
		return -EINVAL;
	}
	if (strlen(url) > CALLBACK_URL_MAX) {
		snprintf(why, len, "callback: longer than %d characters",
		         CALLBACK_URL_MAX);
		return -EINVAL;
	}
	u = curl_url();
	if (!u) {
		snprintf(why, len, "callback: out of memory");
		return -ENOMEM;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(why, len,
		         "callback: not an absolute http:// or https:// URL");
		goto out;
	}
	scheme = part(u, CURLUPART_SCHEME, 0);
	host = part(u, CURLUPART_HOST, 0);
	port = part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	user = part(u, CURLUPART_USER, 0);
	if (!scheme || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
		snprintf(why, len,
		         "callback: the scheme must be http or https");
		goto out;
	}
	if (user) {
		snprintf(why, len,
		         "callback: a URL with a user or password is refused");
		goto out;
	}
	if (!host || !port) {
		snprintf(why, len, "callback: no host");
		goto out;
	}
	for (size_t i = 0; i < hosts->n; i++) {
		char h[256];
		long p;

		if (!split_item(hosts->items[i], h, sizeof(h), &p))
			continue;
		if (strcasecmp(h, host) != 0)
			continue;
		if (p ? p == strtol(port, NULL, 10)
		      : strcmp(port, strcmp(scheme, "https") ? "80" : "443") ==
		                    0) {
			ret = 0;
			goto out;
		}
	}
	snprintf(
	        why, len,
	        "callback: host %.200s port %.8s is not in [ingress] callback_hosts",
	        host, port);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_url_cleanup(u);
	return ret;
}

void callback_hint_push(struct metrics *m, const char *id)
{
	uint64_t n = atomic_fetch_add(&m->hints.head, 1);
	struct metrics_hint *s = &m->hints.slot[n % METRICS_HINTS];

	atomic_store(&s->seq, 0); /* being written */
	snprintf(s->id, sizeof(s->id), "%s", id);
	atomic_store(&s->seq, n + 1);
}

int callback_hint_pop(struct metrics *m, uint64_t *tail, char id[33])
{
	uint64_t head = atomic_load(&m->hints.head), seq;
	struct metrics_hint *s;

	if (*tail >= head)
		return 0;
	if (head - *tail > METRICS_HINTS) {
		*tail = head;
		return -1;
	}
	s = &m->hints.slot[*tail % METRICS_HINTS];
	seq = atomic_load(&s->seq);
	if (seq == 0 || seq < *tail + 1)
		return 0; /* pushed, not yet written: the next look */
	memcpy(id, s->id, 33);
	id[32] = '\0';
	if (seq != *tail + 1 || atomic_load(&s->seq) != seq) {
		*tail = head; /* overwritten meanwhile */
		return -1;
	}
	(*tail)++;
	return 1;
}

void callback_index_key(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "callbacks/%s", id);
}

void callback_claim_key(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "claims/%s", id);
}

int callback_sign(const char *secret, long long timestamp, const char *body,
                  size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char ts[32];
	int n = snprintf(ts, sizeof(ts), "%lld.", timestamp);
	unsigned char *text = malloc((size_t)n + len);

	if (!text)
		return -ENOMEM;
	memcpy(text, ts, (size_t)n);
	memcpy(text + n, body, len);
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), text,
	          (size_t)n + len, md, &mdlen) ||
	    mdlen != 32) {
		free(text);
		return -EIO;
	}
	free(text);
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

int64_t callback_backoff_ms(const struct webhooks_conf *wc, int64_t attempts)
{
	int64_t ms = wc->backoff_min;

	for (int64_t i = 1; i < attempts && ms < wc->backoff_max; i++)
		ms *= 2;
	return ms > wc->backoff_max ? wc->backoff_max : ms;
}
