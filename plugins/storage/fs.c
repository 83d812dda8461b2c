/*
 * The fs storage plugin: objects as files in a directory tree, the embedded
 * default for one machine. A key is a relative path under the store's root
 * ("out/ab12" is ROOT/out/ab12); its directories are made on demand and
 * removed again when a delete leaves them empty.
 *
 * Writes are atomic and crash-safe: an object is written to a temporary file
 * in its own directory, flushed, and then renamed over the key (put) or
 * hard-linked to it (put_excl, which fails with EEXIST if the key exists,
 * race-free between processes, also on NFS). Readers see the old object or
 * the new one, whole.
 *
 * Temporary files are named ".tmp~PID.N". Keys are made of [A-Za-z0-9._/-]
 * only, so no key, and no component of one, can ever contain '~': a temporary
 * file can never be mistaken for an object or collide with one, and list
 * skips every directory entry holding a character a key cannot.
 *
 * Every operation works relative to a descriptor of the root opened at init,
 * so a key can never reach outside it (keys have no "." or ".." components
 * and are checked again here), and the final component is never followed if
 * it is a symbolic link.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <imgnode/plugin.h>

struct fs_conf {
	char *dir;
	bool fsync;
	int64_t max_object;
};

struct fs {
	const struct imgnode_host *host;
	const struct fs_conf *conf; /* the host's, valid until fini */
	char *path; /* the root, absolute */
	int rootfd;
	_Atomic unsigned long seq; /* for temporary file names */
};

#define fs_log(fs, level, ...) (fs)->host->log((level), "fs", __VA_ARGS__)

/* Room for a temporary file's name: ".tmp~" PID "." N. */
#define TMP_NAME_MAX 64
/*
 * How often put makes a key's directory again when a concurrent del empties
 * and removes it between our mkdir and our temporary file's create (which
 * then pins it). Each lost round means another process finished a put and a
 * del in that window; two processes hammering one directory lose about 1
 * round in 10 and chains die out by ~0.4 per round (measured), so this is
 * never reached short of a livelock.
 */
#define PUT_ATTEMPTS 64

/* Logs "unable to WHAT KEY: reason" and returns -err. */
static int fs_fail(struct fs *fs, const char *what, const char *key, int err)
{
	fs_log(fs, IMGNODE_LOG_ERROR, "unable to %s %s: %s", what, key,
	       strerror(err));
	return -err;
}

/* True if c may appear in a key. */
static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	       c == '/';
}

/*
 * Checks key, logging a refused one (shortened, and with anything a key may
 * not hold shown as '?', so a hostile key cannot forge log lines).
 */
static bool fs_key_ok(struct fs *fs, const char *what, const char *key)
{
	char shown[81];
	size_t i;

	if (key && imgnode_key_valid(key))
		return true;
	if (!key)
		key = "";
	for (i = 0; i < sizeof(shown) - 1 && key[i]; i++)
		shown[i] = key_char(key[i]) ? key[i] : '?';
	shown[i] = '\0';
	fs_log(fs, IMGNODE_LOG_ERROR, "unable to %s \"%s%s\": invalid key",
	       what, shown, key[i] ? "..." : "");
	return false;
}

/* Makes path (absolute) and its missing parents with mode. 0 or -errno. */
static int mkdir_p(const char *path, mode_t mode)
{
	char *buf = strdup(path);
	char *p;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (p = buf + 1;; p++) {
		struct stat sb;
		bool end = *p == '\0';

		if (!end && *p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST) {
			ret = -errno;
			/* e.g. EACCES or EROFS for a directory that exists */
			if (stat(buf, &sb) || !S_ISDIR(sb.st_mode))
				break;
			ret = 0;
		}
		if (end)
			break;
		*p = '/';
	}
	free(buf);
	return ret;
}

/*
 * Flushes an open directory. Some filesystems cannot (EINVAL); their
 * entries are as durable as they get.
 */
static int fsync_dir(int fd)
{
	if (fsync(fd) && errno != EINVAL)
		return -errno;
	return 0;
}

