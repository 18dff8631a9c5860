/* cmd_encode.c: placeholder until the encode stage lands; it refuses to run. */
#include "cli.h"

int cmd_encode(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fpk_error_set(FPK_EUSAGE, "'encode' is not available in this build yet");
	return cli_fail("encode", FPK_EUSAGE);
}
