/*
 * The core's configuration sections and their key tables: the one place a
 * core key is declared (name, type, default, bounds, help).
 */
#ifndef IMGNODE_CONF_KEYS_H
#define IMGNODE_CONF_KEYS_H

#include "config.h"

/* Section whose keys beyond the core's belong to a plugin. */
#define CONF_SECTION_PLUGIN 0x1
/* name is a prefix: "filter." matches [filter.thumbnail]. */
#define CONF_SECTION_PREFIX 0x2

struct conf_section {
	const char *name;
	const struct imgnode_conf_key *keys;
	size_t offset; /* of the section's struct in struct conf */
	unsigned flags;
};

/* Ends with a NULL name. */
extern const struct conf_section conf_core_sections[];

/* True for a section a config may contain. */
bool conf_section_known(const char *section);

/* Fills the core sections of conf; 0 or -EINVAL with the reason in err. */
int conf_fill_core(struct conf *conf, char *err, size_t errlen);
void conf_release_core(struct conf *conf);

/* The section of conf_core_sections called name, or NULL. */
const struct conf_section *conf_core_section(const char *name);

/* The default text of a core key, or NULL if there is no such key. */
const char *conf_core_default(const char *section, const char *key);

#endif
