/*
 * png([compression][, palette][, colours]): the PNG encoder, last in a
 * pipeline. It runs the pipeline once into one buffer (vips_pngsave_buffer),
 * lossless, keeping alpha and 16-bit depth; with palette, quantised to at
 * most colours colours (libimagequant, dithered), 8 bits or fewer a pixel:
 * lossy, often much smaller. colours is 2, 4, 16 or 256, a PNG bit depth:
 * libvips 8.14 derives the depth from the number and fails on others (64
 * would make 6 bits). It writes what metadata the image still has
 * (ICC, XMP, EXIF, text), none if strip ran; when the host stripped all but
 * the ICC profile (the default) that is the profile alone (libvips 8.14
 * adds nothing of its own to a PNG; from 8.15 on it is told to keep only
 * the ICC profile). compression trades encoding time for size,
 * never quality.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_COMPRESSION, ARG_PALETTE, ARG_COLOURS };

static const char *const colour_counts[] = {"2", "4", "16", "256", NULL};
static const int palette_depths[] = {1, 2, 4, 8};

static const struct imgnode_arg args[] = {
        {"compression", IMGNODE_ARG_INT, "6", 0, 9, NULL,
         "zlib level: 0 is fastest, 9 smallest."},
        {"palette", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Quantise to a palette (lossy, smaller)."},
        {"colours", IMGNODE_ARG_ENUM, "256", 0, 0, colour_counts,
         "Most colours of the palette (with palette=true): 2, 4, 16 or 256."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int png_encode(void *state, VipsImage *in,
                      const union imgnode_value *args, void **buf, size_t *len,
                      char *err, size_t errlen)
{
	(void)state;
	filter_start();
	/* the metadata to write: libvips 8.15 on (make VIPS=bundled) adds an
	 * EXIF block of its own unless told which to keep */
#if VIPS_MAJOR_VERSION > 8 ||                                                  \
        (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION >= 15)
#define PNG_METADATA                                                           \
	"keep", filter_stripped(in)   ? VIPS_FOREIGN_KEEP_NONE                 \
	        : filter_icc_only(in) ? VIPS_FOREIGN_KEEP_ICC                  \
	                              : VIPS_FOREIGN_KEEP_ALL
#else
#define PNG_METADATA "strip", filter_stripped(in)
#endif
	if (args[ARG_PALETTE].b
	            ? vips_pngsave_buffer(in, buf, len, "compression",
	                                  (int)args[ARG_COMPRESSION].i,
	                                  "palette", TRUE, "bitdepth",
	                                  palette_depths[args[ARG_COLOURS].e],
	                                  PNG_METADATA, NULL)
	            : vips_pngsave_buffer(in, buf, len, "compression",
	                                  (int)args[ARG_COMPRESSION].i,
	                                  PNG_METADATA, NULL))
#undef PNG_METADATA
		return filter_fail(err, errlen, "unable to encode");
	return 0;
}

/*
 * Uncompressed (compression=0), a PNG holds every pixel: one filter byte a
 * row, then the row at 8 or 16 bits a band, or at the palette's bits a
 * pixel. Compressed, the least output is not known before encoding.
 */
static int png_predict(void *state, const struct imgnode_geometry *in,
                       const union imgnode_value *args,
                       struct imgnode_geometry *out, char *err, size_t errlen)
{
	int64_t depth = in->band_bytes >= 2 ? 2 : 1;

	(void)state, (void)err, (void)errlen;
	if (args[ARG_COMPRESSION].i == 0 && args[ARG_PALETTE].b)
		out->min_bytes =
		        in->height *
		        (1 + (in->width * palette_depths[args[ARG_COLOURS].e] +
		              7) / 8);
	else if (args[ARG_COMPRESSION].i == 0)
		out->min_bytes =
		        in->height * (1 + in->width * in->bands * depth);
	return 0;
}

static int png_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 6}, {.b = true}, {.e = 2}};

	(void)state;
	return filter_selftest_encode(png_encode, a, "png", err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER | IMGNODE_FILTER_SEQUENTIAL,
        .encode = png_encode,
        .mime = "image/png",
        .format = "png",
        .selftest = png_selftest,
        .predict = png_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "png",
        .version = "1.0",
        .description = "Encode as PNG (lossless).",
        .ops = &ops,
};
