/*
 * Small system helpers shared by the core: whole reads and writes, and
 * directory creation.
 */
#ifndef IMGNODE_UTIL_H
#define IMGNODE_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all len bytes (retrying on EINTR and short writes); 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);

/* Reads until len bytes or end of file; the count read, or -errno. */
ssize_t util_read_all(int fd, void *buf, size_t len);

/* mkdir -p with mode for the directories it creates; 0 or -errno. */
int util_mkdir_p(const char *path, mode_t mode);

/*
 * In a freshly forked child: default dispositions for every catchable
 * signal and an empty signal mask, so the child dies of a crash the way the
 * parent expects to see it, whatever handlers the parent had.
 */
void util_reset_signals(void);

#endif
