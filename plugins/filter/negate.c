/*
 * negate([alpha]): the photographic negative (vips_invert): each colour
 * value v becomes max - v (255 - v at 8 bits, 65535 - v at 16). The alpha
 * band is kept unless alpha=true (sharp's negate inverts it by default;
 * here a transparent area stays transparent unless asked).
 */
#include <vips/vips.h>

#include "colour.h"

enum { ARG_ALPHA };

static const struct imgnode_arg args[] = {
        {"alpha", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Invert the alpha band too."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int invert_op(VipsImage *in, VipsImage **out, const void *arg)
{
	VipsImage *t;
	int r;

	(void)arg;
	if (vips_invert(in, &t, NULL))
		return -1;
	r = vips_cast(t, out, in->BandFmt, NULL);
	g_object_unref(t);
	return r;
}

static int negate_apply(void *state, VipsImage *in,
                        const union imgnode_value *args, VipsImage **out,
                        char *err, size_t errlen)
{
	int r;

	(void)state;
	filter_start();
	r = args[ARG_ALPHA].b
	            ? invert_op(in, out, NULL)
	            : colour_on_colour_bands(in, out, invert_op, NULL);
	if (r)
		return filter_fail(err, errlen, NULL);
	return 0;
}

static int negate_predict(void *state, const struct imgnode_geometry *in,
                          const union imgnode_value *args,
                          struct imgnode_geometry *out, char *err,
                          size_t errlen)
{
	(void)state, (void)in, (void)args, (void)out, (void)err, (void)errlen;
	return 0; /* the same shape and depth */
}

static int negate_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.b = false}};

	(void)state;
	return filter_selftest_apply(negate_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = negate_apply,
        .selftest = negate_selftest,
        .predict = negate_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "negate",
        .version = "1.0",
        .description = "The negative: invert every colour band.",
        .ops = &ops,
};
