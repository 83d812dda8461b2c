/*
 * imgnodectl process: a pipeline on one file, no daemon (see ctl_process.c).
 */
#ifndef IMGNODE_CTL_PROCESS_H
#define IMGNODE_CTL_PROCESS_H

#include <stdbool.h>

/*
 * Runs text on the file in ("-": stdin) into out ("-": stdout), with the
 * plugins of config (or the built-in defaults when config is the default
 * and missing). Prints a one-line summary, or the reason, to stderr.
 * Returns the exit code: 0, 1 (bad input or pipeline), 100 (config).
 */
int node_process(const char *config, bool explicit_config, const char *in,
                 const char *text, const char *out);

#endif
