/*
 * What every imgnode program shares: its exit codes, its clock and its
 * version.
 */
#ifndef IMGNODE_BASE_H
#define IMGNODE_BASE_H

#include <stdint.h>
#include <time.h>

/*
 * Exit codes (s6's convention): 0 ok; 100 a permanent failure (a bad config
 * or command line: restarting will not help, a supervisor must not restart
 * it); 111 a temporary one (out of memory, a node unreachable: try again).
 */
#define EXIT_PERMANENT 100
#define EXIT_TEMPORARY 111

/* The version, from the VERSION file (the Makefile passes it). */
#ifndef IMGNODE_VERSION
#define IMGNODE_VERSION "0.0.0"
#endif

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and durations. */
static inline int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
