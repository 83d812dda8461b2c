/*
 * The image node on top of the supervision runtime: its process tree,
 * control commands, reloads and service notifications.
 */
#ifndef IMGNODE_NODE_H
#define IMGNODE_NODE_H

#include <stddef.h>

struct conf;
struct plugin_set;

/*
 * Runs the node in the foreground until it is stopped or gives up. *confp
 * is the checked config; after a reload it is replaced (the caller frees
 * what *confp holds on return). Returns the exit code: 0 after a stop, 1
 * when restart intensity was exceeded, 100 for a permanent failure, 111
 * for a temporary one.
 */
int node_run(const char *path, struct conf **confp);

/*
 * What only a process with the plugins loaded can check about conf (the
 * presets' pipelines); a plugin_check_fn for plugin_validate_in_child.
 */
int node_check(struct plugin_set *set, struct conf *conf, void *arg, char *err,
               size_t errlen);

#endif
