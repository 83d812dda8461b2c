/*
 * Every core configuration key, declared once. imgnode -T, the shipped
 * etc/imgnode/imgnode.ini and the documentation are all derived from these
 * tables, so a key cannot exist in one place and not another.
 */
#include "conf_keys.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define WRK(f) offsetof(struct workers_conf, f)
#define ING(f) offsetof(struct ingress_conf, f)
#define LIM(f) offsetof(struct limits_conf, f)
#define GIB (INT64_C(1) << 30)
#define MAX_MEMORY_MIN (INT64_C(256) << 20)

static const char *const auto_word[] = {"auto", NULL};

static const struct imgnode_conf_key workers_keys[] = {
        {"count", IMGNODE_CONF_INT, "auto", 0, 256, auto_word,
         "Worker processes; each runs one job at a time. auto: one per CPU core the node may run on (its CPU affinity), the measured best (libvips gains little from threads inside one image).",
         WRK(count)},
        {"intensity", IMGNODE_CONF_INT, "20", 0, 100000, NULL,
         "Worker crashes allowed within [supervisor] period before the pool gives up; a poison job alone crashes up to the transport's delivery_limit workers.",
         WRK(intensity)},
        {"max_jobs", IMGNODE_CONF_INT, "1000", 0, INT64_C(1) << 40, NULL,
         "A worker is replaced after this many jobs, which bounds allocator growth (0 = never).",
         WRK(max_jobs)},
        {"max_rss", IMGNODE_CONF_SIZE, "1G", 0, INT64_C(1) << 50, NULL,
         "A worker whose resident memory passes this is replaced once its job is done (0 = no limit).",
         WRK(max_rss)},
        {"max_memory", IMGNODE_CONF_SIZE, "2G", 0, INT64_C(1) << 50, NULL,
         "Address space a worker may reserve (RLIMIT_AS, set before libvips starts): an allocation past it fails, failing the job, or the worker dies and is replaced and the job is retried up to the transport's delivery limit. It counts reservations (thread stacks, malloc arenas, libraries), not resident memory: an idle worker reserves 300-500 MB (librados adds threads), so keep it well above max_rss (0 = no limit; else at least 256M).",
         WRK(max_memory)},
        {"seccomp", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
         "Once started, workers run under no_new_privs and a seccomp allow-list of system calls: no exec, no fork, no Unix or raw sockets, no signals to other processes; a call outside it fails with EPERM. Turn it off only to debug a plugin that needs more.",
         WRK(seccomp)},
        {"job_timeout", IMGNODE_CONF_DURATION, "60s", 100, 24 * HOUR, NULL,
         "A worker still busy with one job after this is killed; the job is redelivered, up to the transport's delivery limit.",
         WRK(job_timeout)},
        {"heartbeat", IMGNODE_CONF_DURATION, "10s", 100, HOUR, NULL,
         "An idle worker that has not reported for this long is killed and replaced.",
         WRK(heartbeat)},
        {"concurrency", IMGNODE_CONF_INT, "1", 1, 64, NULL,
         "libvips threads per job.", WRK(concurrency)},
        {"nice", IMGNODE_CONF_INT, "10", 0, 19, NULL,
         "Added to the node's niceness for the workers, which also run as SCHED_BATCH: when images keep every core busy, the ingress, the supervisor and heartbeats still get the CPU at once (0 = the node's priority).",
         WRK(nice)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_conf_key ingress_keys[] = {
        {"listen", IMGNODE_CONF_STRING, "127.0.0.1", 0, 0, NULL,
         "Address the HTTP API listens on (IPv4 or IPv6 literal).",
         ING(listen)},
        {"port", IMGNODE_CONF_INT, "8080", 1, 65535, NULL,
         "TCP port of the HTTP API.", ING(port)},
        {"max_body", IMGNODE_CONF_SIZE, "50M", 1, 4 * GIB, NULL,
         "Largest upload accepted; bigger ones get 413.", ING(max_body)},
        {"wait_max", IMGNODE_CONF_DURATION, "30s", 0, HOUR, NULL,
         "Longest ?wait= a client may ask for.", ING(wait_max)},
        {"request_timeout", IMGNODE_CONF_DURATION, "60s", 1000, HOUR, NULL,
         "A connection idle for this long is closed (slow clients).",
         ING(request_timeout)},
        {"max_inflight", IMGNODE_CONF_INT, "256", 1, 1000000, NULL,
         "Jobs accepted by this node and not yet finished; beyond it uploads get 429.",
         ING(max_inflight)},
        {"api_keys", IMGNODE_CONF_LIST, "", 0, 0, NULL,
         "If set, requests must carry one of these in the X-Api-Key header.",
         ING(api_keys)},
        {"hmac_key", IMGNODE_CONF_STRING, "", 0, 0, NULL,
         "If set, pipelines must be signed: ?sig=hex(HMAC-SHA256(key, pipeline)).",
         ING(hmac_key)},
        {"presets_only", IMGNODE_CONF_BOOL, "no", 0, 0, NULL,
         "Accept only ?preset=NAME, never a pipeline in the request.",
         ING(presets_only)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const char *const fail_on[] = {"none", "truncated", "error", "warning",
                                      NULL};

static const struct imgnode_conf_key limits_keys[] = {
        {"max_pixels", IMGNODE_CONF_INT, "100000000", 1, INT64_C(1) << 40, NULL,
         "Largest input in pixels (width x height x frames), checked from the header before decoding.",
         LIM(max_pixels)},
        {"max_pixels_interlaced", IMGNODE_CONF_INT, "30000000", 1,
         INT64_C(1) << 40, NULL,
         "The same for progressive JPEG and interlaced PNG, which libvips must decode whole.",
         LIM(max_pixels_interlaced)},
        {"max_dimension", IMGNODE_CONF_INT, "30000", 1, 10000000, NULL,
         "Largest width or height of an input.", LIM(max_dimension)},
        {"max_frames", IMGNODE_CONF_INT, "100", 1, 100000, NULL,
         "Most frames (pages) of an animated input.", LIM(max_frames)},
        {"fail_on", IMGNODE_CONF_ENUM, "truncated", 0, 0, fail_on,
         "How damaged an input may be: none, truncated, error or warning (libvips' fail_on).",
         LIM(fail_on)},
        {"formats", IMGNODE_CONF_LIST, "jpeg,png,gif,webp,tiff,heif", 0, 0,
         NULL, "Input formats accepted (sniffed from content). Others get 415.",
         LIM(formats)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

const struct conf_section conf_core_sections[] = {
        {"node", node_keys, offsetof(struct conf, node), 0},
        {"supervisor", supervisor_keys, offsetof(struct conf, supervisor), 0},
        {"transport", transport_keys, offsetof(struct conf, transport),
         CONF_SECTION_PLUGIN},
        {"storage", storage_keys, offsetof(struct conf, storage),
         CONF_SECTION_PLUGIN},
        {"workers", workers_keys, offsetof(struct conf, workers), 0},
        {"ingress", ingress_keys, offsetof(struct conf, ingress), 0},
        {"limits", limits_keys, offsetof(struct conf, limits), 0},
        {"filter.", NULL, 0, CONF_SECTION_PLUGIN | CONF_SECTION_PREFIX},
        {"preset.", NULL, 0, CONF_SECTION_PREFIX},
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

/* [preset.NAME] pipeline = ...: one key, checked here; the pipeline itself
 * is checked where filters are loaded. */
static int fill_presets(struct conf *conf, char *err, size_t errlen)
{
	struct preset **tail = &conf->presets;

	for (struct conf_entry *e = conf->entries; e; e = e->next) {
		const char *name = e->section + strlen("preset.");
		struct preset *p;

		if (strncmp(e->section, "preset.", 7) != 0)
			continue;
		if (strcmp(e->key, "pipeline") != 0) {
			conf_set_err(
			        err, errlen,
			        "%s:%d: [%s] %s: unknown key (a preset has only pipeline)",
			        e->file, e->line, e->section, e->key);
			return -EINVAL;
		}
		if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
		            strlen(name) ||
		    strlen(name) > 64) {
			conf_set_err(
			        err, errlen,
			        "%s:%d: [%s]: a preset name is 1-64 characters of [a-z0-9_-]",
			        e->file, e->line, e->section);
			return -EINVAL;
		}
		for (p = conf->presets; p; p = p->next)
			if (strcmp(p->name, name) == 0)
				break;
		if (!p) {
			p = calloc(1, sizeof(*p));
			if (!p || !(p->name = strdup(name))) {
				free(p);
				conf_set_err(err, errlen, "out of memory");
				return -ENOMEM;
			}
			*tail = p;
			tail = &p->next;
		}
		free(p->pipeline); /* a later file overrides */
		p->pipeline = strdup(e->value);
		p->where = e;
		e->used = true;
		if (!p->pipeline) {
			conf_set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

/* The CPUs this process may run on (taskset, a cpuset, systemd's
 * CPUAffinity=), else those online. */
static long usable_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set);
	return sysconf(_SC_NPROCESSORS_ONLN);
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
	if (conf->workers.count < 0) { /* auto */
		long n = usable_cpus();
		conf->workers.count = n < 1 ? 1 : n > 256 ? 256 : n;
	}
	/* below this, libvips cannot even start (glib aborts): workers
	 * would crash until the pool gives up */
	if (conf->workers.max_memory &&
	    conf->workers.max_memory < MAX_MEMORY_MIN) {
		const struct conf_entry *e =
		        conf_find(conf, "workers", "max_memory");
		conf_set_err(
		        err, errlen,
		        "%s:%d: [workers] max_memory: %s is too small for a worker to start (at least 256M, or 0 for no limit)",
		        e ? e->file : conf->path, e ? e->line : 0,
		        e ? e->value : "?");
		return -EINVAL;
	}
	if (!conf->supervisor.control_socket[0]) {
		char *path;
		if (asprintf(&path, "%s/control.sock", conf->node.runtime_dir) <
		    0) {
			conf_set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
		free(conf->supervisor.control_socket);
		conf->supervisor.control_socket = path;
	}
	return fill_presets(conf, err, errlen);
}

void conf_release_core(struct conf *conf)
{
	struct preset *p, *next;

	for (const struct conf_section *s = conf_core_sections; s->name; s++)
		if (s->keys)
			conf_release(s->keys, (char *)conf + s->offset);
	for (p = conf->presets; p; p = next) {
		next = p->next;
		free(p->name);
		free(p->pipeline);
		free(p);
	}
	conf->presets = NULL;
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
