/* spmm.cu: Y (n x m) = X (n x k) W^T with W (m x k) in Tiled-CSL, "load as sparse, compute as dense" on tensor
 * cores (mma.sync m16n8k16, fp32 accumulation), fp16 and bf16. Test: tests/gpu/test_spmm; bench: bench/bench_spmm.
 *
 * Design (notes and measurements in bench/spmm_notes.md):
 * - Stream-K: the T = tiles_m * tiles_k tiles are numbered row-tile-major, exactly the order of their entries in
 *   memory, so a block's share [t0, t1) of the tiles is ONE contiguous byte range of the values array. The grid
 *   is SMs x occupancy blocks per 64-token chunk (split chosen from the device, no per-shape table); each block
 *   gets an equal count of tiles, crossing row-tile boundaries where it must.
 * - Each block streams its byte range through a ring of 16-byte vectors with cp.async, in chunks of VPT vectors
 *   per thread (4 at N <= 32, 2 at N = 64; each thread copies and later reads only its own vectors, so the ring
 *   needs no barrier). The ring holds 32 KB (16 KB at N = 64) in two chunks: while one is scattered the other,
 *   16 KB (8 KB), is in flight, whatever the sparsity.
 * - Entries are scattered with 16-bit shared stores into dense XOR-swizzled 128x64 tiles exactly at loc
 *   (loc = r*64 + (c ^ ((r&7)*8))). Tiles go in units of two consecutive k-tiles of one row tile (SPMM_UNIT;
 *   one at a row-tile or share end), each unit in one of two slots of 2 dense tiles: when a unit's last vector
 *   is scattered, its X slices are stored, ONE barrier, then warps 0-3 multiply the first k-tile and warps 4-7
 *   the second (32 rows each, ldmatrix + mma) and zero their rows for the unit after next; the two halves'
 *   sums are added through shared memory when a row-tile segment is flushed. X of the next unit is loaded
 *   into registers during the multiply. N = 64: every warp multiplies both k-tiles (16 rows each).
 * - Row tiles owned whole by a block are written directly; partial ones are reduced in fp32: atomicAdd into
 *   the fp32 workspace, then a per-row-tile tile counter; the block that completes the count converts the sums
 *   to the output type, and puts zeros back into the workspace and the counter (the workspace stays zero).
 * - Programmatic dependent launch (fpk_pdl.cuh, sm_90): a block loads its offsets, fills its ring and zeroes its
 *   slots before fpk_pdl_wait, i.e. while the previous kernel of the stream finishes; FPK_PDL=0 turns it off.
 * - Reads: values only within [offsets clamped to n_vectors), loc masked to 0..8191, X only inside n x k. */
#include "spmm.h"
#include "fpk_cuda.h"
#include "fpk_pdl.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#define TM 128
#define TK 64
#define THREADS 256                /* 8 warps, 16 rows of the 128-row tile each */
#define MF (TM / 16 / (THREADS / 32)) /* 16-row mma fragments per warp */
#define RING_BYTES 32768           /* ring bytes per block (16 KB at N = 64, to keep 2 blocks/SM) */

struct spmm_args {
	const uint4 *vec;     /* entries as 16-byte vectors */
	const int *off;       /* tile offsets (vectors) */
	int nvec;             /* offsets are clamped to this */
	int m, k, n;
	int tiles_m, tiles_k;
	int T;
	int nblk;             /* blocks per token chunk (gridDim.x) */
	int xvec;             /* 1: X rows are 16-byte aligned (k % 8 == 0), vector loads */
	const uint16_t *x;
	uint16_t *y;
	float *ws;            /* n x m_pad fp32 partials */
	unsigned *cnt;        /* chunks x tiles_m counters */
	int mpad;
	unsigned long long policy_dummy;
};

static __device__ __forceinline__ unsigned smem_u32(const void *p)
{
	return (unsigned)__cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void cp_async16(void *dst, const void *src, unsigned long long pol)
{
	asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
		     "l"(pol));
}
static __device__ __forceinline__ void cp_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> static __device__ __forceinline__ void cp_wait(void)
{
	asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); /* ring reads stay after it */
}

