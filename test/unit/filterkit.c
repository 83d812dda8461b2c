/*
 * The filter tests' shared helpers (see filterkit.h): one copy of what
 * test_filters, test_filters_geometry, test_filters_tone,
 * test_filters_anim and test_renditions each used to carry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filterkit.h"
#include "host.h"
#include "node/pipeline.h"

/* The most filters one test program loads. */
#define MAX_FILTERS 64

char corpus[1024];

static const char *const *loaded; /* the names given to filterkit_setup */
static struct filter filters[MAX_FILTERS];
static size_t nfilters;
static int baseline; /* libvips objects alive between tests */

int filterkit_corpus(const char *probe)
{
	const char *dir = getenv("IMGNODE_CORPUS");
	char path[1200];

	snprintf(corpus, sizeof(corpus), "%s",
	         dir && *dir ? dir : "build/corpus");
	corpus_path(path, sizeof(path), probe);
	if (access(path, R_OK)) {
		fprintf(stderr,
		        "no corpus (with %s) at %s: run test/data/corpus\n",
		        probe, corpus);
		return -1;
	}
	return 0;
}

int filterkit_setup(const char *prog, const char *const *names,
                    const char *probe)
{
	const char *build = getenv("BUILD");
	char path[1200], err[512];

	/* Broken inputs are part of the tests: no warning flood. */
	setenv("VIPS_WARNING", "0", 0);
	if (VIPS_INIT(prog))
		return -1;
	vips_leak_set(TRUE);
	vips_cache_set_max(0);
	vips_concurrency_set(1);
	if (filterkit_corpus(probe))
		return -1;
	loaded = names;
	for (nfilters = 0; names[nfilters]; nfilters++) {
		struct filter *f = &filters[nfilters];

		if (nfilters == MAX_FILTERS) {
			fprintf(stderr, "%s: more than %d filters\n", prog,
			        MAX_FILTERS);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/plugins/%s.so",
		         build && *build ? build : "build", names[nfilters]);
		if (!(f->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) ||
		    !(f->plugin = dlsym(f->dl, IMGNODE_PLUGIN_SYMBOL))) {
			fprintf(stderr, "%s: %s\n", path, dlerror());
			return -1;
		}
		f->ops = f->plugin->ops;
		if (f->plugin->init &&
		    f->plugin->init(host_table(), NULL, &f->state)) {
			fprintf(stderr, "%s: init failed\n", path);
			return -1;
		}
		/* Also creates libvips' lazily made singletons (interpolators
		 * and the like) before the leak baseline is taken. */
		if (f->ops && f->ops->selftest &&
		    f->ops->selftest(f->state, err, sizeof(err))) {
			fprintf(stderr, "%s: self-test: %s\n", path, err);
			return -1;
		}
	}
	baseline = live_objects();
	return 0;
}

int filterkit_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < nfilters; i++) {
		if (filters[i].plugin && filters[i].plugin->fini)
			filters[i].plugin->fini(filters[i].state);
		if (filters[i].dl)
			dlclose(filters[i].dl);
	}
	vips_shutdown(); /* with vips_leak_set, reports what is left */
	return 0;
}

int no_leaks(void **state)
{
	int n = live_objects();

	(void)state;
	if (n != baseline) {
		fprintf(stderr, "%d libvips objects leaked\n", n - baseline);
		vips_object_print_all();
		baseline = n; /* report each leak once */
		return -1;
	}
	return 0;
}

/* A vips_object_map callback counting the objects into *a. */
static void *count_object(void *object, void *a, void *b)
{
	(void)object, (void)b;
	(*(int *)a)++;
	return NULL;
}

int live_objects(void)
{
	int n = 0;

	vips_object_map(count_object, &n, NULL);
	return n;
}

struct filter *filter_of(const char *name)
{
	for (size_t i = 0; i < nfilters; i++)
		if (!strcmp(loaded[i], name))
			return &filters[i];
	fail_msg("no filter %s", name);
	return NULL;
}

const struct imgnode_filter_ops *ops_of(const char *name)
{
	return filter_of(name)->ops;
}

/* ---- argument values from the tables, as the host's parser makes them */

bool parse_value(const struct imgnode_arg *arg, const char *text,
                 union imgnode_value *v)
{
	char *end;
	bool bounded = arg->min < arg->max;

