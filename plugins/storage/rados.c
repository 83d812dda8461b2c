/*
 * The rados storage plugin: objects in a Ceph pool through librados, for
 * many nodes sharing one cluster. A key is the object's name in the pool's
 * default namespace, as is: "out/ab12" is the RADOS object "out/ab12".
 *
 * Every write is one RADOS operation, so it is atomic on the OSD: put is a
 * write_full (readers see the old object or the new one, whole), put_excl a
 * create(exclusive) + write_full in one op (-EEXIST, race-free between any
 * number of clients). Writes carry LIBRADOS_OPERATION_FULL_TRY: on a full
 * pool a write that would add bytes or objects fails with -ENOSPC at once
 * instead of waiting for space (a pool over its quota, EDQUOT, counts as
 * full too); deletes and shrinking writes still pass. A get reads the
 * object's size and bytes in one op, so it never mixes two versions. Job
 * records are small objects like any other (no omap): the node keeps one
 * JSON document per job and replaces it whole.
 *
 * Objects are not striped: RADOS refuses an object beyond the OSDs'
 * osd_max_object_size (128 MiB by default) and a single write beyond
 * osd_max_write_size (90 MiB). A put is one write, so the limit is the
 * smaller of the two, read from the mon's central config at init (or set
 * by max_object). A larger put fails with -EFBIG and a line that names the
 * limit. Objects are never chunked: a chunked put could not be atomic
 * (RADOS has no multi-object transactions or rename), and images are far
 * below the limit.
 *
 * Nothing waits for ever: the mon, OSD and mount timeouts are set before
 * connecting (librados defaults to no OSD timeout at all), so an op against
 * a stopped OSD, or a start against an unreachable cluster, returns
 * -ETIMEDOUT; the same client works again by itself when the cluster is
 * back. The pool is looked up at init, while the mon is known to answer: a
 * pool that does not exist is a start-up error that names it. Pacific's C
 * API gives mtimes in whole seconds.
 *
 * librados handles are thread-safe, and so is this plugin's state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rados/librados.h>

#include <imgnode/plugin.h>

struct rados_conf {
	char *conf;
	char *id;
	char *keyring;
	char *pool;
	int64_t mon_op_timeout; /* ms */
	int64_t osd_op_timeout; /* ms */
	int64_t mount_timeout; /* ms */
	int64_t max_object; /* bytes; 0: the cluster's limit */
};

struct rstore {
	const struct imgnode_host *host;
	const struct rados_conf *conf; /* the host's, valid until fini */
	rados_t cluster;
	rados_ioctx_t io;
	uint64_t max_object; /* the limit in force */
	const char *limit_name; /* where it came from, for messages */
	long osd_timeout_s; /* what librados was given, for messages */
};

#define rs_log(rs, level, ...) (rs)->host->log((level), "rados", __VA_ARGS__)

/*
 * The first read of a get takes up to this many bytes along with the size:
 * job records, thumbnails and small images come back in one round trip;
 * bigger objects take a second op that reads them whole.
 */
#define GET_HEAD (64 * 1024)
/* How often get starts over when the object changes size between its ops. */
#define GET_ATTEMPTS 8
/* The most one librados read asks for. */
#define READ_MAX ((size_t)1 << 30)
/* A name ping stats: not a valid key ('~'), so never an object of ours. */
#define PING_OBJECT "imgnode~ping"

/*
 * Logs "unable to WHAT KEY (pool P): reason" and returns -err. A timeout
 * names the bound that ran out; a full pool says so.
 */
static int rs_fail(struct rstore *rs, const char *what, const char *key,
                   int err)
{
	if (err == ETIMEDOUT)
		rs_log(rs, IMGNODE_LOG_ERROR,
		       "unable to %s %s (pool %s): %s (no answer within osd_op_timeout, %lds)",
		       what, key, rs->conf->pool, strerror(err),
		       rs->osd_timeout_s);
	else if (err == ENOSPC || err == EDQUOT)
		rs_log(rs, IMGNODE_LOG_ERROR,
		       "unable to %s %s: pool %s is full (%s)", what, key,
		       rs->conf->pool,
		       err == EDQUOT ? "its quota is used up" : strerror(err));
	else
		rs_log(rs, IMGNODE_LOG_ERROR, "unable to %s %s (pool %s): %s",
		       what, key, rs->conf->pool, strerror(err));
	/* A pool quota (EDQUOT) is a full pool to our callers. */
	return err == EDQUOT ? -ENOSPC : -err;
}

