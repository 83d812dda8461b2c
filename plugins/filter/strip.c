/*
 * strip: drops the image's metadata (EXIF, XMP, IPTC, ICC profile,
 * comments) so none of it reaches the output, while keeping how the image
 * looks: it first turns the image upright from its EXIF orientation, and
 * converts colour with an embedded ICC profile to sRGB (a profile lcms
 * cannot use is dropped as it is: viewers could not have used it either).
 * An animation keeps its frames, each turned on its own.
 *
 * libvips 8.14 strips only when saving (strip=TRUE), so this works in two
 * parts: the output is a copy with every metadata field removed except
 * those the pixels and the pipeline need (libvips' own "vips-*" fields and
 * the page layout and timing of animations), and it carries the
 * FILTER_STRIPPED mark, on which the encoders save with strip=TRUE, so not
 * even the fresh EXIF block libvips would build from the header is written.
 */
#include <string.h>

#include <vips/vips.h>

#include "filter.h"

static const struct imgnode_arg args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* Fields that are not metadata to strip. */
static const char *const keep[] = {"page-height", "n-pages",  "delay", "loop",
                                   "gif-delay",   "gif-loop", NULL};

static bool kept(const char *field)
{
	if (!strncmp(field, "vips-", 5))
		return true;
	for (int i = 0; keep[i]; i++)
		if (!strcmp(field, keep[i]))
			return true;
	return false;
}

static int strip_apply(void *state, VipsImage *in,
                       const union imgnode_value *args, VipsImage **out,
                       char *err, size_t errlen)
{
	VipsImage *upright, *srgb;
	gchar **fields;
	int r;

	(void)state, (void)args;
	filter_start();
	if ((r = filter_upright(in, &upright, err, errlen)))
		return r;
	filter_to_srgb(upright, &srgb);
	r = vips_copy(srgb, out, NULL);
	g_object_unref(srgb);
	g_object_unref(upright);
	if (r)
		return filter_fail(err, errlen, NULL);
	fields = vips_image_get_fields(*out);
	for (int i = 0; fields[i]; i++)
		if (!kept(fields[i]))
			vips_image_remove(*out, fields[i]);
	g_strfreev(fields);
	vips_image_set_int(*out, FILTER_STRIPPED, 1);
	return 0;
}

static int strip_predict(void *state, const struct imgnode_geometry *in,
                         const union imgnode_value *args,
                         struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)args, (void)err, (void)errlen;
	filter_predict_upright(in, out);
	return 0;
}

static int strip_selftest(void *state, char *err, size_t errlen)
{
	(void)state;
	return filter_selftest_apply(strip_apply, NULL, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES | IMGNODE_FILTER_SEQUENTIAL,
        .apply = strip_apply,
        .selftest = strip_selftest,
        .predict = strip_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "strip",
        .version = "1.0",
        .description = "Drop EXIF, XMP, IPTC and ICC metadata, keeping how "
                       "the image looks.",
        .ops = &ops,
};
