/*
 * The plugin loader: finds, checks and configures the plugins of one
 * generation. It runs only in processes that may hold plugin code (workers,
 * ingress, the validation child of imgnode -t and of reload), never in the
 * supervisor.
 */
#ifndef IMGNODE_CORE_PLUGIN_H
#define IMGNODE_CORE_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include <imgnode/plugin.h>

struct conf;

struct plugin {
	char *path; /* the file it came from */
	void *dl; /* dlopen handle; never dlclosed */
	const struct imgnode_plugin *desc; /* inside the shared object */
	void *conf; /* conf_size bytes, or NULL */
	bool configured; /* conf filled from its section */
	void *state; /* from init */
	bool running; /* init succeeded, fini pending */
	struct plugin *next;
};

struct plugin_set {
	char *dir;
	struct plugin *head; /* sorted by file name */
	size_t n;
	struct plugin *transport; /* the ones [transport] and [storage] name */
	struct plugin *storage;
};

/* "transport", "storage", "filter" or "unknown". */
const char *plugin_kind_name(unsigned kind);

/*
 * Checks a directory or file may hold plugin code: owned by root or the
 * running user, not writable by group or others. Returns 0 or -EPERM with
 * "PATH: reason" in err.
 */
int plugin_check_owner(const char *path, const struct stat *st, char *err,
                       size_t errlen);

/*
 * Loads every *.so in dir, in name order, into set (zeroed by the caller).
 * The first file refused stops the load: returns -EINVAL (or -errno) with
 * one line "FILE: reason" in err; set then holds what loaded before it and
 * must still be passed to plugin_set_free.
 */
int plugin_set_load(struct plugin_set *set, const char *dir, char *err,
                    size_t errlen);

/*
 * Picks the transport and storage conf names, fills every plugin's config
 * struct from its section ([transport], [storage], [filter.NAME]) and
 * checks no key or [filter.*] section of conf is left unclaimed. Marks the
 * entries of conf it uses. Returns 0 or -EINVAL with "FILE:LINE: ..." in err.
 */
int plugin_set_configure(struct plugin_set *set, struct conf *conf, char *err,
                         size_t errlen);

/*
 * True if the storage plugin p has the ranged read of ABI 1.2: not from a
 * plugin built for an older ABI, whose ops table ends before it, nor when
 * it is NULL.
 */
bool plugin_storage_reads_ranges(const struct plugin *p);

/* True if the transport plugin p can count a queue (ABI 1.3 depth). */
bool plugin_transport_has_depth(const struct plugin *p);
/* True if a transport plugin can stop consuming a queue (ABI 1.4 cancel). */
bool plugin_transport_has_cancel(const struct plugin *p);

/* The plugin of kind called name, or NULL. */
struct plugin *plugin_find(const struct plugin_set *set, unsigned kind,
                           const char *name);

/*
 * Runs p's init with the host table. Returns 0 or the plugin's -errno with
 * a reason in err.
 */
int plugin_start(struct plugin *p, char *err, size_t errlen);

/*
 * Another instance of a started plugin, sharing its conf: init again, with
 * the state in *state. For a second thread that must not share the first
 * instance. 0 or -errno with a reason in err.
 */
int plugin_instance(const struct plugin *p, void **state, char *err,
                    size_t errlen);
void plugin_instance_free(const struct plugin *p, void *state);

/* Calls fini of every started plugin, frees configs and the list. The
 * shared objects stay mapped (code may still be referenced). */
void plugin_set_free(struct plugin_set *set);

/*
 * The whole check of imgnode -t and of a reload, in a throwaway child so the
 * caller never maps plugin code: load conf's plugin_dir, configure. If fn is
 * set, the child also calls it with the set (to check more, or to print the
 * effective config); fn returns 0 or -errno with a reason in err. Returns
 * 0, or -EINVAL with the child's one-line reason in err (a crash of the
 * child is reported as such).
 */
typedef int plugin_check_fn(struct plugin_set *set, struct conf *conf,
                            void *arg, char *err, size_t errlen);

/*
 * The same check in this process, for a caller that is itself a throwaway
 * child (a reload's check): maps plugin code. 0 or -errno with the reason.
 */
int plugin_validate(struct conf *conf, plugin_check_fn *fn, void *arg,
                    char *err, size_t errlen);

/*
 * The reason for a check child that ended with wait status (a crash, or an
 * exit without a reason in err), into err.
 */
void plugin_check_status(int status, const struct conf *conf, char *err,
                         size_t errlen);

int plugin_validate_in_child(struct conf *conf, plugin_check_fn *fn, void *arg,
                             char *err, size_t errlen);

#endif
