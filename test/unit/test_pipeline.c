/*
 * The pipeline parser: canonical forms and every error class, each with
 * its column. The filters are descriptors declared here (no libvips
 * involved: parsing only reads argument tables).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "node/cost.h"
#include "node/image.h"
#include "node/job.h"
#include "node/node_conf.h"
#include "node/pipeline.h"
#include "plugin.h"

static const char *const crops[] = {"none", "centre", "attention", NULL};

static const struct imgnode_arg thumb_args[] = {
        {"width", IMGNODE_ARG_INT, NULL, 1, 10000, NULL, "Width."},
        {"height", IMGNODE_ARG_INT, "0", 0, 10000, NULL, "Height."},
        {"crop", IMGNODE_ARG_ENUM, "none", 0, 0, crops, "Crop."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};
static const struct imgnode_arg sharpen_args[] = {
        {"sigma", IMGNODE_ARG_NUMBER, "1", 0.01, 10, NULL, "Sigma."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};
static const struct imgnode_arg mark_args[] = {
        {"text", IMGNODE_ARG_STRING, NULL, 0, 0, NULL, "Text."},
        {"opacity", IMGNODE_ARG_NUMBER, "0.5", 0, 1, NULL, "Opacity."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};
static const struct imgnode_arg webp_args[] = {
        {"q", IMGNODE_ARG_INT, "75", 1, 100, NULL, "Quality."},
        {"lossless", IMGNODE_ARG_BOOL, "false", 0, 0, NULL, "Lossless."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};
static const struct imgnode_arg none_args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const struct imgnode_filter_ops thumb_ops = {
        .args = thumb_args, .flags = IMGNODE_FILTER_LOADS};
static const struct imgnode_filter_ops sharpen_ops = {.args = sharpen_args};
static const struct imgnode_filter_ops mark_ops = {.args = mark_args};
static const struct imgnode_filter_ops gray_ops = {.args = none_args};
static const struct imgnode_filter_ops webp_ops = {
        .args = webp_args, .flags = IMGNODE_FILTER_ENCODER};

/* For the cost check: a filter that enlarges by factor (ABI 1.1)... */
static const struct imgnode_arg enlarge_args[] = {
        {"factor", IMGNODE_ARG_INT, NULL, 1, 100, NULL, "Factor."},
        {"work", IMGNODE_ARG_INT, "1", 1, 100, NULL, "Work factor."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int enlarge_predict(void *state, const struct imgnode_geometry *in,
                           const union imgnode_value *args,
                           struct imgnode_geometry *out, char *err,
                           size_t errlen)
{
	(void)state;
	if (args[0].i == 7) {
		snprintf(err, errlen, "seven is unlucky");
		return -EDOM;
	}
	out->width = in->width * args[0].i;
	out->height = in->height * args[0].i;
	if (args[1].i > 1) {
		out->work_width = out->width * args[1].i;
		out->work_height = out->height;
	}
	return 0;
}

static const struct imgnode_filter_ops enlarge_ops = {
        .args = enlarge_args, .predict = enlarge_predict};

/* ... one built for ABI 1.0, whose table the host must not read past ... */
static int never_predict(void *state, const struct imgnode_geometry *in,
                         const union imgnode_value *args,
                         struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)in, (void)args, (void)out, (void)err, (void)errlen;
	fail_msg("predict of an ABI 1.0 filter was called");
	return 0;
}

static const struct imgnode_filter_ops old_ops = {.args = none_args,
                                                  .predict = never_predict};

/* ... and an encoder that writes every pixel, 8 bits a band. */
static int raw_predict(void *state, const struct imgnode_geometry *in,
                       const union imgnode_value *args,
                       struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)args, (void)err, (void)errlen;
	out->min_bytes = in->width * in->height * in->bands;
	return 0;
}

static const struct imgnode_filter_ops raw_ops = {
        .args = none_args,
        .flags = IMGNODE_FILTER_ENCODER,
        .format = "png",
        .predict = raw_predict};

#define FILTER(n, o)                                                           \
	{                                                                      \
		.magic = IMGNODE_PLUGIN_MAGIC, .abi_major = IMGNODE_ABI_MAJOR, \
		.kind = IMGNODE_KIND_FILTER, .name = n, .version = "1.0",      \
		.ops = &o                                                      \
	}
#define FILTER_1_1(n, o)                                                       \
	{                                                                      \
		.magic = IMGNODE_PLUGIN_MAGIC, .abi_major = IMGNODE_ABI_MAJOR, \
		.abi_minor = 1, .kind = IMGNODE_KIND_FILTER, .name = n,        \
		.version = "1.1", .ops = &o                                    \
	}
#define NPLUGINS (sizeof(descs) / sizeof(descs[0]))

static const struct imgnode_plugin descs[] = {
        FILTER("thumbnail", thumb_ops), FILTER("sharpen", sharpen_ops),
        FILTER("watermark", mark_ops),  FILTER("grayscale", gray_ops),
        FILTER("webp", webp_ops),       FILTER_1_1("enlarge", enlarge_ops),
        FILTER("old", old_ops),         FILTER_1_1("raw", raw_ops),
};

