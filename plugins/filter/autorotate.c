/*
 * autorotate: turns the image upright from its EXIF orientation tag
 * (vips_autorot) and removes the tag, so viewers do not turn it again. An
 * image without the tag passes unchanged. A leading thumbnail does this
 * already. An animation turns frame by frame.
 */
#include <vips/vips.h>

#include "filter.h"

static const struct imgnode_arg args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int autorotate_apply(void *state, VipsImage *in,
                            const union imgnode_value *args, VipsImage **out,
                            char *err, size_t errlen)
{
	(void)state, (void)args;
	filter_start();
	return filter_upright(in, out, err, errlen);
}

static int autorotate_predict(void *state, const struct imgnode_geometry *in,
                              const union imgnode_value *args,
                              struct imgnode_geometry *out, char *err,
                              size_t errlen)
{
	(void)state, (void)args, (void)err, (void)errlen;
	filter_predict_upright(in, out);
	return 0;
}

static int autorotate_selftest(void *state, char *err, size_t errlen)
{
	(void)state;
	return filter_selftest_apply(autorotate_apply, NULL, 64, 48, err,
	                             errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = autorotate_apply,
        .selftest = autorotate_selftest,
        .predict = autorotate_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "autorotate",
        .version = "1.0",
        .description = "Turn the image upright from its EXIF orientation.",
        .ops = &ops,
};
