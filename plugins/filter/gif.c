/*
 * gif: the GIF encoder, last in a pipeline. It runs the pipeline once into
 * one buffer (vips_gifsave_buffer, which quantises to a 256-colour
 * palette with libimagequant), keeping animation (an image loaded with all
 * its pages) and one-bit transparency. libvips 8.14 writes no metadata to
 * a GIF, not even an ICC profile.
 */
#include <vips/vips.h>

#include "filter.h"

static const struct imgnode_arg args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int gif_encode(void *state, VipsImage *in,
                      const union imgnode_value *args, void **buf, size_t *len,
                      char *err, size_t errlen)
{
	(void)state, (void)args;
	filter_start();
	if (vips_gifsave_buffer(in, buf, len, "strip", filter_stripped(in),
	                        NULL))
		return filter_fail(err, errlen, "unable to encode");
	return 0;
}

static int gif_selftest(void *state, char *err, size_t errlen)
{
	(void)state;
	return filter_selftest_encode(gif_encode, NULL, "gif", err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER | IMGNODE_FILTER_FRAMES |
                 IMGNODE_FILTER_SEQUENTIAL,
        .encode = gif_encode,
        .mime = "image/gif",
        .format = "gif",
        .selftest = gif_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "gif",
        .version = "1.0",
        .description = "Encode as GIF (256 colours, animation kept).",
        .ops = &ops,
};
