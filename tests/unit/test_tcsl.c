/* test_tcsl.c: Tiled-CSL encoder golden vectors (derived by hand from docs/format.md section 2), a slow literal
 * model of the spec compared byte for byte, round trips over many shapes/densities, validation. ctest unit_test_tcsl. */
#include "fpk_test.h"
#include "tcsl.h"

#define E(bits, loc) ((uint32_t)(bits) | (uint32_t)(loc) << 16)

static uint16_t *zeros(int64_t m, int64_t k)
{
	return calloc((size_t)(m * k), sizeof(uint16_t));
}

static void tcsl_should_encode_an_all_zero_tile_as_no_entries(void)
{
	uint16_t *w = zeros(128, 64);
	fpk_tcsl t;
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 1));
	CHECK_EQ_INT(t.nnz, 0);
	CHECK_EQ_INT(t.n_entries, 0);
	CHECK_EQ_INT(t.offsets[0], 0);
	CHECK_EQ_INT(t.offsets[1], 0);
	CHECK_EQ_INT(t.offsets[2], 0);
	CHECK_OK(fpk_tcsl_validate(&t, "w", 0));
	fpk_tcsl_release(&t);
	free(w);
}

/* full tile: every bank holds 256 entries; picks go bank 0..31 round-robin, each popping its last entry, so
 * out[round*128 + lane*4 + v] = L[lane][round*4 + v] where L[b][i] is row i/2, swizzled column 2b + i%2 */
static void tcsl_should_reorder_a_full_tile_bank_round_robin(void)
{
	uint16_t *w = zeros(128, 64);
	for (int r = 0; r < 128; r++)
		for (int c = 0; c < 64; c++)
			w[r * 64 + c] = (uint16_t)(1 + r * 64 + c);
	fpk_tcsl t;
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 2));
	CHECK_EQ_INT(t.nnz, 8192);
	CHECK_EQ_INT(t.n_entries, 8192);
	CHECK_EQ_INT(t.offsets[1], 2048);
	CHECK_EQ_INT(t.offsets[2], 2048);
	int bad = 0;
	for (int round = 0; round < 64; round++)
		for (int lane = 0; lane < 32; lane++)
			for (int v = 0; v < 4; v++) {
				int i = round * 4 + v, r = i / 2, sc = 2 * lane + i % 2, c = sc ^ ((r & 7) * 8);
				bad += t.values[round * 128 + lane * 4 + v] != E(1 + r * 64 + c, r * 64 + sc);
			}
	CHECK_EQ_INT(bad, 0);
	CHECK_OK(fpk_tcsl_validate(&t, "w", 8192));
	fpk_tcsl_release(&t);
	free(w);
}

/* -0.0 is zero: not stored; when its loc hosts a pad in the reordered order the pad is +0.0; the row-major order
 * keeps the zero's own bits. W[0][1] = 1.0 (bank 0), W[0][2] = -0.0 (bank 1). nnz 1 -> 3 pads into banks 1, 2, 3
 * (emptiest, lowest index) at their first zero locs 2, 4, 6. Tail: v=0 bank 0 -> slot 3, v=1 bank 1 -> slot 2 ... */
static void tcsl_should_treat_negative_zero_as_zero(void)
{
	uint16_t *w = zeros(128, 64);
	w[1] = 0x3c00;
	w[2] = 0x8000;
	fpk_tcsl t;
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 1));
	CHECK_EQ_INT(t.nnz, 1);
	CHECK_EQ_INT(t.n_entries, 4);
	uint32_t want[4] = {E(0, 6), E(0, 4), E(0, 2), E(0x3c00, 1)};
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(t.values[i], want[i]);
	fpk_tcsl_release(&t);
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 0, 0, 1));
	uint32_t want_scan[4] = {E(0, 0), E(0x3c00, 1), E(0x8000, 2), E(0, 3)};
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(t.values[i], want_scan[i]);
	CHECK_OK(fpk_tcsl_validate(&t, "w", 1));
	uint16_t *back = zeros(128, 64);
	CHECK_OK(fpk_tcsl_decode(&t, back));
	CHECK_EQ_INT(back[1], 0x3c00);
	CHECK_EQ_INT(back[2], 0x8000); /* the row-major pad kept the -0.0 bits */
	fpk_tcsl_release(&t);
	/* an all -0.0 tile stores nothing */
	for (int i = 0; i < 128 * 64; i++)
		w[i] = 0x8000;
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_BF16, 1, 0, 1));
	CHECK_EQ_INT(t.n_entries, 0);
	fpk_tcsl_release(&t);
	free(back);
	free(w);
}

