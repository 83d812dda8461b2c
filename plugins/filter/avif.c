/*
 * avif([q]): the AVIF encoder, last in a pipeline. It runs the pipeline
 * once into one buffer (vips_heifsave_buffer with AV1 compression), keeping
 * alpha. It writes what metadata the image still has (EXIF, XMP, ICC), and
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

enum { ARG_Q };

static const struct imgnode_arg args[] = {
        {"q", IMGNODE_ARG_INT, "50", 1, 100, NULL,
         "Quality: 1 is smallest, 100 best."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int avif_init(const struct imgnode_host *host, const void *conf,
                     void **state)
{
	(void)conf;
	*state = NULL;
	if (!vips_type_find("VipsOperation", "heifsave_buffer")) {
		host->log(
		        IMGNODE_LOG_ERROR, "avif",
		        "this libvips cannot save AVIF: libvips %s has no heifsave_buffer operation (built without libheif, or its heif module is missing)",
		        vips_version_string());
		return -ENOTSUP;
	}
	return 0;
}

static int avif_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	bool icc_only = filter_icc_only(in);
	VipsImage *img;
	int r;

	(void)state;
	filter_start();
	if (icc_only)
		filter_to_srgb(in, &img);
	else
		img = g_object_ref(in);
	r = vips_heifsave_buffer(img, buf, len, "compression",
	                         VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "Q",
	                         (int)args[ARG_Q].i, "strip",
	                         icc_only || filter_stripped(in), NULL);
	g_object_unref(img);
	if (r)
		return filter_fail(err, errlen, "unable to encode");
	return 0;
}

static int avif_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 50}};
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
