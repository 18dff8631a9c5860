/* test_pack.c: the packed-model reader, one corruption test per rule R1-R15 of docs/format.md section 3, plus
 * encode -> open -> decode round trips and thread-count determinism. ctest unit_test_pack. */
#include "encode.h"
#include "fpk_test.h"
#include "pack.h"

#include <unistd.h>

#define W "model.layers.0.mlp.up_proj.weight"
#define M 200
#define K 100

static uint16_t g_w[M * K];
static fpk_tcsl g_t; /* the pristine encoding of g_w */

/* a pack file variant: what to write differently from a valid pack */
typedef struct variant {
	const char *format, *version; /* NULL: the valid values; "" : omit the key */
	const char *meta;             /* NULL: generated from the arrays */
	fpk_dtype vdtype, odtype;
	int64_t vlen_delta;
	int add_dense, orphan, drop_offsets;
	const fpk_tcsl *t; /* arrays to write (NULL: g_t) */
} variant;

static const char *write_variant(const char *fname, const variant *v)
{
	const char *path = fpk_test_tmp(fname);
	const fpk_tcsl *t = v->t ? v->t : &g_t;
	fpk_st_writer *w = NULL;
	int64_t T = t->tiles_m * t->tiles_k;
	uint32_t cv = fpk_crc32(0, t->values, t->n_entries * 4), co = fpk_crc32(0, t->offsets, (size_t)(T + 2) * 4);
	char *meta = v->meta ? strdup(v->meta) : fpk_pack_tensor_meta(t, cv, co);
	unlink(path);
	CHECK_OK(fpk_st_writer_new(&w, path));
	if (!v->format || *v->format)
		CHECK_OK(fpk_st_writer_meta(w, FPK_PACK_KEY_FORMAT, v->format ? v->format : FPK_PACK_FORMAT));
	if (!v->version || *v->version)
		CHECK_OK(fpk_st_writer_meta(w, FPK_PACK_KEY_VERSION, v->version ? v->version : "1"));
	CHECK_OK(fpk_st_writer_meta(w, FPK_PACK_KEY_TENSOR W, meta));
	int64_t norm = 7, nv = (int64_t)t->n_entries + v->vlen_delta, no = T + 2, dense[2] = {M, K}, orphan = 4;
	fpk_dtype vd = v->vdtype ? v->vdtype : FPK_U32, odt = v->odtype ? v->odtype : FPK_I32;
	CHECK_OK(fpk_st_writer_add(w, "model.norm.weight", FPK_F32, 1, &norm));
	CHECK_OK(fpk_st_writer_add(w, W FPK_PACK_SUFFIX_VALUES, vd, 1, &nv));
	if (!v->drop_offsets)
		CHECK_OK(fpk_st_writer_add(w, W FPK_PACK_SUFFIX_OFFSETS, odt, 1, &no));
	if (v->add_dense)
		CHECK_OK(fpk_st_writer_add(w, W, FPK_F16, 2, dense));
	if (v->orphan)
		CHECK_OK(fpk_st_writer_add(w, "x.weight" FPK_PACK_SUFFIX_VALUES, FPK_U32, 1, &orphan));
	CHECK_OK(fpk_st_writer_begin(w));
	float nb[7] = {1, 2, 3, 4, 5, 6, 7};
	CHECK_OK(fpk_st_writer_write(w, nb, sizeof(nb)));
	size_t vbytes = (size_t)nv * fpk_dtypes[vd].size;
	uint8_t *vb = calloc(vbytes + 4, 1);
	memcpy(vb, t->values, vbytes < t->n_entries * 4 ? vbytes : t->n_entries * 4);
	CHECK_OK(fpk_st_writer_write(w, vb, vbytes));
	free(vb);
	if (!v->drop_offsets)
		CHECK_OK(fpk_st_writer_write(w, t->offsets, (size_t)no * fpk_dtypes[odt].size));
	if (v->add_dense)
		CHECK_OK(fpk_st_writer_write(w, g_w, sizeof(g_w)));
	if (v->orphan) {
		uint32_t z[4] = {0};
		CHECK_OK(fpk_st_writer_write(w, z, sizeof(z)));
	}
	CHECK_OK(fpk_st_writer_commit(w));
	free(meta);
	return path;
}

