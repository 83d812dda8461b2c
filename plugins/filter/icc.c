/*
 * icc(mode): what becomes of the image's colour profile in the output.
 * By default the host converts every output to sRGB before the encoder (an
 * embedded ICC profile, or CMYK, through lcms) and writes no profile, as
 * browsers take untagged images for sRGB. icc(srgb) says so explicitly;
 * icc(embed) converts too and writes an sRGB profile; icc(keep) leaves the
 * pixels in the input's colour space and keeps its profile (wide-gamut
 * photos, print work). The step only marks the image
 * (IMGNODE_META_ICC_MODE); the last icc step of a pipeline counts.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_MODE };

static const char *const modes[] = {"srgb", "embed", "keep", NULL};

static const struct imgnode_arg args[] = {
        {"mode", IMGNODE_ARG_ENUM, "srgb", 0, 0, modes,
         "srgb: convert, no profile; embed: convert, sRGB profile; keep: the input's colours and profile."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int icc_apply(void *state, VipsImage *in,
                     const union imgnode_value *args, VipsImage **out,
                     char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (vips_copy(in, out, NULL))
		return filter_fail(err, errlen, NULL);
	vips_image_set_string(*out, IMGNODE_META_ICC_MODE,
	                      modes[args[ARG_MODE].e]);
	return 0;
}

static int icc_predict(void *state, const struct imgnode_geometry *in,
                       const union imgnode_value *args,
                       struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)in, (void)args, (void)out, (void)err, (void)errlen;
	return 0; /* a mark: the same image */
}

static int icc_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.e = 1}};

	(void)state;
	return filter_selftest_apply(icc_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = icc_apply,
        .selftest = icc_selftest,
        .predict = icc_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "icc",
        .version = "1.0",
        .description = "Choose the output's colour profile: sRGB (the "
                       "default), sRGB embedded, or the input's kept.",
        .ops = &ops,
};