template <int BF> static __device__ __forceinline__ void mma16816(float *c, const unsigned *a, const unsigned *b)
{
	if (BF)
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
			     "{%8,%9}, {%0,%1,%2,%3};\n"
			     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
	else
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
			     "{%8,%9}, {%0,%1,%2,%3};\n"
			     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <int BF> static __device__ __forceinline__ uint16_t f32_to_out(float v)
{
	if (BF) {
		__nv_bfloat16 h = __float2bfloat16_rn(v);
		return *(uint16_t *)&h;
	}
	__half h = __float2half_rn(v);
	return *(uint16_t *)&h;
}

static __device__ __forceinline__ int clampv(int v, int nvec) { return v < 0 ? 0 : (v > nvec ? nvec : v); }

/* X slice of column tile j, tokens nb..nb+NT-1: NT x 64 values as NT*8 vectors, XR per thread */
template <int NT> struct xstage {
	static constexpr int NV = NT * 8;
	static constexpr int XR = NV >= THREADS ? NV / THREADS : 1;
	uint4 r[XR];
};

template <int NT>
static __device__ __forceinline__ void x_load(xstage<NT> &s, const spmm_args &a, int nb, int j, int tid)
{
#pragma unroll
	for (int q = 0; q < xstage<NT>::XR; q++) {
		int idx = q * THREADS + tid;
		uint4 v = make_uint4(0, 0, 0, 0);
		if (idx < xstage<NT>::NV) {
			int nn = idx >> 3, n = nb + nn, kk = j * TK + (idx & 7) * 8;
			if (n < a.n && kk < a.k) {
				const uint16_t *src = a.x + (size_t)n * a.k + kk;
				if (a.xvec) {
					v = __ldg((const uint4 *)src);
				} else {
					uint16_t e[8];
#pragma unroll
					for (int u = 0; u < 8; u++)
						e[u] = kk + u < a.k ? __ldg(src + u) : (uint16_t)0;
					v.x = e[0] | (unsigned)e[1] << 16;
					v.y = e[2] | (unsigned)e[3] << 16;
					v.z = e[4] | (unsigned)e[5] << 16;
					v.w = e[6] | (unsigned)e[7] << 16;
				}
			}
		}
		s.r[q] = v;
	}
}

template <int NT> static __device__ __forceinline__ void x_store(const xstage<NT> &s, uint16_t *xb, int tid)
{
#pragma unroll
	for (int q = 0; q < xstage<NT>::XR; q++) {
		int idx = q * THREADS + tid;
		if (idx < xstage<NT>::NV) {
			int nn = idx >> 3, ch = idx & 7;
			*(uint4 *)(xb + nn * TK + ((ch ^ (nn & 7)) * 8)) = s.r[q];
		}
	}
}

static __device__ __forceinline__ void scatter4(uint16_t *dense, uint4 v)
{
	dense[(v.x >> 16) & 8191u] = (uint16_t)v.x;
	dense[(v.y >> 16) & 8191u] = (uint16_t)v.y;
	dense[(v.z >> 16) & 8191u] = (uint16_t)v.z;
	dense[(v.w >> 16) & 8191u] = (uint16_t)v.w;
}

#ifndef SPMM_UNIT
#define SPMM_UNIT 2 /* k-tiles per unit: one barrier and one bookkeeping step per unit (bench/spmm_notes.md v4) */
#endif
static constexpr int ring_bytes(int nt) { return (nt <= 32 || SPMM_UNIT == 1) ? RING_BYTES : RING_BYTES / 2; }
template <int NT> struct kcfg {
	static constexpr int U = SPMM_UNIT;
	/* ring vectors per thread per chunk: fewer, larger chunks cut the chunk loop's per-iteration work (v7 in
	 * bench/spmm_notes.md); 4 spills registers at NT = 64 */
	static constexpr int VPT = NT <= 32 ? 4 : 2;
	static constexpr int CHUNK_V = THREADS * VPT; /* vectors per chunk */
	static constexpr int RINGN = ring_bytes(NT) / 16 / CHUNK_V; /* chunks in the ring */
	static_assert(RINGN >= 2 && RINGN * CHUNK_V * 16 == ring_bytes(NT), "ring: whole chunks, one in flight");
	static constexpr int MINB = U == 1 ? (NT <= 32 ? 3 : 2) : 2;
};

template <int BF, int NT>
__global__ void __launch_bounds__(THREADS, kcfg<NT>::MINB) spmm_kernel(const spmm_args a)
{
	constexpr int NF = NT / 8;
	constexpr int U = kcfg<NT>::U;
	constexpr int RN = kcfg<NT>::RINGN, VPT = kcfg<NT>::VPT, CHUNK_V = kcfg<NT>::CHUNK_V;
	/* KS: warps 0-3 multiply the unit's first tile, warps 4-7 its second (32 rows each), so each X slice is
	 * read by 4 warps instead of 8; the two halves' sums are added through shared memory at a flush */
	constexpr bool KS = U == 2 && NT <= 32; /* NT = 64: 2 x 64 accumulators would spill */
	constexpr int MW = KS ? 2 : MF; /* 16-row fragments per warp */
	extern __shared__ __align__(16) unsigned char smem[];
	uint4 *ring = (uint4 *)smem;
	uint16_t *dense = (uint16_t *)(smem + RN * CHUNK_V * 16); /* 2 slots x U tiles of 128 x 64 */
	uint16_t *xb = dense + 2 * U * TM * TK;                     /* 2 slots x U slices of NT x 64 */
	__shared__ int s_last;

	const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
	const int nb = blockIdx.y * NT;
	const int t0 = (int)((long long)a.T * blockIdx.x / a.nblk);
	const int t1 = (int)((long long)a.T * (blockIdx.x + 1) / a.nblk);
	if (t0 >= t1) {
		fpk_pdl_wait(); /* (cannot happen: nblk <= T) keeps "finished" transitive down the stream */
		return;
	}
	fpk_pdl_trigger(); /* the next kernel's blocks may take SMs as this grid's blocks finish */

	/* before fpk_pdl_wait: only the weights (offsets, entries) and shared memory, so that this runs while the
	 * previous kernel of the stream finishes; X, Y and the workspace only after it */
	unsigned long long pol;
	asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));

	const int v0 = clampv(__ldg(a.off + t0), a.nvec);
	int v1 = clampv(__ldg(a.off + t1), a.nvec);
	if (v1 < v0)
		v1 = v0;
	const int nch = (v1 - v0 + CHUNK_V - 1) / CHUNK_V;