/* Flushes the directory rel (relative to the root; "" is the root). */
static int sync_dir(struct fs *fs, const char *rel)
{
	int fd = openat(fs->rootfd, *rel ? rel : ".",
	                O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = fsync_dir(fd);
	close(fd);
	return ret;
}

/*
 * Makes the directories of rel (relative to the root) that are missing,
 * flushing the parent of each one made so that it survives a crash.
 */
static int mkdirs_at(struct fs *fs, char *rel)
{
	char *p, *last = NULL;

	for (p = rel;; p++) {
		bool end = *p == '\0';

		if (!end && *p != '/')
			continue;
		*p = '\0';
		if (mkdirat(fs->rootfd, rel, 0750) == 0) {
			if (fs->conf->fsync) {
				int ret;

				if (last)
					*last = '\0';
				ret = sync_dir(fs, last ? rel : "");
				if (last)
					*last = '/';
				if (ret) {
					if (!end)
						*p = '/';
					return ret;
				}
			}
		} else if (errno != EEXIST) {
			int ret = -errno;

			if (!end)
				*p = '/';
			return ret;
		}
		if (end)
			return 0;
		*p = '/';
		last = p;
	}
}

/*
 * Opens the directory that holds key, making it first if create is set.
 * Returns an fd (the caller closes it) or -errno; *name points to key's last
 * component.
 */
static int open_parent(struct fs *fs, const char *key, bool create,
                       const char **name)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW;
	char rel[IMGNODE_KEY_MAX + 1];
	const char *slash = strrchr(key, '/');
	size_t n;
	int fd, ret;

	if (!slash) {
		*name = key;
		fd = openat(fs->rootfd, ".", flags);
		return fd >= 0 ? fd : -errno;
	}
	*name = slash + 1;
	n = (size_t)(slash - key);
	memcpy(rel, key, n);
	rel[n] = '\0';
	fd = openat(fs->rootfd, rel, flags);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT || !create)
		return -errno;
	ret = mkdirs_at(fs, rel);
	if (ret)
		return ret;
	fd = openat(fs->rootfd, rel, flags);
	return fd >= 0 ? fd : -errno;
}

