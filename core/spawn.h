/*
 * Spawning supervised children (their functions keep the proc_ prefix).
 *
 * Child processes: fork with a clean slate (default signals, no inherited
 * descriptors but stdio and the status pipe), and the child's side of the
 * status protocol.
 *
 * A child reports to its supervisor by writing lines on fd 3 (named by
 * IMGNODE_STATUS_FD, as s6's notification-fd): "ready" once started,
 * "alive" as a heartbeat, "busy MS" before work that cannot heartbeat for
 * up to MS milliseconds (a libvips call), "idle" after it, and "recycle"
 * before exiting on purpose to be replaced (max_jobs).
 */
#ifndef IMGNODE_SPAWN_H
#define IMGNODE_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROC_STATUS_FD 3

/* Runs in the child after fork; its return value is the exit code. */
typedef int proc_main_fn(void *arg);

/*
 * Forks a child that runs fn(arg) and exits with its result. *status_fd
 * gets the (non-blocking, close-on-exec) read end of the child's status
 * pipe. Returns the pid, or -errno.
 */
pid_t proc_spawn(proc_main_fn *fn, void *arg, int *status_fd);

/* Describes a wait status: "exit 0", "exit 100", "signal SIGKILL". */
void proc_describe_status(int status, char *buf, size_t len);

/* Resident set size of pid in bytes, or -errno. */
int64_t proc_rss(pid_t pid);

/*
 * The child's side. Each writes one line on the status fd if there is one
 * (a no-op otherwise, so children also run outside a supervisor).
 */
void proc_notify_ready(void);
void proc_notify_alive(void);
void proc_notify_busy(int64_t ms);
void proc_notify_idle(void);
void proc_notify_recycle(void);

#endif