/* True if c may appear in a key. */
static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	       c == '/';
}

/*
 * Copies text into shown (of size len) for a log line: shortened, and with
 * anything a key may not hold as '?', so a hostile key cannot forge lines.
 * True if it had to be shortened.
 */
static bool shown_as(const char *text, char *shown, size_t len)
{
	size_t i;

	for (i = 0; i < len - 1 && text[i]; i++)
		shown[i] = key_char(text[i]) ? text[i] : '?';
	shown[i] = '\0';
	return text[i] != '\0';
}

/* Checks key, logging a refused one. */
static bool rs_key_ok(struct rstore *rs, const char *what, const char *key)
{
	char shown[81];
	bool cut;

	if (key && imgnode_key_valid(key))
		return true;
	cut = shown_as(key ? key : "", shown, sizeof(shown));
	rs_log(rs, IMGNODE_LOG_ERROR, "unable to %s \"%s%s\": invalid key",
	       what, shown, cut ? "..." : "");
	return false;
}

/* put and put_excl: one write op, all or nothing. */
static int rs_store(struct rstore *rs, const char *key, const void *data,
                    size_t len, bool excl)
{
	rados_write_op_t op;
	int ret;

	if (!rs_key_ok(rs, "write", key))
		return -EINVAL;
	if (len > rs->max_object) {
		rs_log(rs, IMGNODE_LOG_ERROR,
		       "unable to write %s: %zu bytes is more than max_object (%" PRIu64
		       " bytes, %s)",
		       key, len, rs->max_object, rs->limit_name);
		return -EFBIG;
	}
	op = rados_create_write_op();
	if (!op)
		return rs_fail(rs, "write", key, ENOMEM);
	/* write_full of nothing alone would not make an object; other puts
	 * need no create step (one op less for the OSD to run) */
	if (excl)
		rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	else if (len == 0)
		rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
	rados_write_op_write_full(op, data, len);
	ret = rados_write_op_operate2(op, rs->io, key, NULL,
	                              LIBRADOS_OPERATION_FULL_TRY);
	rados_release_write_op(op);
	if (ret == 0)
		return 0;
	if (ret == -EEXIST && excl)
		return ret; /* an outcome, not a failure */
	return rs_fail(rs, "write", key, -ret);
}

static int rs_put(void *state, const char *key, const void *data, size_t len)
{
	return rs_store(state, key, data, len, false);
}

static int rs_put_excl(void *state, const char *key, const void *data,
                       size_t len)
{
	return rs_store(state, key, data, len, true);
}

/*
 * Reads key into a buffer from the host's alloc (the caller frees it with
 * the host's free). Each attempt is one op that returns the object's size
 * and up to cap bytes: when the size fits, those bytes are the whole object
 * as of one moment. Absence is an answer, not a failure: it is not logged.
 */
