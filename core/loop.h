/*
 * The event loop: one thread, one poll(2), file descriptors, one-shot
 * timers on the monotonic clock, and signals turned into events through a
 * signalfd. Callbacks run one at a time and must not block.
 */
#ifndef IMGNODE_LOOP_H
#define IMGNODE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_timer;

typedef void loop_fd_fn(struct loop *loop, int fd, short revents, void *arg);
typedef void loop_timer_fn(struct loop *loop, void *arg);
typedef void loop_signal_fn(struct loop *loop, int sig, void *arg);

/* A new loop, or NULL (errno set). Free with loop_free. */
struct loop *loop_new(void);
void loop_free(struct loop *loop);

/*
 * Watches fd for events (POLLIN, POLLOUT). The loop does not own fd; call
 * loop_del_fd before closing it. Returns 0 or -errno.
 */
int loop_add_fd(struct loop *loop, int fd, short events, loop_fd_fn *fn,
                void *arg);
int loop_mod_fd(struct loop *loop, int fd, short events);
void loop_del_fd(struct loop *loop, int fd);

/*
 * Calls fn once, ms milliseconds from now. The handle is valid until fn
 * runs or loop_timer_cancel is called (either frees it). NULL on ENOMEM.
 */
struct loop_timer *loop_timer_add(struct loop *loop, int64_t ms,
                                  loop_timer_fn *fn, void *arg);
void loop_timer_cancel(struct loop *loop, struct loop_timer *timer);

/*
 * Delivers sig as an event: blocks it and reads it from a signalfd. Must be
 * called before children are forked (they inherit the mask; util.c resets
 * it). Returns 0 or -errno.
 */
int loop_on_signal(struct loop *loop, int sig, loop_signal_fn *fn, void *arg);

/* Runs until loop_stop; returns the code given to it. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop, int code);

/* The signalfd, so a forked child can close it. -1 if none. */
int loop_signal_fd(const struct loop *loop);

#endif