/* row 1 (swizzle XOR 8): W[1][2b ^ 8] = 0x3c00 + b puts one entry in bank b, loc 64 + 2b. 32 entries, 8 vectors,
 * all tail (Rem 8): pick p = v*8 + lane takes bank p, written to slot 3 - v of lane */
static void tcsl_should_spread_one_entry_per_bank(void)
{
	uint16_t *w = zeros(128, 64);
	for (int b = 0; b < 32; b++)
		w[64 + (2 * b ^ 8)] = (uint16_t)(0x3c00 + b);
	fpk_tcsl t;
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 1));
	CHECK_EQ_INT(t.n_entries, 32);
	for (int v = 0; v < 4; v++)
		for (int lane = 0; lane < 8; lane++) {
			int b = v * 8 + lane;
			CHECK_EQ_INT(t.values[lane * 4 + 3 - v], E(0x3c00 + b, 64 + 2 * b));
		}
	fpk_tcsl_release(&t);
	free(w);
}

/* ties: bank 7 holds 7a 7b (row 0, cols 14 15) and 7c (row 1, col 6 -> swizzled 14), bank 3: 3a 3b (cols 6 7),
 * bank 5: 5a 5b (cols 10 11), bank 0: 0a (col 0). Picks: 7c, 3b (tie 3/5/7 -> 3), 5b (tie 5/7), 7b, then all at
 * one: 0a, 3a, 5a, 7a. Lane 0 gets picks 0,2,4,6 into slots 3,2,1,0; lane 1 picks 1,3,5,7 */
static void tcsl_should_break_bank_ties_by_lowest_index(void)
{
	uint16_t *w = zeros(128, 64);
	w[14] = 0x7a;
	w[15] = 0x7b;
	w[64 + 6] = 0x7c;
	w[6] = 0x3a;
	w[7] = 0x3b;
	w[10] = 0x5a;
	w[11] = 0x5b;
	w[0] = 0x0a;
	fpk_tcsl t;
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 1));
	uint32_t want[8] = {E(0x5a, 10), E(0x0a, 0), E(0x5b, 11), E(0x7c, 78),
			    E(0x7a, 14), E(0x3a, 6), E(0x7b, 15), E(0x3b, 7)};
	CHECK_EQ_INT(t.n_entries, 8);
	for (int i = 0; i < 8; i++)
		CHECK_EQ_INT(t.values[i], want[i]);
	fpk_tcsl_release(&t);
	free(w);
}

/* padding: 30 banks hold one entry (row 0, col 2b), banks 4 and 9 none: nnz 30 -> 2 pads, into bank 4 (loc 8)
 * then bank 9 (loc 18). Then 32 entries, one per bank, picked as in the one-per-bank case. Second case: 31 banks
 * hold two (cols 2b, 2b+1), bank 4 none: both pads go to bank 4, both at its first zero Z[4] = loc 8, as the reference
 * encoder does (reader rule R12 allows pads, and only pads, to share a loc). */