#pragma unroll
	for (int p = 0; p < RN; p++) {
		if (p < nch) {
#pragma unroll
			for (int q = 0; q < VPT; q++) {
				int g = v0 + p * CHUNK_V + q * THREADS + tid;
				if (g < v1)
					cp_async16(ring + p * CHUNK_V + q * THREADS + tid, a.vec + g, pol);
			}
		}
		cp_commit();
	}
	for (int i = tid; i < 2 * U * TM * TK / 8; i += THREADS)
		((uint4 *)dense)[i] = make_uint4(0, 0, 0, 0);
	fpk_pdl_wait();
	__syncthreads();

	float acc[MW][NF][4];
#pragma unroll
	for (int mf = 0; mf < MW; mf++)
#pragma unroll
		for (int f = 0; f < NF; f++)
#pragma unroll
			for (int e = 0; e < 4; e++)
				acc[mf][f][e] = 0.0f;

	/* unit = tiles [t, t + uw), uw = U when the row tile and the share allow, else 1; units never cross a
	 * row tile. Entries: tile t in [us, um), tile t + 1 in [um, ue). */
	int t = t0;
	int jc = t0 % a.tiles_k, ic = t0 / a.tiles_k;
	int seg_j0 = jc;
	int par = 0; /* slot of the current unit */
	int o1 = __ldg(a.off + min(t + 1, t1)), o2 = __ldg(a.off + min(t + 2, t1));
	int o3 = __ldg(a.off + min(t + 3, t1)), o4 = __ldg(a.off + min(t + 4, t1));
	int uw = (U == 2 && t + 1 < t1 && jc + 1 < a.tiles_k) ? 2 : 1;
	int us = v0;
	int um = max(clampv(o1, a.nvec), us);
	int ue = uw == 2 ? max(clampv(o2, a.nvec), um) : um;
	int done = v0;
	const int g8 = lane >> 2, q4 = lane & 3;

	/* X of the current unit, in registers until complete() stores it */
	xstage<NT> xs[U];
	x_load<NT>(xs[0], a, nb, jc, tid);
	if (U == 2 && uw == 2)
		x_load<NT>(xs[U - 1], a, nb, jc + 1, tid);

	const int wrow = KS ? (warp & 3) * 32 : warp * 16 * MF; /* first row of this warp's fragments */
	auto mma_tile = [&](const uint16_t *dt, const uint16_t *xt) {
#pragma unroll
		for (int s = 0; s < 4; s++) {
			unsigned af[MW][4];
#pragma unroll
			for (int mf = 0; mf < MW; mf++) {
				int row = wrow + mf * 16 + (lane & 15), ch = 2 * s + (lane >> 4);
				unsigned addr = smem_u32(dt + row * TK + ((ch ^ (row & 7)) * 8));
				asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
					     : "=r"(af[mf][0]), "=r"(af[mf][1]), "=r"(af[mf][2]), "=r"(af[mf][3])
					     : "r"(addr));
			}
			if (NF == 1) {
				unsigned bf[2];
				int nr = lane & 7, ch = 2 * s + ((lane >> 3) & 1);
				unsigned addr = smem_u32(xt + nr * TK + ((ch ^ (nr & 7)) * 8));
				asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
					     : "=r"(bf[0]), "=r"(bf[1])
					     : "r"(addr));
#pragma unroll
				for (int mf = 0; mf < MW; mf++)
					mma16816<BF>(acc[mf][0], af[mf], bf);
			} else {
#pragma unroll
				for (int f = 0; f < NF; f += 2) {
					unsigned bf[4];
					int nr = (f + (lane >> 4)) * 8 + (lane & 7), ch = 2 * s + ((lane >> 3) & 1);
					unsigned addr = smem_u32(xt + nr * TK + ((ch ^ (nr & 7)) * 8));
					asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
						     : "=r"(bf[0]), "=r"(bf[1]), "=r"(bf[2]), "=r"(bf[3])
						     : "r"(addr));
#pragma unroll
					for (int mf = 0; mf < MW; mf++) {
						mma16816<BF>(acc[mf][f], af[mf], bf);
						mma16816<BF>(acc[mf][f + 1], af[mf], bf + 2);
					}
				}
			}
		}
		__syncwarp();
		uint4 *zr = (uint4 *)(dt + wrow * TK); /* zero this warp's rows for the unit after next */
