/* test_safetensors.c: reader on the real stories260K checkpoint, writer round trips, and one test per
 * validation rule on files built in memory. Run: ctest -R unit_test_safetensors */
#include "fpk_test.h"
#include "safetensors.h"

/* build a safetensors image from a header string and data_len bytes of data (filled with i & 0xff) */
static uint8_t *image(const char *header, uint64_t hlen_field, size_t data_len, size_t *out_len)
{
	size_t hl = strlen(header);
	size_t n = 8 + hl + data_len;
	uint8_t *b = malloc(n);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(hlen_field >> (8 * i));
	memcpy(b + 8, header, hl);
	for (size_t i = 0; i < data_len; i++)
		b[8 + hl + i] = (uint8_t)i;
	*out_len = n;
	return b;
}

static void expect_reject(const char *header, long long hlen_field, size_t data_len, const char *needle)
{
	size_t n;
	uint8_t *b = image(header, hlen_field < 0 ? strlen(header) : (uint64_t)hlen_field, data_len, &n);
	fpk_st_file *f = NULL;
	CHECK_ERR(fpk_st_open_memory(&f, b, n, "mem"), FPK_EFORMAT, needle);
	CHECK(f == NULL);
	free(b);
}

static void safetensors_should_read_the_real_stories260K(void)
{
	fpk_st_model *m = NULL;
	CHECK_OK(fpk_st_model_open(&m, fpk_test_shared("testdata/stories260K")));
	if (!m)
		return;
	CHECK_EQ_INT(m->n_tensors, 47);
	const fpk_st_tensor *t = fpk_st_model_find(m, "model.layers.0.self_attn.q_proj.weight");
	CHECK(t && t->dtype == FPK_F32 && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 64);
	const fpk_st_tensor *e = fpk_st_model_find(m, "model.embed_tokens.weight");
	CHECK(e && e->shape[0] == 512 && e->shape[1] == 64);
	const fpk_st_tensor *g = fpk_st_model_find(m, "model.layers.4.mlp.gate_proj.weight");
	CHECK(g && g->shape[0] == 172 && g->shape[1] == 64);
	/* values against the raw bytes of the file, read independently with stdio */
	if (t) {
		FILE *fp = fopen(fpk_test_shared("testdata/stories260K/model.safetensors"), "rb");
		uint64_t hl = 0;
		CHECK(fp && fread(&hl, 8, 1, fp) == 1);
		float raw[3];
		fseek(fp, (long)(8 + hl + t->begin + 4 * 100), SEEK_SET);
		CHECK(fread(raw, 4, 3, fp) == 3);
		fclose(fp);
		for (int i = 0; i < 3; i++)
			CHECK(fpk_load_f32(t->data, FPK_F32, 100 + (size_t)i) == raw[i]);
	}
	fpk_st_model_close(m);
}

static void safetensors_writer_should_round_trip_byte_identical(void)
{
	const char *p1 = fpk_test_tmp("rt1.safetensors"), *p2 = fpk_test_tmp("rt2.safetensors");
	fpk_st_writer *w = NULL;
	int64_t s1[2] = {3, 5}, s2[1] = {7}, s0[1] = {0};
	uint16_t a[15];
	float b[7];
	for (int i = 0; i < 15; i++)
		a[i] = (uint16_t)(i * 77);
	for (int i = 0; i < 7; i++)
		b[i] = (float)i * 0.5f;
	CHECK_OK(fpk_st_writer_new(&w, p1));
	CHECK_OK(fpk_st_writer_meta(w, "format", "pt"));
	CHECK_OK(fpk_st_writer_add(w, "a.weight", FPK_F16, 2, s1));
	CHECK_OK(fpk_st_writer_add(w, "empty", FPK_F32, 1, s0));
	CHECK_OK(fpk_st_writer_add(w, "b \"quoted\"", FPK_F32, 1, s2));
	CHECK_OK(fpk_st_writer_begin(w));
	CHECK_OK(fpk_st_writer_write(w, a, 10));
	CHECK_OK(fpk_st_writer_write(w, (char *)a + 10, 20));
	CHECK_OK(fpk_st_writer_write(w, b, sizeof(b)));
	CHECK_OK(fpk_st_writer_commit(w));
	fpk_st_file *f = NULL;
	CHECK_OK(fpk_st_open(&f, p1));
	if (!f)
		return;
	CHECK_EQ_INT(f->header_len % 8, 0);
	CHECK_EQ_INT(f->n_tensors, 3);
	CHECK(fpk_st_meta(f, "format") && !strcmp(fpk_st_meta(f, "format"), "pt"));
	const fpk_st_tensor *tb = fpk_st_find(f, "b \"quoted\"");
	CHECK(tb && !memcmp(tb->data, b, sizeof(b)));
	/* write it again from what was read, in file order: identical bytes */
	CHECK_OK(fpk_st_writer_new(&w, p2));
	CHECK_OK(fpk_st_writer_meta(w, "format", "pt"));
	for (size_t i = 0; i < f->n_tensors; i++)
		CHECK_OK(fpk_st_writer_add(w, f->tensors[i].name, f->tensors[i].dtype, f->tensors[i].ndim, f->tensors[i].shape));
	CHECK_OK(fpk_st_writer_begin(w));
	for (size_t i = 0; i < f->n_tensors; i++)
		CHECK_OK(fpk_st_writer_write(w, f->tensors[i].data, f->tensors[i].nbytes));
	CHECK_OK(fpk_st_writer_commit(w));
	fpk_map m1, m2;
	CHECK_OK(fpk_map_file(&m1, p1));
	CHECK_OK(fpk_map_file(&m2, p2));
	CHECK(m1.size == m2.size && !memcmp(m1.data, m2.data, m1.size));
	fpk_map_release(&m1);
	fpk_map_release(&m2);
	fpk_st_close(f);
}