static void tcsl_should_pad_into_the_emptiest_bank(void)
{
	uint16_t *w = zeros(128, 64);
	for (int b = 0; b < 32; b++)
		if (b != 4 && b != 9)
			w[2 * b] = (uint16_t)(0x100 + b);
	fpk_tcsl t;
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 1));
	CHECK_EQ_INT(t.nnz, 30);
	CHECK_EQ_INT(t.n_entries, 32);
	for (int v = 0; v < 4; v++)
		for (int lane = 0; lane < 8; lane++) {
			int b = v * 8 + lane;
			uint32_t e = (b == 4 || b == 9) ? E(0, 2 * b) : E(0x100 + b, 2 * b);
			CHECK_EQ_INT(t.values[lane * 4 + 3 - v], e);
		}
	CHECK_OK(fpk_tcsl_validate(&t, "w", 30));
	fpk_tcsl_release(&t);

	memset(w, 0, 128 * 64 * 2);
	for (int b = 0; b < 32; b++)
		if (b != 4) {
			w[2 * b] = (uint16_t)(0x100 + b);
			w[2 * b + 1] = (uint16_t)(0x200 + b);
		}
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 1));
	CHECK_EQ_INT(t.n_entries, 64);
	/* L[4] = [pad 8, pad 8]; picks p < 32 pop bank p's second entry, p >= 32 bank p-32's first; p = v*16 + lane */
	for (int v = 0; v < 4; v++)
		for (int lane = 0; lane < 16; lane++) {
			int p = v * 16 + lane, b = p % 32, second = p < 32;
			uint32_t e = b == 4 ? E(0, 8) : second ? E(0x200 + b, 2 * b + 1) : E(0x100 + b, 2 * b);
			CHECK_EQ_INT(t.values[lane * 4 + 3 - v], e);
		}
	CHECK_OK(fpk_tcsl_validate(&t, "w", 62)); /* two pads on loc 8 are allowed (rule R12) */
	/* ... but a pad moved onto a non-zero's loc is not */
	for (uint64_t e = 0; e < t.n_entries; e++) {
		if ((t.values[e] & 0xffffu) == 0) {
			t.values[e] = 2u << 16; /* loc 2 holds the non-zero of bank 1 */
			break;
		}
	}
	CHECK_ERR(fpk_tcsl_validate(&t, "w", 62), FPK_EFORMAT, "(rule R12)");
	fpk_tcsl_release(&t);
	free(w);
}

/* 200 x 100 -> 2 x 2 tiles (padded 256 x 128); tile nnz 1, 0, 5, 4 -> offsets 0 1 1 3 4 4 */
static void tcsl_should_pad_shapes_and_write_tile_offsets(void)
{
	uint16_t *w = zeros(200, 100);
	w[0] = 0x3c00;                        /* tile 0 */
	for (int i = 0; i < 5; i++)
		w[(130 + i) * 100 + 3] = 0x4000; /* tile 2 (rows 128.., cols 0..63) */
	for (int i = 0; i < 4; i++)
		w[(199) * 100 + 96 + i] = 0x4200; /* tile 3 */
	for (int reorder = 0; reorder < 2; reorder++) {
		fpk_tcsl t;
		CHECK_OK(fpk_tcsl_encode(&t, w, 200, 100, FPK_BF16, reorder, 0, 1));
		int32_t want[6] = {0, 1, 1, 3, 4, 4};
		CHECK_EQ_INT(t.m_pad, 256);
		CHECK_EQ_INT(t.k_pad, 128);
		CHECK_EQ_INT(t.tiles_m, 2);
		CHECK_EQ_INT(t.tiles_k, 2);
		for (int i = 0; i < 6; i++)
			CHECK_EQ_INT(t.offsets[i], want[i]);
		CHECK_EQ_INT(t.nnz, 10);
		CHECK_EQ_INT(t.n_entries, 16);
		CHECK_OK(fpk_tcsl_validate(&t, "w", 10));
		fpk_tcsl_release(&t);
	}
	free(w);
}

