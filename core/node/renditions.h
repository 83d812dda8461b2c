/*
 * Renditions: one job, several outputs from one upload
 * (POST /v1/jobs?renditions=P1;P2;... or ?presets=a;b;...). The original
 * is decoded once, at the largest size any output needs, into memory,
 * and each output's pipeline runs from that shared image; each output
 * gets its own content-derived key (job.h), so an output identical to a
 * single job's is shared with it both ways.
 *
 * The record of such a job has, beside the fields of a single job's:
 *   "renditions": ["P1", "P2", ...]   the canonical pipelines, in order
 *   "results": [{"pipeline", "key", "mime", "format", "width", "height",
 *                "bytes", "encoder"}, ...]   once done, in the same order
 *   "decodes": N   how many times the worker decoded the original (1, or
 *                  0 when every output was in storage already)
 * and its "pipeline" is the canonical pipelines joined with ";", its
 * "result" and "output" those of the first rendition. The job fails as a
 * whole if any output fails, its error naming the output ("rendition 2
 * thumbnail(...)|webp: reason"); outputs made before are kept in storage
 * (under their content keys) but not listed.
 */
#ifndef IMGNODE_RENDITIONS_H
#define IMGNODE_RENDITIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "image.h"
#include "job.h"

#define RENDITIONS_MAX 64 /* the bound of [limits] max_renditions */

struct limits_conf;
struct pipeline;
struct plugin_set;

/*
 * Splits text at the semicolons outside double-quoted strings (pipeline.h's
 * quoting, backslash escapes included) into *parts, new strings without
 * surrounding blanks (free with renditions_parts_free). Returns how many
 * (1 to max), or -EINVAL (an empty part), -E2BIG (more than max) or
 * -ENOMEM, with a reason in err.
 */
int renditions_split(const char *text, size_t max, char ***parts, char *err,
                     size_t errlen);
void renditions_parts_free(char **parts, size_t n);

/* How many renditions rec's job has; 0 for a single-output job. */
size_t renditions_count(json_t *rec);

/*
 * For serving output k of rec (GET .../result/K): sets rec's "result" and
 * "output" to those of results[k] (rec is changed in memory only). 0, or
 * -ENOENT when the job has no output k (k 0 of a single job is its own).
 */
int renditions_pick(json_t *rec, long k);

/* One output of a renditions job, as the worker makes it. */
struct rendition {
	struct pipeline *pl; /* owned by the caller */
	char key[JOB_KEY_MAX]; /* out/KEY */
	bool stored; /* in storage already: nothing to make */
	struct image_out out; /* made by renditions_run */
};

/*
 * Makes every output of rs[0..n) not already stored from the original
 * buf (probed as info): each pipeline's cost check and the shared
 * decode's, then one decode into memory (with shrink-on-load to the
 * largest size needed when every pipeline to run starts with a loading
 * step such as thumbnail), then each pipeline from that image. *decodes
 * gets 1 if the original was decoded, else 0. Returns 0, or image_run's
 * -errno with err naming the rendition that failed (outputs made are
 * freed then).
 */
int renditions_run(struct rendition *rs, size_t n, const struct plugin_set *set,
                   const void *buf, size_t len, const struct image_info *info,
                   const struct limits_conf *lim, int *decodes, char *err,
                   size_t errlen);

/* Frees the outputs renditions_run made. */
void renditions_out_free(struct rendition *rs, size_t n);

#endif
