/*
 * What the plugin tests share (collectd's plugin_mock idea): a plugin
 * loaded the way the node loads it (dlopen of $BUILD/plugins/NAME.so), and
 * its config section filled the way the node fills it, with the real host
 * table. No daemon involved. Also the contract every plugin of a kind
 * keeps, written once: storage checks (objects, lists, bad keys) and
 * transport tests (order, waits, redelivery, limits) that test_fs and
 * test_rados, test_spool and test_amqp run against their own backend.
 */
#ifndef IMGNODE_TEST_HARNESS_H
#define IMGNODE_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <imgnode/plugin.h>

#include "base.h"

struct conf;

/*
 * dlopens $BUILD/plugins/NAME.so (BUILD defaults to "build") and returns
 * its descriptor, checked to be of kind; *dl gets the handle (for
 * dlclose). NULL, with the reason on stderr, if it cannot.
 */
const struct imgnode_plugin *harness_load(const char *name, unsigned kind,
                                          void **dl);

/*
 * Reads the INI at path and fills p's config from section into a new
 * buffer (free with harness_release); *conf gets the loaded config, which
 * the host table now answers from. NULL with the reason in err when the
 * file or a value is refused (*conf may then be set: release it too).
 */
void *harness_configure(const struct imgnode_plugin *p, const char *path,
                        const char *section, struct conf **conf, char *err,
                        size_t errlen);

/* Frees what harness_configure made and sets both pointers to NULL. */
void harness_release(const struct imgnode_plugin *p, void **cfg,
                     struct conf **conf);

/* Removes dir and everything below it (a test's temporary directory). */
void harness_rm_tree(const char *dir);

/* ---- storage plugins (cmocka assertions) ---- */

/* len bytes, the same for the same seed (free them). */
void *harness_random(size_t len, uint64_t seed);

/* Asserts that key, read through ops on st, holds exactly data[0..len). */
void harness_assert_object(const struct imgnode_storage_ops *ops, void *st,
                           const char *key, const void *data, size_t len);

/* What a list callback saw: the first 16 keys, and how many in all. */
struct harness_seen {
	int n;
	int stop_at; /* return 7 on this call (1-based), 0: never */
	char keys[16][64];
};

/* A list callback filling a struct harness_seen. */
int harness_collect(const char *key, void *arg);

/*
 * stat: the size of an object (empty ones too) and its mtime within a
 * second of the put (filesystems lag the clock by a tick; librados keeps
 * whole seconds); -ENOENT for a missing key and for a mere prefix ("s" of
 * "s/t"). Writes keys under s/.
 */
void harness_check_stat(const struct imgnode_storage_ops *ops, void *st);

/*
 * read (ABI 1.2): an object read back in pieces of several sizes is the
 * one stored; a read across the end is short, one at or past it empty;
 * an empty object reads as nothing; -ENOENT for a missing key and a mere
 * prefix; a replaced object reads as the new one. Writes keys under r/.
 */
void harness_check_read(const struct imgnode_storage_ops *ops, void *st);

/* Lists prefix through ops on st; asserts the keys are want
 * (NULL-terminated, sorted). */
void harness_assert_list(const struct imgnode_storage_ops *ops, void *st,
                         const char *prefix, const char *const *want);

/*
 * The list contract, in two halves so a test can add what must not be
 * listed in between (a crashed put's leftovers, other tools' objects):
 * harness_list_put asserts the store lists nothing, then stores six keys;
 * harness_list_check lists them under eight prefixes and stops a listing
 * early.
 */
void harness_list_put(const struct imgnode_storage_ops *ops, void *st);
void harness_list_check(const struct imgnode_storage_ops *ops, void *st);

/*
 * Every op refuses a bad key (.., absolute, empty component, a byte
 * outside [A-Za-z0-9._/-], one byte too long) with -EINVAL and logs one
 * line, which a key cannot forge; dir holds the captured log meanwhile.
 */
void harness_check_invalid_keys(const struct imgnode_storage_ops *ops,
                                void *st, const char *dir);

/*
 * The exclusive-create race: 8 processes, each with its own instance of p
 * (configured with cfg) and started before a gate opens for all at once,
 * put_excl key with 256 KiB of their own letter. Exactly one wins, the
 * others get -EEXIST, and key then holds the winner's bytes, whole (read
 * through an instance of its own). in_child, if set, runs first in each
 * racer. The caller holds no instance across the forks if the plugin's
 * threads would not survive them (librados'), and removes key after.
 */
void harness_check_excl_race(const struct imgnode_plugin *p, const void *cfg,
                             const char *key, void (*in_child)(void));

/* ---- transport plugins (cmocka assertions) ---- */

/* A started transport instance, and how to start another one (in a
 * child process, as another node process would). */
struct harness_transport {
	const struct imgnode_plugin *plugin;
	const void *cfg;
	void *st;
	int wait_ms; /* for a publish or an expected delivery */
};

/* A sleep that survives signals (the clock is base.h's now_ms). */
void harness_sleep_ms(long ms);

/* Waits for pid: its exit status, or 128 + the signal that ended it. */
int harness_reap(pid_t pid);

/* SIGKILLs pid and reaps it. */
void harness_kill(pid_t pid);

/* Asserts a delivery's body is the string s. */
void harness_expect_body(const struct imgnode_delivery *d, const char *s);

/* Publishes the string s (asserting success). */
void harness_publish(const struct harness_transport *t, const char *s,
                     const char *reply_to);

/* Another instance of t's plugin in a child; the child exits 2 if not. */
void *harness_child_open(const struct harness_transport *t);

/*
 * The transport contract, as cmocka tests each transport's file lists. A
 * test starts the file's instance, with extra keys, on empty queues
 * through harness_transport_start (which the file sets), then:
 *   fifo: 50 published come back in order;
 *   consume_timeout: a consume waits its whole timeout, not much more;
 *   wakeup, pollfd: a message another process publishes is seen at once;
 *   killed_consumer: a consumer killed before its ack: attempt 2 next;
 *   crash_limit: crashing consumers use up delivery_limit, then the job
 *     is dead-lettered with the reason and its reply_to;
 *   release: each release counts; dead letters have no limit of their own.
 */
extern void (*harness_transport_start)(void **state, const char *keys,
                                       struct harness_transport *t);
void harness_test_fifo(void **state);
void harness_test_consume_timeout(void **state);
void harness_test_wakeup(void **state);
void harness_test_pollfd(void **state);
void harness_test_killed_consumer(void **state);
void harness_test_crash_limit(void **state);
void harness_test_release(void **state);

/*
 * Many at once: 2 publisher processes publish per_publisher messages each
 * while consumers processes ack them (logging each body to dir/got.N)
 * until a "stop" each; every message arrives exactly once, at its first
 * attempt. stops_return: a "stop" prefetched by a consumer that exits
 * may come back as a redelivery (a broker with prefetch).
 */
void harness_check_many(const struct harness_transport *t, const char *dir,
                        int consumers, int per_publisher, bool stops_return);

/* ---- what a plugin logs (the host writes it to fd 2) ---- */

/* What was logged between harness_capture_start and harness_capture_end. */
extern char harness_captured[16384];

/* Sends fd 2 to a file in dir until harness_capture_end. */
void harness_capture_start(const char *dir);
void harness_capture_end(void);

/* Fails unless harness_captured holds want. */
void harness_assert_logged(const char *want);

#endif
