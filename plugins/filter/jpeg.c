/*
 * jpeg([q][, progressive]): the JPEG encoder, last in a pipeline. It runs
 * the pipeline once into one buffer (vips_jpegsave_buffer). Metadata (EXIF,
 * XMP, IPTC, ICC) is kept unless strip ran. JPEG has no alpha: an alpha
 * band is flattened onto white, as transparent pixels usually show on web
 * pages, rather than libvips' default black.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_Q, ARG_PROGRESSIVE };

static const struct imgnode_arg args[] = {
        {"q", IMGNODE_ARG_INT, "80", 1, 100, NULL,
         "Quality: 1 is smallest, 100 best."},
        {"progressive", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Progressive (interlaced) JPEG."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int jpeg_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	double white = in->BandFmt == VIPS_FORMAT_USHORT ? 65535 : 255;
	VipsArrayDouble *background = vips_array_double_newv(1, white);
	int r;

	(void)state;
	filter_start();
	r = vips_jpegsave_buffer(in, buf, len, "Q", (int)args[ARG_Q].i,
	                         "interlace", args[ARG_PROGRESSIVE].b, "strip",
	                         filter_stripped(in), "background", background,
	                         NULL);
	vips_area_unref(VIPS_AREA(background));
	if (r)
		return filter_fail(err, errlen, "unable to encode");
	return 0;
}

static int jpeg_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 80}, {.b = true}};

	(void)state;
	return filter_selftest_encode(jpeg_encode, a, "jpeg", err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER,
        .encode = jpeg_encode,
        .mime = "image/jpeg",
        .format = "jpeg",
        .selftest = jpeg_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "jpeg",
        .version = "1.0",
        .description = "Encode as JPEG.",
        .ops = &ops,
};
