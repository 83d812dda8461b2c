/*
 * The plugin loader. A plugin file and its directory are checked first (owner
 * and mode), then the file is mapped with dlopen. Its one exported descriptor is
 * checked before anything else in it is used: magic, ABI major, ABI minor,
 * kind, name, operations. Every refusal is one line naming the file.
 */
#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "conf_keys.h"
#include "config.h"
#include "host.h"
#include "util.h"

#define PLUGIN_NAME_MAX 32

const char *plugin_kind_name(unsigned kind)
{
	switch (kind) {
	case IMGNODE_KIND_TRANSPORT: return "transport";
	case IMGNODE_KIND_STORAGE: return "storage";
	case IMGNODE_KIND_FILTER: return "filter";
	default: return "unknown";
	}
}

int plugin_check_owner(const char *path, const struct stat *st, char *err,
                       size_t errlen)
{
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		conf_set_err(
		        err, errlen,
		        "%s: owned by uid %u, not by root or the running user (uid %u)",
		        path, (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		conf_set_err(err, errlen,
		             "%s: writable by group or others (mode %04o)",
		             path, (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Plugin names appear in config sections and pipelines: [a-z0-9_]. */
static bool name_valid(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return false;
	return i > 0 && i <= PLUGIN_NAME_MAX;
}

/* The operation every plugin of a kind must provide, or NULL if complete. */
static const char *missing_op(const struct imgnode_plugin *d)
{
	if (d->kind == IMGNODE_KIND_STORAGE) {
		const struct imgnode_storage_ops *o = d->ops;
		if (!o->put)
			return "put";
		if (!o->put_excl)
			return "put_excl";
		if (!o->get)
			return "get";
		if (!o->stat)
			return "stat";
		if (!o->del)
			return "del";
		if (!o->list)
			return "list";
		if (!o->ping)
			return "ping";
	} else if (d->kind == IMGNODE_KIND_TRANSPORT) {
		const struct imgnode_transport_ops *o = d->ops;
		if (!o->publish)
			return "publish";
		if (!o->consume)
			return "consume";
		if (!o->ack)
			return "ack";
		if (!o->reject)
			return "reject";
		if (!o->release)
			return "release";
		if (!o->reply_open)
			return "reply_open";
		if (!o->reply)
			return "reply";
		if (!o->pollfd)
			return "pollfd";
		if (!o->tick)
			return "tick";
		if (!o->ping)
			return "ping";
	} else if (d->kind == IMGNODE_KIND_FILTER) {
		const struct imgnode_filter_ops *o = d->ops;
		if (!o->args)
			return "args";
		if ((o->flags & IMGNODE_FILTER_ENCODER) && !o->encode)
			return "encode";
		if ((o->flags & IMGNODE_FILTER_ENCODER) && !o->mime)
			return "mime";
		if (!(o->flags & IMGNODE_FILTER_ENCODER) && !o->apply)
			return "apply";
		if ((o->flags & IMGNODE_FILTER_LOADS) && !o->load)
			return "load";
	}
	return NULL;
}

/* Checks the descriptor; 0 or -EINVAL with "path: reason" in err. */
static int check_descriptor(const char *path, const struct imgnode_plugin *d,
                            char *err, size_t errlen)
{
	const char *op;

	if (d->magic != IMGNODE_PLUGIN_MAGIC) {
		conf_set_err(
		        err, errlen,
		        "%s: not an imgnode plugin (bad magic 0x%08x in %s)",
		        path, (unsigned)d->magic, IMGNODE_PLUGIN_SYMBOL);
		return -EINVAL;
	}
	if (d->abi_major != IMGNODE_ABI_MAJOR) {
		conf_set_err(
		        err, errlen,
		        "%s: built for plugin ABI %u.%u; this imgnode speaks ABI %d.%d",
		        path, d->abi_major, d->abi_minor, IMGNODE_ABI_MAJOR,
		        IMGNODE_ABI_MINOR);
		return -EINVAL;
	}
	if (d->abi_minor > IMGNODE_ABI_MINOR) {
		conf_set_err(
		        err, errlen,
		        "%s: needs plugin ABI %u.%u but this imgnode speaks only %d.%d (upgrade imgnode)",
		        path, d->abi_major, d->abi_minor, IMGNODE_ABI_MAJOR,
		        IMGNODE_ABI_MINOR);
		return -EINVAL;
	}
	if (d->kind != IMGNODE_KIND_TRANSPORT &&
	    d->kind != IMGNODE_KIND_STORAGE && d->kind != IMGNODE_KIND_FILTER) {
		conf_set_err(err, errlen, "%s: unknown plugin kind %u", path,
		             (unsigned)d->kind);
		return -EINVAL;
	}
	if (!d->name || !name_valid(d->name)) {
		conf_set_err(
		        err, errlen,
		        "%s: plugin name %s%s%s is not 1-%d characters of [a-z0-9_]",
		        path, d->name ? "\"" : "",
		        d->name ? d->name : "missing", d->name ? "\"" : "",
		        PLUGIN_NAME_MAX);
		return -EINVAL;
	}
	if (!d->ops) {
		conf_set_err(err, errlen,
		             "%s: %s plugin \"%s\" has no operations", path,
		             plugin_kind_name(d->kind), d->name);
		return -EINVAL;
	}
	op = missing_op(d);
	if (op) {
		conf_set_err(err, errlen,
		             "%s: %s plugin \"%s\" lacks the %s operation",
		             path, plugin_kind_name(d->kind), d->name, op);
		return -EINVAL;
	}
	if (d->conf_size > 0 && !d->conf_keys) {
		conf_set_err(
		        err, errlen,
		        "%s: plugin \"%s\" has a config size but no key table",
		        path, d->name);
		return -EINVAL;
	}
	return 0;
}

bool plugin_storage_reads_ranges(const struct plugin *p)
{
	const struct imgnode_storage_ops *ops = p->desc->ops;

	return p->desc->kind == IMGNODE_KIND_STORAGE &&
	       p->desc->abi_minor >= 2 && ops->read;
}

bool plugin_transport_has_depth(const struct plugin *p)
{
	const struct imgnode_transport_ops *ops = p->desc->ops;

	return p->desc->kind == IMGNODE_KIND_TRANSPORT &&
	       p->desc->abi_minor >= 3 && ops->depth;
}

bool plugin_transport_has_cancel(const struct plugin *p)
{
	const struct imgnode_transport_ops *ops = p->desc->ops;

	return p->desc->kind == IMGNODE_KIND_TRANSPORT &&
	       p->desc->abi_minor >= 4 && ops->cancel;
}

struct plugin *plugin_find(const struct plugin_set *set, unsigned kind,
                           const char *name)
{
	for (struct plugin *p = set->head; p; p = p->next)
		if (p->desc->kind == kind && strcmp(p->desc->name, name) == 0)
			return p;
	return NULL;
}

/* Loads one file; 0 or -errno with the reason in err. */
static int load_one(struct plugin_set *set, const char *path, char *err,
                    size_t errlen)
{
	const struct imgnode_plugin *d;
	struct plugin *p, *dup, **tail;
	struct stat st;
	void *dl;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		conf_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		conf_set_err(err, errlen, "%s: not a regular file", path);
		ret = -EINVAL;
		goto out_close;
	}
	ret = plugin_check_owner(path, &st, err, errlen);
	if (ret)
		goto out_close;
	/*
	 * dlopen by name, not by /proc/self/fd/N: glibc recognises objects by
	 * the name they were opened under, and fd numbers are reused. The file
	 * cannot be swapped between the check and the load because its
	 * directory passed the same owner and mode check.
	 */
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		const char *why = dlerror();
		size_t plen = strlen(path);
		/* dlerror starts with the path; keep only its reason. */
		if (why && strncmp(why, path, plen) == 0 && why[plen] == ':')
			why += plen + 2;
		conf_set_err(err, errlen, "%s: cannot load: %s", path,
		             why ? why : "unknown error");
		ret = -EINVAL;
		goto out_close;
	}
	d = dlsym(dl, IMGNODE_PLUGIN_SYMBOL);
	if (!d) {
		conf_set_err(err, errlen,
		             "%s: not an imgnode plugin (no symbol %s)", path,
		             IMGNODE_PLUGIN_SYMBOL);
		ret = -EINVAL;
		goto out_close;
	}
	ret = check_descriptor(path, d, err, errlen);
	if (ret)
		goto out_close;
	dup = plugin_find(set, d->kind, d->name);
	if (dup) {
		conf_set_err(
		        err, errlen,
		        "%s: duplicate %s plugin \"%s\" (already loaded from %s)",
		        path, plugin_kind_name(d->kind), d->name, dup->path);
		ret = -EINVAL;
		goto out_close;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		conf_set_err(err, errlen, "%s: out of memory", path);
		ret = -ENOMEM;
		goto out_close;
	}
	p->dl = dl;
	p->desc = d;
	for (tail = &set->head; *tail; tail = &(*tail)->next)
		;
	*tail = p;
	set->n++;
	ret = 0;
	/* A refused object stays mapped: its code is never run, and
	 * dlclose of a half-checked object could run its destructors. */
out_close:
	close(fd);
	return ret;
}

static int so_filter(const struct dirent *d)
{
	size_t len = strlen(d->d_name);

	return d->d_name[0] != '.' && len > 3 &&
	       strcmp(d->d_name + len - 3, ".so") == 0;
}

int plugin_set_load(struct plugin_set *set, const char *dir, char *err,
                    size_t errlen)
{
	struct dirent **names;
	struct stat st;
	int n, ret = 0;

	set->dir = strdup(dir);
	if (!set->dir) {
		conf_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (stat(dir, &st) < 0) {
		ret = -errno;
		conf_set_err(err, errlen, "%s: plugin directory: %s", dir,
		             strerror(errno));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		conf_set_err(err, errlen,
		             "%s: plugin directory: not a directory", dir);
		return -ENOTDIR;
	}
	ret = plugin_check_owner(dir, &st, err, errlen);
	if (ret)
		return ret;
	n = scandir(dir, &names, so_filter, alphasort);
	if (n < 0) {
		ret = -errno;
		conf_set_err(err, errlen, "%s: plugin directory: %s", dir,
		             strerror(errno));
		return ret;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];

		if (!ret) {
			snprintf(path, sizeof(path), "%s/%s", dir,
			         names[i]->d_name);
			ret = load_one(set, path, err, errlen);
		}
		free(names[i]);
	}
	free(names);
	return ret;
}

/* "FILE:LINE: " of section.key if it was set in a file, else "FILE: ". */
static void where(const struct conf *conf, const char *section, const char *key,
                  char *buf, size_t len)
{
	const struct conf_entry *e = conf_find(conf, section, key);

	if (e)
		snprintf(buf, len, "%s:%d", e->file, e->line);
	else
		snprintf(buf, len, "%s", conf->path);
}

/* Names of the loaded plugins of kind, comma-separated, into buf. */
static void list_names(const struct plugin_set *set, unsigned kind, char *buf,
                       size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (struct plugin *p = set->head; p && off < len; p = p->next) {
		int n;

		if (p->desc->kind != kind)
			continue;
		n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
		             p->desc->name);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (!buf[0])
		snprintf(buf, len, "none");
}

static int configure_one(struct plugin *p, struct conf *conf,
                         const char *section, char *err, size_t errlen)
{
	const struct imgnode_plugin *d = p->desc;

	if (p->configured)
		return 0;
	if (d->conf_size) {
		p->conf = calloc(1, d->conf_size);
		if (!p->conf) {
			conf_set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	if (conf_fill(conf, section, d->conf_keys, p->conf, false, err,
	              errlen)) {
		free(p->conf);
		p->conf = NULL;
		return -EINVAL;
	}
	p->configured = true;
	return 0;
}

static int pick(struct plugin_set *set, struct conf *conf, unsigned kind,
                const char *section, const char *name, struct plugin **out,
                char *err, size_t errlen)
{
	char pos[4200], have[512];

	*out = plugin_find(set, kind, name);
	if (*out)
		return configure_one(*out, conf, section, err, errlen);
	where(conf, section, "plugin", pos, sizeof(pos));
	list_names(set, kind, have, sizeof(have));
	conf_set_err(err, errlen,
	             "%s: [%s] plugin: no %s plugin \"%s\" in %s (found: %s)",
	             pos, section, plugin_kind_name(kind), name, set->dir,
	             have);
	return -EINVAL;
}

struct filter_sections {
	struct plugin_set *set;
	struct conf *conf;
	char *err;
	size_t errlen;
	int ret;
};

static void check_filter_section(const char *section, void *arg)
{
	struct filter_sections *fs = arg;
	const char *name = section + strlen("filter.");
	const struct conf_entry *e;

	if (fs->ret || plugin_find(fs->set, IMGNODE_KIND_FILTER, name))
		return;
	for (e = fs->conf->entries; e; e = e->next)
		if (strcmp(e->section, section) == 0)
			break;
	conf_set_err(fs->err, fs->errlen,
	             "%s:%d: [%s]: no filter plugin \"%s\" in %s", e->file,
	             e->line, section, name, fs->set->dir);
	fs->ret = -EINVAL;
}

/*
 * A transport key "lease" (a DURATION: spool's) is how long a delivery
 * stays with its consumer between tick()s. Workers tick while a job runs,
 * but a lease shorter than [workers] job_timeout would still hand a job
 * that is within its deadline to a second worker whenever the ticks stop
 * (a stopped or starved process): refused, naming both keys. A program
 * without a [workers] section (conf_register_app) has no job_timeout.
 */
static int check_lease(const struct plugin *t, const struct conf *conf,
                       char *err, size_t errlen)
{
	static const struct imgnode_conf_key ms = {
	        .name = "job_timeout", .type = IMGNODE_CONF_DURATION};
	const struct imgnode_conf_key *k = t->desc->conf_keys;
	const int64_t *job_timeout =
	        conf_value_of(conf, "workers", "job_timeout");
	const struct conf_entry *je;
	char lease_s[32], job_s[32], pos[CONF_ERR_MAX / 2],
	        jpos[CONF_ERR_MAX / 2];
	int64_t lease;

	for (; k && k->name; k++)
		if (!strcmp(k->name, "lease") &&
		    k->type == IMGNODE_CONF_DURATION)
			break;
	if (!k || !k->name || !t->conf || !job_timeout)
		return 0;
	lease = *(const int64_t *)((const char *)t->conf + k->offset);
	if (lease >= *job_timeout)
		return 0;
	conf_value_format(&ms, &lease, lease_s, sizeof(lease_s));
	conf_value_format(&ms, job_timeout, job_s, sizeof(job_s));
	je = conf_find(conf, "workers", "job_timeout");
	if (je)
		snprintf(jpos, sizeof(jpos), ", %s:%d", je->file, je->line);
	else
		snprintf(jpos, sizeof(jpos), ", the default");
	if (conf_find(conf, "transport", "lease")) {
		where(conf, "transport", "lease", pos, sizeof(pos));
		conf_set_err(
		        err, errlen,
		        "%s: [transport] lease: %s is shorter than [workers] job_timeout (%s%s): a job still running when its lease ends would run again on another worker; make lease at least job_timeout",
		        pos, lease_s, job_s, jpos);
	} else {
		where(conf, "workers", "job_timeout", pos, sizeof(pos));
		conf_set_err(
		        err, errlen,
		        "%s: [workers] job_timeout: %s is longer than [transport] lease (%s, the %s plugin's default): a job still running when its lease ends would run again on another worker; set lease to at least job_timeout",
		        pos, job_s, lease_s, t->desc->name);
	}
	return -EINVAL;
}

int plugin_set_configure(struct plugin_set *set, struct conf *conf, char *err,
                         size_t errlen)
{
	struct filter_sections fs = {set, conf, err, errlen, 0};
	char section[PLUGIN_NAME_MAX + 16];
	int ret;

	ret = pick(set, conf, IMGNODE_KIND_TRANSPORT, "transport",
	           conf->transport.plugin, &set->transport, err, errlen);
	if (!ret)
		ret = check_lease(set->transport, conf, err, errlen);
	if (ret)
		return ret;
	ret = pick(set, conf, IMGNODE_KIND_STORAGE, "storage",
	           conf->storage.plugin, &set->storage, err, errlen);
	if (ret)
		return ret;
	conf_each_section(conf, "filter.", check_filter_section, &fs);
	if (fs.ret)
		return fs.ret;
	for (struct plugin *p = set->head; p; p = p->next) {
		if (p->desc->kind != IMGNODE_KIND_FILTER)
			continue;
		snprintf(section, sizeof(section), "filter.%s", p->desc->name);
		ret = configure_one(p, conf, section, err, errlen);
		if (ret)
			return ret;
	}
	return conf_check_unused(conf, err, errlen);
}

int plugin_start(struct plugin *p, char *err, size_t errlen)
{
	int ret;

	if (p->running || !p->desc->init) {
		p->running = true;
		return 0;
	}
	ret = p->desc->init(host_table(), p->conf, &p->state);
	if (ret) {
		conf_set_err(err, errlen,
		             "%s plugin \"%s\" failed to start: %s",
		             plugin_kind_name(p->desc->kind), p->desc->name,
		             strerror(ret < 0 ? -ret : ret));
		return ret < 0 ? ret : -ret;
	}
	p->running = true;
	return 0;
}

int plugin_instance(const struct plugin *p, void **state, char *err,
                    size_t errlen)
{
	int ret;

	*state = NULL;
	if (!p->desc->init)
		return 0;
	ret = p->desc->init(host_table(), p->conf, state);
	if (ret) {
		conf_set_err(
		        err, errlen,
		        "%s plugin \"%s\" failed to start another instance: %s",
		        plugin_kind_name(p->desc->kind), p->desc->name,
		        strerror(ret < 0 ? -ret : ret));
		return ret < 0 ? ret : -ret;
	}
	return 0;
}

void plugin_instance_free(const struct plugin *p, void *state)
{
	if (p->desc->fini)
		p->desc->fini(state);
}

void plugin_set_free(struct plugin_set *set)
{
	struct plugin *p, *next;

	for (p = set->head; p; p = next) {
		next = p->next;
		if (p->running && p->desc->fini)
			p->desc->fini(p->state);
		if (p->conf)
			conf_release(p->desc->conf_keys, p->conf);
		free(p->conf);
		free(p->path);
		free(p);
	}
	free(set->dir);
	memset(set, 0, sizeof(*set));
}

int plugin_validate(struct conf *conf, plugin_check_fn *fn, void *arg,
                    char *err, size_t errlen)
{
	struct plugin_set set = {0};
	int ret;

	host_set_conf(conf);
	ret = plugin_set_load(&set, conf->node.plugin_dir, err, errlen);
	if (!ret)
		ret = plugin_set_configure(&set, conf, err, errlen);
	if (!ret && fn)
		ret = fn(&set, conf, arg, err, errlen);
	plugin_set_free(&set);
	return ret;
}

void plugin_check_status(int status, const struct conf *conf, char *err,
                         size_t errlen)
{
	if (WIFSIGNALED(status))
		conf_set_err(err, errlen,
		             "plugin check crashed (%s) while loading %s",
		             strsignal(WTERMSIG(status)),
		             conf->node.plugin_dir);
	else if (!err[0])
		conf_set_err(err, errlen, "plugin check failed (exit %d)",
		             WEXITSTATUS(status));
}

int plugin_validate_in_child(struct conf *conf, plugin_check_fn *fn, void *arg,
                             char *err, size_t errlen)
{
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		conf_set_err(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		conf_set_err(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -EAGAIN;
	}
	if (pid == 0) {
		char why[CONF_ERR_MAX];
		int ret;

		close(pfd[0]);
		util_reset_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		ret = plugin_validate(conf, fn, arg, why, sizeof(why));
		fflush(NULL);
		if (ret) {
			util_write_all(pfd[1], why, strlen(why));
			_exit(EXIT_PERMANENT);
		}
		_exit(0);
	}
	close(pfd[1]);
	n = util_read_all(pfd[0], err, errlen - 1);
	close(pfd[0]);
	err[n > 0 ? n : 0] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	plugin_check_status(status, conf, err, errlen);
	return -EINVAL;
}
