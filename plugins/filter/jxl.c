/*
 * jxl([q][, effort][, lossless]): the JPEG XL encoder, last in a pipeline.
 * It runs the pipeline once into one buffer (vips_jxlsave_buffer), keeping
 * alpha. effort trades encoding time for size (3 fastest, 9 smallest:
 * libvips 8.14's bounds).
 * libvips 8.14's jxlsave writes no metadata but the ICC profile; it is
 * converted to sRGB when the host stripped all but the profile (the
 * default), so every JPEG XL output is sRGB without a profile.
 *
 * Whether libvips can write JPEG XL depends on how it was built (libjxl,
 * and on Debian its jxl module; sharp's prebuilt libvips has none). On a
 * libvips without jxlsave_buffer the node still starts: the self-test
 * passes with that caveat, which the node logs once at start and reload
 * and imgnode -t prints (init stays quiet: every worker and each
 * imgnodectl process would repeat it), and every job that ends in jxl
 * fails in the worker with that reason. The step has no predict hook: init
 * asks libvips, which only workers and the self-test start (the ingress
 * never does). Otherwise the self-test
 * encodes a small image and checks the output is a JPEG XL codestream or
 * container: the node's workers do not decode JPEG XL (jxlload is not on
 * the allow-list of input formats), so it cannot be read back here.
 */
#include <string.h>

#include <vips/vips.h>

#include "filter.h"

enum { ARG_Q, ARG_EFFORT, ARG_LOSSLESS };

static const struct imgnode_arg args[] = {
        {"q", IMGNODE_ARG_INT, "75", 1, 100, NULL,
         "Quality: 1 is smallest, 100 best (about JPEG's scale)."},
        {"effort", IMGNODE_ARG_INT, "7", 3, 9, NULL,
         "CPU effort to make the file smaller: 3 fastest, 9 smallest."},
        {"lossless", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Lossless JPEG XL (q is then ignored)."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* Why jobs fail, as the state, when this libvips cannot write JPEG XL;
 * NULL (the state) when it can. */
static char missing[240];

static int jxl_init(const struct imgnode_host *host, const void *conf,
                    void **state)
{
	(void)host, (void)conf;
	*state = NULL;
	if (filter_lacks("jxlsave_buffer", "JPEG XL", missing, sizeof(missing)))
		*state = missing;
	return 0;
}

static int jxl_encode(void *state, VipsImage *in,
                      const union imgnode_value *args, void **buf, size_t *len,
                      char *err, size_t errlen)
{
	VipsImage *img;
	int r;

	if (state) {
		snprintf(err, errlen, "%s", (const char *)state);
		return -ENOTSUP;
	}
	filter_start();
	if (filter_icc_only(in) || filter_stripped(in))
		filter_to_srgb(in, &img);
	else
		img = g_object_ref(in);
	r = vips_jxlsave_buffer(
	        img, buf, len, "Q", (int)args[ARG_Q].i, "effort",
	        (int)args[ARG_EFFORT].i, "lossless", args[ARG_LOSSLESS].b,
	        "strip", filter_icc_only(in) || filter_stripped(in), NULL);
	g_object_unref(img);
	if (r)
		return filter_fail(err, errlen, "unable to encode");
	return 0;
}

/* True if buf starts as a JPEG XL codestream or its ISO BMFF container. */
static bool is_jxl(const unsigned char *buf, size_t len)
{
	static const unsigned char box[12] = {0,   0,   0,   0x0c, 'J',  'X',
	                                      'L', ' ', 0xd, 0xa,  0x87, 0xa};

	return (len >= 2 && buf[0] == 0xff && buf[1] == 0x0a) ||
	       (len >= sizeof(box) && !memcmp(buf, box, sizeof(box)));
}

static int jxl_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 75}, {.i = 3}, {.b = false}};
	VipsImage *in;
	void *buf = NULL;
	size_t len = 0;
	int r;

	if (state) { /* nothing here can encode: a caveat, not a failure */
		snprintf(err, errlen, "%s; jobs that end in jxl will fail",
		         (const char *)state);
		return 0;
	}
	in = filter_test_image();
	if (!in)
		return filter_fail(err, errlen, "self-test: no test image");
	r = jxl_encode(NULL, in, a, &buf, &len, err, errlen);
	g_object_unref(in);
	if (!r && !is_jxl(buf, len)) {
		snprintf(err, errlen,
		         "self-test output (%zu bytes) is not JPEG XL", len);
		r = -EPROTO;
	}
	g_free(buf);
	return r;
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER,
        .encode = jxl_encode,
        .mime = "image/jxl",
        .format = "jxl",
        .selftest = jxl_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "jxl",
        .version = "1.0",
        .description = "Encode as JPEG XL.",
        .init = jxl_init,
        .ops = &ops,
};
