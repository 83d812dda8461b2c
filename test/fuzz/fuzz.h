/*
 * What the libFuzzer harnesses share: the plugin directory of the fuzz
 * build, and a check that aborts with a message (libFuzzer saves the input
 * that made it fail).
 */
#ifndef IMGNODE_FUZZ_H
#define IMGNODE_FUZZ_H

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz check failed: %s: ", #cond);     \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/*
 * The plugins the harness was built with: $IMGNODE_FUZZ_PLUGINS, or
 * ../plugins beside the harness (BUILD/test/fuzz_X -> BUILD/plugins).
 * Into buf; returns buf.
 */
static inline const char *fuzz_plugin_dir(const char *argv0, char *buf,
                                          size_t len)
{
	const char *env = getenv("IMGNODE_FUZZ_PLUGINS");
	char self[PATH_MAX];

	if (env && env[0]) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	if (!realpath(argv0, self))
		snprintf(self, sizeof(self), "%s", argv0);
	snprintf(buf, len, "%s/../plugins", dirname(self));
	return buf;
}

#endif