/* ---- a slow, literal model of the spec: explicit lists, 32-way scans, Tail/Main stacks ---- */
static uint32_t *model_encode(const uint16_t *w, int64_t m, int64_t k, int reorder, int32_t *offs, uint64_t *n_out)
{
	int64_t tm = (m + 127) / 128, tk = (k + 63) / 64, T = tm * tk;
	uint32_t *out = malloc((size_t)(T * 8192 + 4) * 4);
	uint64_t n = 0;
	for (int64_t t = 0; t < T; t++) {
		offs[t] = (int32_t)(n / 4);
		int64_t r0 = t / tk * 128, c0 = t % tk * 64;
		static uint32_t L[32][256];
		int cnt[32] = {0}, nnz = 0;
		uint16_t bits[128][64];
		for (int r = 0; r < 128; r++)
			for (int c = 0; c < 64; c++) {
				bits[r][c] = (r0 + r < m && c0 + c < k) ? w[(r0 + r) * k + c0 + c] : 0;
				nnz += (bits[r][c] & 0x7fff) != 0;
			}
		int pad = (4 - nnz % 4) % 4;
		if (!reorder) {
			for (int r = 0; r < 128; r++)
				for (int c = 0; c < 64; c++) {
					int nz = (bits[r][c] & 0x7fff) != 0;
					if (nz || pad > 0) {
						out[n++] = E(bits[r][c], r * 64 + (c ^ ((r & 7) * 8)));
						if (!nz)
							pad--;
					}
				}
			continue;
		}
		for (int r = 0; r < 128; r++)
			for (int c = 0; c < 64; c++)
				if (bits[r][c] & 0x7fff) {
					int loc = r * 64 + (c ^ ((r & 7) * 8)), b = (loc % 64) / 2;
					L[b][cnt[b]++] = E(bits[r][c], loc);
				}
		for (int p = 0; p < pad; p++) {
			int b = 0;
			for (int q = 1; q < 32; q++)
				if (cnt[q] < cnt[b])
					b = q;
			int loc = -1;
			for (int r = 0; r < 128 && loc < 0; r++)
				for (int c = 0; c < 64 && loc < 0; c++) {
					int l = r * 64 + (c ^ ((r & 7) * 8));
					if ((l % 64) / 2 != b || (bits[r][c] & 0x7fff))
						continue;
					loc = l; /* Z[b]: the bank's first zero, the same for every pad of the bank */
				}
			L[b][cnt[b]++] = E(0, loc);
		}
		int V = (nnz + pad) / 4, R = V / 32, Rem = V % 32;
		static uint32_t Tail[32][4], Main[32][256];
		int nt[32] = {0}, nm[32] = {0};
#define BIG()                                                                                                \
	({                                                                                                       \
		int b_ = 0;                                                                                          \
		for (int q = 1; q < 32; q++)                                                                         \
			if (cnt[q] > cnt[b_])                                                                            \
				b_ = q;                                                                                      \
		L[b_][--cnt[b_]];                                                                                    \
	})
		for (int v = 0; v < 4; v++)
			for (int lane = 0; lane < Rem; lane++)
				Tail[lane][nt[lane]++] = BIG();
		for (int round = 0; round < R; round++)
			for (int v = 0; v < 4; v++)
				for (int lane = 0; lane < 32; lane++)
					Main[lane][nm[lane]++] = BIG();
		for (int round = 0; round < R; round++)
			for (int v = 0; v < 4; v++)
				for (int lane = 0; lane < 32; lane++)
					out[n + round * 128 + lane * 4 + v] = Main[lane][--nm[lane]];
		for (int v = 0; v < 4; v++)
			for (int lane = 0; lane < Rem; lane++)
				out[n + R * 128 + lane * 4 + v] = Tail[lane][--nt[lane]];
		n += (uint64_t)V * 4;
	}
	offs[T] = offs[T + 1] = (int32_t)(n / 4);
	*n_out = n;
	return out;
}

static void random_matrix(uint16_t *w, int64_t m, int64_t k, double density, fpk_dtype dt, uint64_t *s)
{
	for (int64_t i = 0; i < m * k; i++) {
		double u = (double)(fpk_test_rand(s) >> 11) / 9007199254740992.0;
		if (u < density) {
			float f = fpk_test_randn(s);
			uint16_t h = dt == FPK_BF16 ? fpk_f32_to_bf16(f) : fpk_f32_to_f16(f);
			if ((h & 0x7fff) == 0)
				h = 0x0001;
			w[i] = h;
		} else {
			w[i] = (fpk_test_rand(s) & 7) == 0 ? 0x8000 : 0; /* some -0.0 */
		}
	}
}