static struct plugin plugins[NPLUGINS];
static struct plugin_set set;

static void assert_canonical(const char *text, const char *want)
{
	char err[512] = "";
	struct pipeline *pl = pipeline_parse(text, &set, err, sizeof(err));

	if (!pl)
		fail_msg("\"%s\" refused: %s", text, err);
	assert_string_equal(pl->canonical, want);
	pipeline_free(pl);
}

static void assert_error(const char *text, const char *want)
{
	char err[512] = "";
	struct pipeline *pl = pipeline_parse(text, &set, err, sizeof(err));

	if (pl)
		fail_msg("\"%s\" accepted as %s", text, pl->canonical);
	if (strcmp(err, want) != 0)
		fail_msg("\"%s\": got \"%s\", want \"%s\"", text, err, want);
}

static void test_canonical_forms(void **state)
{
	const char *full = "thumbnail(crop=attention,height=600,width=800)|"
	                   "sharpen(sigma=1)|webp(lossless=false,q=75)";

	(void)state;
	assert_canonical("thumbnail(800, 600, crop=attention) | sharpen | "
	                 "webp(q=75)",
	                 full);
	assert_canonical("thumbnail(crop=attention,width=800,height=600)|"
	                 "sharpen()|webp",
	                 full);
	assert_canonical("  thumbnail ( 800 , 600 , crop = attention )|"
	                 "sharpen(1.0)|webp(75, false)  ",
	                 full);
	assert_canonical("grayscale", "grayscale");
	assert_canonical("sharpen(0.5)", "sharpen(sigma=0.5)");
	assert_canonical("webp(lossless=yes)", "webp(lossless=true,q=75)");
	assert_canonical("watermark(\"a \\\"b\\\", c\\\\\")",
	                 "watermark(opacity=0.5,text=\"a \\\"b\\\", c\\\\\")");
	assert_canonical("watermark(text=imgnode, opacity=1)",
	                 "watermark(opacity=1,text=\"imgnode\")");
}

static void test_steps_and_values(void **state)
{
	char err[256];
	struct pipeline *pl = pipeline_parse(
	        "thumbnail(320, crop=centre)|watermark(hi)|webp(q=50)", &set,
	        err, sizeof(err));

	(void)state;
	assert_non_null(pl);
	assert_int_equal(pl->n, 3);
	assert_int_equal(pl->steps[0].args[0].i, 320);
	assert_int_equal(pl->steps[0].args[1].i, 0);
	assert_int_equal(pl->steps[0].args[2].e, 1);
	assert_string_equal(pl->steps[1].args[0].s, "hi");
	assert_true(pl->steps[1].args[1].n == 0.5);
	assert_int_equal(pl->steps[2].args[0].i, 50);
	assert_true(pipeline_has_encoder(pl));
	pipeline_free(pl);
}

static void test_errors_name_the_column(void **state)
{
	(void)state;
	assert_error("", "column 1: empty pipeline");
	assert_error("   ", "column 4: empty pipeline");
	assert_error(
	        "thumbnail(800)|sharpn",
	        "column 16: unknown filter \"sharpn\" (did you mean \"sharpen\"?)");
	assert_error("blur(3)", "column 1: unknown filter \"blur\"");
	assert_error(
	        "thumbnail(800, crops=none)",
	        "column 16: thumbnail has no argument \"crops\" (it has: width, height, crop)");
	assert_error("thumbnail(800, width=800)",
	             "column 16: argument \"width\" given twice");
	assert_error(
	        "thumbnail(0)",
	        "column 11: thumbnail width: 0 is out of range (1 to 10000)");
	assert_error("thumbnail(wide)",
	             "column 11: thumbnail width: \"wide\" is not an integer");
	assert_error("sharpen(much)",
	             "column 9: sharpen sigma: \"much\" is not a number");
	assert_error(
	        "thumbnail(8, crop=smart)",
	        "column 19: thumbnail crop: \"smart\" is not one of none, centre, attention");
	assert_error(
	        "webp(lossless=maybe)",
	        "column 15: webp lossless: \"maybe\" is not true or false");
	assert_error("webp|sharpen",
	             "column 1: encoder \"webp\" must be the last step");
	assert_error("thumbnail(crop=none, 800)",
	             "column 22: positional argument after a keyword argument");
	assert_error("sharpen(1, 2)",
	             "column 12: sharpen takes at most 1 argument");
	assert_error("thumbnail(crop=none)",
	             "column 1: thumbnail: missing argument \"width\"");
	assert_error("watermark(\"abc)", "column 11: unterminated string");
	assert_error("watermark(\"a\\n\")",
	             "column 13: unknown escape (only \\\" and \\\\)");
	assert_error("thumbnail(800))",
	             "column 15: expected '|', '(' or the end, found ')'");
	assert_error("thumbnail(800",
	             "column 14: expected ',' or ')', found end of input");
	assert_error("thumbnail(800,)",
	             "column 15: expected a value, found ')'");
	assert_error("sharpen||webp",
	             "column 9: expected a filter name, found '|'");
	assert_error("Sharpen", "column 1: expected a filter name, found 'S'");
	assert_error("sharpen\x01",
	             "column 8: expected '|', '(' or the end, found byte 0x01");
}

