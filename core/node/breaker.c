/*
 * The breaker's states (see breaker.h).
 */
#include "breaker.h"

#include <errno.h>
#include <stdio.h>

bool breaker_counts(int err)
{
	switch (-err) {
	case ETIME: /* the caller's deadline */
	case ETIMEDOUT:
	case ENOTCONN:
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case ENETUNREACH:
	case ENETDOWN:
	case EPIPE:
	case ESHUTDOWN:
	case EIO: return true;
	default: return false;
	}
}

bool breaker_fail(struct breaker *b, int64_t now, const char *why)
{
	size_t i;

	if (b->open)
		return false;
	b->open = true;
	b->since_ms = now;
	b->opened++;
	for (i = 0; why && why[i] && i < sizeof(b->why) - 1; i++)
		b->why[i] = why[i] >= 0x20 && why[i] <= 0x7e ? why[i] : '?';
	b->why[i] = '\0';
	return true;
}

int64_t breaker_ok(struct breaker *b, int64_t now)
{
	if (!b->open)
		return -1;
	b->open = false;
	return now > b->since_ms ? now - b->since_ms : 0;
}
