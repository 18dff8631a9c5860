/* select.c: default target rule and glob selection of tensors (a table of linear-layer module names).
 * Tested by tests/unit/test_select.c. */
#include "select.h"

#include <fnmatch.h>
#include <string.h>

/* last module name before ".weight" for linear layers of the families we know */
static const char *const linear_modules[] = {
	"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "out_proj",          /* Llama, Mistral, Qwen2, OPT */
	"gate_proj", "up_proj", "down_proj", "gate_up_proj",                      /* SwiGLU MLPs */
	"fc1", "fc2",                                                             /* OPT, Phi */
	"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h",             /* GPT-NeoX, Falcon, BLOOM */
	"c_attn", "c_proj", "c_fc",                                               /* GPT-2 style */
	"wq", "wk", "wv", "wo", "w1", "w2", "w3", "Wqkv",                         /* Meta / MPT style */
};

static const char *const never[] = {"embed", "lm_head", "norm", "wte", "wpe", "ln_"};

int fpk_select_default(const char *name, int ndim)
{
	if (ndim != 2)
		return 0;
	size_t n = strlen(name);
	if (n < 8 || strcmp(name + n - 7, ".weight"))
		return 0;
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (strstr(name, never[i]))
			return 0;
	/* module = the path component just before ".weight" */
	const char *end = name + n - 7;
	const char *start = end;
	while (start > name && start[-1] != '.')
		start--;
	size_t ml = (size_t)(end - start);
	for (size_t i = 0; i < sizeof(linear_modules) / sizeof(linear_modules[0]); i++)
		if (strlen(linear_modules[i]) == ml && !strncmp(start, linear_modules[i], ml))
			return 1;
	return 0;
}

int fpk_glob_match(const char *glob, const char *name)
{
	return fnmatch(glob, name, 0) == 0;
}

int fpk_select_match(const fpk_select *s, const char *name, int ndim)
{
	int hit = 0;
	if (s && s->n_include) {
		for (size_t i = 0; i < s->n_include && !hit; i++)
			hit = fpk_glob_match(s->include[i], name);
	} else {
		hit = fpk_select_default(name, ndim);
	}
	for (size_t i = 0; s && hit && i < s->n_exclude; i++)
		if (fpk_glob_match(s->exclude[i], name))
			hit = 0;
	return hit;
}
