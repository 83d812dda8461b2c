/*
 * Jobs in flight per client (see quota.h): a chained hash table of
 * counters keyed by the client's name, FNV-1a hashed. An entry lives only
 * while its client holds a job, so the table's size follows the jobs in
 * flight, never the number of clients ever seen.
 */
#include "quota.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct quota_entry {
	char client[QUOTA_CLIENT_MAX];
	int64_t held;
	struct quota_entry *next;
};

struct quota {
	struct quota_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t nclients;
};

static size_t bucket_of(const struct quota *q, const char *client)
{
	uint32_t h = 2166136261u;

	/* names are cut to QUOTA_CLIENT_MAX - 1 characters, as stored */
	for (size_t i = 0; i < QUOTA_CLIENT_MAX - 1 && client[i]; i++)
		h = (h ^ (unsigned char)client[i]) * 16777619u;
	return h & (q->nbuckets - 1);
}

struct quota *quota_new(size_t nbuckets)
{
	struct quota *q = calloc(1, sizeof(*q));
	size_t n = 16;

	if (!q)
		return NULL;
	while (n < nbuckets && n < ((size_t)1 << 20))
		n *= 2;
	q->buckets = calloc(n, sizeof(*q->buckets));
	if (!q->buckets) {
		free(q);
		return NULL;
	}
	q->nbuckets = n;
	return q;
}

void quota_free(struct quota *q)
{
	if (!q)
		return;
	for (size_t b = 0; b < q->nbuckets; b++) {
		struct quota_entry *e = q->buckets[b], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(q->buckets);
	free(q);
}

static struct quota_entry **find(const struct quota *q, const char *client)
{
	struct quota_entry **pe = &q->buckets[bucket_of(q, client)];

	while (*pe && strncmp((*pe)->client, client, QUOTA_CLIENT_MAX - 1) != 0)
		pe = &(*pe)->next;
	return pe;
}

int quota_take(struct quota *q, const char *client, int64_t max, int64_t *held)
{
	struct quota_entry **pe = find(q, client), *e = *pe;

	*held = e ? e->held : 0;
	if (*held >= max)
		return -EDQUOT;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		snprintf(e->client, sizeof(e->client), "%s", client);
		*pe = e;
		q->nclients++;
	}
	e->held++;
	return 0;
}

void quota_release(struct quota *q, const char *client)
{
	struct quota_entry **pe = find(q, client), *e = *pe;

	if (!e)
		return;
	if (--e->held > 0)
		return;
	*pe = e->next;
	free(e);
	q->nclients--;
}

int64_t quota_held(const struct quota *q, const char *client)
{
	struct quota_entry *e = *find(q, client);

	return e ? e->held : 0;
}

size_t quota_clients(const struct quota *q)
{
	return q->nclients;
}