#define EXPECT_REJECT(path, needle)                                                                          \
	do {                                                                                                     \
		fpk_pack *p_ = NULL;                                                                                 \
		CHECK_ERR(fpk_pack_open(&p_, (path), 2), FPK_EFORMAT, (needle));                                      \
		CHECK(p_ == NULL);                                                                                   \
	} while (0)

static void setup(void)
{
	uint64_t s = 42;
	for (int i = 0; i < M * K; i++)
		g_w[i] = (fpk_test_rand(&s) % 10) < 2 ? fpk_f32_to_f16(fpk_test_randn(&s)) : 0;
	g_w[0] = 0x3c00;
	CHECK_OK(fpk_tcsl_encode(&g_t, g_w, M, K, FPK_F16, 1, 0, 2));
}

static void pack_should_open_a_valid_pack_and_decode_it(void)
{
	variant v = {0};
	fpk_pack *p = NULL;
	CHECK_OK(fpk_pack_open(&p, write_variant("pack_ok.safetensors", &v), 2));
	if (!p)
		return;
	CHECK_EQ_INT(p->n_encoded, 1);
	const fpk_pack_tensor *pt = fpk_pack_find(p, W);
	CHECK(pt != NULL);
	if (pt) {
		uint16_t *back = malloc(sizeof(g_w));
		CHECK_OK(fpk_pack_decode_tensor(pt, back));
		CHECK(!memcmp(back, g_w, sizeof(g_w)));
		CHECK_EQ_INT(pt->tcsl.nnz, g_t.nnz);
		free(back);
	}
	fpk_pack_close(p);
}

static void pack_should_reject_R1_bad_or_missing_format_and_version(void)
{
	variant v = {0};
	v.format = "";
	EXPECT_REJECT(write_variant("r1a.safetensors", &v), "metadata 'flashllm_pack.format' is missing, not a pack (rule R1)");
	v.format = "csr";
	EXPECT_REJECT(write_variant("r1b.safetensors", &v), "is 'csr', expected 'tiled-csl' (rule R1)");
	v.format = NULL;
	v.version = "";
	EXPECT_REJECT(write_variant("r1c.safetensors", &v), "metadata 'flashllm_pack.version' is missing (rule R1)");
	v.version = "2";
	EXPECT_REJECT(write_variant("r1d.safetensors", &v), "unsupported pack version '2', expected '1' (rule R1)");
	v.version = "01";
	EXPECT_REJECT(write_variant("r1e.safetensors", &v), "unsupported pack version '01'");
}

static char *meta_with(const char *from, const char *to)
{
	uint32_t cv = fpk_crc32(0, g_t.values, g_t.n_entries * 4);
	uint32_t co = fpk_crc32(0, g_t.offsets, (size_t)(g_t.tiles_m * g_t.tiles_k + 2) * 4);
	char *m = fpk_pack_tensor_meta(&g_t, cv, co);
	char *at = strstr(m, from);
	CHECK(at != NULL);
	if (!at)
		return m;
	char *r = malloc(strlen(m) + strlen(to) + 1);
	memcpy(r, m, (size_t)(at - m));
	strcpy(r + (at - m), to);
	strcat(r, at + strlen(from));
	free(m);
	return r;
}

static void pack_should_reject_R2_malformed_tensor_metadata(void)
{
	variant v = {0};
	v.meta = "{\"shape\":[200,";
	EXPECT_REJECT(write_variant("r2a.safetensors", &v), "is not a JSON object (rule R2)");
	char *m = meta_with("\"nnz\":", "\"nnz_\":");
	v.meta = m;
	EXPECT_REJECT(write_variant("r2b.safetensors", &v), "metadata field 'nnz' is missing or malformed (rule R2)");
	free(m);
	m = meta_with("\"crc32_values\":\"", "\"crc32_values\":\"Z");
	v.meta = m;
	EXPECT_REJECT(write_variant("r2c.safetensors", &v), "field 'crc32_values' is missing or malformed (rule R2)");
	free(m);
	m = meta_with("\"reorder\":true", "\"reorder\":1");
	v.meta = m;
	EXPECT_REJECT(write_variant("r2d.safetensors", &v), "field 'reorder' is missing or malformed (rule R2)");
	free(m);
}

