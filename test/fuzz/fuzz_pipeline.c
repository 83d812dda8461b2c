/*
 * libFuzzer harness: the pipeline parser (core/node/pipeline.c), which
 * reads ?pipeline=, the form's pipeline part, presets and every job
 * message, against the argument tables of the real filter plugins.
 *
 * Beyond not crashing: a refused pipeline has one "column N: reason" line
 * with N inside the text (or just past it); an accepted one has 1 to
 * PIPELINE_MAX_STEPS steps, an encoder only last, and a canonical form that
 * parses again to itself (result keys are derived from it, and workers
 * parse it again from the message).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "node/pipeline.h"
#include "plugin.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct plugin_set set;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[PATH_MAX], err[1024];
	size_t filters = 0;

	(void)argc;
	if (plugin_set_load(&set, fuzz_plugin_dir((*argv)[0], dir, sizeof(dir)),
	                    err, sizeof(err))) {
		fprintf(stderr, "fuzz_pipeline: %s\n", err);
		exit(1);
	}
	for (const struct plugin *p = set.head; p; p = p->next)
		filters += p->desc->kind == IMGNODE_KIND_FILTER;
	if (!filters) {
		fprintf(stderr, "fuzz_pipeline: no filter plugins in %s\n",
		        dir);
		exit(1);
	}
	return 0;
}

/* The N of "column N: ...", or 0 if err is not of that form. */
static size_t error_column(const char *err)
{
	char *end;
	unsigned long col;

	if (strncmp(err, "column ", 7) != 0)
		return 0;
	col = strtoul(err + 7, &end, 10);
	return strncmp(end, ": ", 2) == 0 && end[2] ? col : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "", again_err[512] = "";
	struct pipeline *pl, *again;
	char *text;
	size_t len, col;

	if (size > 2 * PIPELINE_MAX_LEN)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	len = strlen(text);

	pl = pipeline_parse(text, &set, err, sizeof(err));
	if (!pl) {
		col = error_column(err);
		FUZZ_CHECK(col >= 1 && col <= len + 1,
		           "refused \"%s\" with \"%s\"", text, err);
		FUZZ_CHECK(!strchr(err, '\n'), "error of two lines: %s", err);
		free(text);
		return 0;
	}
	FUZZ_CHECK(pl->n >= 1 && pl->n <= PIPELINE_MAX_STEPS, "%zu steps",
	           pl->n);
	for (size_t i = 0; i + 1 < pl->n; i++)
		FUZZ_CHECK(!(pl->steps[i].ops->flags & IMGNODE_FILTER_ENCODER),
		           "encoder %s is step %zu of %zu in \"%s\"",
		           pl->steps[i].name, i + 1, pl->n, text);
	again = pipeline_parse(pl->canonical, &set, again_err,
	                       sizeof(again_err));
	FUZZ_CHECK(again, "\"%s\" is canonical \"%s\", which is refused: %s",
	           text, pl->canonical, again_err);
	FUZZ_CHECK(strcmp(again->canonical, pl->canonical) == 0,
	           "\"%s\" is canonical \"%s\", whose canonical is \"%s\"",
	           text, pl->canonical, again->canonical);
	pipeline_free(again);
	pipeline_free(pl);
	free(text);
	return 0;
}