static int rs_get(void *state, const char *key, size_t max, void **data,
                  size_t *len)
{
	struct rstore *rs = state;
	size_t cap = max < GET_HEAD ? max : GET_HEAD;
	char *buf, *bigger;
	int ret;

	if (!rs_key_ok(rs, "read", key))
		return -EINVAL;
	if (cap == 0)
		cap = 1; /* a read of 0 bytes means "all of it" to RADOS */
	buf = rs->host->alloc(cap);
	if (!buf)
		return rs_fail(rs, "read", key, ENOMEM);
	for (int attempt = 1; attempt <= GET_ATTEMPTS; attempt++) {
		rados_read_op_t op = rados_create_read_op();
		uint64_t size = 0;
		time_t mtime;
		size_t got = 0;
		int stat_ret = 0, read_ret = 0;

		if (!op) {
			ret = rs_fail(rs, "read", key, ENOMEM);
			goto out_free_buf;
		}
		rados_read_op_stat(op, &size, &mtime, &stat_ret);
		rados_read_op_read(op, 0, cap, buf, &got, &read_ret);
		ret = rados_read_op_operate(op, rs->io, key, 0);
		rados_release_read_op(op);
		if (ret == 0)
			ret = stat_ret ? stat_ret : read_ret;
		if (ret == -ENOENT)
			goto out_free_buf;
		if (ret < 0) {
			ret = rs_fail(rs, "read", key, -ret);
			goto out_free_buf;
		}
		if (size > max) {
			rs_log(rs, IMGNODE_LOG_ERROR,
			       "unable to read %s: %" PRIu64
			       " bytes is more than the %zu allowed",
			       key, size, max);
			ret = -EFBIG;
			goto out_free_buf;
		}
		if (size <= cap && got == size) {
			if (size < cap && size > 0) {
				/* give back what a small object left over */
				bigger = rs->host->realloc(buf, size);
				if (bigger)
					buf = bigger;
			}
			*data = buf;
			*len = (size_t)size;
			return 0;
		}
		/* bigger than the first read, or changed between ops */
		if (size > cap) {
			bigger = rs->host->realloc(buf, (size_t)size);
			if (!bigger) {
				ret = rs_fail(rs, "read", key, ENOMEM);
				goto out_free_buf;
			}
			buf = bigger;
			cap = (size_t)size;
		}
	}
	rs_log(rs, IMGNODE_LOG_ERROR,
	       "unable to read %s (pool %s): it kept changing size while being read",
	       key, rs->conf->pool);
	ret = -EIO;

out_free_buf:
	rs->host->free(buf);
	return ret;
}

/* Size and mtime. librados 16 (Pacific) gives the mtime in whole seconds. */
static int rs_stat(void *state, const char *key, struct imgnode_stat *st)
{
	struct rstore *rs = state;
	uint64_t size;
	time_t mtime;
	int ret;

	if (!rs_key_ok(rs, "stat", key))
		return -EINVAL;
	ret = rados_stat(rs->io, key, &size, &mtime);
	if (ret == -ENOENT)
		return ret;
	if (ret < 0)
		return rs_fail(rs, "stat", key, -ret);
	st->size = size;
	st->mtime_ms = (int64_t)mtime * 1000;
	return 0;
}

/*
 * Reads a piece of key at off, in reads of at most READ_MAX bytes (a
 * librados count is an int); a short one means the end. Absence is not
 * logged (see rs_get).
 */
static int rs_read(void *state, const char *key, uint64_t off, void *buf,
                   size_t len, size_t *got)
{
	struct rstore *rs = state;
	size_t done = 0;

	*got = 0;
	if (!rs_key_ok(rs, "read", key))
		return -EINVAL;
	while (done < len) {
		size_t want = len - done < READ_MAX ? len - done : READ_MAX;
		int n = rados_read(rs->io, key, (char *)buf + done, want,
		                   off + done);

		if (n == -ENOENT)
			return n;
		if (n < 0)
			return rs_fail(rs, "read", key, -n);
		done += (size_t)n;
		if ((size_t)n < want)
			break;
	}
	*got = done;
	return 0;
}

/* Removes key. FULL_TRY: a delete frees space, so a full pool allows it. */
static int rs_del(void *state, const char *key)
{
	struct rstore *rs = state;
	rados_write_op_t op;
	int ret;

	if (!rs_key_ok(rs, "delete", key))
		return -EINVAL;
	op = rados_create_write_op();
	if (!op)
		return rs_fail(rs, "delete", key, ENOMEM);
	rados_write_op_remove(op);
	ret = rados_write_op_operate2(op, rs->io, key, NULL,
	                              LIBRADOS_OPERATION_FULL_TRY);
	rados_release_write_op(op);
	if (ret == 0 || ret == -ENOENT)
		return ret;
	return rs_fail(rs, "delete", key, -ret);
}

/*
 * Walks every object of the pool's default namespace (RADOS lists by
 * placement group, so there is no cheaper way to a prefix) and hands fn the
 * names that start with prefix and are valid keys; anything else in the
 * pool (another tool's objects, our ping probe) is skipped.
 */
