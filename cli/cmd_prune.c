/* cmd_prune.c: placeholder until the prune stage lands; it refuses to run. */
#include "cli.h"

int cmd_prune(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fpk_error_set(FPK_EUSAGE, "'prune' is not available in this build yet");
	return cli_fail("prune", FPK_EUSAGE);
}
