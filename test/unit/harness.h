/*
 * What the plugin tests share (collectd's plugin_mock idea): a plugin
 * loaded the way the node loads it (dlopen of $BUILD/plugins/NAME.so), and
 * its config section filled the way the node fills it, with the real host
 * table. No daemon involved.
 */
#ifndef IMGNODE_TEST_HARNESS_H
#define IMGNODE_TEST_HARNESS_H

#include <stddef.h>

#include <imgnode/plugin.h>

struct conf;

/*
 * dlopens $BUILD/plugins/NAME.so (BUILD defaults to "build") and returns
 * its descriptor, checked to be of kind; *dl gets the handle (for
 * dlclose). NULL, with the reason on stderr, if it cannot.
 */
const struct imgnode_plugin *harness_load(const char *name, unsigned kind,
                                          void **dl);

/*
 * Reads the INI at path and fills p's config from section into a new
 * buffer (free with harness_release); *conf gets the loaded config, which
 * the host table now answers from. NULL with the reason in err when the
 * file or a value is refused (*conf may then be set: release it too).
 */
void *harness_configure(const struct imgnode_plugin *p, const char *path,
                        const char *section, struct conf **conf, char *err,
                        size_t errlen);

/* Frees what harness_configure made and sets both pointers to NULL. */
void harness_release(const struct imgnode_plugin *p, void **cfg,
                     struct conf **conf);

#endif
