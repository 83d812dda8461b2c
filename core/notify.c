/*
 * sd_notify without libsystemd: one datagram per message to the socket in
 * $NOTIFY_SOCKET (a path, or an abstract name starting with '@').
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len;
	socklen_t alen;
	int fd, ret = 0;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	if (len >= sizeof(addr.sun_path) || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&addr,
	           alen) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int64_t notify_watchdog_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char *end;
	long long v;

	if (!usec)
		return 0;
	if (pid && strtol(pid, &end, 10) != (long)getpid())
		return 0;
	v = strtoll(usec, &end, 10);
	if (*end || v <= 0)
		return 0;
	return v / 1000;
}