static void tcsl_should_match_the_literal_model_and_round_trip(void)
{
	static const int64_t shapes[][2] = {{1, 1},     {3, 5},    {127, 63}, {128, 64}, {129, 65},
					    {256, 128}, {300, 200}, {64, 640}, {513, 70}, {130, 2200}};
	static const double dens[] = {0.0, 0.003, 0.05, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97, 1.0};
	uint64_t s = 0x9e3779b97f4a7c15ull;
	int fails = 0, cases = 0;
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
		for (size_t di = 0; di < sizeof(dens) / sizeof(dens[0]); di++)
			for (int reorder = 0; reorder < 2; reorder++) {
				int64_t m = shapes[si][0], k = shapes[si][1];
				fpk_dtype dt = (si + di) % 2 ? FPK_BF16 : FPK_F16;
				uint16_t *w = malloc((size_t)(m * k) * 2), *back = malloc((size_t)(m * k) * 2);
				random_matrix(w, m, k, dens[di], dt, &s);
				fpk_tcsl a, b;
				CHECK_OK(fpk_tcsl_encode(&a, w, m, k, dt, reorder, 0, 1));
				CHECK_OK(fpk_tcsl_encode(&b, w, m, k, dt, reorder, 0, 3));
				int64_t T = fpk_tcsl_tiles(m, k);
				int32_t *mo = malloc((size_t)(T + 2) * 4);
				uint64_t mn;
				uint32_t *mv = model_encode(w, m, k, reorder, mo, &mn);
				int ok = a.n_entries == mn && b.n_entries == mn &&
					 !memcmp(a.values, mv, mn * 4) && !memcmp(b.values, mv, mn * 4) &&
					 !memcmp(a.offsets, mo, (size_t)(T + 2) * 4) && !memcmp(b.offsets, mo, (size_t)(T + 2) * 4);
				CHECK_OK(fpk_tcsl_validate(&a, "w", a.nnz));
				CHECK_OK(fpk_tcsl_decode(&a, back));
				for (int64_t i = 0; i < m * k; i++) {
					uint16_t want = (w[i] & 0x7fff) ? w[i] : 0;
					uint16_t got = (back[i] & 0x7fff) ? back[i] : 0;
					ok &= want == got;
					if (reorder)
						ok &= back[i] == want; /* reordered pads are +0.0: exact */
				}
				if (!ok) {
					fails++;
					fprintf(stderr, "  mismatch: %lldx%lld density %.3f reorder %d\n", (long long)m, (long long)k,
						dens[di], reorder);
				}
				cases++;
				free(mv);
				free(mo);
				fpk_tcsl_release(&a);
				fpk_tcsl_release(&b);
				free(w);
				free(back);
			}
	CHECK_EQ_INT(fails, 0);
	CHECK(cases > 200);
}

static void tcsl_should_reject_nan_unless_allowed(void)
{
	uint16_t *w = zeros(130, 70);
	w[129 * 70 + 66] = 0x7e00;
	w[5] = 0x3c00;
	fpk_tcsl t;
	CHECK_ERR(fpk_tcsl_encode(&t, w, 130, 70, FPK_F16, 1, 0, 2), FPK_EFORMAT, "NaN at [129, 66]");
	CHECK(t.values == NULL && t.offsets == NULL);
	w[129 * 70 + 66] = 0x7fc1; /* a bf16 NaN; as f16 it is also NaN */
	CHECK_ERR(fpk_tcsl_encode(&t, w, 130, 70, FPK_BF16, 1, 0, 1), FPK_EFORMAT, "index 9096");
	w[129 * 70 + 66] = 0x7c00; /* f16 +inf is not NaN */
	CHECK_OK(fpk_tcsl_encode(&t, w, 130, 70, FPK_F16, 1, 0, 1));
	fpk_tcsl_release(&t);
	w[129 * 70 + 66] = 0;
	w[3 * 70 + 10] = 0xfc01; /* a NaN in a full-width tile (SSE path) */
	CHECK_ERR(fpk_tcsl_encode(&t, w, 130, 70, FPK_F16, 0, 0, 1), FPK_EFORMAT, "NaN at [3, 10]");
	w[3 * 70 + 10] = 0;
	w[129 * 70 + 66] = 0xfe00;
	CHECK_OK(fpk_tcsl_encode(&t, w, 130, 70, FPK_F16, 1, 1, 1));
	CHECK_EQ_INT(t.nnz, 2);
	uint16_t *back = zeros(130, 70);
	CHECK_OK(fpk_tcsl_decode(&t, back));
	CHECK(!memcmp(back, w, 130 * 70 * 2));
	fpk_tcsl_release(&t);
	free(back);
	free(w);
}

