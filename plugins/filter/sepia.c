/*
 * sepia: tones the image brown, like an old photograph (vips_recomb with
 * the classic sepia matrix, blended with the original by strength). Its
 * [filter.sepia] section sets the default strength for the whole node; a
 * pipeline can override it: sepia(0.5).
 */
#include <stdlib.h>
#include <vips/vips.h>

#include "filter.h"

struct sepia_conf {
	int64_t strength; /* percent */
};

struct sepia {
	double strength; /* 0..1, from the config */
};

static const struct imgnode_conf_key conf_keys[] = {
        {"strength", IMGNODE_CONF_INT, "100", 0, 100, NULL,
         "Default strength in percent when a pipeline says just sepia.",
         offsetof(struct sepia_conf, strength)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_arg args[] = {
        {"strength", IMGNODE_ARG_NUMBER, "-1", -1, 1, NULL,
         "0 (none) to 1 (full); -1 takes [filter.sepia] strength."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int sepia_init(const struct imgnode_host *host, const void *conf,
                      void **state)
{
	const struct sepia_conf *c = conf;
	struct sepia *s = host->alloc(sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->strength = (double)c->strength / 100.0;
	*state = s;
	return 0;
}

static void sepia_fini(void *state)
{
	free(state);
}

static int sepia_apply(void *state, VipsImage *in,
                       const union imgnode_value *args, VipsImage **out,
                       char *err, size_t errlen)
{
	const struct sepia *s = state;
	double k = args[0].n >= 0 || !s ? args[0].n : s->strength;
	double m[9] = {0.393, 0.769, 0.189, 0.349, 0.686,
	               0.168, 0.272, 0.534, 0.131};
	VipsImage *base = vips_image_new(), **t;
	int ret = 0;

	filter_start();
	t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(base), 6);
	/* blend the matrix with the identity: k = 0 leaves the image */
	for (int i = 0; i < 9; i++)
		m[i] = k * m[i] + (1 - k) * (i % 4 == 0 ? 1 : 0);
	t[0] = vips_image_new_matrix_from_array(3, 3, m, 9);
	if (vips_colourspace(in, &t[1], VIPS_INTERPRETATION_sRGB, NULL))
		ret = filter_fail(err, errlen, "to sRGB");
	else if (vips_image_hasalpha(t[1]) &&
	         (vips_extract_band(t[1], &t[2], 0, "n", 3, NULL) ||
	          vips_extract_band(t[1], &t[3], 3, NULL)))
		ret = filter_fail(err, errlen, "split alpha");
	else if (vips_recomb(t[2] ? t[2] : t[1], &t[4], t[0], NULL) ||
	         vips_cast(t[4], &t[5], VIPS_FORMAT_UCHAR, NULL))
		ret = filter_fail(err, errlen, "recomb");
	else if (t[3] ? vips_bandjoin2(t[5], t[3], out, NULL)
	              : vips_copy(t[5], out, NULL))
		ret = filter_fail(err, errlen, "join");
	g_object_unref(base);
	return ret;
}

/* 8-bit sRGB, plus alpha if there was one. */
static int sepia_predict(void *state, const struct imgnode_geometry *in,
                         const union imgnode_value *args,
                         struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)args, (void)err, (void)errlen;
	out->bands = in->bands == 2 || in->bands == 4 ? 4 : 3;
	out->band_bytes = 1;
	return 0;
}

static int sepia_selftest(void *state, char *err, size_t errlen)
{
	static const union imgnode_value half[] = {{.n = 0.5}};

	(void)state;
	return filter_selftest_apply(sepia_apply, half, 0, 0, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES | IMGNODE_FILTER_SEQUENTIAL,
        .apply = sepia_apply,
        .selftest = sepia_selftest,
        .predict = sepia_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "sepia",
        .version = "1.0",
        .description = "Tone the image sepia, like an old photograph.",
        .conf_keys = conf_keys,
        .conf_size = sizeof(struct sepia_conf),
        .init = sepia_init,
        .fini = sepia_fini,
        .ops = &ops,
};
