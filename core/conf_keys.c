/*
 * The runtime's configuration sections ([node], [supervisor], [transport],
 * [storage], [filter.NAME]), each key declared once, and the config the
 * runtime loads: these sections plus those of the program built on it
 * (conf_register_app). imgnode -T, the shipped etc/imgnode/imgnode.ini and
 * the documentation are all derived from the tables, so a key cannot exist
 * in one place and not another.
 */
#include "conf_keys.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef IMGNODE_PLUGIN_DIR
#define IMGNODE_PLUGIN_DIR "/usr/lib/imgnode/plugins"
#endif

#define NODE(f) offsetof(struct node_conf, f)
#define SUP(f) offsetof(struct supervisor_conf, f)
#define HOUR (3600 * 1000)

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         NULL};

static const char *const log_formats[] = {"text", "json", NULL};

static const struct imgnode_conf_key node_keys[] = {
        {"state_dir", IMGNODE_CONF_PATH, "/var/lib/imgnode", 0, 0, NULL,
         "Directory for the embedded defaults' queue and store; created if missing.",
         NODE(state_dir)},
        {"runtime_dir", IMGNODE_CONF_PATH, "/run/imgnode", 0, 0, NULL,
         "Directory for the control socket and status files; created if missing.",
         NODE(runtime_dir)},
        {"plugin_dir", IMGNODE_CONF_PATH, IMGNODE_PLUGIN_DIR, 0, 0, NULL,
         "Directory of plugin shared objects; must be owned by root (or the service user) and not group/world-writable.",
         NODE(plugin_dir)},
        {"log_level", IMGNODE_CONF_ENUM, "info", 0, 0, log_levels,
         "Most verbose level logged: error, warn, info or debug (-v and -q on the command line override it).",
         NODE(log_level)},
        {"log_format", IMGNODE_CONF_ENUM, "text", 0, 0, log_formats,
         "text: one line per event, level and key=value pairs; json: one JSON object per line (ts, level, process, pid, component, msg and the key=value pairs as fields). Under systemd (JOURNAL_STREAM) lines start with a <N> priority either way.",
         NODE(log_format)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_conf_key supervisor_keys[] = {
        {"control_socket", IMGNODE_CONF_PATH, "", 0, 0, NULL,
         "Unix socket imgnodectl talks to (mode 0600); empty means <runtime_dir>/control.sock.",
         SUP(control_socket)},
        {"intensity", IMGNODE_CONF_INT, "5", 0, 10000, NULL,
         "Restarts allowed within period before the node gives up and exits (OTP's intensity).",
         SUP(intensity)},
        {"period", IMGNODE_CONF_DURATION, "30s", 1, 24 * HOUR, NULL,
         "Window for intensity (OTP's period).", SUP(period)},
        {"start_timeout", IMGNODE_CONF_DURATION, "30s", 1, HOUR, NULL,
         "How long a child may take to report ready; longer counts as a failed start.",
         SUP(start_timeout)},
        {"shutdown_timeout", IMGNODE_CONF_DURATION, "10s", 0, HOUR, NULL,
         "How long a child gets after SIGTERM before SIGKILL (0 = brutal_kill).",
         SUP(shutdown_timeout)},
        {"backoff_min", IMGNODE_CONF_DURATION, "100ms", 0, HOUR, NULL,
         "First delay before restarting a child that keeps crashing; doubles each time (0 = no backoff).",
         SUP(backoff_min)},
        {"backoff_max", IMGNODE_CONF_DURATION, "10s", 0, HOUR, NULL,
         "Cap of the restart backoff (the workers have their own, [workers] backoff_max).",
         SUP(backoff_max)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_conf_key transport_keys[] = {
        {"plugin", IMGNODE_CONF_STRING, "spool", 0, 0, NULL,
         "Transport plugin: spool (a directory queue, one machine) or amqp (RabbitMQ). Its own keys follow in this section.",
         offsetof(struct plugin_ref_conf, plugin)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_conf_key storage_keys[] = {
        {"plugin", IMGNODE_CONF_STRING, "fs", 0, 0, NULL,
         "Storage plugin: fs (a directory tree, one machine) or rados (Ceph). Its own keys follow in this section.",
         offsetof(struct plugin_ref_conf, plugin)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct conf_section runtime_sections[] = {
        {"node", node_keys, offsetof(struct conf, node), 0},
        {"supervisor", supervisor_keys, offsetof(struct conf, supervisor), 0},
        {"transport", transport_keys, offsetof(struct conf, transport),
         CONF_SECTION_PLUGIN},
        {"storage", storage_keys, offsetof(struct conf, storage),
         CONF_SECTION_PLUGIN},
        {"filter.", NULL, 0, CONF_SECTION_PLUGIN | CONF_SECTION_PREFIX},
        {NULL, NULL, 0, 0},
};

/* What the runtime derives: the control socket's default path. */
static int fill_runtime(struct conf *conf, char *err, size_t errlen)
{
	char *path;

	if (conf->supervisor.control_socket[0])
		return 0;
	if (asprintf(&path, "%s/control.sock", conf->node.runtime_dir) < 0) {
		conf_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(conf->supervisor.control_socket);
	conf->supervisor.control_socket = path;
	return 0;
}

static const struct conf_schema runtime_schema = {
        .sections = runtime_sections,
        .fill = fill_runtime,
};

static const struct conf_schema *app_schema;

void conf_register_app(const struct conf_schema *schema)
{
	app_schema = schema;
}

struct conf *conf_load(const char *path, char *err, size_t errlen)
{
	return conf_read(path, &runtime_schema, app_schema, err, errlen);
}

int conf_fill_sections(struct conf *conf, char *err, size_t errlen)
{
	return conf_fill_schemas(conf, &runtime_schema, app_schema, err,
	                         errlen);
}

const struct conf_section *conf_table(const struct conf *conf, size_t i,
                                      void **base)
{
	const struct conf_schema *schemas[2] = {&runtime_schema, app_schema};

	if (conf && conf->schemas[0]) { /* those it was read with */
		schemas[0] = conf->schemas[0];
		schemas[1] = conf->schemas[1];
	}
	for (int n = 0; n < 2; n++) {
		if (!schemas[n])
			continue;
		for (const struct conf_section *s = schemas[n]->sections;
		     s->name; s++) {
			if (!s->keys || i--)
				continue;
			if (base)
				*base = conf && (conf->app || !schemas[n]->size)
				                ? (char *)conf_schema_base(
				                          conf, schemas[n]) +
				                          s->offset
				                : NULL;
			return s;
		}
	}
	return NULL;
}

/* The table of section.key among those conf_table lists, or NULL. */
static const struct imgnode_conf_key *find_key(const struct conf *conf,
                                               const char *section,
                                               const char *key, void **base)
{
	const struct conf_section *s;

	for (size_t i = 0; (s = conf_table(conf, i, base)); i++) {
		if (strcmp(s->name, section) != 0)
			continue;
		for (const struct imgnode_conf_key *k = s->keys; k->name; k++)
			if (strcmp(k->name, key) == 0)
				return k;
	}
	return NULL;
}

const char *conf_default(const char *section, const char *key)
{
	const struct imgnode_conf_key *k = find_key(NULL, section, key, NULL);

	return k ? k->def : NULL;
}

const void *conf_value_of(const struct conf *conf, const char *section,
                          const char *key)
{
	void *base = NULL;
	const struct imgnode_conf_key *k = find_key(conf, section, key, &base);

	return k && base ? (const char *)base + k->offset : NULL;
}
