/*
 * crop(left, top, width, height): cuts out a rectangle, in pixels of the
 * image as it is at this step (after a thumbnail, of the thumbnail). A
 * rectangle that does not lie wholly inside the image is an error naming
 * the image's size, rather than a silently smaller result. An animation
 * is cut frame by frame: the rectangle is in every frame.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_LEFT, ARG_TOP, ARG_WIDTH, ARG_HEIGHT };

static const struct imgnode_arg args[] = {
        {"left", IMGNODE_ARG_INT, NULL, 0, VIPS_MAX_COORD, NULL,
         "Left edge, in pixels from the left."},
        {"top", IMGNODE_ARG_INT, NULL, 0, VIPS_MAX_COORD, NULL,
         "Top edge, in pixels from the top."},
        {"width", IMGNODE_ARG_INT, NULL, 1, VIPS_MAX_COORD, NULL,
         "Width, in pixels."},
        {"height", IMGNODE_ARG_INT, NULL, 1, VIPS_MAX_COORD, NULL,
         "Height, in pixels."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int crop_op(VipsImage *in, VipsImage **out, const void *arg)
{
	const union imgnode_value *args = arg;

	return vips_crop(in, out, (int)args[ARG_LEFT].i, (int)args[ARG_TOP].i,
	                 (int)args[ARG_WIDTH].i, (int)args[ARG_HEIGHT].i, NULL);
}

static int crop_apply(void *state, VipsImage *in,
                      const union imgnode_value *args, VipsImage **out,
                      char *err, size_t errlen)
{
	int64_t left = args[ARG_LEFT].i, top = args[ARG_TOP].i;
	int64_t width = args[ARG_WIDTH].i, height = args[ARG_HEIGHT].i;
	int page = vips_image_get_page_height(in);

	(void)state;
	filter_start();
	if (left + width > in->Xsize || top + height > page) {
		snprintf(
		        err, errlen,
		        "%lldx%lld at %lld,%lld lies outside the %dx%d image%s",
		        (long long)width, (long long)height, (long long)left,
		        (long long)top, in->Xsize, page,
		        page < in->Ysize ? " (one frame)" : "");
		return -EINVAL;
	}
	return filter_per_frame(in, out, crop_op, args, err, errlen);
}

/* The rectangle asked for; whether it fits is checked when applied. */
static int crop_predict(void *state, const struct imgnode_geometry *in,
                        const union imgnode_value *args,
                        struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)in, (void)err, (void)errlen;
	out->width = args[ARG_WIDTH].i;
	out->height = args[ARG_HEIGHT].i;
	return 0;
}

static int crop_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {
	        {.i = 8}, {.i = 4}, {.i = 20}, {.i = 10}};

	(void)state;
	return filter_selftest_apply(crop_apply, a, 20, 10, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES | IMGNODE_FILTER_SEQUENTIAL,
        .apply = crop_apply,
        .selftest = crop_selftest,
        .predict = crop_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "crop",
        .version = "1.0",
        .description = "Cut out a rectangle given in pixels.",
        .ops = &ops,
};
