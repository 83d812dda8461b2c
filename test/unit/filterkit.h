/*
 * What the filter tests share (test_filters, test_filters_geometry,
 * test_filters_tone, test_filters_anim, test_renditions): filter plugins
 * loaded as a worker loads them (dlopen of $BUILD/plugins/NAME.so),
 * argument values made from their tables as the host's parser makes them,
 * corpus images and files, pixel comparisons, and the libvips leak check
 * run after each test. Failures are cmocka failures of the calling test.
 */
#ifndef IMGNODE_TEST_FILTERKIT_H
#define IMGNODE_TEST_FILTERKIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <imgnode/plugin.h>
#include <vips/vips.h>

struct pipeline;
struct plugin_set;

/* The most arguments a filter's table may have. */
#define MAX_ARGS 16
/* Ends a "name=value" argument list. */
#define END ((const char *)NULL)

/* A filter plugin loaded by filterkit_setup. */
struct filter {
	void *dl;
	const struct imgnode_plugin *plugin;
	const struct imgnode_filter_ops *ops;
	void *state;
};

/* The corpus directory ($IMGNODE_CORPUS, else build/corpus). */
extern char corpus[1024];

/*
 * Sets corpus and checks that it holds probe (a file under it); -1, with
 * the reason on stderr, if not.
 */
int filterkit_corpus(const char *probe);

/*
 * Starts libvips for the test program prog as a worker runs it (no cache,
 * one thread, no warning flood) with leak reporting on, sets the corpus
 * (checked with probe), then loads, inits and self-tests the filters names
 * (NULL-terminated) and takes the leak baseline. 0, or -1 with the reason
 * on stderr.
 */
int filterkit_setup(const char *prog, const char *const *names,
                    const char *probe);

/* A cmocka group teardown: finishes and unloads the filters, then shuts
 * libvips down (which reports what is left alive). Always 0. */
int filterkit_teardown(void **state);

/* A cmocka teardown: fails if the test left libvips objects alive (each
 * leak is reported once, with the objects printed). */
int no_leaks(void **state);

/* How many libvips objects are alive. */
int live_objects(void);

/* The loaded filter name (fails the test if there is none). */
struct filter *filter_of(const char *name);
const struct imgnode_filter_ops *ops_of(const char *name);

/* Parses text as a value of arg into v; false if it is not one. */
bool parse_value(const struct imgnode_arg *arg, const char *text,
                 union imgnode_value *v);

/*
 * Fills v from ops' table: each value from a "name=value" in ap (a list
 * ending with END), else from the table's default. The strings stay
 * borrowed from ap.
 */
void make_args(const struct imgnode_filter_ops *ops, union imgnode_value *v,
               va_list ap);

/* Parses the pipeline text against set (fails the test if it does not
 * parse); pipeline_free it. */
struct pipeline *parse_in(struct plugin_set *set, const char *text);

/* The path of corpus file rel, into path[0..len). */
void corpus_path(char *path, size_t len, const char *rel);

/* A corpus file's bytes (g_free them). */
char *read_corpus(const char *rel, size_t *len);

/*
 * A corpus image, opened lazily as a plain load (no autorotation), with a
 * load option string if options is neither NULL nor "". Unref it.
 */
VipsImage *open_image(const char *rel, const char *options);

/* The same image decoded into memory (every step reads computed pixels,
 * as from the node's shared decode of renditions). Unref it. */
VipsImage *memory_image(const char *rel, const char *options);

/* What the host hands predict for img: its header's shape, one frame's
 * height for an animation (the node reads headers one page deep). */
struct imgnode_geometry geometry_of(VipsImage *img);

/* Band b of img at (x, y). */
double pixel(VipsImage *img, int x, int y, int b);

/* Mean absolute difference of two images of the same size. */
double mean_diff(VipsImage *a, VipsImage *b);

#endif
