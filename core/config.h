/*
 * Configuration: INI files read with inih, validated against key tables.
 *
 * A config is FILE plus conf.d/ *.ini next to it, in lexical order. Every
 * line read becomes a struct conf_entry (kept for imgnode -T, for error
 * positions and for plugin sections). Core sections are filled into struct
 * conf at load time; the keys of plugin sections ([transport], [storage] and
 * [filter.NAME]) are checked later against the plugin's own table, in a
 * process that may load plugin code (never the supervisor).
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

struct workers_conf {
	int64_t count;
	int64_t intensity;
	int64_t max_jobs;
	int64_t max_rss; /* bytes */
	int64_t max_memory; /* bytes of address space (RLIMIT_AS); 0: none */
	bool seccomp; /* the system call allow-list */
	int64_t job_timeout; /* ms */
	int64_t heartbeat; /* ms */
	int64_t concurrency; /* libvips threads per job */
	int64_t nice; /* added to the node's niceness; SCHED_BATCH */
};

struct ingress_conf {
	char *listen;
	int64_t port;
	int64_t max_body; /* bytes */
	int64_t wait_max; /* ms */
	int64_t request_timeout; /* ms */
	int64_t request_deadline; /* ms */
	int64_t max_connections;
	int64_t max_connections_per_ip; /* 0: no limit */
	int64_t threads;
	int64_t probers;
	int64_t probe_timeout; /* ms */
	int64_t upload_memory; /* bytes */
	int64_t max_inflight;
	int64_t max_inflight_per_client; /* 0: no limit per client */
	struct imgnode_list trusted_proxies;
	struct imgnode_list api_keys; /* KEY or ID:KEY */
	char *hmac_key; /* signatures v1, only with hmac_v1 */
	bool hmac_v1;
	struct imgnode_list hmac_keys; /* ID:SECRET: signatures v2 */
	int64_t hmac_max_ttl; /* ms */
	bool presets_only;
	char *admin_listen;
	int64_t admin_port; /* 0: /readyz and /metrics on the public port */
	char *www_dir; /* the upload page; empty: none */
	bool access_log; /* a line per request */
	int64_t dependency_wait; /* ms: one storage or transport call */
	int64_t proxy_timeout; /* ms: the proxy's read timeout */
};

struct limits_conf {
	int64_t max_pixels;
	int64_t max_pixels_interlaced;
	int64_t max_dimension;
	int64_t max_frames;
	int64_t max_output; /* bytes */
	int fail_on; /* enum: none, truncated, error, warning */
	struct imgnode_list formats;
	bool keep_metadata; /* no: outputs carry only their ICC profile */
};

/* A [preset.NAME] section: a named pipeline. */
struct preset {
	char *name;
	char *pipeline;
	const struct conf_entry *where;
	struct preset *next;
};

struct conf {
	char *path;
	struct node_conf node;
	struct supervisor_conf supervisor;
	struct plugin_ref_conf transport;
	struct plugin_ref_conf storage;
	struct workers_conf workers;
	struct ingress_conf ingress;
	struct limits_conf limits;
	struct preset *presets; /* in the order read */
	struct conf_entry *entries; /* in the order read */
};

/*
 * Reads path and its conf.d/. Returns a new config (caller frees with
 * conf_free) or NULL with the reason in err.
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
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
