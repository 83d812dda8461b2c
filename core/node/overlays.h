/*
 * The stored images that filters' IMGNODE_ARG_IMAGE arguments name
 * (overlay's logo), for a worker: read from storage under img/ID (job.h),
 * at most [limits] max_overlay bytes, checked against [limits] as uploads
 * are and decoded with the same loader options (image_open_blob). The
 * bytes of the last OVERLAYS_CACHED images read stay in memory, so a logo
 * that every job uses is read once per worker.
 */
#ifndef IMGNODE_OVERLAYS_H
#define IMGNODE_OVERLAYS_H

#include <stddef.h>

#define OVERLAYS_CACHED 8

struct limits_conf;
struct plugin_set;
struct _VipsImage;

/*
 * A cache over set's storage instance, used from one thread (the
 * worker's); set and lim are borrowed for its life. NULL on ENOMEM. Free
 * with overlays_free.
 */
struct overlays *overlays_new(const struct plugin_set *set,
                              const struct limits_conf *lim);
void overlays_free(struct overlays *o);

/*
 * An image_fetch_fn (image.h) over a struct overlays (arg): *out is the
 * image id names, a new reference. -ENOENT "no image ID", -EFBIG over
 * max_overlay, a limit's -errno (image_probe), or -EAGAIN when the
 * storage could not be read (the worker keeps the job and tries again),
 * with a reason.
 */
int overlays_fetch(void *arg, const char *id, struct _VipsImage **out,
                   char *err, size_t errlen);

#endif