static int rs_list(void *state, const char *prefix,
                   int (*fn)(const char *key, void *arg), void *arg)
{
	struct rstore *rs = state;
	char key[IMGNODE_KEY_MAX + 1], shown[84];
	rados_list_ctx_t ctx;
	size_t plen;
	int ret;

	if (!prefix)
		prefix = "";
	plen = strlen(prefix);
	/* for messages: "prefix", quoted (it may be empty) */
	shown[0] = '"';
	shown_as(prefix, shown + 1, sizeof(shown) - 2);
	memcpy(shown + strlen(shown), "\"", 2);
	ret = rados_nobjects_list_open(rs->io, &ctx);
	if (ret < 0)
		return rs_fail(rs, "list keys under", shown, -ret);
	for (;;) {
		const char *entry;
		size_t elen;

		ret = rados_nobjects_list_next2(ctx, &entry, NULL, NULL, &elen,
		                                NULL, NULL);
		if (ret == -ENOENT) {
			ret = 0; /* the end */
			break;
		}
		if (ret < 0) {
			ret = rs_fail(rs, "list keys under", shown, -ret);
			break;
		}
		if (elen < plen || elen > IMGNODE_KEY_MAX ||
		    memcmp(entry, prefix, plen) != 0)
			continue;
		memcpy(key, entry, elen);
		key[elen] = '\0';
		if (strlen(key) != elen || !imgnode_key_valid(key))
			continue;
		ret = fn(key, arg);
		if (ret)
			break;
	}
	rados_nobjects_list_close(ctx);
	return ret;
}

/*
 * Ready means an OSD of the pool answers: a stat of a name that is never
 * an object, bounded by osd_op_timeout. Absent is the expected answer.
 */
static int rs_ping(void *state)
{
	struct rstore *rs = state;
	uint64_t size;
	time_t mtime;
	int ret = rados_stat(rs->io, PING_OBJECT, &size, &mtime);

	if (ret == 0 || ret == -ENOENT)
		return 0;
	return rs_fail(rs, "reach the cluster with a stat of", PING_OBJECT,
	               -ret);
}

/* Whole seconds for librados (it takes no fractions), rounded up, >= 1. */
static long secs(int64_t ms)
{
	return ms <= 1000 ? 1 : (long)((ms + 999) / 1000);
}

/*
 * Asks the mon for the value of option key that the OSDs use (their
 * central config, defaults included). 0 and *val, or -errno.
 */
static int osd_option(struct rstore *rs, const char *key, uint64_t *val)
{
	char cmd[160];
	const char *cmds[1] = {cmd};
	char *out = NULL, *status = NULL, *end;
	size_t outlen = 0, statuslen = 0;
	unsigned long long v;
	int ret;

	snprintf(
	        cmd, sizeof(cmd),
	        "{\"prefix\": \"config get\", \"who\": \"osd\", \"key\": \"%s\", \"format\": \"json\"}",
	        key);
	ret = rados_mon_command(rs->cluster, cmds, 1, NULL, 0, &out, &outlen,
	                        &status, &statuslen);
	if (ret < 0)
		goto out_free;
	ret = -EINVAL;
	if (!out || outlen == 0 || outlen > 64)
		goto out_free;
	{
		char text[65];
		const char *p = text;

		memcpy(text, out, outlen);
		text[outlen] = '\0';
		while (*p == ' ' || *p == '\n' || *p == '"')
			p++;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno || end == p || v == 0)
			goto out_free;
	}
	*val = v;
	ret = 0;
out_free:
	rados_buffer_free(out);
	rados_buffer_free(status);
	return ret;
}

/* The same option as this client's config has it, or 0. */
static uint64_t client_option(struct rstore *rs, const char *key)
{
	char text[64];
	unsigned long long v;
	char *end;

	if (rados_conf_get(rs->cluster, key, text, sizeof(text)))
		return 0;
	errno = 0;
	v = strtoull(text, &end, 10);
	return errno || end == text ? 0 : v;
}

/*
 * Works out the largest object a put may write: max_object if set, else
 * the smaller of the OSDs' osd_max_object_size and osd_max_write_size (one
 * write carries the whole object), from the mon's central config, or from
 * this client's config if the mon will not say (e.g. restricted caps).
 */
