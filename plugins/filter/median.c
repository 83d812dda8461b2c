/*
 * median([size]): the median filter (vips_median): each pixel becomes the
 * median of the size x size square around it, which removes speckle
 * ("salt and pepper") noise while keeping edges. size is odd; the cost
 * grows with its square, so it is bounded. Every band, alpha too, is
 * filtered. An animation is refused (the square would reach across
 * frames).
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_SIZE };

static const struct imgnode_arg args[] = {
        {"size", IMGNODE_ARG_INT, "3", 1, 15, NULL,
         "Side of the square, in pixels: odd, 1 to 15."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int odd_size(int64_t size, char *err, size_t errlen)
{
	if (size % 2)
		return 0;
	snprintf(err, errlen, "size=%lld: must be odd (1, 3, 5 ... 15)",
	         (long long)size);
	return -EINVAL;
}

static int median_apply(void *state, VipsImage *in,
                        const union imgnode_value *args, VipsImage **out,
                        char *err, size_t errlen)
{
	int r;

	(void)state;
	filter_start();
	if ((r = odd_size(args[ARG_SIZE].i, err, errlen)) ||
	    (r = filter_one_page(in, err, errlen)))
		return r;
	if (vips_median(in, out, (int)args[ARG_SIZE].i, NULL))
		return filter_fail(err, errlen, NULL);
	return 0;
}

static int median_predict(void *state, const struct imgnode_geometry *in,
                          const union imgnode_value *args,
                          struct imgnode_geometry *out, char *err,
                          size_t errlen)
{
	(void)state, (void)in, (void)out;
	return odd_size(args[ARG_SIZE].i, err, errlen);
}

static int median_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 3}};

	(void)state;
	return filter_selftest_apply(median_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = median_apply,
        .selftest = median_selftest,
        .predict = median_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "median",
        .version = "1.0",
        .description = "Median filter: remove speckle noise, keep edges.",
        .ops = &ops,
};