#pragma unroll
		for (int u = 0; u < 4 * MW; u++)
			zr[u * 32 + lane] = make_uint4(0, 0, 0, 0);
	};

	/* the unit's last vector is scattered: store X, one barrier, multiply, flush a finished segment, advance */
	auto complete = [&]() {
		uint16_t *dt = dense + par * U * TM * TK;
		uint16_t *xt = xb + par * U * NT * TK;
		x_store<NT>(xs[0], xt, tid);
		if (U == 2 && uw == 2)
			x_store<NT>(xs[U - 1], xt + NT * TK, tid);
		__syncthreads();
		/* next unit's geometry and X (loads in flight during this unit's multiply) */
		const int tn = t + uw;
		int jn = jc + uw, in = ic;
		if (jn == a.tiles_k) {
			jn = 0;
			in++;
		}
		const int uwn = (U == 2 && tn + 1 < t1 && jn + 1 < a.tiles_k) ? 2 : 1;
		if (tn < t1) {
			x_load<NT>(xs[0], a, nb, jn, tid);
			if (U == 2 && uwn == 2)
				x_load<NT>(xs[U - 1], a, nb, jn + 1, tid);
		}
		if (KS) {
			const int h = warp >> 2;
			if (h == 0 ? um > us : ue > um)
				mma_tile(dt + h * TM * TK, xt + h * NT * TK);
		} else {
			if (um > us)
				mma_tile(dt, xt);
			if (U == 2 && ue > um)
				mma_tile(dt + TM * TK, xt + NT * TK);
		}
		const int j = jc + uw - 1;
		if (j == a.tiles_k - 1 || t + uw == t1) {
			const int i = ic;
			const int mb = i * TM + wrow;
			if (KS) { /* add warps 4-7's sums to warps 0-3's through this unit's dense slot, then re-zero it */
				constexpr int SW = MW * NF * 4 * 32; /* floats per warp */
				float *scr = (float *)dt;
				__syncthreads();
				if (warp >= 4) {
#pragma unroll
					for (int mf = 0; mf < MW; mf++)
#pragma unroll
						for (int f = 0; f < NF; f++)
#pragma unroll
							for (int e = 0; e < 4; e++)
								scr[(warp & 3) * SW + ((mf * NF + f) * 4 + e) * 32 + lane] = acc[mf][f][e];
				}
				__syncthreads();
				if (warp < 4) {
#pragma unroll
					for (int mf = 0; mf < MW; mf++)
#pragma unroll
						for (int f = 0; f < NF; f++)
#pragma unroll
							for (int e = 0; e < 4; e++)
								acc[mf][f][e] += scr[warp * SW + ((mf * NF + f) * 4 + e) * 32 + lane];
				}
				__syncthreads();
				for (int q = tid; q < 4 * SW / 4; q += THREADS)
					((uint4 *)scr)[q] = make_uint4(0, 0, 0, 0);
			}
			if (seg_j0 == 0 && j == a.tiles_k - 1) {
				if (!KS || warp < 4) { /* KS: warps 4-7 handed their sums to warps 0-3 */
#pragma unroll
					for (int mf = 0; mf < MW; mf++)
#pragma unroll
						for (int f = 0; f < NF; f++)
#pragma unroll
							for (int e = 0; e < 4; e++) {
								int m = mb + mf * 16 + g8 + 8 * (e >> 1), n = nb + f * 8 + 2 * q4 + (e & 1);
								if (m < a.m && n < a.n)
									a.y[(size_t)n * a.m + m] = f32_to_out<BF>(acc[mf][f][e]);
							}
				}
			} else {
				if (!KS || warp < 4) {
#pragma unroll
					for (int mf = 0; mf < MW; mf++)
#pragma unroll
						for (int f = 0; f < NF; f++)
#pragma unroll
							for (int e = 0; e < 4; e++) {
								int m = mb + mf * 16 + g8 + 8 * (e >> 1), n = nb + f * 8 + 2 * q4 + (e & 1);
								if (m < a.m && n < a.n)
									atomicAdd(a.ws + (size_t)n * a.mpad + m, acc[mf][f][e]);
							}
				}
				__threadfence();
				__syncthreads();
				if (tid == 0) {
					unsigned add = (unsigned)(j - seg_j0 + 1);
					unsigned old = atomicAdd(a.cnt + blockIdx.y * a.tiles_m + i, add);
					s_last = old + add == (unsigned)a.tiles_k;
				}
				__syncthreads();
				if (s_last) {
					__threadfence();
					for (int idx = tid; idx < NT * TM; idx += THREADS) {
						int m = i * TM + (idx & (TM - 1)), n = nb + idx / TM;
						if (m < a.m && n < a.n) {
							float *p = a.ws + (size_t)n * a.mpad + m;
							a.y[(size_t)n * a.m + m] = f32_to_out<BF>(__ldcg(p));
							__stcg(p, 0.0f);
						}
					}
					if (tid == 0)
						a.cnt[blockIdx.y * a.tiles_m + i] = 0;
				}
			}
#pragma unroll
			for (int mf = 0; mf < MW; mf++)
#pragma unroll
				for (int f = 0; f < NF; f++)
#pragma unroll
					for (int e = 0; e < 4; e++)
						acc[mf][f][e] = 0.0f;
			seg_j0 = 0;
		}
		/* advance to the next unit: o1, o2 from registers; o3, o4 always loaded fresh (for uw == 1 that reloads
		 * the old o4), so that no move has to wait for a load here: their first use is the next unit's advance */
		o1 = uw == 2 ? o3 : o2;
		o2 = uw == 2 ? o4 : o3;
		o3 = __ldg(a.off + min(tn + 3, t1));
		o4 = __ldg(a.off + min(tn + 4, t1));
		t = tn;
		jc = jn;
		ic = in;
		uw = uwn;
		par ^= 1;
		us = ue;
		if (t < t1) {
			um = max(clampv(o1, a.nvec), us);
			ue = uw == 2 ? max(clampv(o2, a.nvec), um) : um;
		} else {
			um = ue = 0x7fffffff;
		}
	};

	for (int c = 0; c < nch; c++) {
		cp_wait<RN - 1>();
		const int cv0 = v0 + c * CHUNK_V, cv1 = min(cv0 + CHUNK_V, v1);
		int g[VPT];
		uint4 w[VPT];
#pragma unroll
		for (int q = 0; q < VPT; q++) {
			g[q] = cv0 + q * THREADS + tid;
			w[q] = g[q] < cv1 ? ring[(c % RN) * CHUNK_V + q * THREADS + tid] : make_uint4(0, 0, 0, 0);
		}
		for (;;) {
			const int lim = min(ue, cv1);
#pragma unroll
			for (int q = 0; q < VPT; q++)
				if (g[q] >= done && g[q] < lim)
					scatter4(dense + (par * U + (U == 2 && g[q] >= um ? 1 : 0)) * TM * TK, w[q]);
			done = lim;
			if (t < t1 && ue <= cv1)
				complete();
			else
				break;
		}
		const int cn = c + RN;
		if (cn < nch) {
#pragma unroll
			for (int q = 0; q < VPT; q++) {
				int gn = v0 + cn * CHUNK_V + q * THREADS + tid;
				if (gn < v1)
					cp_async16(ring + (cn % RN) * CHUNK_V + q * THREADS + tid, a.vec + gn, pol);
			}
		}
		cp_commit();
	}
	while (t < t1) /* trailing tiles without entries */
		complete();
	cp_wait<0>();
}

