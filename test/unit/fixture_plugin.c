/*
 * Small plugins for the loader's tests, one per -DFIXTURE_x: a good filter,
 * transport and storage, and one of each way a file can fail to be a plugin
 * this host accepts; and filters for the node's tests (segv, slow).
 */
#include <errno.h>
#include <imgnode/plugin.h>
#include <stddef.h>
#include <stdio.h>

/* Each variant uses only some of the tables below. */
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

struct fixture_conf {
	int64_t level;
	char *label;
};

static const struct imgnode_conf_key keys[] = {
        {"level", IMGNODE_CONF_INT, "3", 0, 10, NULL, "A bounded integer.",
         offsetof(struct fixture_conf, level)},
        {"label", IMGNODE_CONF_STRING, "none", 0, 0, NULL, "A string.",
         offsetof(struct fixture_conf, label)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_arg filter_args[] = {
        {"amount", IMGNODE_ARG_NUMBER, "1", 0, 10, NULL, "How much."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

#if !defined(FIXTURE_segv) && !defined(FIXTURE_slow)
static int f_apply(void *s, struct _VipsImage *in,
                   const union imgnode_value *args, struct _VipsImage **out,
                   char *err, size_t errlen)
{
	(void)s, (void)in, (void)args, (void)out, (void)err, (void)errlen;
	return -ENOSYS;
}
#endif

#if defined(FIXTURE_segv)
#include <signal.h>
/* A poison filter for the node's tests: the worker running it dies. */
static int f_segv(void *s, struct _VipsImage *in,
                  const union imgnode_value *args, struct _VipsImage **out,
                  char *err, size_t errlen)
{
	(void)s, (void)in, (void)args, (void)out, (void)err, (void)errlen;
	raise(SIGSEGV);
	return -EFAULT;
}
#define f_apply f_segv
#define NAME "segv"
#endif

#if defined(FIXTURE_slow)
#include <time.h>
/* libvips' reference counting, resolved in the worker that loads this. */
void *g_object_ref(void *object);
/* A long job for the node's tests: sleeps amount seconds, then passes the
 * image on unchanged. */
static int f_slow(void *s, struct _VipsImage *in,
                  const union imgnode_value *args, struct _VipsImage **out,
                  char *err, size_t errlen)
{
	struct timespec t = {(time_t)args[0].n,
	                     (long)((args[0].n - (time_t)args[0].n) * 1e9)};

	(void)s, (void)err, (void)errlen;
	while (nanosleep(&t, &t) != 0)
		;
	*out = g_object_ref(in);
	return 0;
}
#define f_apply f_slow
#define NAME "slow"
#endif

#if defined(FIXTURE_crash_selftest)
#include <signal.h>
/* Passes every load-time check, then crashes in its self-test. */
static int f_selftest(void *s, char *err, size_t errlen)
{
	(void)s, (void)err, (void)errlen;
	raise(SIGSEGV);
	return 0;
}
#elif defined(FIXTURE_bad_selftest)
static int f_selftest(void *s, char *err, size_t errlen)
{
	(void)s;
	snprintf(err, errlen, "made a 0x0 image");
	return -EPROTO;
}
#endif

static const struct imgnode_filter_ops filter_ops = {
        .args = filter_args,
        .apply = f_apply,
#if defined(FIXTURE_crash_selftest) || defined(FIXTURE_bad_selftest)
        .selftest = f_selftest,
#endif
};

static int s_put(void *s, const char *k, const void *d, size_t n)
{
	(void)s, (void)k, (void)d, (void)n;
	return -ENOSYS;
}
static int s_get(void *s, const char *k, size_t m, void **d, size_t *n)
{
	(void)s, (void)k, (void)m, (void)d, (void)n;
	return -ENOSYS;
}
static int s_stat(void *s, const char *k, struct imgnode_stat *st)
{
	(void)s, (void)k, (void)st;
	return -ENOSYS;
}
static int s_key(void *s, const char *k)
{
	(void)s, (void)k;
	return -ENOSYS;
}
static int s_list(void *s, const char *p, int (*fn)(const char *, void *),
                  void *a)
{
	(void)s, (void)p, (void)fn, (void)a;
	return -ENOSYS;
}
static int s_ping(void *s)
{
	(void)s;
	return 0;
}

static const struct imgnode_storage_ops storage_ops = {
        .put = s_put,
        .put_excl = s_put,
#ifndef FIXTURE_missing_op
        .get = s_get,
#endif
        .stat = s_stat,
        .del = s_key,
        .list = s_list,
        .ping = s_ping,
};

static int t_publish(void *s, const void *b, size_t n, const char *r, int64_t t)
{
	(void)s, (void)b, (void)n, (void)r, (void)t;
	return -ENOSYS;
}
static int t_consume(void *s, enum imgnode_queue q, struct imgnode_delivery *d,
                     int64_t t)
{
	(void)s, (void)q, (void)d, (void)t;
	return -ENOSYS;
}
static int t_settle(void *s, const struct imgnode_delivery *d)
{
	(void)s, (void)d;
	return -ENOSYS;
}
static int t_reject(void *s, const struct imgnode_delivery *d, const char *r)
{
	(void)s, (void)d, (void)r;
	return -ENOSYS;
}
static int t_reply_open(void *s, char *name, size_t len)
{
	(void)s, (void)name, (void)len;
	return -ENOSYS;
}
static int t_reply(void *s, const char *to, const void *b, size_t n)
{
	(void)s, (void)to, (void)b, (void)n;
	return -ENOSYS;
}
static int t_fd(void *s)
{
	(void)s;
	return -1;
}

static const struct imgnode_transport_ops transport_ops = {
        .publish = t_publish,
        .consume = t_consume,
        .ack = t_settle,
        .reject = t_reject,
        .release = t_settle,
        .reply_open = t_reply_open,
        .reply = t_reply,
        .pollfd = t_fd,
        .tick = s_ping,
        .ping = s_ping,
};

#if defined(FIXTURE_transport)
#define KIND IMGNODE_KIND_TRANSPORT
#define NAME "fixture_t"
#define OPS &transport_ops
#elif defined(FIXTURE_storage) || defined(FIXTURE_missing_op)
#define KIND IMGNODE_KIND_STORAGE
#define NAME "fixture_s"
#define OPS &storage_ops
#elif defined(FIXTURE_bad_kind)
#define KIND 7
#elif defined(FIXTURE_dup_a) || defined(FIXTURE_dup_b)
#define NAME "dup"
#endif
#ifndef KIND
#define KIND IMGNODE_KIND_FILTER
#endif
#ifndef NAME
#define NAME "fixture"
#endif
#ifndef OPS
#define OPS &filter_ops
#endif

#if defined(FIXTURE_crash)
#include <signal.h>
/* Dies while being loaded, as a plugin with a broken constructor would. */
__attribute__((constructor)) static void crash(void)
{
	raise(SIGSEGV);
}
#endif

#if defined(FIXTURE_no_symbol)
IMGNODE_EXPORT int imgnode_plugin_v0 = 1;
#else
IMGNODE_PLUGIN = {
#if defined(FIXTURE_bad_magic)
        .magic = 0x464c457f,
#else
        .magic = IMGNODE_PLUGIN_MAGIC,
#endif
#if defined(FIXTURE_bad_major)
        .abi_major = IMGNODE_ABI_MAJOR + 1,
#else
        .abi_major = IMGNODE_ABI_MAJOR,
#endif
#if defined(FIXTURE_new_minor)
        .abi_minor = IMGNODE_ABI_MINOR + 1,
#elif defined(FIXTURE_bad_major)
        .abi_minor = 0,
#else
        .abi_minor = IMGNODE_ABI_MINOR,
#endif
        .kind = KIND,
#if defined(FIXTURE_no_name)
        .name = NULL,
#elif defined(FIXTURE_bad_name)
        .name = "Bad-Name",
#else
        .name = NAME,
#endif
        .version = "1.0",
        .description = "a loader test fixture",
        .conf_keys = keys,
        .conf_size = sizeof(struct fixture_conf),
#if !defined(FIXTURE_no_ops)
        .ops = OPS,
#endif
};
#endif
