/*
 * Pipelines: "thumbnail(800, crop=attention) | sharpen | webp(q=75)",
 * parsed once against the argument tables the loaded filter plugins
 * declare, into steps with typed values, plus a canonical text (keyword
 * arguments sorted, defaults filled in) used in result keys and job records.
 *
 *   pipeline = step ("|" step)*
 *   step     = name ["(" [arg ("," arg)*] ")"]
 *   arg      = value | name "=" value
 *   value    = bare | "quoted string"    (bare: letters, digits, _ . + -)
 *
 * Whitespace is allowed between tokens. Positional arguments come first,
 * in the order of the filter's table. An encoder may only be the last step.
 */
#ifndef IMGNODE_PIPELINE_H
#define IMGNODE_PIPELINE_H

#include <stddef.h>

#include <imgnode/plugin.h>

#define PIPELINE_MAX_LEN 2048
#define PIPELINE_MAX_STEPS 32
#define PIPELINE_MAX_ARGS 16 /* per step */

struct plugin_set;

/* The predict hook of struct imgnode_filter_ops (ABI 1.1). */
typedef int (*pipeline_predict_fn)(void *state,
                                   const struct imgnode_geometry *in,
                                   const union imgnode_value *args,
                                   struct imgnode_geometry *out, char *err,
                                   size_t errlen);

struct pipeline_step {
	const char *name; /* the filter's name (borrowed from its plugin) */
	const char *version;
	const struct imgnode_filter_ops *ops;
	void *state; /* the plugin's state, for its ops */
	union imgnode_value *args; /* one per entry of ops->args */
	/* ops->predict if the plugin has it (ABI 1.1), else NULL */
	pipeline_predict_fn predict;
	size_t at, len; /* where this step is in the canonical text */
};

struct pipeline {
	struct pipeline_step *steps;
	size_t n;
	char *canonical;
	char **owned; /* STRING values, freed with the pipeline */
	size_t nowned;
};

/*
 * Parses text against the filter plugins of set. Returns a new pipeline
 * (free with pipeline_free) or NULL with "column N: reason" in err (column
 * 1-based).
 */
struct pipeline *pipeline_parse(const char *text, const struct plugin_set *set,
                                char *err, size_t errlen);
void pipeline_free(struct pipeline *p);

/* True if the last step is an encoder. */
int pipeline_has_encoder(const struct pipeline *p);

/* The encoder plugin for inputs of format (when a pipeline has none). */
struct plugin;
const struct plugin *pipeline_default_encoder(const struct plugin_set *set,
                                              const char *format);

/*
 * Fills v (max entries) with the default values of an argument table, for
 * an encoder not named in the pipeline. 0, or -EINVAL if an argument has
 * no default or the table is too long.
 */
union imgnode_value;
struct imgnode_arg;
int pipeline_default_args(const struct imgnode_arg *args,
                          union imgnode_value *v, size_t max);

#endif