/* ---- host side ------------------------------------------------------------------------------------------ */

static int tok_tile(int64_t n) { return n <= 8 ? 8 : n <= 16 ? 16 : n <= 32 ? 32 : 64; }

static size_t smem_bytes(int nt)
{
	return (size_t)ring_bytes(nt) + 2 * (size_t)SPMM_UNIT * TM * TK * 2 + 2 * (size_t)SPMM_UNIT * nt * TK * 2;
}

static size_t align256(size_t v) { return (v + 255) & ~(size_t)255; }

extern "C" size_t fpk_spmm_workspace_size(int64_t m, int64_t n)
{
	int64_t mpad = (m + TM - 1) / TM * TM, tiles_m = mpad / TM;
	int64_t nt = tok_tile(n), chunks = (n + nt - 1) / nt;
	return align256((size_t)n * (size_t)mpad * 4) + (size_t)chunks * (size_t)tiles_m * 4;
}

extern "C" int fpk_spmm_workspace_alloc(void **ws, size_t size)
{
	*ws = NULL;
	FPK_CUDA_TRY(cudaMalloc(ws, size ? size : 256));
	FPK_CUDA_TRY(cudaMemset(*ws, 0, size ? size : 256));
	return 0;
}

extern "C" void fpk_spmm_workspace_free(void *ws) { cudaFree(ws); }

