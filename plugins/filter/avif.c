/*
 * avif([q][, effort][, bitdepth][, max_bytes]): the AVIF encoder, last in
 * a pipeline. It runs the pipeline once into one buffer
 * (vips_heifsave_buffer with AV1 compression), keeping alpha. effort
 * trades encoding time for size (0 fastest, 9 smallest); bitdepth auto is
 * the input's (8, or 12 for 16-bit images); 10 is not offered: libaom 3.6
 * under libheif 1.15 (Debian 12) aborts the process on it. max_bytes
 * searches the highest quality up to q that fits (fit.h). It writes what
 * metadata the image still has (EXIF, XMP, ICC), and
 * none if strip ran. When the host stripped all but the ICC profile (the
 * default), the image is converted to sRGB and saved without metadata:
 * libvips 8.14 would otherwise add an EXIF item it builds from the header,
 * and without a profile libheif describes the colours as sRGB (nclx).
 *
 * Whether libvips can write AVIF depends on how it was built: it needs
 * libheif, and libheif an AV1 encoder (aom, rav1e or svt). init refuses the
 * plugin if this libvips has no heifsave at all; the self-test encodes a
 * small image, which also fails when libheif lacks an AV1 encoder. Its
 * output decodes through libvips' heifload, so its format is "heif".
 */
#include <vips/vips.h>

#include "filter.h"
#include "fit.h"

enum { ARG_Q, ARG_EFFORT, ARG_BITDEPTH, ARG_MAX_BYTES };

static const char *const bitdepths[] = {"auto", "8", "12", NULL};

static const struct imgnode_arg args[] = {
        {"q", IMGNODE_ARG_INT, "50", 1, 100, NULL,
         "Quality: 1 is smallest, 100 best."},
        {"effort", IMGNODE_ARG_INT, "4", 0, 9, NULL,
         "CPU effort to make the file smaller: 0 fastest, 9 smallest."},
        {"bitdepth", IMGNODE_ARG_ENUM, "auto", 0, 0, bitdepths,
         "Bits per sample: auto (the input's: 8, or 12 for 16-bit), 8 or 12."},
        {"max_bytes", IMGNODE_ARG_INT, "0", 0, FIT_MAX_BYTES, NULL,
         "At most this many bytes: the highest quality up to q that fits (0: no limit)."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int avif_init(const struct imgnode_host *host, const void *conf,
                     void **state)
{
	char why[240];

	(void)conf;
	*state = NULL;
	if (filter_lacks("heifsave_buffer", "AVIF", why, sizeof(why))) {
		host->log(IMGNODE_LOG_ERROR, "avif", "%s", why);
		return -ENOTSUP;
	}
	return 0;
}

/* One encode at quality q (fit_save_fn). */
static int avif_save(VipsImage *in, const union imgnode_value *args, int q,
                     void **buf, size_t *len, char *err, size_t errlen)
{
	bool strip = filter_icc_only(in) || filter_stripped(in);
	int depth = in->BandFmt == VIPS_FORMAT_UCHAR ? 8 : 12, r;

	if (args[ARG_BITDEPTH].e > 0)
		depth = args[ARG_BITDEPTH].e == 1 ? 8 : 12;
	r = vips_heifsave_buffer(in, buf, len, "compression",
	                         VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "Q", q,
	                         "effort", (int)args[ARG_EFFORT].i, "bitdepth",
	                         depth, "strip", strip, NULL);
	if (r)
		return filter_fail(err, errlen, "unable to encode");
	return 0;
}

static int avif_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	VipsImage *img;
	int r;

	(void)state;
	filter_start();
	if (filter_icc_only(in))
		filter_to_srgb(in, &img);
	else
		img = g_object_ref(in);
	r = fit_encode(img, args, (int)args[ARG_Q].i, args[ARG_MAX_BYTES].i,
	               avif_save, buf, len, err, errlen);
	g_object_unref(img);
	return r;
}

static int avif_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {
	        {.i = 50}, {.i = 4}, {.e = 0}, {.i = 0}};
	char why[256];
	int r;

	(void)state;
	r = filter_selftest_encode(avif_encode, a, "heif", why, sizeof(why));
	if (r)
		snprintf(err, errlen, "this libvips cannot save AVIF (%s)",
		         why);
	return r;
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER | IMGNODE_FILTER_SEQUENTIAL,
        .encode = avif_encode,
        .mime = "image/avif",
        .format = "heif",
        .selftest = avif_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "avif",
        .version = "1.0",
        .description = "Encode as AVIF (AV1 in HEIF).",
        .init = avif_init,
        .ops = &ops,
};
