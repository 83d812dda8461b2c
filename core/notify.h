/*
 * The service manager's notification protocol (sd_notify), spoken with a
 * plain datagram to $NOTIFY_SOCKET, so the node needs no libsystemd.
 */
#ifndef IMGNODE_NOTIFY_H
#define IMGNODE_NOTIFY_H

#include <stdint.h>

/* Sends "READY=1", "STATUS=...", "STOPPING=1" or "WATCHDOG=1"; a no-op
 * without $NOTIFY_SOCKET. Returns 0 or -errno. */
int notify_send(const char *msg);

/* The watchdog interval systemd expects pings within, in ms (from
 * $WATCHDOG_USEC, if $WATCHDOG_PID is unset or ours), or 0. */
int64_t notify_watchdog_ms(void);

#endif
