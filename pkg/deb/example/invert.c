/*
 * invert: an example filter plugin, built outside imgnode's tree against
 * the installed plugin header (package imgnode-dev); see the Makefile
 * beside it. It inverts every colour band, like a photographic negative,
 * and leaves an alpha band alone unless [filter.invert] alpha = yes. In a
 * pipeline: thumbnail(400)|invert|png.
 *
 * A plugin exports one thing, its descriptor (IMGNODE_PLUGIN); everything
 * else is static, and it is compiled with -fvisibility=hidden. The host
 * parses and checks the config section and the pipeline's arguments against
 * the tables below, so the plugin receives values already valid.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <imgnode/plugin.h>
#include <vips/vips.h>

/* [filter.invert], filled by the host from conf_keys. */
struct invert_conf {
	bool alpha;
};

/* Per process, from init to fini. */
struct invert {
	const struct imgnode_host *host;
	bool alpha;
};

static const struct imgnode_conf_key conf_keys[] = {
        {"alpha", IMGNODE_CONF_BOOL, "no", 0, 0, NULL,
         "Invert an alpha band too (transparent pixels turn opaque).",
         offsetof(struct invert_conf, alpha)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

/* invert takes no arguments in a pipeline. */
static const struct imgnode_arg args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* Copies the first line of libvips' error buffer to err; -EINVAL. */
static int invert_fail(char *err, size_t errlen)
{
	const char *msg = vips_error_buffer();

	snprintf(err, errlen, "%.*s", (int)strcspn(msg, "\n"),
	         *msg ? msg : "libvips gave no reason");
	vips_error_clear();
	return -EINVAL;
}

/* Keeps the config in a state allocated with the host's allocator; fini
 * frees it. */
static int invert_init(const struct imgnode_host *host, const void *conf,
                       void **state)
{
	const struct invert_conf *c = conf;
	struct invert *n = host->alloc(sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->host = host;
	n->alpha = c->alpha;
	*state = n;
	return 0;
}

static void invert_fini(void *state)
{
	struct invert *n = state;

	if (n)
		n->host->free(n);
}

/* Adds the inversion to the lazy pipeline; *out is a new reference. */
static int invert_apply(void *state, VipsImage *in,
                        const union imgnode_value *args, VipsImage **out,
                        char *err, size_t errlen)
{
	const struct invert *n = state;
	VipsImage *base, **t;
	int ret = 0;

	(void)args;
	vips_error_clear();
	if (!vips_image_hasalpha(in) || (n && n->alpha))
		return vips_invert(in, out, NULL) ? invert_fail(err, errlen)
		                                  : 0;
	/* the colour bands inverted, the alpha band joined back as it was;
	 * the intermediate images die with base */
	base = vips_image_new();
	t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(base), 3);
	if (vips_extract_band(in, &t[0], 0, "n", in->Bands - 1, NULL) ||
	    vips_extract_band(in, &t[1], in->Bands - 1, NULL) ||
	    vips_invert(t[0], &t[2], NULL) ||
	    vips_bandjoin2(t[2], t[1], out, NULL))
		ret = invert_fail(err, errlen);
	g_object_unref(base);
	return ret;
}

/* Run by imgnode -t and before a new generation of plugins is used: a
 * black-to-white ramp must come out white-to-black. */
static int invert_selftest(void *state, char *err, size_t errlen)
{
	VipsImage *ramp, *out;
	double *px = NULL;
	int n = 0, ret = 0;

	if (vips_grey(&ramp, 64, 48, "uchar", TRUE, NULL))
		return invert_fail(err, errlen);
	ret = invert_apply(state, ramp, NULL, &out, err, errlen);
	g_object_unref(ramp);
	if (ret)
		return ret;
	if (vips_getpoint(out, &px, &n, 0, 0, NULL))
		ret = invert_fail(err, errlen);
	else if (n != 1 || px[0] != 255) {
		snprintf(err, errlen,
		         "self-test: black came out as %g, not 255",
		         n > 0 ? px[0] : -1.0);
		ret = -EPROTO;
	}
	g_free(px);
	g_object_unref(out);
	return ret;
}

/*
 * No predict hook: invert keeps the image's size and bands, which is what
 * the host assumes of a filter without one. A filter that changes the
 * size (or draws something large on the way) sets predict, so that jobs
 * over [limits] are refused before anything is decoded.
 */
static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = invert_apply,
        .selftest = invert_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "invert",
        .version = "1.0",
        .description =
                "Invert the colours, like a photographic negative (an example plugin).",
        .conf_keys = conf_keys,
        .conf_size = sizeof(struct invert_conf),
        .init = invert_init,
        .fini = invert_fini,
        .ops = &ops,
};
