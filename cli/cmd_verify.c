/* cmd_verify.c: placeholder until the verify stage lands; it refuses to run. */
#include "cli.h"

int cmd_verify(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fpk_error_set(FPK_EUSAGE, "'verify' is not available in this build yet");
	return cli_fail("verify", FPK_EUSAGE);
}
