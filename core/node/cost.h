/*
 * What a job will cost, known before any pixel is decoded: every step's
 * output (and what a step makes on its way, such as a text it draws or an
 * enlargement it then crops) is predicted from the input's header through
 * the filters' predict hooks, and checked against [limits] max_pixels,
 * max_dimension and, for the encoder, max_output. The ingress runs the
 * check when a job is submitted (422 at once), the worker again before it
 * decodes, and the worker checks each step's real size as it is built.
 */
#ifndef IMGNODE_COST_H
#define IMGNODE_COST_H

#include <stddef.h>
#include <stdint.h>

struct image_info;
struct limits_conf;
struct pipeline;
struct plugin_set;

/*
 * Predicts pl on an input of info's shape (set gives the default encoder
 * when pl has none) and checks every step against lim. Returns 0, or
 * -E2BIG with the step named in err ("step 1 thumbnail(...): output
 * 16000x16000 (256 Mpx) is over max_pixels (100 Mpx)"), or a filter's
 * -errno from predict with its reason.
 */
int cost_check(const struct pipeline *pl, const struct plugin_set *set,
               const struct image_info *info, const struct limits_conf *lim,
               char *err, size_t errlen);

/*
 * Checks the real size of step i of pl, once built (libvips knows it
 * before computing anything): frames frames of width x height, against
 * max_pixels (all frames) and max_dimension (a frame's sides). 0 or
 * -E2BIG with the step named in err.
 */
int cost_check_built(const struct pipeline *pl, size_t i, int64_t width,
                     int64_t height, int64_t frames,
                     const struct limits_conf *lim, char *err, size_t errlen);

/*
 * Checks an encoded result of len bytes against max_output. 0 or -EFBIG
 * with a reason in err.
 */
int cost_check_output(const char *encoder, size_t len,
                      const struct limits_conf *lim, char *err, size_t errlen);

#endif