static void pack_should_reject_R3_dtype_other_than_f16_bf16(void)
{
	variant v = {0};
	char *m = meta_with("\"dtype\":\"F16\"", "\"dtype\":\"F32\"");
	v.meta = m;
	EXPECT_REJECT(write_variant("r3.safetensors", &v), "dtype 'F32', expected F16 or BF16 (rule R3)");
	free(m);
}

static void pack_should_reject_R4_shapes_that_disagree(void)
{
	variant v = {0};
	char *m = meta_with("\"tile\":[128,64]", "\"tile\":[64,64]");
	v.meta = m;
	EXPECT_REJECT(write_variant("r4a.safetensors", &v), "tile [64, 64], expected [128, 64] (rule R4)");
	free(m);
	m = meta_with("\"padded_shape\":[256,128]", "\"padded_shape\":[200,128]");
	v.meta = m;
	EXPECT_REJECT(write_variant("r4b.safetensors", &v), "padded_shape [200, 128], expected [256, 128] (rule R4)");
	free(m);
	m = meta_with("\"shape\":[200,100]", "\"shape\":[0,100]");
	v.meta = m;
	EXPECT_REJECT(write_variant("r4c.safetensors", &v), "expected both dims >= 1 (rule R4)");
	free(m);
	char nnz[64];
	snprintf(nnz, sizeof(nnz), "\"nnz\":%llu", (unsigned long long)g_t.nnz);
	m = meta_with(nnz, "\"nnz\":20001");
	v.meta = m;
	EXPECT_REJECT(write_variant("r4d.safetensors", &v), "do not fit shape [200, 100] (rule R4)");
	free(m);
}

static void pack_should_reject_R5_missing_or_mistyped_arrays(void)
{
	variant v = {0};
	v.drop_offsets = 1;
	EXPECT_REJECT(write_variant("r5a.safetensors", &v), "array '" W ".tcsl_offsets' is missing");
	v.drop_offsets = 0;
	v.vdtype = FPK_I32;
	EXPECT_REJECT(write_variant("r5b.safetensors", &v), "'" W ".tcsl_values' is I32 with 1 dims, expected U32");
	v.vdtype = 0;
	v.vlen_delta = 4;
	EXPECT_REJECT(write_variant("r5c.safetensors", &v), "expected U32 [");
	v.vlen_delta = 0;
	v.odtype = FPK_U32;
	EXPECT_REJECT(write_variant("r5d.safetensors", &v), "tcsl_offsets' is U32 with 1 dims, expected I32 [6] (rule R5)");
	v.odtype = 0;
	v.add_dense = 1;
	EXPECT_REJECT(write_variant("r5e.safetensors", &v), "stored both dense and encoded (rule R5)");
	v.add_dense = 0;
	v.orphan = 1;
	EXPECT_REJECT(write_variant("r5f.safetensors", &v), "array 'x.weight.tcsl_values' has no");
}

/* flip one byte at a file offset inside the values array; the metadata CRC no longer matches */
static void pack_should_reject_R6_crc_mismatch(void)
{
	variant v = {0};
	const char *path = write_variant("r6.safetensors", &v);
	fpk_st_file *f = NULL;
	CHECK_OK(fpk_st_open(&f, path));
	if (!f)
		return;
	const fpk_st_tensor *t = fpk_st_find(f, W FPK_PACK_SUFFIX_VALUES);
	uint64_t off = f->data_offset + t->begin + 6; /* low byte of entry 1's loc */
	const fpk_st_tensor *to = fpk_st_find(f, W FPK_PACK_SUFFIX_OFFSETS);
	uint64_t off2 = f->data_offset + to->begin + 4; /* offsets[1] */
	fpk_st_close(f);
	char *buf;
	size_t len;
	CHECK_OK(fpk_read_file(path, &buf, &len));
	buf[off] ^= 0x01;
	CHECK_OK(fpk_write_file_atomic(path, buf, len));
	EXPECT_REJECT(path, "crc32 of tcsl_values is");
	EXPECT_REJECT(path, "(rule R6)");
	buf[off] ^= 0x01;
	buf[off2] ^= 0x01;
	CHECK_OK(fpk_write_file_atomic(path, buf, len));
	EXPECT_REJECT(path, "crc32 of tcsl_offsets is");
	free(buf);
}

