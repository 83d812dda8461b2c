/*
 * The runtime's configuration sections and the config it loads: its own
 * sections plus those the program built on it registers (the image node's,
 * core/node/node_conf.h).
 */
#ifndef IMGNODE_CONF_KEYS_H
#define IMGNODE_CONF_KEYS_H

#include "config.h"

/*
 * The program's sections, read by conf_load after the runtime's; called
 * once at start by whoever builds the program, before any conf_load.
 * schema is borrowed for the life of the process.
 */
void conf_register_app(const struct conf_schema *schema);

/*
 * Fills the runtime's and the program's sections of conf, a zeroed struct
 * conf with a path and no entries read: every key at its default. 0 or
 * -errno with the reason in err; free with conf_free.
 */
int conf_fill_sections(struct conf *conf, char *err, size_t errlen);

/*
 * The i-th section with a key table, the runtime's first then the
 * program's, or NULL past the last. If base is given, *base is set to the
 * struct the section fills in conf (NULL when conf is NULL).
 */
const struct conf_section *conf_table(const struct conf *conf, size_t i,
                                      void **base);

/* The default text of a key of those tables, or NULL if there is none. */
const char *conf_default(const char *section, const char *key);

/*
 * The filled value of a key of those tables (a pointer to its C type), or
 * NULL if there is no such key.
 */
const void *conf_value_of(const struct conf *conf, const char *section,
                          const char *key);

#endif
