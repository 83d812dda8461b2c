/*
 * Every core configuration key, declared once. imgnode -T, the shipped
 * etc/imgnode/imgnode.ini and the documentation are all derived from these
 * tables, so a key cannot exist in one place and not another.
 */
#include "conf_keys.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#ifndef IMGNODE_PLUGIN_DIR
#define IMGNODE_PLUGIN_DIR "/usr/lib/imgnode/plugins"
#endif

#define NODE(f) offsetof(struct node_conf, f)
#define SUP(f) offsetof(struct supervisor_conf, f)
#define HOUR (3600 * 1000)

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         NULL};

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
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_conf_key supervisor_keys[] = {
        {"control_socket", IMGNODE_CONF_PATH, "/run/imgnode/control.sock", 0, 0,
         NULL, "Unix socket imgnodectl talks to (mode 0600).",
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
         "Cap of the restart backoff.", SUP(backoff_max)},
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

const struct conf_section conf_core_sections[] = {
        {"node", node_keys, offsetof(struct conf, node), 0},
        {"supervisor", supervisor_keys, offsetof(struct conf, supervisor), 0},
        {"transport", transport_keys, offsetof(struct conf, transport),
         CONF_SECTION_PLUGIN},
        {"storage", storage_keys, offsetof(struct conf, storage),
         CONF_SECTION_PLUGIN},
        {"filter.", NULL, 0, CONF_SECTION_PLUGIN | CONF_SECTION_PREFIX},
        {NULL, NULL, 0, 0},
};

static bool section_matches(const struct conf_section *s, const char *name)
{
	if (s->flags & CONF_SECTION_PREFIX) {
		size_t len = strlen(s->name);
		return strncmp(name, s->name, len) == 0 && name[len];
	}
	return strcmp(name, s->name) == 0;
}

bool conf_section_known(const char *section)
{
	for (const struct conf_section *s = conf_core_sections; s->name; s++)
		if (section_matches(s, section))
			return true;
	return false;
}

int conf_fill_core(struct conf *conf, char *err, size_t errlen)
{
	for (const struct conf_section *s = conf_core_sections; s->name; s++) {
		if (!s->keys)
			continue;
		if (conf_fill(conf, s->name, s->keys, (char *)conf + s->offset,
		              !(s->flags & CONF_SECTION_PLUGIN), err, errlen))
			return -EINVAL;
	}
	return 0;
}

void conf_release_core(struct conf *conf)
{
	for (const struct conf_section *s = conf_core_sections; s->name; s++)
		if (s->keys)
			conf_release(s->keys, (char *)conf + s->offset);
}

const struct conf_section *conf_core_section(const char *name)
{
	for (const struct conf_section *s = conf_core_sections; s->name; s++)
		if (section_matches(s, name))
			return s;
	return NULL;
}

const char *conf_core_default(const char *section, const char *key)
{
	for (const struct conf_section *s = conf_core_sections; s->name; s++) {
		if (!s->keys || !section_matches(s, section))
			continue;
		for (const struct imgnode_conf_key *k = s->keys; k->name; k++)
			if (strcmp(k->name, key) == 0)
				return k->def;
	}
	return NULL;
}