extern "C" int fpk_spmm_upload(fpk_spmm_weights *d, const fpk_tcsl *t)
{
	int rc = 0;
	int64_t T = t->tiles_m * t->tiles_k;
	void *vals = NULL, *offs = NULL;
	memset(d, 0, sizeof(*d));
	if (t->n_entries / 4 > 0x7fffffffull || T > 0x7fffffffll)
		return fpk_error_set(FPK_EUSAGE, "matrix too large for the spmm kernel (%llu entries)",
				     (unsigned long long)t->n_entries);
	FPK_CUDA_GOTO(cudaMalloc(&vals, t->n_entries ? t->n_entries * 4 : 16), rc, done);
	FPK_CUDA_GOTO(cudaMalloc(&offs, (size_t)(T + 3) * 4), rc, done);
	if (t->n_entries)
		FPK_CUDA_GOTO(cudaMemcpy(vals, t->values, t->n_entries * 4, cudaMemcpyHostToDevice), rc, done);
	FPK_CUDA_GOTO(cudaMemcpy(offs, t->offsets, (size_t)(T + 2) * 4, cudaMemcpyHostToDevice), rc, done);
	FPK_CUDA_GOTO(cudaMemcpy((int32_t *)offs + T + 2, t->offsets + T + 1, 4, cudaMemcpyHostToDevice), rc, done);
	d->values = (const uint32_t *)vals;
	d->offsets = (const int32_t *)offs;
	d->m = t->m;
	d->k = t->k;
	d->tiles_m = t->tiles_m;
	d->tiles_k = t->tiles_k;
	d->n_vectors = t->n_entries / 4;
	d->dtype = t->dtype;
	d->owned = 1;
	vals = offs = NULL;
done:
	cudaFree(vals);
	cudaFree(offs);
	return rc;
}