/* arrays changed with a matching CRC: the structural rules must catch them */
static void copy_t(fpk_tcsl *c)
{
	int64_t T = g_t.tiles_m * g_t.tiles_k;
	*c = g_t;
	c->values = malloc(g_t.n_entries * 4 + 16);
	c->offsets = malloc((size_t)(T + 2) * 4);
	memcpy(c->values, g_t.values, g_t.n_entries * 4);
	memcpy(c->offsets, g_t.offsets, (size_t)(T + 2) * 4);
}

static void pack_should_reject_R7_to_R15_array_contents(void)
{
	variant v = {0};
	fpk_tcsl c;
	copy_t(&c);
	v.t = &c;
	/* R7 */
	c.offsets[0] = 1;
	EXPECT_REJECT(write_variant("r7.safetensors", &v), "tcsl_offsets[0] is 1, expected 0 (rule R7)");
	c.offsets[0] = 0;
	/* R8: tile 1 starts after tile 2 */
	int32_t o1 = c.offsets[1];
	c.offsets[1] = c.offsets[2] + 1;
	EXPECT_REJECT(write_variant("r8.safetensors", &v), "tcsl_offsets not monotone");
	c.offsets[1] = o1;
	/* R9 */
	c.offsets[5] += 1;
	EXPECT_REJECT(write_variant("r9.safetensors", &v), "sentinel tcsl_offsets[5]");
	c.offsets[5] -= 1;
	/* R10: offsets end 4 entries early (tile 3 shrinks; the metadata n_entries still says the full length) */
	c.offsets[4] -= 1;
	c.offsets[5] -= 1;
	EXPECT_REJECT(write_variant("r10.safetensors", &v), "(rule R10)");
	c.offsets[4] += 1;
	c.offsets[5] += 1;
	/* R11 */
	uint32_t v0 = c.values[0], v1 = c.values[1];
	c.values[0] = (v0 & 0xffffu) | 9000u << 16;
	EXPECT_REJECT(write_variant("r11.safetensors", &v), "has loc 9000, expected < 8192 (rule R11)");
	/* R12 */
	c.values[0] = (v0 & 0xffffu) | (v1 & 0xffff0000u);
	EXPECT_REJECT(write_variant("r12.safetensors", &v), "repeats loc");
	c.values[0] = v0;
	/* R13: a non-zero turned into a zero -> a fourth zero in its tile? use a -0.0 pad in a reordered pack */
	int64_t pad_at = -1;
	for (uint64_t e = 0; e < c.n_entries && pad_at < 0; e++)
		if ((c.values[e] & 0xffffu) == 0)
			pad_at = (int64_t)e;
	CHECK(pad_at >= 0);
	if (pad_at >= 0) {
		c.values[pad_at] |= 0x8000u;
		EXPECT_REJECT(write_variant("r13a.safetensors", &v), "expected +0.0 (rule R13)");
		c.values[pad_at] &= 0xffff0000u;
	}
	uint32_t keep[4];
	for (int i = 0; i < 4; i++) {
		keep[i] = c.values[i];
		c.values[i] &= 0xffff0000u;
	}
	c.nnz = g_t.nnz; /* metadata keeps the real nnz */
	EXPECT_REJECT(write_variant("r13b.safetensors", &v), "zero entries, expected at most 3 pads (rule R13)");
	for (int i = 0; i < 4; i++)
		c.values[i] = keep[i];
	/* R14: tile 3 covers rows 128..255 x cols 64..127; row 127 of it (199 + ...) lies outside [200, 100] */
	int64_t a = (int64_t)c.offsets[3] * 4;
	uint32_t k3 = c.values[a];
	c.values[a] = 0x3c00u | (uint32_t)fpk_tcsl_loc(100, 50) << 16;
	EXPECT_REJECT(write_variant("r14.safetensors", &v), "outside the logical shape [200, 100] (rule R14)");
	c.values[a] = k3;
	/* R15 */
	c.nnz = g_t.nnz - 1;
	EXPECT_REJECT(write_variant("r15.safetensors", &v), "metadata nnz says");
	c.nnz = g_t.nnz;
	fpk_pack *p = NULL;
	CHECK_OK(fpk_pack_open(&p, write_variant("r_ok.safetensors", &v), 1));
	fpk_pack_close(p);
	fpk_tcsl_release(&c);
}

