/*
 * The prober: the only place that reads an upload's header (libvips)
 * before a job is queued. The ingress, which holds the API secrets and
 * runs many threads, never hands untrusted bytes to libvips: it sends them
 * to a pool of prober processes, each started by exec of the node's own
 * program ("imgnode --probe-helper") and sandboxed as workers are, and
 * gets back the header's facts or the reason it was refused.
 */
#ifndef IMGNODE_PROBER_H
#define IMGNODE_PROBER_H

#include <stddef.h>

struct conf;
struct image_info;
struct limits_conf;
struct prober_pool;

/*
 * Starts [ingress] probers prober processes for conf (borrowed, must
 * outlive the pool). Returns the pool (free with prober_pool_free) or NULL
 * with a reason in err.
 */
struct prober_pool *prober_pool_new(const struct conf *conf, char *err,
                                    size_t errlen);

/* Stops every prober (SIGKILL, reaped) and frees pool (NULL is fine). */
void prober_pool_free(struct prober_pool *pool);

/*
 * image_probe (image.h) of buf in a prober, waiting for a free one; safe
 * from any thread. Returns what image_probe returns (0, -EPROTONOSUPPORT,
 * -E2BIG, -EINVAL), or -ECHILD when the prober died during the probe or
 * -ETIMEDOUT when it overran [ingress] probe_timeout (it is killed; the
 * next probe gets a new one), or another -errno when no prober could be
 * started; with a reason in err.
 */
int prober_probe(struct prober_pool *pool, const void *buf, size_t len,
                 const struct limits_conf *lim, struct image_info *info,
                 char *err, size_t errlen);

/*
 * The prober process: main of "imgnode --probe-helper MAX_MEMORY SECCOMP
 * MAX_BODY LOG_LEVEL", talking to the ingress on fd 0. Returns the exit
 * code.
 */
int prober_main(int argc, char **argv);

#endif