static void test_limits(void **state)
{
	char text[PIPELINE_MAX_LEN + 64];
	size_t off = 0;

	(void)state;
	for (int i = 0; i < PIPELINE_MAX_STEPS + 1; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s%s",
		                        i ? "|" : "", "grayscale");
	assert_error(text, "column 321: more than 32 steps");
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	assert_error(text, "column 2049: pipeline longer than 2048 characters");
}

/*
 * What goes into a result's key: the filter versions and the metadata
 * policy, so that a result made with the upload's metadata is never served
 * by a node that strips it (nor the other way round).
 */
static void test_versions_name_the_metadata_policy(void **state)
{
	char err[256], buf[256];
	struct pipeline *pl =
	        pipeline_parse("thumbnail(320)|webp", &set, err, sizeof(err));

	(void)state;
	assert_non_null(pl);
	job_versions(pl, &set, "jpeg", true, buf, sizeof(buf));
	assert_string_equal(buf, "thumbnail=1.0,webp=1.0");
	job_versions(pl, &set, "jpeg", false, buf, sizeof(buf));
	assert_string_equal(buf, "thumbnail=1.0,webp=1.0,metadata=stripped");
	pipeline_free(pl);
	pl = pipeline_parse("grayscale", &set, err, sizeof(err));
	assert_non_null(pl);
	job_versions(pl, NULL, NULL, false, buf, sizeof(buf));
	assert_string_equal(buf, "grayscale=1.0,metadata=stripped");
	pipeline_free(pl);
}

/* The cost check of text on a 100x80 RGB PNG: 0 or err == want. */
static void assert_cost(const char *text, int ret, const char *want)
{
	static const struct limits_conf lim = {
	        .max_pixels = 1000000,
	        .max_dimension = 5000,
	        .max_output = 1024 * 1024,
	};
	struct image_info info = {.format = "png",
	                          .width = 100,
	                          .height = 80,
	                          .bands = 3,
	                          .band_bytes = 1,
	                          .orientation = 1};
	char err[512] = "";
	struct pipeline *pl = pipeline_parse(text, &set, err, sizeof(err));

	if (!pl)
		fail_msg("\"%s\" refused: %s", text, err);
	if (cost_check(pl, &set, &info, &lim, err, sizeof(err)) != ret ||
	    strcmp(err, want) != 0)
		fail_msg("\"%s\": got \"%s\", want %d \"%s\"", text, err, ret,
		         want);
	pipeline_free(pl);
}

/* Every step is predicted; the first over a limit is named. */
static void test_cost_names_the_step(void **state)
{
	(void)state;
	assert_cost("enlarge(10)|grayscale|webp", 0, "");
	assert_cost(
	        "enlarge(10)|enlarge(2)|enlarge(1)", -E2BIG,
	        "step 2 enlarge(factor=2,work=1): output 2000x1600 (3.2 Mpx) is over max_pixels (1 Mpx)");
	assert_cost(
	        "grayscale|enlarge(60)", -E2BIG,
	        "step 2 enlarge(factor=60,work=1): output 6000x4800 is over max_dimension (5000 pixels a side)");
	/* what a step makes on its way counts too */
	assert_cost(
	        "enlarge(10, work=3)", -E2BIG,
	        "step 1 enlarge(factor=10,work=3): intermediate image 3000x800 (2.4 Mpx) is over max_pixels (1 Mpx)");
	/* the output's least bytes, with the encoder named or by default */
	assert_cost("enlarge(5)|raw", 0, "");
	assert_cost(
	        "enlarge(8)|raw", -EFBIG,
	        "step 2 raw: output of at least 1.465 MiB is over max_output (1 MiB)");
	assert_cost(
	        "enlarge(8)", -EFBIG,
	        "step 2 raw: output of at least 1.465 MiB is over max_output (1 MiB)");
	/* a filter's own refusal, named */
	assert_cost("enlarge(7)", -EDOM,
	            "step 1 enlarge(factor=7,work=1): seven is unlucky");
	/* an ABI 1.0 filter keeps the shape; its table is not read past 1.0 */
	assert_cost("old|enlarge(10)|old|webp", 0, "");
	assert_cost(
	        "old|enlarge(13)|old", -E2BIG,
	        "step 2 enlarge(factor=13,work=1): output 1300x1040 (1.352 Mpx) is over max_pixels (1 Mpx)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_canonical_forms),
	        cmocka_unit_test(test_steps_and_values),
	        cmocka_unit_test(test_errors_name_the_column),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_versions_name_the_metadata_policy),
	        cmocka_unit_test(test_cost_names_the_step),
	};

	for (size_t i = 0; i < NPLUGINS; i++) {
		plugins[i].desc = &descs[i];
		plugins[i].next = i + 1 < NPLUGINS ? &plugins[i + 1] : NULL;
	}
	set.head = &plugins[0];
	set.n = NPLUGINS;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
