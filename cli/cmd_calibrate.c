/* cmd_calibrate.c: placeholder until the calibrate stage lands; it refuses to run. */
#include "cli.h"

int cmd_calibrate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fpk_error_set(FPK_EUSAGE, "'calibrate' is not available in this build yet");
	return cli_fail("calibrate", FPK_EUSAGE);
}
