/*
 * Configuration: INI files read with inih, validated against key tables.
 *
 * A config is FILE plus conf.d/ *.ini next to it, in lexical order. Every
 * line read becomes a struct conf_entry (kept for imgnode -T, for error
 * positions and for plugin sections). This engine knows no section of its
 * own: it is handed schemas (section tables and hooks), the runtime's
 * (core/conf_keys.c) and the program's (the image node's,
 * core/node/node_conf.c), and fills them at load time; the keys of plugin
 * sections ([transport], [storage] and [filter.NAME]) are checked later
 * against the plugin's own table, in a process that may load plugin code
 * (never the supervisor).
 *
 * Errors are reported once, as "FILE:LINE: [section] key: reason", in the
 * caller's buffer; functions return 0 or -errno.
 */
#ifndef IMGNODE_CONFIG_H
#define IMGNODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <imgnode/plugin.h>

#define CONF_ERR_MAX 1024

/* Formats an error message into err (at most errlen bytes). */
void conf_set_err(char *err, size_t errlen, const char *fmt, ...)
        IMGNODE_PRINTF(3, 4);

/* One "key = value" as read, with where it came from. */
struct conf_entry {
	char *section;
	char *key;
	char *value;
	char *file;
	int line;
	bool used; /* claimed by a core or plugin key table */
	struct conf_entry *next;
};

struct node_conf {
	char *state_dir;
	char *runtime_dir;
	char *plugin_dir;
	int log_level;
	int log_format; /* LOG_FORMAT_TEXT or LOG_FORMAT_JSON */
};

struct supervisor_conf {
	char *control_socket;
	int64_t intensity;
	int64_t period; /* ms */
	int64_t start_timeout; /* ms */
	int64_t shutdown_timeout; /* ms */
	int64_t backoff_min; /* ms */
	int64_t backoff_max; /* ms */
};

struct plugin_ref_conf {
	char *plugin;
};

/*
 * The sections of the program built on the runtime (the image node's, in
 * core/node/node_conf.h): the runtime only holds the pointer.
 */
struct conf_app;

struct conf {
	char *path;
	struct node_conf node;
	struct supervisor_conf supervisor;
	struct plugin_ref_conf transport;
	struct plugin_ref_conf storage;
	struct conf_app *app; /* the program's sections, or NULL if none */
	const struct conf_schema *schemas[2]; /* the runtime's, the program's */
	struct conf_entry *entries; /* in the order read */
};

/* Section whose keys beyond the table's belong to a plugin. */
#define CONF_SECTION_PLUGIN 0x1
/* name is a prefix: "filter." matches [filter.thumbnail]. */
#define CONF_SECTION_PREFIX 0x2

/* A section a config may contain, and the table of its keys (or NULL). */
struct conf_section {
	const char *name;
	const struct imgnode_conf_key *keys;
	size_t offset; /* of the section's struct in its schema's block */
	unsigned flags;
};

/*
 * A set of sections the engine is handed: their tables, the block their
 * values fill (struct conf itself when size is 0, else a zeroed block of
 * size bytes at conf->app), and what is done after the tables are filled
 * (derived values, checks across keys, sections without a table; 0 or
 * -errno with the reason in err) and before the block is freed.
 */
struct conf_schema {
	const struct conf_section *sections; /* ends with a NULL name */
	size_t size;
	int (*fill)(struct conf *conf, char *err, size_t errlen);
	void (*release)(struct conf *conf);
};

/*
 * Reads path and its conf.d/ against the schemas (the program's may be
 * NULL): a section neither names is an error. Returns a new config (caller
 * frees with conf_free) or NULL with the reason in err.
 */
struct conf *conf_read(const char *path, const struct conf_schema *runtime,
                       const struct conf_schema *app, char *err, size_t errlen);

/*
 * Fills the schemas' sections of conf (entries read already, or none: the
 * defaults): the tables, then each schema's fill. 0 or -errno with the
 * reason in err.
 */
int conf_fill_schemas(struct conf *conf, const struct conf_schema *runtime,
                      const struct conf_schema *app, char *err, size_t errlen);

/* The block a section of schema fills in conf. */
void *conf_schema_base(const struct conf *conf,
                       const struct conf_schema *schema);

/*
 * conf_read with the runtime's sections (core/conf_keys.c) and the
 * program's registered with conf_register_app.
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
/* Frees conf and all it holds, wiping values first; NULL is fine. */
void conf_free(struct conf *conf);

/*
 * Parses text as a value of key's type into dst (a field of key->type's C
 * type). Returns 0 or -EINVAL with a reason (no position) in err. Strings and
 * lists are allocated; free them with conf_value_free.
 */
int conf_value_parse(const struct imgnode_conf_key *key, const char *text,
                     void *dst, char *err, size_t errlen);
void conf_value_free(const struct imgnode_conf_key *key, void *dst);

/*
 * Zeroes the string s (NULL is fine) before it is freed: some values are
 * secrets, and the supervisor's freed memory is copied into every child it
 * forks.
 */
void conf_value_wipe(char *s);

/* Writes the value at src in the INI form parse accepts. */
void conf_value_format(const struct imgnode_conf_key *key, const void *src,
                       char *buf, size_t len);

/*
 * Fills the struct at base from the entries of section, using keys (a table
 * ending with a NULL name): defaults first, then the values set in the files.
 * Marks the entries it takes as used. Unknown keys are left alone unless
 * strict is set, when they are an error.
 */
int conf_fill(struct conf *conf, const char *section,
              const struct imgnode_conf_key *keys, void *base, bool strict,
              char *err, size_t errlen);
void conf_release(const struct imgnode_conf_key *keys, void *base);

/*
 * After every table has had its turn: the first entry nobody used is an
 * error ("unknown key"). Returns 0 or -EINVAL.
 */
int conf_check_unused(const struct conf *conf, char *err, size_t errlen);

/* The entry of section.key, or NULL. */
const struct conf_entry *conf_find(const struct conf *conf, const char *section,
                                   const char *key);

enum conf_print_mode {
	/* "key = value", with "; FILE:LINE" after values set in a file;
	 * a secret key's value is <redacted>. */
	CONF_PRINT_EFFECTIVE,
	/* "; help" then ";key = default": the shipped, commented config. */
	CONF_PRINT_TEMPLATE,
};

/*
 * Prints the keys of one section as INI (no [header]). In EFFECTIVE mode
 * the values come from base, filled for section; in TEMPLATE mode conf and
 * base are unused and may be NULL.
 */
void conf_print_keys(FILE *out, const struct conf *conf, const char *section,
                     const struct imgnode_conf_key *keys, const void *base,
                     enum conf_print_mode mode);

/*
 * Calls fn for every distinct section name seen that starts with prefix
 * (e.g. "filter."), in the order first seen.
 */
void conf_each_section(const struct conf *conf, const char *prefix,
                       void (*fn)(const char *section, void *arg), void *arg);

#endif
