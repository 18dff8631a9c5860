/* cmd_generate.c: placeholder until the generate stage lands; it refuses to run. */
#include "cli.h"

int cmd_generate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fpk_error_set(FPK_EUSAGE, "'generate' is not available in this build yet");
	return cli_fail("generate", FPK_EUSAGE);
}