static void find_limit(struct rstore *rs)
{
	uint64_t obj = 0, write_mb = 0;
	bool asked;

	if (rs->conf->max_object > 0) {
		rs->max_object = (uint64_t)rs->conf->max_object;
		rs->limit_name = "[storage] max_object";
		return;
	}
	asked = osd_option(rs, "osd_max_object_size", &obj) == 0 &&
	        osd_option(rs, "osd_max_write_size", &write_mb) == 0;
	if (!asked) {
		obj = client_option(rs, "osd_max_object_size");
		write_mb = client_option(rs, "osd_max_write_size");
		rs_log(rs, IMGNODE_LOG_WARN,
		       "the mon would not tell the OSDs' object size limits; using this client's config");
	}
	if (obj == 0)
		obj = 128ull << 20; /* Ceph's default */
	if (write_mb == 0 || write_mb > (UINT64_MAX >> 20))
		write_mb = 90; /* Ceph's default */
	if (obj <= write_mb << 20) {
		rs->max_object = obj;
		rs->limit_name = "the cluster's osd_max_object_size";
	} else {
		rs->max_object = write_mb << 20;
		rs->limit_name = "the cluster's osd_max_write_size";
	}
}

/* Sets option to text on the (not yet connected) cluster handle. */
static int set_option(struct rstore *rs, const char *option, const char *text)
{
	int ret = rados_conf_set(rs->cluster, option, text);

	if (ret < 0)
		rs_log(rs, IMGNODE_LOG_ERROR,
		       "unable to set librados option %s to %s: %s", option,
		       text, strerror(-ret));
	return ret;
}

static int set_timeouts(struct rstore *rs)
{
	const struct rados_conf *c = rs->conf;
	const struct {
		const char *option;
		int64_t ms;
	} t[] = {
	        {"rados_mon_op_timeout", c->mon_op_timeout},
	        {"rados_osd_op_timeout", c->osd_op_timeout},
	        {"client_mount_timeout", c->mount_timeout},
	};
	char text[32];
	int ret;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(text, sizeof(text), "%ld", secs(t[i].ms));
		ret = set_option(rs, t[i].option, text);
		if (ret)
			return ret;
	}
	rs->osd_timeout_s = secs(c->osd_op_timeout);
	/*
	 * An OSD that crashed and came back on the same address leaves our
	 * session to its old self hanging: librados only asks for a new map
	 * once an op has waited objecter_timeout (10 s), checked every
	 * objecter_tick_interval (5 s). Measured: the first op after an OSD
	 * SIGKILL + restart took 12.5 s with the defaults, 2.7 s with these.
	 * The cost is a map request while an op is slow.
	 */
	ret = set_option(rs, "objecter_timeout", "2");
	if (!ret)
		ret = set_option(rs, "objecter_tick_interval", "1");
	return ret;
}

/*
 * Connects to the cluster and opens the pool. The state (freed by rs_fini)
 * goes to *state. Errors name the config file, the client or the pool.
 */
static int rs_init(const struct imgnode_host *host, const void *conf,
                   void **state)
{
	const struct rados_conf *c = conf;
	struct rstore *rs;
	int64_t pool_id;
	int ret;

	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	rs->host = host;
	rs->conf = c;
	ret = rados_create(&rs->cluster, c->id);
	if (ret < 0) {
		rs_log(rs, IMGNODE_LOG_ERROR,
		       "unable to create a cluster handle for client.%s: %s",
		       c->id, strerror(-ret));
		goto out_free_rs;
	}
	/* "": librados' own search ($CEPH_CONF, /etc/ceph/ceph.conf, ...) */
	ret = rados_conf_read_file(rs->cluster, c->conf[0] ? c->conf : NULL);
	if (ret < 0) {
		rs_log(rs, IMGNODE_LOG_ERROR, "unable to read %s: %s",
		       c->conf[0] ? c->conf : "a ceph.conf", strerror(-ret));
		goto out_shutdown;
	}
	/* librados' own chatter would bypass our log: it goes to its log
	 * file (ceph.conf's "log file"), if any. */
	ret = set_option(rs, "log_to_stderr", "false");
	if (!ret)
		ret = set_option(rs, "err_to_stderr", "false");
	if (!ret && c->keyring && c->keyring[0])
		ret = set_option(rs, "keyring", c->keyring);
	if (!ret)
		ret = set_timeouts(rs);
	if (ret)
		goto out_shutdown;
	ret = rados_connect(rs->cluster);
	if (ret < 0) {
		rs_log(rs, IMGNODE_LOG_ERROR,
		       "unable to connect to the cluster of %s as client.%s: %s%s",
		       c->conf, c->id, strerror(-ret),
		       ret == -ETIMEDOUT
		               ? " (no mon answered within mount_timeout)"
		               : "");
		goto out_shutdown;
	}
	/* The mon answered just now, so this lookup cannot hang on it. */
	pool_id = rados_pool_lookup(rs->cluster, c->pool);
	if (pool_id < 0) {
		ret = (int)pool_id;
		if (ret == -ENOENT)
			rs_log(rs, IMGNODE_LOG_ERROR,
			       "pool %s does not exist in the cluster of %s (create it: ceph osd pool create %s)",
			       c->pool, c->conf, c->pool);
		else
			rs_log(rs, IMGNODE_LOG_ERROR,
			       "unable to look up pool %s: %s", c->pool,
			       strerror(-ret));
		goto out_shutdown;
	}
	ret = rados_ioctx_create2(rs->cluster, pool_id, &rs->io);
	if (ret < 0) {
		rs_log(rs, IMGNODE_LOG_ERROR, "unable to open pool %s: %s",
		       c->pool, strerror(-ret));
		goto out_shutdown;
	}
	find_limit(rs);
	rs_log(rs, IMGNODE_LOG_DEBUG,
	       "pool %s (id %" PRId64
	       ") of the cluster of %s as client.%s; objects up to %" PRIu64
	       " bytes (%s)",
	       c->pool, pool_id, c->conf, c->id, rs->max_object,
	       rs->limit_name);
	*state = rs;
	return 0;

out_shutdown:
	rados_shutdown(rs->cluster);
out_free_rs:
	free(rs);
	return ret;
}

