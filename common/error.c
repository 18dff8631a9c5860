/* error.c: per-thread error messages and the status -> exit code table.
 * Tested by tests/unit/test_common.c. */
#include "fpk_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_msg[2048];

int fpk_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	return code;
}

int fpk_error_wrap(int code, const char *fmt, ...)
{
	char prefix[1024], old[sizeof(err_msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err_msg, sizeof(old));
	snprintf(err_msg, sizeof(err_msg), "%.1000s%.1000s", prefix, old);
	return code;
}

const char *fpk_error_msg(void)
{
	return err_msg[0] ? err_msg : "unknown error";
}

void fpk_error_clear(void)
{
	err_msg[0] = 0;
}

int fpk_exit_code(int status)
{
	static const int table[] = {
		[0] = 0, [1] = 1, [2] = 2, [3] = 3, [4] = 4, [5] = 5,
	};
	int i = status < 0 ? -status : status;
	if (i >= (int)(sizeof(table) / sizeof(table[0])))
		return 1;
	return table[i];
}
