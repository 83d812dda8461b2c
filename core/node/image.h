/*
 * The image side of a job, in processes that may use libvips (workers and
 * the ingress's probers, never the supervisor nor the ingress itself):
 * initialising libvips safely, checking an input from its header before
 * anything is decoded, and running a pipeline into one encoded buffer.
 */
#ifndef IMGNODE_IMAGE_H
#define IMGNODE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image_info.h"

struct conf;
struct limits_conf;
struct pipeline;
struct plugin_set;

/*
 * Initialises libvips in this process: operation cache off, loaders
 * limited to the allow-list, concurrency threads per image. 0 or -errno
 * with a reason.
 */
int image_init(int concurrency, char *err, size_t errlen);

/* The libvips this was built against and runs with ("8.16.0"); static. */
const char *image_vips_version(void);

/*
 * Sniffs buf's format from its content and reads only its header. Returns
 * 0, -EPROTONOSUPPORT (not an allowed format: HTTP 415), -E2BIG (over a
 * limit: 422) or -EINVAL (unreadable header: 422), with a reason in err.
 */
int image_probe(const void *buf, size_t len, const struct limits_conf *lim,
                struct image_info *info, char *err, size_t errlen);

struct image_out {
	void *buf; /* g_malloc'd by libvips; free with image_out_free */
	size_t len;
	const char *mime; /* static */
	const char *format; /* static: the encoder's format */
	const char *encoder;
	int width;
	int height; /* of a frame */
	int frames; /* 1, or an animation's frames */
};

/*
 * Runs pl on buf (already probed as info): first the cost check (every
 * step predicted from the header, cost.h), then decode with
 * shrink-on-load when the first step can, apply every step lazily
 * (checking each step's real size as it is built), encode once with the
 * last step or, without one, the encoder for the input's format, and check
 * the encoded size against max_output. Unless lim->keep_metadata, the
 * image is turned upright and loses every metadata field but its ICC
 * profile before the encoder runs. Returns 0, -EINVAL for an input or
 * pipeline libvips rejects (the job fails: 422), -E2BIG or -EFBIG over a
 * limit (422 too), -EAGAIN when an image a step names could not be read
 * for now (image_set_fetch: the job should wait), or another -errno, with
 * a reason in err.
 */
int image_run(const struct pipeline *pl, const struct plugin_set *set,
              const void *buf, size_t len, const struct image_info *info,
              const struct limits_conf *lim, struct image_out *out, char *err,
              size_t errlen);
void image_out_free(struct image_out *out);

struct _VipsImage;
/*
 * Fetches the stored image id names (IMGNODE_ARG_IMAGE: overlay's image),
 * checked and decoded, into *out: a new reference the caller unrefs. 0 or
 * -errno with a reason: -ENOENT "no image ID", a limit, or -EAGAIN for
 * trouble that passes (image_run returns it as it is).
 */
typedef int (*image_fetch_fn)(void *arg, const char *id,
                              struct _VipsImage **out, char *err,
                              size_t errlen);

/*
 * Where image_run gets the images that filters' IMGNODE_ARG_IMAGE
 * arguments name, for this process (a worker's storage); without one,
 * such a step fails ("stored images are not available here").
 */
void image_set_fetch(image_fetch_fn fn, void *arg);

struct _VipsBlob;
/*
 * Opens the image in blob (a stored one: overlay's logo) as image_run
 * opens uploads: probed against lim (formats, pixels, dimensions), then
 * read lazily with the same loader options, its first frame only. *out
 * holds a reference on blob (the caller unrefs *out). 0, or -errno as
 * image_probe with a reason.
 */
int image_open_blob(struct _VipsBlob *blob, const struct limits_conf *lim,
                    struct _VipsImage **out, char *err, size_t errlen);

/*
 * The rest of image_run from an image already decoded: steps first..n-1
 * of pl applied lazily (each step's real size checked), the metadata
 * policy, the encoder (pl's last step or the input format's) and the
 * max_output check. Takes over img (unrefs it). Returns as image_run.
 */
int image_run_steps(const struct pipeline *pl, const struct plugin_set *set,
                    struct _VipsImage *img, size_t first,
                    const struct image_info *info,
                    const struct limits_conf *lim, struct image_out *out,
                    char *err, size_t errlen);

/*
 * True when steps first..n-1 of pl (and the default encoder, if pl names
 * none) all read their input once top to bottom
 * (IMGNODE_FILTER_SEQUENTIAL) and the image needs no turning upright: its
 * decode may then use libvips' sequential access.
 */
bool image_sequential_ok(const struct pipeline *pl,
                         const struct plugin_set *set, size_t first,
                         const struct image_info *info,
                         const struct limits_conf *lim);

/* The libvips load options for lim ("fail_on=truncated"), with ",n=-1"
 * for an animation (info: every frame) and ",access=sequential" if
 * sequential. */
void image_load_options(const struct limits_conf *lim,
                        const struct image_info *info, bool sequential,
                        char *buf, size_t len);

/* Turns sequential access off (for a comparison, or [workers]
 * sequential_access = no) or back on; on by default. Per process. */
void image_set_sequential(bool on);

#endif
