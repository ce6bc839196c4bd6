/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Messages of the lab's tools and benchmark programs (tests/tools,
 * bench/tools): die() and check(). Before including, define TOOL_NAME
 * (the prefix of the messages) and declare the tool's cleanup(), which
 * die() runs before it exits with status 1; check() counts its failures
 * in tool_failures.
 */
#ifndef P2P_TOOL_H
#define P2P_TOOL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int tool_failures;

static void cleanup(void);

static inline void tool_say(const char *what, const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, "%s: %s", TOOL_NAME, what);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static inline void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tool_say("FAILED: ", fmt, ap);
	va_end(ap);
	cleanup();
	exit(1);
}

/* A check that failed is reported and counted; the tool goes on. */
static inline void __attribute__((format(printf, 2, 3))) check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	tool_failures++;
	va_start(ap, fmt);
	tool_say("CHECK FAILED: ", fmt, ap);
	va_end(ap);
}

#endif /* P2P_TOOL_H */