/* Creates a new temporary file in dfd, its name in name. An fd or -errno. */
static int tmp_create(struct fs *fs, int dfd, char *name, size_t len)
{
	for (int i = 0; i < 100; i++) {
		unsigned long n = atomic_fetch_add(&fs->seq, 1);
		int fd;

		snprintf(name, len, ".tmp~%ld.%lu", (long)getpid(), n);
		fd = openat(dfd, name,
		            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		                    O_NOFOLLOW,
		            0640);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* put and put_excl: the object goes to a temporary file, then into place. */
static int fs_store(struct fs *fs, const char *key, const void *data,
                    size_t len, bool excl)
{
	char tmp[TMP_NAME_MAX];
	const char *name;
	struct stat sb;
	int dfd, fd, ret;

	if (!fs_key_ok(fs, "write", key))
		return -EINVAL;
	if (len > (uint64_t)fs->conf->max_object) {
		fs_log(fs, IMGNODE_LOG_ERROR,
		       "unable to write %s: %zu bytes is more than max_object (%" PRId64
		       " bytes)",
		       key, len, fs->conf->max_object);
		return -EFBIG;
	}
	/* The common case of an existing key, without writing it all first;
	 * link() below decides the races. */
	if (excl && fstatat(fs->rootfd, key, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;

	/* ENOENT: a del emptied and removed the directory meanwhile. */
	for (int attempt = 1;; attempt++) {
		dfd = open_parent(fs, key, true, &name);
		if (dfd >= 0) {
			fd = tmp_create(fs, dfd, tmp, sizeof(tmp));
			if (fd >= 0)
				break;
			close(dfd);
		} else {
			fd = dfd;
		}
		if (fd != -ENOENT || attempt == PUT_ATTEMPTS)
			return fs_fail(fs, "write", key, -fd);
	}

	ret = write_all(fd, data, len);
	if (!ret && fs->conf->fsync && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret)
		goto out_unlink_tmp;

	if (excl) {
		ret = linkat(dfd, tmp, dfd, name, 0) ? -errno : 0;
		unlinkat(dfd, tmp, 0);
		if (ret)
			goto out_close_dir;
	} else if (renameat(dfd, tmp, dfd, name)) {
		ret = -errno;
		goto out_unlink_tmp;
	}
	if (fs->conf->fsync) {
		ret = fsync_dir(dfd);
		if (ret)
			goto out_close_dir;
	}
	close(dfd);
	return 0;

out_unlink_tmp:
	unlinkat(dfd, tmp, 0);
out_close_dir:
	close(dfd);
	if (ret == -EEXIST && excl)
		return ret; /* an outcome, not a failure */
	return fs_fail(fs, "write", key, -ret);
}

static int fs_put(void *state, const char *key, const void *data, size_t len)
{
	return fs_store(state, key, data, len, false);
}

static int fs_put_excl(void *state, const char *key, const void *data,
                       size_t len)
{
	return fs_store(state, key, data, len, true);
}

/* A key that names a directory, or runs through a file, is absent. */
static bool absent(int err)
{
	return err == ENOENT || err == ENOTDIR || err == EISDIR;
}

/*
 * Opens key's object for reading: its fd (the caller closes it) and its
 * stat in sb, -ENOENT for none (or not a regular file; not logged), or
 * another -errno.
 */
static int open_object(struct fs *fs, const char *key, struct stat *sb)
{
	int fd, err;

	if (!fs_key_ok(fs, "read", key))
		return -EINVAL;
	/* O_NONBLOCK: a FIFO planted in the store must not hang us. */
	fd = openat(fs->rootfd, key,
	            O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return absent(errno) ? -ENOENT
		                     : fs_fail(fs, "read", key, errno);
	if (fstat(fd, sb)) {
		err = errno;
		close(fd);
		return fs_fail(fs, "read", key, err);
	}
	if (!S_ISREG(sb->st_mode)) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

/*
 * Reads key into a buffer from the host's alloc (the caller frees it with
 * the host's free). Absence is an answer, not a failure: it is not logged.
 */
static int fs_get(void *state, const char *key, size_t max, void **data,
                  size_t *len)
{
	struct fs *fs = state;
	struct stat sb;
	size_t size, got = 0;
	char *buf;
	int fd, ret;

	fd = open_object(fs, key, &sb);
	if (fd < 0)
		return fd;
	if ((uint64_t)sb.st_size > max) {
		fs_log(fs, IMGNODE_LOG_ERROR,
		       "unable to read %s: %" PRId64
		       " bytes is more than the %zu allowed",
		       key, (int64_t)sb.st_size, max);
		ret = -EFBIG;
		goto out_close;
	}
	size = (size_t)sb.st_size;
	buf = fs->host->alloc(size ? size : 1);
	if (!buf) {
		ret = fs_fail(fs, "read", key, ENOMEM);
		goto out_close;
	}
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = fs_fail(fs, "read", key, errno);
			goto out_free_buf;
		}
		if (n == 0) {
			fs_log(fs, IMGNODE_LOG_ERROR,
			       "unable to read %s: it shrank from %zu to %zu bytes while being read",
			       key, size, got);
			ret = -EIO;
			goto out_free_buf;
		}
		got += (size_t)n;
	}
	close(fd);
	*data = buf;
	*len = size;
	return 0;

out_free_buf:
	fs->host->free(buf);
out_close:
	close(fd);
	return ret;
}

/* Reads a piece of key at off; a short count only at the end. Absence
 * is not logged (see fs_get). */
static int fs_read(void *state, const char *key, uint64_t off, void *buf,
                   size_t len, size_t *got)
{
	struct fs *fs = state;
	struct stat sb;
	size_t done = 0;
	int fd, ret = 0;

	*got = 0;
	if (off > INT64_MAX)
		return -EINVAL;
	fd = open_object(fs, key, &sb);
	if (fd < 0)
		return fd;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
		                  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = fs_fail(fs, "read", key, errno);
			goto out_close;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
out_close:
	close(fd);
	return ret;
}

static int fs_stat(void *state, const char *key, struct imgnode_stat *st)
{
	struct fs *fs = state;
	struct stat sb;

	if (!fs_key_ok(fs, "stat", key))
		return -EINVAL;
	if (fstatat(fs->rootfd, key, &sb, AT_SYMLINK_NOFOLLOW)) {
		if (absent(errno))
			return -ENOENT;
		return fs_fail(fs, "stat", key, errno);
	}
	if (!S_ISREG(sb.st_mode))
		return -ENOENT;
	st->size = (uint64_t)sb.st_size;
	st->mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 +
	               sb.st_mtim.tv_nsec / 1000000;
	return 0;
}

/*
 * Removes key, then its directories as far up as they are empty (best
 * effort: a put that is about to use one makes it again). Not flushed: a
 * delete undone by a crash leaves an object that is whole.
 */
static int fs_del(void *state, const char *key)
{
	struct fs *fs = state;
	char rel[IMGNODE_KEY_MAX + 1];
	char *slash;

	if (!fs_key_ok(fs, "delete", key))
		return -EINVAL;
	if (unlinkat(fs->rootfd, key, 0)) {
		if (absent(errno))
			return -ENOENT;
		return fs_fail(fs, "delete", key, errno);
	}
	snprintf(rel, sizeof(rel), "%s", key);
	while ((slash = strrchr(rel, '/'))) {
		*slash = '\0';
		if (unlinkat(fs->rootfd, rel, AT_REMOVEDIR))
			break;
	}
	return 0;
}

/* A walk of the tree for list. */
struct walk {
	struct fs *fs;
	const char *prefix;
	size_t plen;
	int (*fn)(const char *key, void *arg);
	void *arg;
	char key[IMGNODE_KEY_MAX + 2]; /* the entry at hand */
};

/* Logs a failure in the directory w->key[0..len) ("" is the root). */
static int walk_fail(struct walk *w, size_t len, int err)
{
	fs_log(w->fs, IMGNODE_LOG_ERROR,
	       "unable to list keys under \"%s\": directory %.*s: %s",
	       w->prefix, len ? (int)len : 1, len ? w->key : ".",
	       strerror(err));
	return -err;
}

/*
 * Lists the directory dfd (taken over and closed), whose key prefix is
 * w->key[0..len): "" for the root, else ending in '/'. Directories that
 * cannot hold a key starting with the prefix are not entered.
 */
static int walk_dir(struct walk *w, int dfd, size_t len)
{
	struct dirent *de;
	DIR *d = fdopendir(dfd);
	int ret = 0;

	if (!d) {
		ret = walk_fail(w, len ? len - 1 : 0, errno);
		close(dfd);
		return ret;
	}
	for (;;) {
		size_t nlen, n;
		unsigned char type;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				ret = walk_fail(w, len ? len - 1 : 0, errno);
			break;
		}
		/* Skips ".", "..", temporary files and anything else that is
		 * not a component a key could have. */
		if (strchr(de->d_name, '/') || !imgnode_key_valid(de->d_name))
			continue;
		nlen = strlen(de->d_name);
		if (len + nlen > IMGNODE_KEY_MAX)
			continue;
		memcpy(w->key + len, de->d_name, nlen + 1);
		type = de->d_type;
		if (type == DT_UNKNOWN) {
			struct stat sb;

			if (fstatat(dirfd(d), de->d_name, &sb,
			            AT_SYMLINK_NOFOLLOW))
				continue; /* gone meanwhile */
			type = S_ISREG(sb.st_mode)   ? DT_REG
			       : S_ISDIR(sb.st_mode) ? DT_DIR
			                             : DT_UNKNOWN;
		}
		if (type == DT_REG) {
			if (strncmp(w->key, w->prefix, w->plen) == 0) {
				ret = w->fn(w->key, w->arg);
				if (ret)
					break;
			}
		} else if (type == DT_DIR) {
			int sub;

			n = len + nlen;
			w->key[n++] = '/';
			w->key[n] = '\0';
			if (strncmp(w->key, w->prefix,
			            n < w->plen ? n : w->plen) != 0)
				continue;
			sub = openat(dirfd(d), de->d_name,
			             O_RDONLY | O_DIRECTORY | O_CLOEXEC |
			                     O_NOFOLLOW);
			if (sub < 0) {
				if (errno == ENOENT)
					continue; /* removed by a del */
				ret = walk_fail(w, n - 1, errno);
				break;
			}
			ret = walk_dir(w, sub, n);
			if (ret)
				break;
		}
	}
	closedir(d);
	return ret;
}

static int fs_list(void *state, const char *prefix,
                   int (*fn)(const char *key, void *arg), void *arg)
{
	struct walk *w;
	int fd, ret;

	w = malloc(sizeof(*w));
	if (!w)
		return fs_fail(state, "list keys under", prefix ? prefix : "",
		               ENOMEM);
	w->fs = state;
	w->prefix = prefix ? prefix : "";
	w->plen = strlen(w->prefix);
	w->fn = fn;
	w->arg = arg;
	w->key[0] = '\0';
	fd = openat(w->fs->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		ret = walk_fail(w, 0, errno);
	else
		ret = walk_dir(w, fd, 0);
	free(w);
	return ret;
}

/*
 * Ready means: the root opened at init is still the directory at its path,
 * we may write there, and the filesystem has room.
 */
static int fs_ping(void *state)
{
	struct fs *fs = state;
	struct stat now, root;
	struct statvfs vfs;

	if (stat(fs->path, &now) || fstat(fs->rootfd, &root))
		return fs_fail(fs, "reach store", fs->path, errno);
	if (now.st_dev != root.st_dev || now.st_ino != root.st_ino) {
		fs_log(fs, IMGNODE_LOG_ERROR,
		       "unable to reach store %s: it was replaced since start-up; restart to use it",
		       fs->path);
		return -ESTALE;
	}
	if (access(fs->path, W_OK | X_OK))
		return fs_fail(fs, "reach store", fs->path, errno);
	if (fstatvfs(fs->rootfd, &vfs))
		return fs_fail(fs, "reach store", fs->path, errno);
	/* Some filesystems report 0 blocks or inodes in total: no limit. */
	if ((vfs.f_blocks && !vfs.f_bavail) || (vfs.f_files && !vfs.f_favail))
		return fs_fail(fs, "reach store", fs->path, ENOSPC);
	return 0;
}

/* Works out the root: dir, or <[node] state_dir>/store. Caller frees. */
static char *root_path(const struct imgnode_host *host,
                       const struct fs_conf *conf)
{
	char *path;

	if (conf->dir && conf->dir[0]) {
		if (conf->dir[0] != '/') {
			host->log(
			        IMGNODE_LOG_ERROR, "fs",
			        "[storage] dir: \"%s\" is not an absolute path",
			        conf->dir);
			return NULL;
		}
		path = strdup(conf->dir);
	} else {
		const char *sd = host->config_get("node", "state_dir");
		size_t len;

		if (!sd || sd[0] != '/') {
			host->log(
			        IMGNODE_LOG_ERROR, "fs",
			        "[storage] dir is empty and [node] state_dir is not an absolute path");
			return NULL;
		}
		len = strlen(sd) + sizeof("/store");
		path = malloc(len);
		if (path)
			snprintf(path, len, "%s/store", sd);
	}
	if (!path)
		host->log(IMGNODE_LOG_ERROR, "fs", "%s", strerror(ENOMEM));
	return path;
}

/* Makes and opens the root. The state (freed by fs_fini) goes to *state. */
static int fs_init(const struct imgnode_host *host, const void *conf,
                   void **state)
{
	struct fs *fs;
	struct timespec ts;
	int ret;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->host = host;
	fs->conf = conf;
	fs->path = root_path(host, conf);
	if (!fs->path) {
		ret = -EINVAL;
		goto out_free_fs;
	}
	ret = mkdir_p(fs->path, 0750);
	if (ret) {
		fs_fail(fs, "create store directory", fs->path, -ret);
		goto out_free_path;
	}
	fs->rootfd = open(fs->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->rootfd < 0) {
		ret = fs_fail(fs, "open store directory", fs->path, errno);
		goto out_free_path;
	}
	/* Names from an earlier process with our pid are likely taken by
	 * its leftovers: start elsewhere. */
	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_init(&fs->seq, (unsigned long)ts.tv_nsec);
	*state = fs;
	return 0;

out_free_path:
	free(fs->path);
out_free_fs:
	free(fs);
	return ret;
}

static void fs_fini(void *state)
{
	struct fs *fs = state;

	if (!fs)
		return;
	close(fs->rootfd);
	free(fs->path);
	free(fs);
}

static const struct imgnode_conf_key fs_keys[] = {
        {"dir", IMGNODE_CONF_PATH, "", 0, 0, NULL,
         "Directory of the store, an absolute path; empty means <[node] state_dir>/store. Created (mode 0750) if missing.",
         offsetof(struct fs_conf, dir)},
        {"fsync", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
         "Flush every object and its directory to disk before a put returns; no trades crash safety for speed.",
         offsetof(struct fs_conf, fsync)},
        {"max_object", IMGNODE_CONF_SIZE, "1G", 1, INT64_MAX, NULL,
         "Largest object a put accepts; a larger one fails with EFBIG.",
         offsetof(struct fs_conf, max_object)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_storage_ops fs_ops = {
        .put = fs_put,
        .put_excl = fs_put_excl,
        .get = fs_get,
        .stat = fs_stat,
        .del = fs_del,
        .list = fs_list,
        .ping = fs_ping,
        .read = fs_read,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_STORAGE),
        .name = "fs",
        .version = "1.0.0",
        .description = "Objects as files in a directory tree (one machine)",
        .conf_keys = fs_keys,
        .conf_size = sizeof(struct fs_conf),
        .init = fs_init,
        .fini = fs_fini,
        .ops = &fs_ops,
};
