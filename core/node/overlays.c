/*
 * Stored images for overlay() (see overlays.h). The cache holds each
 * image's bytes as a VipsBlob: an image opened from it holds a reference,
 * so an entry can be dropped while a pipeline still reads it.
 */
#include "overlays.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "../plugin.h"
#include "image.h"
#include "job.h"
#include "node_conf.h"
#include "startup.h"

struct entry {
	char id[JOB_ID_LEN + 1];
	VipsBlob *blob; /* NULL: free */
	uint64_t used; /* when last used, in fetches */
};

struct overlays {
	const struct plugin_set *set;
	const struct limits_conf *lim;
	struct entry cache[OVERLAYS_CACHED];
	uint64_t clock;
};

struct overlays *overlays_new(const struct plugin_set *set,
                              const struct limits_conf *lim)
{
	struct overlays *o = calloc(1, sizeof(*o));

	if (o) {
		o->set = set;
		o->lim = lim;
	}
	return o;
}

void overlays_free(struct overlays *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < OVERLAYS_CACHED; i++)
		if (o->cache[i].blob)
			vips_area_unref(VIPS_AREA(o->cache[i].blob));
	free(o);
}

/* Frees what the storage plugin allocated, for a VipsBlob. */
static int free_stored(void *data, void *area)
{
	(void)area;
	free(data);
	return 0;
}

/* The entry for id, or NULL. */
static struct entry *cached(struct overlays *o, const char *id)
{
	for (size_t i = 0; i < OVERLAYS_CACHED; i++)
		if (o->cache[i].blob && !strcmp(o->cache[i].id, id))
			return &o->cache[i];
	return NULL;
}

/* A free entry, or the least recently used one, emptied. */
static struct entry *victim(struct overlays *o)
{
	struct entry *e = &o->cache[0];

	for (size_t i = 0; i < OVERLAYS_CACHED; i++) {
		if (!o->cache[i].blob)
			return &o->cache[i];
		if (o->cache[i].used < e->used)
			e = &o->cache[i];
	}
	vips_area_unref(VIPS_AREA(e->blob));
	e->blob = NULL;
	return e;
}

/* Reads img/ID from storage into a new entry. 0 or -errno with a reason. */
static int read_stored(struct overlays *o, const char *id, struct entry **out,
                       char *err, size_t errlen)
{
	char key[JOB_KEY_MAX];
	struct entry *e;
	void *data = NULL;
	size_t len = 0;
	int ret;

	job_image_key(id, key, sizeof(key));
	ret = storage_ops(o->set)->get(o->set->storage->state, key,
	                               (size_t)o->lim->max_overlay, &data,
	                               &len);
	if (ret == -ENOENT) {
		snprintf(err, errlen,
		         "no image %s (store it with POST /v1/images)", id);
		return ret;
	}
	if (ret == -EFBIG) {
		snprintf(err, errlen,
		         "image %s is over [limits] max_overlay (%lld bytes)",
		         id, (long long)o->lim->max_overlay);
		return ret;
	}
	if (ret) {
		snprintf(err, errlen, "cannot read image %s: %s", id,
		         strerror(-ret));
		return -EAGAIN; /* the storage's trouble: the job waits */
	}
	e = victim(o);
	e->blob = vips_blob_new(free_stored, data, len);
	snprintf(e->id, sizeof(e->id), "%s", id);
	*out = e;
	return 0;
}

int overlays_fetch(void *arg, const char *id, VipsImage **out, char *err,
                   size_t errlen)
{
	struct overlays *o = arg;
	struct entry *e = cached(o, id);
	char why[512];
	int ret;

	if (!job_id_valid(id)) {
		snprintf(err, errlen, "\"%s\" is not an image id", id);
		return -EINVAL;
	}
	if (!e) {
		ret = read_stored(o, id, &e, err, errlen);
		if (ret)
			return ret;
	}
	e->used = ++o->clock;
	ret = image_open_blob(e->blob, o->lim, out, why, sizeof(why));
	if (ret)
		snprintf(err, errlen, "image %s: %s", id, why);
	return ret;
}