	switch (arg->type) {
	case IMGNODE_ARG_INT:
		v->i = strtoll(text, &end, 10);
		return end != text && !*end &&
		       (!bounded || (v->i >= arg->min && v->i <= arg->max));
	case IMGNODE_ARG_NUMBER:
		v->n = strtod(text, &end);
		return end != text && !*end &&
		       (!bounded || (v->n >= arg->min && v->n <= arg->max));
	case IMGNODE_ARG_BOOL:
		v->b = !strcmp(text, "true");
		return v->b || !strcmp(text, "false");
	case IMGNODE_ARG_ENUM:
		for (int i = 0; arg->choices && arg->choices[i]; i++)
			if (!strcmp(arg->choices[i], text)) {
				v->e = i;
				return true;
			}
		return false;
	case IMGNODE_ARG_STRING: v->s = text; return true;
	case IMGNODE_ARG_IMAGE: return false;
	}
	return false;
}

void make_args(const struct imgnode_filter_ops *ops, union imgnode_value *v,
               va_list ap)
{
	const char *given[MAX_ARGS] = {NULL};
	const char *kv;

	while ((kv = va_arg(ap, const char *))) {
		const char *eq = strchr(kv, '=');
		size_t k;
		assert_non_null(eq);
		for (k = 0; ops->args[k].name; k++)
			if (strlen(ops->args[k].name) == (size_t)(eq - kv) &&
			    !strncmp(ops->args[k].name, kv, (size_t)(eq - kv)))
				break;
		if (!ops->args[k].name)
			fail_msg("no argument %s", kv);
		assert_true(k < MAX_ARGS);
		given[k] = eq + 1;
	}
	for (size_t k = 0; ops->args[k].name; k++) {
		const char *text = given[k] ? given[k] : ops->args[k].def;
		assert_true(k < MAX_ARGS);
		if (!text)
			fail_msg("argument %s is required", ops->args[k].name);
		if (!parse_value(&ops->args[k], text, &v[k]))
			fail_msg("%s=%s does not parse", ops->args[k].name,
			         text);
	}
}

struct pipeline *parse_in(struct plugin_set *set, const char *text)
{
	char err[512];
	struct pipeline *pl = pipeline_parse(text, set, err, sizeof(err));

	if (!pl)
		fail_msg("%s: %s", text, err);
	return pl;
}

/* ---- corpus files */

void corpus_path(char *path, size_t len, const char *rel)
{
	snprintf(path, len, "%s/%s", corpus, rel);
}

char *read_corpus(const char *rel, size_t *len)
{
	char path[1200];
	gchar *buf = NULL;
	gsize n;

	corpus_path(path, sizeof(path), rel);
	if (!g_file_get_contents(path, &buf, &n, NULL))
		fail_msg("cannot read %s", path);
	*len = n;
	return buf;
}

VipsImage *open_image(const char *rel, const char *options)
{
	char path[1200], spec[1300];
	VipsImage *img;

	corpus_path(path, sizeof(path), rel);
	/* vips_image_new_from_file parses the "[...]" suffix */
	snprintf(spec, sizeof(spec), "%s[%s]", path, options ? options : "");
	if (!(img = vips_image_new_from_file(options && *options ? spec : path,
	                                     NULL)))
		fail_msg("%s: %s", options && *options ? spec : path,
		         vips_error_buffer());
	return img;
}

VipsImage *memory_image(const char *rel, const char *options)
{
	VipsImage *lazy = open_image(rel, options), *img;

	img = vips_image_copy_memory(lazy);
	g_object_unref(lazy);
	assert_non_null(img);
	return img;
}

/* ---- images */

struct imgnode_geometry geometry_of(VipsImage *img)
{
	struct imgnode_geometry g = {
	        .width = img->Xsize,
	        .height = vips_image_get_page_height(img),
	        .bands = img->Bands,
	        .band_bytes = (int)vips_format_sizeof(img->BandFmt),
	        .orientation = vips_image_get_orientation(img),
	};
	return g;
}

double pixel(VipsImage *img, int x, int y, int b)
{
	double *v, r;
	int n;

	if (vips_getpoint(img, &v, &n, x, y, NULL))
		fail_msg("getpoint: %s", vips_error_buffer());
	assert_true(b < n);
	r = v[b];
	g_free(v);
	return r;
}

double mean_diff(VipsImage *a, VipsImage *b)
{
	VipsImage *d, *abs;
	double avg;

	assert_int_equal(a->Xsize, b->Xsize);
	assert_int_equal(a->Ysize, b->Ysize);
	assert_int_equal(vips_subtract(a, b, &d, NULL), 0);
	assert_int_equal(vips_abs(d, &abs, NULL), 0);
	assert_int_equal(vips_avg(abs, &avg, NULL), 0);
	g_object_unref(abs);
	g_object_unref(d);
	return avg;
}
