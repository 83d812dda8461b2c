/*
 * max_bytes= of the lossy encoders (jpeg, webp, avif): the highest
 * quality, at most the one asked for, whose output fits in max_bytes,
 * found by bisection in a bounded number of encodes (FIT_TRIES): the
 * quality asked for first, then halving the range below it, and quality 1
 * last if nothing fitted yet. If even that is too big, the step fails
 * with the sizes it got. The image is computed into memory once before
 * the first try (a pipeline can only be run once), so max_bytes costs the
 * memory of the encoder's input, and the encodes. static inline, like
 * filter.h.
 */
#ifndef IMGNODE_FIT_H
#define IMGNODE_FIT_H

#include <stdint.h>
#include <stdio.h>

#include "filter.h"

#define FIT_TRIES 6 /* encodes at most */
#define FIT_MAX_BYTES 1000000000 /* the bound of the max_bytes argument */

/* An encoder at quality q: as the encode hook, with q apart. */
typedef int (*fit_save_fn)(VipsImage *in, const union imgnode_value *args,
                           int q, void **buf, size_t *len, char *err,
                           size_t errlen);

/*
 * Encodes in with save at quality q, or (max > 0) at the highest quality
 * <= q whose output is at most max bytes. *buf is the caller's (g_free).
 * 0, or -errno with a reason: -EFBIG if no quality fits.
 */
static inline int fit_encode(VipsImage *in, const union imgnode_value *args,
                             int q, int64_t max, fit_save_fn save, void **buf,
                             size_t *len, char *err, size_t errlen)
{
	VipsImage *mem;
	void *best = NULL, *got;
	size_t best_len = 0, got_len, q_len = 0, low_len = 0;
	int lo = 1, hi = q, tries = 0, r = 0, low = q;

	if (max <= 0)
		return save(in, args, q, buf, len, err, errlen);
	if (!(mem = vips_image_copy_memory(in)))
		return filter_fail(err, errlen, "max_bytes");
	/* invariant: what fits lies in [lo, hi]; best holds the best so far */
	while (lo <= hi && tries < FIT_TRIES) {
		int mid = tries == 0                        ? hi
		          : tries == FIT_TRIES - 1 && !best ? 1
		                                            : (lo + hi + 1) / 2;
		r = save(mem, args, mid, &got, &got_len, err, errlen);
		tries++;
		if (r)
			break;
		if (mid == q)
			q_len = got_len;
		if (mid <= low) {
			low = mid;
			low_len = got_len;
		}
		if ((int64_t)got_len <= max) {
			g_free(best);
			best = got;
			best_len = got_len;
			lo = mid + 1;
		} else {
			g_free(got);
			if (mid == 1)
				break;
			hi = mid - 1;
		}
	}
	g_object_unref(mem);
	if (r) {
		g_free(best);
		return r;
	}
	if (!best) {
		snprintf(
		        err, errlen,
		        "max_bytes=%lld: even the lowest quality is too big (q=%d gave %zu bytes, q=%d %zu bytes; %d encodes)",
		        (long long)max, q, q_len, low, low_len, tries);
		return -EFBIG;
	}
	*buf = best;
	*len = best_len;
	return 0;
}

#endif /* IMGNODE_FIT_H */