extern "C" void fpk_spmm_weights_free(fpk_spmm_weights *d)
{
	if (d && d->owned) {
		cudaFree((void *)d->values);
		cudaFree((void *)d->offsets);
	}
	if (d)
		memset(d, 0, sizeof(*d));
}

template <int BF, int NT> static int launch(const spmm_args &a0, const fpk_spmm_params *p, int chunks)
{
	static int occ_cache[2] = {0, 0}; /* [device 0 only cached; others recomputed] */
	spmm_args a = a0;
	int dev = 0, sms = 0, occ = 0;
	size_t sm = smem_bytes(NT);
	FPK_CUDA_TRY(cudaGetDevice(&dev));
	FPK_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
	FPK_CUDA_TRY(cudaFuncSetAttribute(spmm_kernel<BF, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
	if (dev == 0 && occ_cache[0])
		occ = occ_cache[0];
	else {
		FPK_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, spmm_kernel<BF, NT>, THREADS, sm));
		if (dev == 0)
			occ_cache[0] = occ;
	}
	if (occ < 1)
		occ = 1;
	int nblk = p->blocks > 0 ? p->blocks : (sms * occ) / chunks;
	if (nblk < 1)
		nblk = 1;
	if (nblk > a.T)
		nblk = a.T;
	a.nblk = nblk;
	dim3 grid((unsigned)nblk, (unsigned)chunks);
	FPK_CUDA_TRY(fpk_launch_pdl(spmm_kernel<BF, NT>, grid, dim3(THREADS), sm, (cudaStream_t)p->stream,
				    fpk_pdl_enabled(), a));
	return 0;
}