static void tcsl_should_reject_bad_arguments(void)
{
	uint16_t w[4] = {1, 2, 3, 4};
	fpk_tcsl t;
	CHECK_ERR(fpk_tcsl_encode(&t, w, 2, 2, FPK_F32, 1, 0, 1), FPK_EFORMAT, "expected F16 or BF16");
	CHECK_ERR(fpk_tcsl_encode(&t, w, 0, 2, FPK_F16, 1, 0, 1), FPK_EFORMAT, "expected both dims >= 1");
}

/* validation rules on arrays: one poke each */
static void tcsl_validate_should_name_each_rule(void)
{
	uint16_t *w = zeros(200, 100);
	uint64_t s = 7;
	random_matrix(w, 200, 100, 0.3, FPK_F16, &s);
	fpk_tcsl t;
	CHECK_OK(fpk_tcsl_encode(&t, w, 200, 100, FPK_F16, 1, 0, 1));
	CHECK_OK(fpk_tcsl_validate(&t, "w", t.nnz));
	int32_t o1 = t.offsets[1], o0 = t.offsets[0], oT = t.offsets[5];
	t.offsets[0] = 1;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", t.nnz), FPK_EFORMAT, "(rule R7)");
	t.offsets[0] = o0;
	t.offsets[1] = t.offsets[2] + 1;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", t.nnz), FPK_EFORMAT, "(rule R8)");
	t.offsets[1] = o1;
	t.offsets[5] = oT + 1;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", t.nnz), FPK_EFORMAT, "(rule R9)");
	t.offsets[5] = oT;
	t.n_entries -= 4;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", t.nnz), FPK_EFORMAT, "(rule R10)");
	t.n_entries += 4;
	uint32_t v0 = t.values[0], v1 = t.values[1];
	t.values[0] = (v0 & 0xffff) | 8192u << 16;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", t.nnz), FPK_EFORMAT, "(rule R11)");
	t.values[0] = (v0 & 0xffff) | (v1 & 0xffff0000u);
	CHECK_ERR(fpk_tcsl_validate(&t, "w", t.nnz), FPK_EFORMAT, "(rule R12)");
	t.values[0] = v0;
	/* four zero entries in tile 0 */
	uint32_t keep[4];
	for (int i = 0; i < 4; i++) {
		keep[i] = t.values[i];
		t.values[i] &= 0xffff0000u;
	}
	CHECK_ERR(fpk_tcsl_validate(&t, "w", UINT64_MAX), FPK_EFORMAT, "at most 3 pads (rule R13)");
	for (int i = 0; i < 4; i++)
		t.values[i] = keep[i];
	t.values[0] = (v0 & 0xffff0000u) | 0x8000u;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", UINT64_MAX), FPK_EFORMAT, "expected +0.0 (rule R13)");
	t.values[0] = v0;
	/* a non-zero in tile 3 at row 199 + 1: tile 3 covers rows 128..255, cols 64..127; loc row 127 is outside */
	int64_t a = (int64_t)t.offsets[3] * 4;
	uint32_t keep3 = t.values[a];
	t.values[a] = 0x3c00u | (uint32_t)fpk_tcsl_loc(127, 63) << 16;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", UINT64_MAX), FPK_EFORMAT, "outside the logical shape [200, 100] (rule R14)");
	t.values[a] = keep3;
	CHECK_ERR(fpk_tcsl_validate(&t, "w", t.nnz + 1), FPK_EFORMAT, "(rule R15)");
	CHECK_OK(fpk_tcsl_validate(&t, "w", t.nnz));
	fpk_tcsl_release(&t);
	free(w);
}

int main(void)
{
	RUN(tcsl_should_encode_an_all_zero_tile_as_no_entries);
	RUN(tcsl_should_reorder_a_full_tile_bank_round_robin);
	RUN(tcsl_should_treat_negative_zero_as_zero);
	RUN(tcsl_should_spread_one_entry_per_bank);
	RUN(tcsl_should_break_bank_ties_by_lowest_index);
	RUN(tcsl_should_pad_into_the_emptiest_bank);
	RUN(tcsl_should_pad_shapes_and_write_tile_offsets);
	RUN(tcsl_should_match_the_literal_model_and_round_trip);
	RUN(tcsl_should_reject_nan_unless_allowed);
	RUN(tcsl_should_reject_bad_arguments);
	RUN(tcsl_validate_should_name_each_rule);
	TEST_EXIT();
}