/* ---- end to end through fpk_encode_run ---- */
static const char *make_checkpoint(const char *dir)
{
	const char *d = fpk_test_tmp(dir);
	fpk_rmtree(d);
	CHECK_OK(fpk_mkdir_p(d));
	char *path = fpk_path_join(d, "model.safetensors");
	fpk_st_writer *w = NULL;
	CHECK_OK(fpk_st_writer_new(&w, path));
	CHECK_OK(fpk_st_writer_meta(w, "format", "pt"));
	int64_t s1[2] = {M, K}, s2[2] = {300, 70}, s3[1] = {5}, s4[2] = {64, 64};
	CHECK_OK(fpk_st_writer_add(w, "model.layers.0.self_attn.q_proj.weight", FPK_BF16, 2, s2));
	CHECK_OK(fpk_st_writer_add(w, "model.layers.0.input_layernorm.weight", FPK_F16, 1, s3)); /* odd size: misaligns */
	CHECK_OK(fpk_st_writer_add(w, W, FPK_F16, 2, s1));
	CHECK_OK(fpk_st_writer_add(w, "model.layers.0.mlp.down_proj.weight", FPK_F32, 2, s4));
	CHECK_OK(fpk_st_writer_begin(w));
	uint64_t s = 9;
	uint16_t *q = malloc(300 * 70 * 2);
	for (int i = 0; i < 300 * 70; i++)
		q[i] = (fpk_test_rand(&s) % 10) < 3 ? fpk_f32_to_bf16(fpk_test_randn(&s)) : 0;
	CHECK_OK(fpk_st_writer_write(w, q, 300 * 70 * 2));
	uint16_t ln[5] = {0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00};
	CHECK_OK(fpk_st_writer_write(w, ln, sizeof(ln)));
	CHECK_OK(fpk_st_writer_write(w, g_w, sizeof(g_w)));
	float *f = malloc(64 * 64 * 4);
	for (int i = 0; i < 64 * 64; i++)
		f[i] = (fpk_test_rand(&s) % 10) < 2 ? fpk_test_randn(&s) * 1e-3f : 0.0f;
	f[5] = 1e-9f; /* flushes to zero in f16 */
	CHECK_OK(fpk_st_writer_write(w, f, 64 * 64 * 4));
	CHECK_OK(fpk_st_writer_commit(w));
	free(q);
	free(f);
	free(path);
	char cfg[] = "{\"model_type\": \"llama\", \"hidden_size\": 64}";
	path = fpk_path_join(d, "config.json");
	CHECK_OK(fpk_write_file_atomic(path, cfg, strlen(cfg)));
	free(path);
	return d;
}

static int same_file(const char *a, const char *b)
{
	char *x, *y;
	size_t lx, ly;
	if (fpk_read_file(a, &x, &lx) || fpk_read_file(b, &y, &ly))
		return 0;
	int same = lx == ly && !memcmp(x, y, lx);
	free(x);
	free(y);
	return same;
}