extern "C" int fpk_spmm_run(const fpk_spmm_params *p)
{
	const fpk_spmm_weights *w = p ? p->w : NULL;
	if (!p || !w || !p->x || !p->y || p->n < 1)
		return fpk_error_set(FPK_EUSAGE, "spmm: missing matrix, x, y or n < 1");
	if (w->dtype != FPK_F16 && w->dtype != FPK_BF16)
		return fpk_error_set(FPK_EUSAGE, "spmm: dtype must be F16 or BF16");
	if (w->m < 1 || w->k < 1 || w->m > 0x7fffffffll || w->k > 0x7fffffffll || p->n > 0x7fffffffll ||
	    w->tiles_m * TM < w->m || w->tiles_k * TK < w->k)
		return fpk_error_set(FPK_EUSAGE, "spmm: bad shape %lld x %lld (tiles %lld x %lld)", (long long)w->m,
				     (long long)w->k, (long long)w->tiles_m, (long long)w->tiles_k);
	if (!p->workspace || p->workspace_size < fpk_spmm_workspace_size(w->m, p->n))
		return fpk_error_set(FPK_EUSAGE, "spmm: workspace of %zu bytes is smaller than the %zu needed",
				     p->workspace_size, fpk_spmm_workspace_size(w->m, p->n));
	int nt = tok_tile(p->n);
	int chunks = (int)((p->n + nt - 1) / nt);
	spmm_args a;
	memset(&a, 0, sizeof(a));
	a.vec = (const uint4 *)w->values;
	a.off = w->offsets;
	a.nvec = (int)w->n_vectors;
	a.m = (int)w->m;
	a.k = (int)w->k;
	a.n = (int)p->n;
	a.tiles_m = (int)w->tiles_m;
	a.tiles_k = (int)w->tiles_k;
	a.T = (int)(w->tiles_m * w->tiles_k);
	a.xvec = (w->k % 8 == 0) && ((uintptr_t)p->x % 16 == 0);
	a.x = (const uint16_t *)p->x;
	a.y = (uint16_t *)p->y;
	a.mpad = (int)(w->tiles_m * TM);
	a.ws = (float *)p->workspace;
	a.cnt = (unsigned *)((char *)p->workspace + align256((size_t)p->n * (size_t)a.mpad * 4));
	int bf = w->dtype == FPK_BF16;
	switch (nt * 2 + bf) {
	case 16: return launch<0, 8>(a, p, chunks);
	case 17: return launch<1, 8>(a, p, chunks);
	case 32: return launch<0, 16>(a, p, chunks);
	case 33: return launch<1, 16>(a, p, chunks);
	case 64: return launch<0, 32>(a, p, chunks);
	case 65: return launch<1, 32>(a, p, chunks);
	case 128: return launch<0, 64>(a, p, chunks);
	default: return launch<1, 64>(a, p, chunks);
	}
}

/* ---- dense cuBLAS reference/baseline -------------------------------------------------------------------- */

extern "C" int fpk_dense_handle(void **handle)
{
	cublasHandle_t h = NULL;
	cublasStatus_t s = cublasCreate(&h);
	if (s != CUBLAS_STATUS_SUCCESS)
		return fpk_error_set(FPK_EGPU, "cublasCreate failed (status %d)", (int)s);
	*handle = h;
	return 0;
}

extern "C" void fpk_dense_handle_free(void *handle)
{
	if (handle)
		cublasDestroy((cublasHandle_t)handle);
}

static cudaDataType_t cuda_type(fpk_dtype d)
{
	return d == FPK_BF16 ? CUDA_R_16BF : d == FPK_F32 ? CUDA_R_32F : CUDA_R_16F;
}

extern "C" int fpk_dense_gemm(void *handle, fpk_dtype in, fpk_dtype out, const void *w, const void *x, void *y,
			      int64_t m, int64_t k, int64_t n, void *stream)
{
	cublasHandle_t h = (cublasHandle_t)handle;
	float alpha = 1.0f, beta = 0.0f;
	cublasStatus_t s = cublasSetStream(h, (cudaStream_t)stream);
	if (s == CUBLAS_STATUS_SUCCESS)
		/* column-major view: Y^T (m x n, ld m) = W^T^T ... i.e. op(A) = W (A = W^T col-major k x m, transposed) */
		s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &alpha, w, cuda_type(in), (int)k, x,
				 cuda_type(in), (int)k, &beta, y, cuda_type(out), (int)m, CUBLAS_COMPUTE_32F,
				 CUBLAS_GEMM_DEFAULT);
	if (s != CUBLAS_STATUS_SUCCESS)
		return fpk_error_set(FPK_EGPU, "cublasGemmEx %lld x %lld x %lld failed (status %d)", (long long)m,
				     (long long)k, (long long)n, (int)s);
	return 0;
}
