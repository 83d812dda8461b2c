/*
 * frame(index): keeps one frame of an animation (GIF, WebP), counted from
 * 0, as a still image: for the steps that cannot work on animations
 * (smartcrop) or to make a poster of one. The frame's delay goes with the
 * others. A still image is its own frame 0; an index past the last frame
 * is an error naming how many there are, found from the header before
 * anything is decoded.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_INDEX };

static const struct imgnode_arg args[] = {
        {"index", IMGNODE_ARG_INT, NULL, 0, 99999, NULL,
         "Which frame, from 0 (the first)."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The reason for an index past the last frame. */
static int no_frame(int64_t index, int64_t frames, char *err, size_t errlen)
{
	snprintf(err, errlen, "no frame %lld: the image has %lld (0 to %lld)",
	         (long long)index, (long long)frames, (long long)frames - 1);
	return -EINVAL;
}

static int frame_apply(void *state, VipsImage *in,
                       const union imgnode_value *args, VipsImage **out,
                       char *err, size_t errlen)
{
	int pages = filter_pages(in), page = vips_image_get_page_height(in);
	int64_t index = args[ARG_INDEX].i;
	VipsImage *one;

	(void)state;
	filter_start();
	if (index >= pages)
		return no_frame(index, pages, err, errlen);
	if (vips_crop(in, &one, 0, (int)index * page, in->Xsize, page, NULL))
		return filter_fail(err, errlen, NULL);
	if (vips_copy(one, out, NULL)) {
		g_object_unref(one);
		return filter_fail(err, errlen, NULL);
	}
	g_object_unref(one);
	/* a still image now: no page layout nor timing left */
	vips_image_remove(*out, VIPS_META_PAGE_HEIGHT);
	vips_image_remove(*out, VIPS_META_N_PAGES);
	vips_image_remove(*out, "delay");
	vips_image_remove(*out, "gif-delay");
	return 0;
}

static int frame_predict(void *state, const struct imgnode_geometry *in,
                         const union imgnode_value *args,
                         struct imgnode_geometry *out, char *err, size_t errlen)
{
	int64_t frames = in->frames > 0 ? in->frames : 1;

	(void)state;
	if (args[ARG_INDEX].i >= frames)
		return no_frame(args[ARG_INDEX].i, frames, err, errlen);
	out->frames = 1;
	return 0;
}

static int frame_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 0}};

	(void)state;
	return filter_selftest_apply(frame_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = frame_apply,
        .selftest = frame_selftest,
        .predict = frame_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "frame",
        .version = "1.0",
        .description = "Keep one frame of an animation, as a still image.",
        .ops = &ops,
};
