/*
 * What a worker gives up to run untrusted images: a bound on its address
 * space (before libvips starts), the config's secrets it does not need, and
 * once its plugins are started and connected, every system call outside an
 * allow-list (seccomp), with no way back (no_new_privs).
 */
#ifndef IMGNODE_SANDBOX_H
#define IMGNODE_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;

/*
 * Sets RLIMIT_AS (soft and hard) of this process to bytes; 0 leaves it
 * alone. Returns 0 or -errno with a reason in err. In a build with
 * AddressSanitizer, which reserves terabytes of address space, it does
 * nothing and says so once.
 */
int sandbox_limit_memory(int64_t bytes, char *err, size_t errlen);

/*
 * Makes this process the kernel OOM killer's first choice in the node
 * (oom_score_adj 500): when the node's cgroup runs out of memory, a worker
 * dies and is replaced, not the supervisor or the ingress. Failure is
 * logged, not fatal.
 */
void sandbox_oom_first(void);

/*
 * Wipes the secrets of conf that only the ingress needs (the [ingress] keys
 * marked IMGNODE_CONF_SECRET: api_keys, hmac_keys, hmac_key), parsed and as
 * read, leaving them empty. Plugins' secrets (the amqp url) stay: a worker
 * reconnects with them.
 */
void sandbox_forget_secrets(struct conf *conf);

/*
 * Sets no_new_privs and, if filter is set, installs the workers' system
 * call allow-list on every thread of this process: a call outside it fails
 * with EPERM. Returns 0 or -errno with a reason in err.
 */
int sandbox_enter(bool filter, char *err, size_t errlen);

/*
 * The same for a prober (prober.h), narrower: no new socket (no network,
 * no Unix socket), and no file opened or changed by its name, so the
 * process can use only the descriptors it has: its socket to the ingress
 * and stdio.
 */
int sandbox_enter_prober(bool filter, char *err, size_t errlen);

#endif
