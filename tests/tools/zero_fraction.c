/* zero_fraction.c: test tool: copy a checkpoint, zeroing a random fraction (Bernoulli, fixed seed) of every default
 * target weight (+0.0), optionally planting a NaN. Usage: zero_fraction IN OUT FRACTION [--nan NAME INDEX] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "safetensors.h"
#include "select.h"

#include <dirent.h>
#include <sys/stat.h>

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 7) {
		fprintf(stderr, "usage: zero_fraction IN OUT FRACTION [--nan NAME INDEX]\n");
		return 2;
	}
	const char *in = argv[1], *out = argv[2], *nan_name = argc == 7 ? argv[5] : NULL;
	double frac = atof(argv[3]);
	long long nan_idx = argc == 7 ? atoll(argv[6]) : -1;
	fpk_st_model *m = NULL;
	fpk_st_writer *w = NULL;
	if (fpk_st_model_open(&m, in) || m->n_shards != 1) {
		fprintf(stderr, "zero_fraction: %s\n", fpk_error_msg());
		return 1;
	}
	fpk_mkdir_p(out);
	char *path = fpk_path_join(out, "model.safetensors");
	int rc = fpk_st_writer_new(&w, path);
	for (size_t i = 0; !rc && i < m->n_tensors; i++)
		rc = fpk_st_writer_add(w, m->tensors[i]->name, m->tensors[i]->dtype, m->tensors[i]->ndim, m->tensors[i]->shape);
	if (!rc)
		rc = fpk_st_writer_begin(w);
	uint64_t seed = 0x1234567;
	for (size_t i = 0; !rc && i < m->n_tensors; i++) {
		const fpk_st_tensor *t = m->tensors[i];
		uint8_t *buf = malloc(t->nbytes + 1);
		memcpy(buf, t->data, t->nbytes);
		unsigned es = fpk_dtypes[t->dtype].size;
		if (fpk_select_default(t->name, t->ndim) && fpk_dtypes[t->dtype].is_float)
			for (uint64_t e = 0; e < t->numel; e++)
				if ((double)(rnd(&seed) >> 11) / 9007199254740992.0 < frac)
					memset(buf + e * es, 0, es);
		if (nan_name && !strcmp(nan_name, t->name) && nan_idx >= 0 && (uint64_t)nan_idx < t->numel) {
			if (t->dtype == FPK_F32) {
				uint32_t q = 0x7fc00000u;
				memcpy(buf + nan_idx * 4, &q, 4);
			} else {
				uint16_t q = t->dtype == FPK_BF16 ? 0x7fc0 : 0x7e00;
				memcpy(buf + nan_idx * 2, &q, 2);
			}
		}
		rc = fpk_st_writer_write(w, buf, t->nbytes);
		free(buf);
	}
	if (!rc)
		rc = fpk_st_writer_commit(w);
	else
		fpk_st_writer_abort(w);
	/* beside files: config and tokenizer */
	DIR *d = opendir(m->dir);
	struct dirent *e;
	while (!rc && d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) {
			char *s = fpk_path_join(m->dir, e->d_name), *t = fpk_path_join(out, e->d_name);
			rc = fpk_copy_file(s, t);
			free(s);
			free(t);
		}
	}
	if (d)
		closedir(d);
	free(path);
	fpk_st_model_close(m);
	if (rc)
		fprintf(stderr, "zero_fraction: %s\n", fpk_error_msg());
	return rc ? 1 : 0;
}