static void safetensors_writer_should_leave_nothing_on_abort_or_short_write(void)
{
	const char *p = fpk_test_tmp("abort.safetensors");
	remove(p);
	fpk_st_writer *w = NULL;
	int64_t s[1] = {4};
	float v[4] = {1, 2, 3, 4};
	CHECK_OK(fpk_st_writer_new(&w, p));
	CHECK_OK(fpk_st_writer_add(w, "x", FPK_F32, 1, s));
	CHECK_OK(fpk_st_writer_begin(w));
	CHECK_OK(fpk_st_writer_write(w, v, 8));
	CHECK_ERR(fpk_st_writer_commit(w), FPK_EUSAGE, "declared");
	CHECK(!fpk_path_exists(p));
}

static void safetensors_should_reject_each_malformed_header(void)
{
	const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	size_t n;
	uint8_t *b = image(ok, strlen(ok), 8, &n);
	fpk_st_file *f = NULL;
	CHECK_OK(fpk_st_open_memory(&f, b, n, "mem"));
	fpk_st_close(f);
	CHECK_ERR(fpk_st_open_memory(&f, b, 5, "mem"), FPK_EFORMAT, "truncated");
	free(b);
	expect_reject(ok, 1ll << 40, 8, "exceeds the maximum");
	expect_reject(ok, 4096, 8, "runs past the end of the file");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", -1, 8, "not valid JSON");
	expect_reject("[1,2,3]                 ", -1, 0, "not start with '{'");
	expect_reject("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "unknown dtype 'Q4'");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8, "run past the end");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8, "shape/size mismatch");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
		      -1, 12, "overlaps");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
		      -1, 16, "duplicate tensor name 'a'");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 12, "not fully covered");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, "gap");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", -1, 8, "non-negative");
	expect_reject("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "UTF-8");
	expect_reject("{\"__metadata__\":{\"k\":1}}", -1, 0, "not a string");
	expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", -1, 8, "before begin");
}

static void write_shard(const char *path, const char *name, float v)
{
	fpk_st_writer *w = NULL;
	int64_t s[1] = {2};
	float d[2] = {v, -v};
	CHECK_OK(fpk_st_writer_new(&w, path));
	CHECK_OK(fpk_st_writer_add(w, name, FPK_F32, 1, s));
	CHECK_OK(fpk_st_writer_begin(w));
	CHECK_OK(fpk_st_writer_write(w, d, sizeof(d)));
	CHECK_OK(fpk_st_writer_commit(w));
}

static void model_should_open_a_sharded_directory_through_its_index(void)
{
	const char *dir = fpk_test_tmp("sharded");
	fpk_rmtree(dir);
	CHECK_OK(fpk_mkdir_p(dir));
	char *a = fpk_path_join(dir, "model-00001-of-00002.safetensors");
	char *b = fpk_path_join(dir, "model-00002-of-00002.safetensors");
	char *ix = fpk_path_join(dir, "model.safetensors.index.json");
	write_shard(a, "x.weight", 1.5f);
	write_shard(b, "y.weight", 2.5f);
	const char *index = "{\"metadata\":{\"total_size\":16},\"weight_map\":{"
			    "\"x.weight\":\"model-00001-of-00002.safetensors\",\"y.weight\":\"model-00002-of-00002.safetensors\"}}";
	CHECK_OK(fpk_write_file_atomic(ix, index, strlen(index)));
	fpk_st_model *m = NULL;
	CHECK_OK(fpk_st_model_open(&m, dir));
	if (m) {
		CHECK_EQ_INT(m->n_shards, 2);
		CHECK_EQ_INT(m->n_tensors, 2);
		const fpk_st_tensor *y = fpk_st_model_find(m, "y.weight");
		CHECK(y && y->shard == 1 && fpk_load_f32(y->data, FPK_F32, 1) == -2.5f);
		fpk_st_model_close(m);
	}
	free(a);
	free(b);
	free(ix);
	fpk_rmtree(dir);
}

int main(void)
{
	RUN(model_should_open_a_sharded_directory_through_its_index);
	RUN(safetensors_should_read_the_real_stories260K);
	RUN(safetensors_writer_should_round_trip_byte_identical);
	RUN(safetensors_writer_should_leave_nothing_on_abort_or_short_write);
	RUN(safetensors_should_reject_each_malformed_header);
	TEST_EXIT();
}
