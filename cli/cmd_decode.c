/* cmd_decode.c: placeholder until the decode stage lands; it refuses to run. */
#include "cli.h"

int cmd_decode(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fpk_error_set(FPK_EUSAGE, "'decode' is not available in this build yet");
	return cli_fail("decode", FPK_EUSAGE);
}