static void rs_fini(void *state)
{
	struct rstore *rs = state;

	if (!rs)
		return;
	rados_ioctx_destroy(rs->io);
	rados_shutdown(rs->cluster);
	free(rs);
}

static const struct imgnode_conf_key rs_keys[] = {
        {"conf", IMGNODE_CONF_PATH, "/etc/ceph/ceph.conf", 0, 0, NULL,
         "The cluster's ceph.conf (mon addresses, and a keyring unless keyring is set).",
         offsetof(struct rados_conf, conf)},
        {"client", IMGNODE_CONF_STRING, "admin", 0, 0, NULL,
         "Ceph client id to authenticate as (cephx name client.<id>).",
         offsetof(struct rados_conf, id)},
        {"keyring", IMGNODE_CONF_PATH, "", 0, 0, NULL,
         "Keyring holding the client's key; empty means the one ceph.conf names.",
         offsetof(struct rados_conf, keyring)},
        {"pool", IMGNODE_CONF_STRING, "imgnode", 0, 0, NULL,
         "Pool for objects and job records; it must exist (start-up fails otherwise).",
         offsetof(struct rados_conf, pool)},
        {"mon_op_timeout", IMGNODE_CONF_DURATION, "10s", 1000, 3600000, NULL,
         "Bound on each request to a monitor (whole seconds, rounded up).",
         offsetof(struct rados_conf, mon_op_timeout)},
        {"osd_op_timeout", IMGNODE_CONF_DURATION, "30s", 1000, 3600000, NULL,
         "Bound on each object operation: an OSD that does not answer in time makes it fail with ETIMEDOUT (whole seconds, rounded up).",
         offsetof(struct rados_conf, osd_op_timeout)},
        {"mount_timeout", IMGNODE_CONF_DURATION, "10s", 1000, 3600000, NULL,
         "Bound on connecting to the cluster at start-up (whole seconds, rounded up).",
         offsetof(struct rados_conf, mount_timeout)},
        {"max_object", IMGNODE_CONF_SIZE, "0", 0, INT64_MAX, NULL,
         "Largest object a put accepts (EFBIG beyond); 0 means the cluster's limit, the smaller of osd_max_object_size and osd_max_write_size. Objects are never split.",
         offsetof(struct rados_conf, max_object)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_storage_ops rs_ops = {
        .put = rs_put,
        .put_excl = rs_put_excl,
        .get = rs_get,
        .stat = rs_stat,
        .del = rs_del,
        .list = rs_list,
        .ping = rs_ping,
        .read = rs_read,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_STORAGE),
        .name = "rados",
        .version = "1.0.0",
        .description = "Objects in a Ceph pool through librados (many nodes)",
        .conf_keys = rs_keys,
        .conf_size = sizeof(struct rados_conf),
        .init = rs_init,
        .fini = rs_fini,
        .ops = &rs_ops,
};
