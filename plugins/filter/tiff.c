/*
 * tiff: the TIFF encoder, last in a pipeline. It runs the pipeline once
 * into one buffer (vips_tiffsave_buffer), lossless with deflate and a
 * horizontal predictor, which every TIFF reader handles and which is far
 * smaller than libvips' uncompressed default. It writes what metadata the
 * image still has (ICC, XMP, IPTC), none if strip ran; when the host
 * stripped all but the ICC profile (the default) that is the profile
 * alone.
 */
#include <vips/vips.h>

#include "filter.h"

static const struct imgnode_arg args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int tiff_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	(void)state, (void)args;
	filter_start();
	if (vips_tiffsave_buffer(in, buf, len, "compression",
	                         VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE,
	                         "predictor",
	                         VIPS_FOREIGN_TIFF_PREDICTOR_HORIZONTAL,
	                         "strip", filter_stripped(in), NULL))
		return filter_fail(err, errlen, "unable to encode");
	return 0;
}

static int tiff_selftest(void *state, char *err, size_t errlen)
{
	(void)state;
	return filter_selftest_encode(tiff_encode, NULL, "tiff", err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER | IMGNODE_FILTER_SEQUENTIAL,
        .encode = tiff_encode,
        .mime = "image/tiff",
        .format = "tiff",
        .selftest = tiff_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "tiff",
        .version = "1.0",
        .description = "Encode as TIFF (deflate, lossless).",
        .ops = &ops,
};