static void encode_should_be_deterministic_and_round_trip(void)
{
	const char *in = make_checkpoint("pack_in");
	const char *p1 = fpk_test_tmp("pack_t1"), *p2 = fpk_test_tmp("pack_t3"), *d1 = fpk_test_tmp("pack_dec");
	fpk_encode_opts o;
	fpk_encode_opts_init(&o);
	o.in = in;
	o.dtype = FPK_F16;
	o.force = 1;
	o.threads = 1;
	o.out = p1;
	fpk_encode_report r;
	CHECK_OK(fpk_encode_run(&o, &r));
	CHECK_EQ_INT(r.n_encoded, 3);
	CHECK_EQ_INT(r.n_dense, 1);
	const cJSON *ts = cJSON_GetObjectItem(r.json, "tensors");
	const cJSON *down = cJSON_GetArrayItem(ts, 3), *rd = cJSON_GetObjectItem(down, "rounding");
	CHECK(rd != NULL);
	if (rd)
		CHECK(cJSON_GetObjectItem(rd, "flushed_to_zero")->valuedouble >= 1);
	fpk_encode_report_release(&r);
	o.threads = 3;
	o.out = p2;
	CHECK_OK(fpk_encode_run(&o, NULL));
	char a[1024], b[1024];
	snprintf(a, sizeof(a), "%s/model.safetensors", p1);
	snprintf(b, sizeof(b), "%s/model.safetensors", p2);
	CHECK(same_file(a, b));
	snprintf(a, sizeof(a), "%s/pack_report.json", p1);
	snprintf(b, sizeof(b), "%s/pack_report.json", p2);
	CHECK(same_file(a, b));
	/* an existing output is refused without force and left alone */
	o.force = 0;
	CHECK_ERR(fpk_encode_run(&o, NULL), FPK_EUSAGE, "already exists");
	CHECK_OK(fpk_decode_run(p1, d1, 1, 2, NULL, NULL));
	fpk_st_model *mi = NULL, *md = NULL;
	CHECK_OK(fpk_st_model_open(&mi, in));
	CHECK_OK(fpk_st_model_open(&md, d1));
	if (mi && md) {
		CHECK_EQ_INT(mi->n_tensors, md->n_tensors);
		for (size_t i = 0; i < mi->n_tensors && i < md->n_tensors; i++) {
			const fpk_st_tensor *x = mi->tensors[i], *y = md->tensors[i];
			CHECK(!strcmp(x->name, y->name));
			if (x->dtype == y->dtype) {
				CHECK(x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes));
			} else { /* F32 -> F16 */
				int bad = 0;
				for (uint64_t e = 0; e < x->numel; e++) {
					float fx;
					uint16_t hy;
					memcpy(&fx, x->data + 4 * e, 4);
					memcpy(&hy, y->data + 2 * e, 2);
					uint16_t want = fpk_f32_to_f16(fx);
					bad += ((want & 0x7fff) ? want : 0) != hy;
				}
				CHECK_EQ_INT(bad, 0);
			}
		}
	}
	fpk_st_model_close(mi);
	fpk_st_model_close(md);
	char cfg[1024];
	snprintf(cfg, sizeof(cfg), "%s/config.json", d1);
	char *txt;
	size_t len;
	CHECK_OK(fpk_read_file(cfg, &txt, &len));
	CHECK(txt && !strstr(txt, "flashllm_pack"));
	free(txt);
	snprintf(cfg, sizeof(cfg), "%s/config.json", p1);
	CHECK_OK(fpk_read_file(cfg, &txt, &len));
	CHECK(txt && strstr(txt, "\"flashllm_pack\""));
	free(txt);
}

int main(void)
{
	setup();
	RUN(pack_should_open_a_valid_pack_and_decode_it);
	RUN(pack_should_reject_R1_bad_or_missing_format_and_version);
	RUN(pack_should_reject_R2_malformed_tensor_metadata);
	RUN(pack_should_reject_R3_dtype_other_than_f16_bf16);
	RUN(pack_should_reject_R4_shapes_that_disagree);
	RUN(pack_should_reject_R5_missing_or_mistyped_arrays);
	RUN(pack_should_reject_R6_crc_mismatch);
	RUN(pack_should_reject_R7_to_R15_array_contents);
	RUN(encode_should_be_deterministic_and_round_trip);
	fpk_tcsl_release(&g_t);
	TEST_EXIT();
}
