/* ds_attention.cu: Double Sparsity decode attention (label build, approximate scores + histogram, exact radix
 * top-k, split-KV sparse attention) and the dense flash-decoding kernel it falls back to. Layouts: ds_attention.h.
 * Test: ctest -L gpu (tests/gpu/test_ds_attention.c, against kernels/ds_attention_ref.c); bench: build/bench/bench_ds.
 *
 * One decode step (fpk_ds_decode) is four launches, or two (docs/double-sparsity.md has the details):
 *   1. ds_score:  grid (chunks, U). Scores s[t] = sum_j qs[j] * label[t][j] (fmaf, j ascending: bit-exact with the
 *                 C twin) into ws->scores (U, lcap) and a 4096-bin histogram of the top 12 bits of the
 *                 order-preserving key into ws->hist (U, 4096). The last block of a unit to finish (a per-unit
 *                 count) scans the complete histogram for the bin b* holding the k-th largest key.
 *   2. ds_filter: grid (chunks, U). Each chunk keeps its tokens with bin >= b* (ascending) with their keys.
 *   3. ds_select: grid (U), 512 threads. Gathers the chunk lists into one ordered list; two 10-bit radix passes
 *                 over the b* entries give the exact k-th key T and the number m of ties at T to take (lower index
 *                 wins); an ordered pass writes the k indices ascending. Zeroes its histogram.
 *   4. attention: grid (splits, units); each block runs flash-decoding over its share of the unit's token list
 *                 (the selection, or 0..len-1), for all query heads of one kv head at once (K/V rows read once
 *                 per group); the last block of a unit to finish merges the splits (max-rescaled).
 * On sm_90, where all units' clusters can be resident at once, launches 1-3 are one (ds_scsel_kernel: one thread-block
 * cluster per unit, the keys kept in shared memory, two cluster exchanges; see its comment and cs_plan).
 * Launches 2-4 use programmatic dependent launch (griddepcontrol.wait at entry; FPK_DS_PDL=0, or FPK_PDL=0 which
 * turns off every PDL launch of the library, launches them plainly), and so does the dense decode attention.
 */
#include "ds_attention.h"
#include "ds_attention_ref.h"
#include "fpk_common.h"
#include "fpk_pdl.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

namespace cg = cooperative_groups;

#define FPK_CU(stmt)                                                                                         \
	do {                                                                                                     \
		cudaError_t e_ = (stmt);                                                                             \
		if (e_ != cudaSuccess)                                                                               \
			return fpk_error_set(FPK_EGPU, "cuda: '%s' failed at %s:%d: %s", #stmt, __FILE__, __LINE__,      \
					     cudaGetErrorString(e_));                                                    \
	} while (0)

enum { HIST_BINS = 4096, NSPLIT_MAX = 128, SEL_THREADS = 512, ATT_THREADS = 128, ATT_UNROLL = 4 };
/* tuning of the selection path, each value measured against its neighbours with bench_ds (docs/BENCHMARKS.md,
 * "double sparsity", runs 10-17): score blocks per SM the score chunks aim at, tokens per thread and step of the
 * score loop, the filter's largest chunk (one 256 x 16 tile per block), filter blocks per SM asked of the compiler
 * (a 64-register cap), candidate-list entries the resolve keeps in shared memory (8 B each) */
enum { SCORE_WAVE = 8, SCORE_TOK = 2, FILT_CHUNK = 4096, FILT_MINB = 4, SEL_LIST = 6144 };

struct fpk_ds_workspace {
	fpk_ds_shape shape;
	int kcap, lcap, sms;
	int cc_major;      /* the device's compute capability (the fused score + select needs 9 or later) */
	int csfit[5];      /* clusters of 1, 2, 4, 8, 16 blocks of the fused kernel that can be resident at once */
	float *scores;     /* (B*H, lcap) */
	uint32_t *hist;    /* (B*H, 4096), zero between calls */
	uint32_t *ckey;    /* (B*H, lcap) candidate keys */
	int32_t *cidx;     /* (B*H, lcap) candidate tokens */
	uint32_t *fkey;    /* (B*H, lcap) per-chunk candidate lists of the filter */
	int32_t *fidx;
	int32_t *ccnt;     /* (B*H, MAX_CHUNKS) candidates per chunk */
	int32_t *bsel;     /* (B*H, 2) b* and the count above it (the unit's last score block) */
	unsigned *scnt;    /* (B*H) score blocks finished per unit, zero between calls */
	unsigned *fault;   /* (1) selections whose size was not k_b (fpk_ds_workspace_faults) */
	int32_t *idx;      /* (B*H, kcap) selection */
	int32_t *nsel;     /* (B*H) */
	float *part;       /* (B*H*NSPLIT_MAX, d+2) split partials */
	unsigned *counter; /* (B*H) finished splits per unit, zero between calls */
};

/* ---- small device helpers ---- */

__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float u16_to_f(uint16_t x, int bf16)
{
	return bf16 ? __bfloat162float(__ushort_as_bfloat16(x)) : __half2float(__ushort_as_half(x));
}

template <typename T> __device__ __forceinline__ void unpack8(const uint4 &u, float f[8]);
template <> __device__ __forceinline__ void unpack8<__half>(const uint4 &u, float f[8])
{
	const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		float2 x = __half22float2(h[i]);
		f[2 * i] = x.x;
		f[2 * i + 1] = x.y;
	}
}
template <> __device__ __forceinline__ void unpack8<__nv_bfloat16>(const uint4 &u, float f[8])
{
	const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		float2 x = __bfloat1622float2(h[i]);
		f[2 * i] = x.x;
		f[2 * i + 1] = x.y;
	}
}

__device__ __forceinline__ uint32_t dkey(float f)
{
	uint32_t u = __float_as_uint(f);
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* same rule as fpk_ds_seq_topk */
__device__ __forceinline__ int seq_topk(int len, int topk, int topk_div, int dense_below)
{
	long long k = topk > 0 ? topk : (topk_div > 0 ? ((long long)len + topk_div - 1) / topk_div : len);
	if (k < 1)
		k = 1;
	return (len < dense_below || k >= len) ? 0 : (int)k;
}

/* exclusive scan over the block (blockDim.x a multiple of 32, at most 1024); sh: 32 ints */
__device__ __forceinline__ int block_scan(int v, int *total, int *sh)
{
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	int x = v;
#pragma unroll
	for (int o = 1; o < 32; o <<= 1) {
		int y = __shfl_up_sync(0xffffffffu, x, o);
		if (lane >= o)
			x += y;
	}
	if (lane == 31)
		sh[w] = x;
	__syncthreads();
	if (w == 0) {
		int s = lane < nw ? sh[lane] : 0;
#pragma unroll
		for (int o = 1; o < 32; o <<= 1) {
			int y = __shfl_up_sync(0xffffffffu, s, o);
			if (lane >= o)
				s += y;
		}
		sh[lane] = s;
	}
	__syncthreads();
	int pre = (w ? sh[w - 1] : 0) + x - v;
	*total = sh[nw - 1];
	__syncthreads();
	return pre;
}

/* the bin holding the nd-th largest key, from a descending scan over the block: thread t holds the counts c[0..R)
 * of bins top - R*t - i. Leaves sc[32] = the bin, sc[33] = nd's rank within it, sc[34] = the count above it,
 * sc[35] = the count in it (bin 0, rank nd when the counts total less than nd: lens over max_len) */
template <int RMAX> __device__ __forceinline__ void find_bin(const int (&c)[RMAX], int R, int top, int nd, int *sc)
{
	int sum = 0;
#pragma unroll
	for (int i = 0; i < RMAX; i++)
		sum += i < R ? c[i] : 0;
	int total;
	int before = block_scan(sum, &total, sc);
	if (threadIdx.x == 0)
		sc[32] = 0, sc[33] = nd, sc[34] = 0, sc[35] = 0;
	__syncthreads();
#pragma unroll
	for (int i = 0; i < RMAX; i++) {
		if (i < R && before < nd && nd <= before + c[i])
			sc[32] = top - R * (int)threadIdx.x - i, sc[33] = nd - before, sc[34] = before, sc[35] = c[i];
		before += i < R ? c[i] : 0;
	}
	__syncthreads();
}

/* ---- 1. label build ---- */

__global__ void ds_label_kernel(const uint16_t *__restrict__ k, const int32_t *__restrict__ lens,
				const int32_t *__restrict__ from, const int32_t *__restrict__ ch, uint8_t *__restrict__ labels,
				uint16_t *__restrict__ scales, int Hkv, int LH, int G, int per_head, int Lmax, int d, int r,
				int rb)
{
	__shared__ int sch[256];
	int bl = blockIdx.y, b = bl / LH, lh = bl % LH;
	for (int j = threadIdx.x; j < r; j += blockDim.x)
		sch[j] = ch[(size_t)lh * r + j];
	__syncthreads();
	int t = blockIdx.x * blockDim.x + threadIdx.x;
	int t0 = from ? from[b] : 0;
	if (t < t0 || t >= lens[b])
		return;
	int kvh = per_head ? lh / G : lh;
	const uint16_t *krow = k + (((size_t)b * Hkv + kvh) * Lmax + t) * d;
	size_t lrow = ((size_t)b * LH + lh) * Lmax + t;
	uint8_t *row = labels + lrow * rb;
	{
		for (int j = 0; j < rb / 2; j++) {
			uint16_t v = j < r ? krow[sch[j]] : 0;
			reinterpret_cast<uint16_t *>(row)[j] = v;
		}
	}
}

/* quantized labels: fp16 scale rounded up from max|x|/qmax, q = rint(x/scale), as fpk_ds_ref_quantize */
template <int FMT>
__global__ void ds_label_q_kernel(const uint16_t *__restrict__ k, const int32_t *__restrict__ lens,
				  const int32_t *__restrict__ from, const int32_t *__restrict__ ch,
				  uint8_t *__restrict__ labels, uint16_t *__restrict__ scales, int Hkv, int LH, int G,
				  int per_head, int Lmax, int d, int r, int rb, int bf16)
{
	__shared__ int sch[256];
	int bl = blockIdx.y, b = bl / LH, lh = bl % LH;
	for (int j = threadIdx.x; j < r; j += blockDim.x)
		sch[j] = ch[(size_t)lh * r + j];
	__syncthreads();
	int t = blockIdx.x * blockDim.x + threadIdx.x;
	int t0 = from ? from[b] : 0;
	if (t < t0 || t >= lens[b])
		return;
	int kvh = per_head ? lh / G : lh;
	const uint16_t *krow = k + (((size_t)b * Hkv + kvh) * Lmax + t) * d;
	size_t lrow = ((size_t)b * LH + lh) * Lmax + t;
	uint32_t *row = reinterpret_cast<uint32_t *>(labels + lrow * rb);
	const int qmax = FMT == FPK_DS_LABEL_Q8 ? 127 : 7;
	float amax = 0.0f;
	for (int j = 0; j < r; j++)
		amax = fmaxf(amax, fabsf(u16_to_f(krow[sch[j]], bf16)));
	float s = amax / (float)qmax;
	if (s > 65504.0f)
		s = 65504.0f;
	uint16_t sb = __half_as_ushort(__float2half_rn(s));
	if (__half2float(__ushort_as_half(sb)) < s)
		sb++;
	float sh = __half2float(__ushort_as_half(sb));
	const int per_word = FMT == FPK_DS_LABEL_Q8 ? 4 : 8, bits = FMT == FPK_DS_LABEL_Q8 ? 8 : 4;
	const uint32_t mask = FMT == FPK_DS_LABEL_Q8 ? 0xFFu : 0xFu;
	for (int w = 0; w < rb / 4; w++) {
		uint32_t word = 0;
		for (int e = 0; e < per_word; e++) {
			int j = w * per_word + e;
			if (j >= r)
				break;
			float x = u16_to_f(krow[sch[j]], bf16);
			float qf = sh > 0.0f ? rintf(x / sh) : 0.0f;
			int qi = (int)fmaxf(-(float)qmax, fminf((float)qmax, qf));
			word |= ((uint32_t)qi & mask) << (e * bits);
		}
		row[w] = word;
	}
	scales[lrow] = sb;
}

/* ---- 2. scores + histogram ---- */

/* one label load: 16, 8 or 4 bytes of a row */
union lvec {
	uint4 v4;
	uint2 v2[2];
	uint32_t v1[4];
	uint16_t h[8];
	uint8_t c[16];
};

template <int VW> __device__ __forceinline__ lvec lload(const uint8_t *p)
{
	lvec x;
	x.v4 = make_uint4(0, 0, 0, 0);
	if (VW == 16)
		x.v4 = *reinterpret_cast<const uint4 *>(p);
	else if (VW == 8)
		x.v2[0] = *reinterpret_cast<const uint2 *>(p);
	else
		x.v1[0] = *reinterpret_cast<const uint32_t *>(p);
	return x;
}

/* acc + the products of the label values at byte offset off (fmaf, j ascending: the C twin's order) */
template <int FMT, int VW>
__device__ __forceinline__ float ldot(const lvec &x, int off, int r, const float *qs, int bf16, float acc)
{
	if (FMT == FPK_DS_LABEL_16) {
#pragma unroll
		for (int e = 0; e < VW / 2; e++) {
			int j = off / 2 + e;
			if (j < r)
				acc = __fmaf_rn(qs[j], u16_to_f(x.h[e], bf16), acc);
		}
	} else if (FMT == FPK_DS_LABEL_Q8) {
#pragma unroll
		for (int e = 0; e < VW; e++) {
			int j = off + e;
			if (j < r)
				acc = __fmaf_rn(qs[j], (float)(int8_t)x.c[e], acc);
		}
	} else {
#pragma unroll
		for (int e = 0; e < 2 * VW; e++) {
			int j = 2 * off + e;
			/* signed nibble to float without I2F: bits 0x4B000000 | (nib ^ 8) are 2^23 + nib + 8 (nib < 8)
			 * or 2^23 + nib - 8; minus 2^23 + 8 gives nib or nib - 16 exactly (one shift, one LOP3, one
			 * FADD) */
			uint32_t bits = ((x.v1[e >> 3] >> ((e & 7) * 4)) & 0xFu) ^ 0x4B000008u;
			float qv = __fsub_rn(__uint_as_float(bits), 8388616.0f);
			if (j < r)
				acc = __fmaf_rn(qs[j], qv, acc);
		}
	}
	return acc;
}

/* grid (chunks, U), 256 threads. Each thread scores SCORE_TOK tokens per step, all label loads issued before either is
 * used (one token per step leaves too few loads in flight: bench/bench_ds, docs/BENCHMARKS.md). The last
 * block of a unit to finish (a per-unit count) finds the bin b* holding the k-th largest key and the count above
 * it from the unit's complete histogram and writes them to bsel, so the filter's blocks need not scan it. */
template <int FMT, int VW>
__global__ void __launch_bounds__(256) ds_score_kernel(const uint16_t *__restrict__ q, const int32_t *__restrict__ lens,
						     const int32_t *__restrict__ ch, const uint8_t *__restrict__ labels,
						     const uint16_t *__restrict__ scales, float *__restrict__ scores,
						     uint32_t *__restrict__ hist, unsigned *__restrict__ scnt,
						     int32_t *__restrict__ bsel, int H, int Hkv, int LH, int d, int Lmax,
						     int lcap, int r, int rb, int sel_per_head, int per_head_labels,
						     int bf16, int chunk, int topk, int topk_div, int dense_below)
{
	__shared__ float qs[256];
	__shared__ uint32_t sh[HIST_BINS];
	__shared__ int sc[40];
	fpk_pdl_trigger();
	const int u = blockIdx.y, G = H / Hkv, per = sel_per_head ? H : Hkv;
	const int b = u / per, w = u % per, len = lens[b];
	const int kb = seq_topk(len, topk, topk_div, dense_below);
	if (!kb)
		return;
	const int t0 = blockIdx.x * chunk;
	if (t0 >= len)
		return;
	const int t1 = min(len, t0 + chunk);
	const int h0 = sel_per_head ? w : w * G, nh = sel_per_head ? 1 : G;
	const int lh = per_head_labels ? w : (sel_per_head ? w / G : w);
	for (int j = threadIdx.x; j < r; j += blockDim.x) {
		int c = ch[(size_t)lh * r + j];
		float acc = 0.0f;
		for (int h = h0; h < h0 + nh; h++)
			acc += u16_to_f(q[((size_t)b * H + h) * d + c], bf16);
		qs[j] = acc;
	}
	for (int i = threadIdx.x; i < HIST_BINS; i += blockDim.x)
		sh[i] = 0;
	__syncthreads();
	const size_t lbase = ((size_t)b * LH + lh) * Lmax;
	for (int tb = t0 + threadIdx.x; tb < t1; tb += SCORE_TOK * 256) {
		float acc[SCORE_TOK];
		uint16_t scl[SCORE_TOK];
#pragma unroll
		for (int i = 0; i < SCORE_TOK; i++) {
			acc[i] = 0.0f;
			int t = tb + i * 256;
			scl[i] = FMT != FPK_DS_LABEL_16 && t < t1 ? scales[lbase + t] : (uint16_t)0;
		}
		for (int off = 0; off < rb; off += VW) {
			lvec x[SCORE_TOK];
#pragma unroll
			for (int i = 0; i < SCORE_TOK; i++) {
				int t = tb + i * 256;
				x[i] = lload<VW>(labels + (lbase + (t < t1 ? t : t0)) * rb + off);
			}
#pragma unroll
			for (int i = 0; i < SCORE_TOK; i++)
				acc[i] = ldot<FMT, VW>(x[i], off, r, qs, bf16, acc[i]);
		}
#pragma unroll
		for (int i = 0; i < SCORE_TOK; i++) {
			int t = tb + i * 256;
			if (t < t1) {
				float a = acc[i];
				if (FMT != FPK_DS_LABEL_16)
					a = __fmul_rn(a, __half2float(__ushort_as_half(scl[i])));
				scores[(size_t)u * lcap + t] = a;
				atomicAdd(&sh[dkey(a) >> 20], 1u);
			}
		}
	}
	__syncthreads();
	uint32_t *hg = hist + (size_t)u * HIST_BINS;
	for (int i = threadIdx.x; i < HIST_BINS; i += blockDim.x)
		if (sh[i])
			atomicAdd(&hg[i], sh[i]);
	/* count this block: its histogram adds are ordered before the count by the barrier and thread 0's fence (as
	 * in a grid barrier); the block that completes the count sees every block's adds */
	__syncthreads();
	if (threadIdx.x == 0) {
		__threadfence();
		/* blocks with t0 < len; gridDim.x bounds it even for a len over max_len (the counter must complete) */
		const unsigned nact = (unsigned)min((len + chunk - 1) / chunk, (int)gridDim.x);
		sc[39] = atomicAdd(&scnt[u], 1u) == nact - 1;
	}
	__syncthreads();
	if (!sc[39])
		return;
	__threadfence();
	/* thread t holds bins 4080-16t .. 4095-16t (cnt[15] the highest); 256 threads x 16 = HIST_BINS */
	const uint4 *hv = reinterpret_cast<const uint4 *>(hg + HIST_BINS - 16 - 16 * threadIdx.x);
	uint32_t cnt[16];
	int sum = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		uint4 x = __ldcg(hv + i);
		cnt[4 * i] = x.x, cnt[4 * i + 1] = x.y, cnt[4 * i + 2] = x.z, cnt[4 * i + 3] = x.w;
	}
#pragma unroll
	for (int i = 0; i < 16; i++)
		sum += (int)cnt[i];
	if (threadIdx.x == 0) {
		scnt[u] = 0;
		sc[34] = 0;
		sc[35] = 0;
	}
	int total;
	int before = block_scan(sum, &total, sc);
#pragma unroll
	for (int i = 15; i >= 0; i--) {
		if (before < kb && kb <= before + (int)cnt[i]) {
			sc[34] = HIST_BINS - 16 - 16 * threadIdx.x + i;
			sc[35] = before;
		}
		before += (int)cnt[i];
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		bsel[2 * u] = sc[34];
		bsel[2 * u + 1] = sc[35];
	}
}

/* ---- 3. exact top-k ---- */

/* histogram h (1 << nbits counters) of the digit at shift over the n keys (global memory, or shared when insm)
 * whose bits above pshift equal prefix (pshift 32: all keys) */
__device__ void radix_hist(const uint32_t *ckey, bool insm, int n, uint32_t prefix, int pshift, int shift, int nbits,
			   uint32_t *h)
{
	const uint32_t dmask = (1u << nbits) - 1u;
	for (int i = threadIdx.x; i < 1 << nbits; i += blockDim.x)
		h[i] = 0;
	__syncthreads();
	for (int base = threadIdx.x; base < n; base += blockDim.x * 8) {
		uint32_t k[8]; /* eight loads in flight before the atomics */
#pragma unroll
		for (int i = 0; i < 8; i++) {
			int p = base + i * blockDim.x;
			k[i] = p < n ? (insm ? ckey[p] : __ldcg(ckey + p)) : 0u;
		}
#pragma unroll
		for (int i = 0; i < 8; i++)
			if (base + i * (int)blockDim.x < n && (pshift >= 32 || (k[i] >> pshift) == prefix))
				atomicAdd(&h[(k[i] >> shift) & dmask], 1u);
	}
	__syncthreads();
}

/* radix pass: the digit holding the need-th largest of those keys (radix_hist); need becomes the rank within it.
 * 1 << nbits is at least blockDim.x and at most 8 blockDim.x */
__device__ void radix_pass(const uint32_t *ckey, bool insm, int n, uint32_t prefix, int pshift, int shift, int nbits,
			   int *need, uint32_t *digit, uint32_t *h, int *sc)
{
	radix_hist(ckey, insm, n, prefix, pshift, shift, nbits, h);
	const int nb = 1 << nbits, R = nb / (int)blockDim.x;
	int c[8];
#pragma unroll
	for (int i = 0; i < 8; i++)
		c[i] = i < R ? (int)h[nb - 1 - R * threadIdx.x - i] : 0;
	find_bin(c, R, nb - 1, *need, sc);
	*digit = (uint32_t)sc[32];
	*need = sc[33];
	__syncthreads();
}

/* ordered pass over n list entries (keys kk, tokens ki[p], or base + p when ki is NULL): writes key > T, or
 * key == T among the first m ties, at out[nout ...] (never at k or past it); returns the entries taken */
__device__ int ordered_take(const uint32_t *kk, const int32_t *ki, int base, int n, uint32_t T, int m, int kb,
			    int32_t *out, int nout, int *sc)
{
	enum { ITEMS = 8 };
	int eqc = 0, taken = 0;
	for (int tile = 0; tile < n; tile += blockDim.x * ITEMS) {
		int i0 = tile + threadIdx.x * ITEMS;
		uint32_t keys[ITEMS];
		int ne = 0;
#pragma unroll
		for (int i = 0; i < ITEMS; i++) {
			keys[i] = i0 + i < n ? kk[i0 + i] : 0u;
			ne += (i0 + i < n && keys[i] == T);
		}
		int etot;
		int erank = eqc + block_scan(ne, &etot, sc);
		int take = 0;
		unsigned takemask = 0;
#pragma unroll
		for (int i = 0; i < ITEMS; i++) {
			if (i0 + i >= n)
				continue;
			int tk = keys[i] > T;
			if (keys[i] == T)
				tk = erank++ < m;
			if (tk) {
				takemask |= 1u << i;
				take++;
			}
		}
		int ttot;
		int pos = nout + taken + block_scan(take, &ttot, sc);
#pragma unroll
		for (int i = 0; i < ITEMS; i++)
			if (takemask & (1u << i)) {
				if (pos < kb) /* always, unless the counts were wrong (a corrupted histogram, lens over max_len) */
					out[pos] = ki ? ki[i0 + i] : base + i0 + i;
				pos++;
			}
		eqc += etot;
		taken += ttot;
	}
	return taken;
}

/* 3a. filter, grid (chunks, U), 256 threads: every block keeps the tokens of its chunk with bin >= b* (b* found by
 * the score kernel) in ascending order at kk/ki[u*lcap + chunk start + i]; ccnt gets the count */
enum { FILT_THREADS = 256, FILT_ITEMS = 16, MAX_CHUNKS = SEL_THREADS };

__global__ void __launch_bounds__(FILT_THREADS, FILT_MINB) ds_filter_kernel(const float *__restrict__ scores,
								  uint32_t *__restrict__ kk, int32_t *__restrict__ ki,
								  int32_t *__restrict__ ccnt, const int32_t *__restrict__ bsel,
								  const int32_t *__restrict__ lens,
								  int per, int lcap, int chunk, int topk, int topk_div,
								  int dense_below)
{
	__shared__ int sc[40];
	fpk_pdl_wait();
	const int u = blockIdx.y, c = blockIdx.x, b = u / per, len = lens[b], tid = threadIdx.x;
	const int kb = seq_topk(len, topk, topk_div, dense_below);
	const int t0 = c * chunk;
	if (!kb || t0 >= len)
		return;
	const int t1 = min(len, t0 + chunk);
	const uint32_t bstar = (uint32_t)__ldcg(bsel + 2 * u); /* from the unit's last score block */
	const float *srow = scores + (size_t)u * lcap;
	uint32_t *okk = kk + (size_t)u * lcap + t0;
	int32_t *oki = ki + (size_t)u * lcap + t0;
	int n1 = 0;
	for (int tile = t0; tile < t1; tile += FILT_THREADS * FILT_ITEMS) {
		int t = tile + tid * FILT_ITEMS;
		float v[FILT_ITEMS];
		if (t + FILT_ITEMS <= t1) {
#pragma unroll
			for (int i = 0; i < FILT_ITEMS; i += 4) {
				float4 x = __ldcg(reinterpret_cast<const float4 *>(srow + t + i));
				v[i] = x.x, v[i + 1] = x.y, v[i + 2] = x.z, v[i + 3] = x.w;
			}
		} else {
#pragma unroll
			for (int i = 0; i < FILT_ITEMS; i++)
				v[i] = t + i < t1 ? __ldcg(srow + t + i) : 0.0f;
		}
		int cn = 0;
		uint32_t keys[FILT_ITEMS];
#pragma unroll
		for (int i = 0; i < FILT_ITEMS; i++) {
			keys[i] = dkey(v[i]);
			cn += (t + i < t1 && (keys[i] >> 20) >= bstar);
		}
		int tot;
		int pos = n1 + block_scan(cn, &tot, sc);
#pragma unroll
		for (int i = 0; i < FILT_ITEMS; i++)
			if (t + i < t1 && (keys[i] >> 20) >= bstar) {
				okk[pos] = keys[i];
				oki[pos] = t + i;
				pos++;
			}
		n1 += tot;
	}
	if (tid == 0)
		ccnt[(size_t)u * MAX_CHUNKS + c] = n1;
}

/* 3b. resolve, grid (U), SEL_THREADS threads: gathers the chunks' lists into one ordered list, finds the exact k-th
 * key and writes the selection; zeroes the unit's histogram for the next call */
__global__ void __launch_bounds__(SEL_THREADS) ds_select_kernel(uint32_t *__restrict__ hist,
								 const uint32_t *__restrict__ kk0, const int32_t *__restrict__ ki0,
								 uint32_t *__restrict__ ckey, int32_t *__restrict__ cidx,
								 const int32_t *__restrict__ ccnt, const int32_t *__restrict__ bsel,
								 int32_t *__restrict__ idx, int32_t *__restrict__ nsel,
								 const int32_t *__restrict__ lens, int per, int lcap, int kcap,
								 int chunk, int topk, int topk_div, int dense_below, int lcap_sm,
								 unsigned *__restrict__ fault)
{
	__shared__ int sc[40];
	__shared__ uint32_t h[1024];
	__shared__ int off[MAX_CHUNKS + 1];
	extern __shared__ uint32_t lsm[]; /* the gathered list when it has at most lcap_sm entries: keys, indices */
	fpk_pdl_wait();
	const int u = blockIdx.x, b = u / per, len = lens[b];
	const int kb = seq_topk(len, topk, topk_div, dense_below);
	if (!kb) {
		if (threadIdx.x == 0)
			nsel[u] = -len;
		return;
	}
	const int tid = threadIdx.x;
	uint32_t *hg = hist + (size_t)u * HIST_BINS;
#pragma unroll
	for (int i = 0; i < HIST_BINS / SEL_THREADS; i++)
		hg[tid + i * SEL_THREADS] = 0;
	const uint32_t bstar = (uint32_t)__ldcg(bsel + 2 * u);
	const int above = __ldcg(bsel + 2 * u + 1);
	const int nch = (len + chunk - 1) / chunk;
	int cnt = tid < nch ? __ldcg(ccnt + (size_t)u * MAX_CHUNKS + tid) : 0, n1;
	off[tid] = block_scan(cnt, &n1, sc);
	__syncthreads();
	/* the list stays in shared memory when it fits (no global round trip in the radix and output passes) */
	const bool insm = n1 <= lcap_sm;
	uint32_t *kk = insm ? lsm : ckey + (size_t)u * lcap;
	int32_t *ki = insm ? reinterpret_cast<int32_t *>(lsm + lcap_sm) : cidx + (size_t)u * lcap;
	for (int base = tid; base < n1; base += SEL_THREADS * 8) {
		uint32_t kx[8];
		int32_t ix[8];
#pragma unroll
		for (int i = 0; i < 8; i++) {
			int p = base + i * SEL_THREADS;
			if (p >= n1)
				continue;
			int lo = 0, hi = nch - 1; /* largest c with off[c] <= p */
			while (lo < hi) {
				int mid = (lo + hi + 1) >> 1;
				if (off[mid] <= p)
					lo = mid;
				else
					hi = mid - 1;
			}
			size_t src = (size_t)u * lcap + (size_t)lo * chunk + (p - off[lo]);
			kx[i] = __ldcg(kk0 + src);
			ix[i] = __ldcg(ki0 + src);
		}
#pragma unroll
		for (int i = 0; i < 8; i++) {
			int p = base + i * SEL_THREADS;
			if (p < n1) {
				kk[p] = kx[i];
				ki[p] = ix[i];
			}
		}
	}
	__syncthreads();

	/* exact k-th key T inside bin b*, and the number m of ties at T to take */
	int need = kb - above;
	uint32_t d1, d0;
	radix_pass(kk, insm, n1, bstar, 20, 10, 10, &need, &d1, h, sc);
	radix_pass(kk, insm, n1, (bstar << 10) | d1, 10, 0, 10, &need, &d0, h, sc);
	const uint32_t T = (bstar << 20) | (d1 << 10) | d0;
	const int m = need;

	/* ordered pass over the list: key > T, or key == T among the first m ties */
	const int nout = ordered_take(kk, ki, 0, n1, T, m, kb, idx + (size_t)u * kcap, 0, sc);
	if (tid == 0) {
		nsel[u] = nout < kb ? nout : kb;
		if (nout != kb) /* a wrong selection is bounded above, and counted for fpk_ds_workspace_faults */
			atomicAdd(fault, 1u);
	}
}

/* ---- 2+3 fused: scores and exact top-k in one thread-block cluster per unit (sm_90) ----
 *
 * grid (CL, U), cluster (CL, 1, 1), CS_THREADS threads; block rank c of unit u scores tokens [c*tpb, (c+1)*tpb)
 * and keeps their order-preserving keys in its shared memory, so the scores never go to global memory; the first
 * histogram (top 11 key bits) is built while scoring. Then two exchanges through distributed shared memory:
 *   1. every block adds its histogram into rank 0's sums; rank 0 finds the bin b* of the k-th key and writes b*,
 *      the count above it and the count in it into every block;
 *   2. each warp writes the selection-bitmap word of its 32 tokens (bin > b*) into rank 0, and each block appends
 *      its bin-b* keys and tokens to rank 0's candidate list.
 * Rank 0 alone then finds the exact k-th key T and the ties m to take (two local radix passes over the
 * candidates), adds the keys > T and the first m ties (lowest tokens) to the bitmap and writes the ordered list.
 * When bin b* holds more than CS_CAP keys (heavy ties) the cluster runs three cluster-wide radix passes over all
 * keys instead (cs_pass) and every block writes its part of the list at its offset. Each exchange waits
 * microseconds under the memory load of the scoring, which is why cs_plan takes this path only when all clusters
 * are resident at once. Same scores (ldot, the C twin's fmaf order) and rule as the split path: same selection. */
enum { CS_THREADS = 256, CS_BINS = 2048, CS_TPB_MAX = 8192, CS_CL_MAX = 16, CS_CAP = 2048, CS_MINB = 3 };

/* dynamic shared memory of the fused kernel: keys (tpb), the selection and tie bitmaps of the unit (cl * tpb bits
 * each) and the gathered candidates of bin b* (CS_CAP keys and tokens) */
static inline size_t cs_smem(int cl, int tpb) { return ((size_t)tpb + 2 * ((size_t)cl * tpb / 32) + 2 * CS_CAP) * 4; }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
/* one radix pass over the cluster: the digit (nbits at shift) holding the need-th largest key among the keys
 * whose bits above pshift equal prefix (pshift 32: all keys); hist already built when built is set */
__device__ void cs_pass(cg::cluster_group &cl, const uint32_t *keys, int n, uint32_t prefix, int pshift, int shift,
			int nbits, bool built, int *need, uint32_t *digit, uint32_t *hist, uint32_t *tot, int *sc)
{
	const int nb = 1 << nbits, CL = (int)cl.num_blocks(), rank = (int)cl.block_rank(), tid = threadIdx.x;
	if (!built)
		radix_hist(keys, true, n, prefix, pshift, shift, nbits, hist);
	cl.sync(); /* every block's histogram complete */
	const int S = nb / CL; /* bins [rank*S, rank*S + S) are this block's to sum */
	for (int i = tid; i < S; i += CS_THREADS) {
		uint32_t v[CS_CL_MAX], s = 0; /* all loads in flight at once: each is a round trip to another SM */
#pragma unroll
		for (int r = 0; r < CS_CL_MAX; r++)
			v[r] = r < CL ? cl.map_shared_rank(hist, r)[rank * S + i] : 0u;
#pragma unroll
		for (int r = 0; r < CS_CL_MAX; r++)
			s += v[r];
		tot[i] = s;
	}
	cl.sync(); /* every slice summed */
	const int R = nb / CS_THREADS;
	int c[CS_BINS / CS_THREADS];
#pragma unroll
	for (int i = 0; i < CS_BINS / CS_THREADS; i++) {
		int bin = nb - 1 - R * tid - i;
		c[i] = i < R ? (int)cl.map_shared_rank(tot, bin / S)[bin % S] : 0;
	}
	find_bin(c, R, nb - 1, *need, sc);
	*digit = (uint32_t)sc[32];
	*need = sc[33];
	__syncthreads();
}

__device__ __forceinline__ void cl_arrive(void) { asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory"); }
__device__ __forceinline__ void cl_wait(void) { asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory"); }
#endif

template <int FMT, int VW>
__global__ void __launch_bounds__(CS_THREADS, CS_MINB) ds_scsel_kernel(const uint16_t *__restrict__ q, const int32_t *__restrict__ lens,
						       const int32_t *__restrict__ ch, const uint8_t *__restrict__ labels,
						       const uint16_t *__restrict__ scales, int32_t *__restrict__ idx,
						       int32_t *__restrict__ nsel, unsigned *__restrict__ fault, int H,
						       int Hkv, int LH, int d, int Lmax, int r, int rb, int sel_per_head,
						       int per_head_labels, int bf16, int tpb, int kcap, int topk,
						       int topk_div, int dense_below)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	extern __shared__ uint32_t keys[]; /* tpb keys, then (rank 0) bitmaps and candidates: cs_smem */
	__shared__ float qs[256];
	__shared__ uint32_t hist[CS_BINS], tot[CS_BINS];
	__shared__ int sc[40], cnt[2], ctl[4];
	cg::cluster_group cl = cg::this_cluster();
	const int tid = threadIdx.x, rank = (int)cl.block_rank(), CL = (int)cl.num_blocks();
	const int u = blockIdx.y, G = H / Hkv, per = sel_per_head ? H : Hkv;
	const int b = u / per, w = u % per, len = lens[b];
	const int kb = seq_topk(len, topk, topk_div, dense_below);
	if (!kb) { /* the whole cluster leaves: dense attention for this unit */
		if (rank == 0 && tid == 0)
			nsel[u] = -len;
		fpk_pdl_trigger();
		return;
	}
	const int t0 = rank * tpb, t1 = min(min(len, Lmax), t0 + tpb), n = max(0, t1 - t0);
	const int h0 = sel_per_head ? w : w * G, nh = sel_per_head ? 1 : G;
	const int lh = per_head_labels ? w : (sel_per_head ? w / G : w);
	for (int j = tid; j < r; j += CS_THREADS) {
		int c = ch[(size_t)lh * r + j];
		float acc = 0.0f;
		for (int h = h0; h < h0 + nh; h++)
			acc += u16_to_f(q[((size_t)b * H + h) * d + c], bf16);
		qs[j] = acc;
	}
	const int nbw = CL * tpb / 32; /* words of each bitmap (tpb is a multiple of 32) */
	uint32_t *selb = keys + tpb, *tieb = selb + nbw, *ckey = tieb + nbw;
	int32_t *cidx = reinterpret_cast<int32_t *>(ckey + CS_CAP);
	for (int i = tid; i < CS_BINS; i += CS_THREADS)
		hist[i] = 0, tot[i] = 0; /* tot: rank 0 sums the cluster's histogram into it */
	if (rank == 0) {
		for (int i = tid; i < nbw; i += CS_THREADS)
			tieb[i] = 0;
		if (tid == 0)
			ctl[2] = 0;
	}
	__syncthreads();
	cl_arrive(); /* rank 0's zeroed sums are ready before any block adds into them (waited for after scoring) */
	const size_t lbase = ((size_t)b * LH + lh) * Lmax;
	for (int tb = t0 + tid; tb < t1; tb += SCORE_TOK * CS_THREADS) {
		float acc[SCORE_TOK];
		uint16_t scl[SCORE_TOK];
#pragma unroll
		for (int i = 0; i < SCORE_TOK; i++) {
			acc[i] = 0.0f;
			int t = tb + i * CS_THREADS;
			scl[i] = FMT != FPK_DS_LABEL_16 && t < t1 ? scales[lbase + t] : (uint16_t)0;
		}
		for (int off = 0; off < rb; off += VW) {
			lvec x[SCORE_TOK];
#pragma unroll
			for (int i = 0; i < SCORE_TOK; i++) {
				int t = tb + i * CS_THREADS;
				x[i] = lload<VW>(labels + (lbase + (t < t1 ? t : t0)) * rb + off);
			}
#pragma unroll
			for (int i = 0; i < SCORE_TOK; i++)
				acc[i] = ldot<FMT, VW>(x[i], off, r, qs, bf16, acc[i]);
		}
#pragma unroll
		for (int i = 0; i < SCORE_TOK; i++) {
			int t = tb + i * CS_THREADS;
			if (t < t1) {
				float a = acc[i];
				if (FMT != FPK_DS_LABEL_16)
					a = __fmul_rn(a, __half2float(__ushort_as_half(scl[i])));
				uint32_t key = dkey(a);
				keys[t - t0] = key;
				atomicAdd(&hist[key >> 21], 1u);
			}
		}
	}
	/* the labels are read: the attention's blocks may be scheduled (they wait for this grid to finish) */
	fpk_pdl_trigger();
	__syncthreads();
	/* exchange 1: every block adds its histogram into rank 0's sums; rank 0 finds the bin b* of the k-th key and
	 * sends b*, the count above it and the count in it to every block */
	cl_wait();
	uint32_t *tot0 = cl.map_shared_rank(tot, 0);
	for (int i = tid; i < CS_BINS; i += CS_THREADS)
		if (hist[i])
			atomicAdd(tot0 + i, hist[i]);
	cl.sync();
	if (rank == 0) {
		int c[CS_BINS / CS_THREADS];
#pragma unroll
		for (int i = 0; i < CS_BINS / CS_THREADS; i++)
			c[i] = (int)tot[CS_BINS - 1 - (CS_BINS / CS_THREADS) * tid - i];
		find_bin(c, CS_BINS / CS_THREADS, CS_BINS - 1, kb, sc);
		if (tid < CL) {
			int *cr = cl.map_shared_rank(ctl, tid);
			cr[0] = sc[32], cr[1] = sc[34], cr[3] = sc[35];
		}
	}
	cl.sync();
	const uint32_t bstar = (uint32_t)ctl[0];
	const int above = ctl[1], inbin = ctl[3];
	if (inbin <= CS_CAP) {
		/* exchange 2: every block writes the selection bitmap words of its tokens above bin b* (one warp owns
		 * each 32-token word) and gathers its bin-b* keys and tokens into rank 0's candidate list */
		uint32_t *selb0 = cl.map_shared_rank(selb, 0);
		uint32_t *ck0 = cl.map_shared_rank(ckey, 0);
		int32_t *ci0 = cl.map_shared_rank(cidx, 0);
		int mine = 0;
		for (int i = tid; i < n; i += CS_THREADS)
			mine += (keys[i] >> 21) == bstar;
		int mtot;
		int moff = block_scan(mine, &mtot, sc);
		if (tid == 0)
			sc[37] = mtot ? atomicAdd(cl.map_shared_rank(&ctl[2], 0), mtot) : 0;
		__syncthreads();
		moff += sc[37];
		const int lane = tid & 31;
		for (int i = tid - lane; i < tpb; i += CS_THREADS) { /* the warp's word: tokens t0 + i .. + 31 */
			int j = i + lane;
			uint32_t k = j < n ? keys[j] : 0u, bin = k >> 21;
			unsigned hi = __ballot_sync(0xffffffffu, j < n && bin > bstar);
			if (lane == 0)
				selb0[(t0 + i) >> 5] = hi;
			if (j < n && bin == bstar) {
				ck0[moff] = k;
				ci0[moff] = t0 + j;
				moff++;
			}
		}
		cl.sync(); /* the last exchange: the other blocks are done */
		if (rank != 0)
			return;
		/* rank 0: the exact k-th key T among the candidates, the ties at T to take (lowest tokens first) */
		int need = kb - above;
		uint32_t e1, e0;
		radix_pass(ckey, true, inbin, bstar, 21, 10, 11, &need, &e1, hist, sc);
		radix_pass(ckey, true, inbin, (bstar << 11) | e1, 10, 0, 10, &need, &e0, hist, sc);
		const uint32_t T = (bstar << 21) | (e1 << 10) | e0;
		const int m = need;
		for (int i = tid; i < inbin; i += CS_THREADS) {
			uint32_t k = ckey[i];
			int t = cidx[i];
			if (k > T)
				atomicOr(&selb[t >> 5], 1u << (t & 31));
			else if (k == T)
				atomicOr(&tieb[t >> 5], 1u << (t & 31));
		}
		__syncthreads();
		/* thread t owns words [t*W, t*W + W): the first m tie bits join the selection; then the ordered output */
		const int W = (nbw + CS_THREADS - 1) / CS_THREADS, w0 = tid * W, w1 = min(nbw, w0 + W);
		int tc = 0;
		for (int x = w0; x < w1; x++)
			tc += __popc(tieb[x]);
		int ttot;
		int tb4 = block_scan(tc, &ttot, sc);
		for (int x = w0; x < w1; x++) {
			uint32_t tw = tieb[x];
			while (tw) {
				uint32_t bit = tw & (0u - tw);
				if (tb4 < m)
					selb[x] |= bit;
				tb4++;
				tw ^= bit;
			}
		}
		int sc2 = 0;
		for (int x = w0; x < w1; x++)
			sc2 += __popc(selb[x]);
		int stot;
		int pos = block_scan(sc2, &stot, sc);
		int32_t *out = idx + (size_t)u * kcap;
		for (int x = w0; x < w1; x++) {
			uint32_t sw = selb[x];
			while (sw) {
				int bit = __ffs(sw) - 1;
				if (pos < kb)
					out[pos] = x * 32 + bit;
				pos++;
				sw &= sw - 1;
			}
		}
		if (tid == 0) {
			nsel[u] = stot < kb ? stot : kb;
			if (stot != kb)
				atomicAdd(fault, 1u);
		}
		return;
	}

	/* bin b* holds more than CS_CAP keys (many ties): three cluster-wide radix passes instead */
	int need = kb;
	uint32_t d2, d1, d0;
	cs_pass(cl, keys, n, 0u, 32, 21, 11, true, &need, &d2, hist, tot, sc);
	cs_pass(cl, keys, n, d2, 21, 10, 11, false, &need, &d1, hist, tot, sc);
	cs_pass(cl, keys, n, (d2 << 11) | d1, 10, 0, 10, false, &need, &d0, hist, tot, sc);
	const uint32_t T = (d2 << 21) | (d1 << 10) | d0;
	const int m = need;

	/* this block's counts above T and at T; the offsets of its output and of its ties from the lower ranks */
	int gt = 0, eq = 0;
	for (int i = tid; i < n; i += CS_THREADS) {
		uint32_t k = keys[i];
		gt += k > T;
		eq += k == T;
	}
	int gtot, etot;
	block_scan(gt, &gtot, sc);
	block_scan(eq, &etot, sc);
	if (tid == 0)
		cnt[0] = gtot, cnt[1] = etot;
	cl.sync();
	int off = 0, quota = 0, total = 0, eqb = 0;
	for (int c = 0; c < CL; c++) { /* every thread: the CL pairs; rank c takes the ties left after the lower ranks */
		const int *rc = cl.map_shared_rank(cnt, c);
		int g = rc[0], e = rc[1];
		int te = min(max(m - eqb, 0), e);
		if (c < rank)
			off += g + te;
		if (c == rank)
			quota = te;
		total += g + te;
		eqb += e;
	}
	cl.sync(); /* no block leaves (its shared memory) while another still reads its counts */

	/* ordered output of this block's tokens at its offset in the unit's list */
	ordered_take(keys, nullptr, t0, n, T, quota, kb, idx + (size_t)u * kcap, off, sc);
	if (rank == 0 && tid == 0) {
		nsel[u] = total < kb ? total : kb;
		if (total != kb) /* a wrong selection is bounded above, and counted for fpk_ds_workspace_faults */
			atomicAdd(fault, 1u);
	}
#else
	(void)q, (void)lens, (void)ch, (void)labels, (void)scales, (void)idx, (void)nsel, (void)fault;
	(void)H, (void)Hkv, (void)LH, (void)d, (void)Lmax, (void)r, (void)rb, (void)sel_per_head;
	(void)per_head_labels, (void)bf16, (void)tpb, (void)kcap, (void)topk, (void)topk_div, (void)dense_below;
	__trap();
#endif
}

/* ---- 4. split-KV attention, dense or over a selection ---- */

struct att_args {
	const void *q, *k, *v;
	const int32_t *lens, *idx, *nsel; /* idx == NULL: dense */
	float *out, *part;
	unsigned *counter;
	int H, Hkv, d, Lmax, hb, upb, sel_per_head, kcap, nsplit;
	float qscale; /* log2(e) / sqrt(d) */
};

template <typename T, int LPR, int GB, bool PF>
__global__ void __launch_bounds__(ATT_THREADS) ds_attn_kernel(att_args a)
{
	constexpr int RPW = 32 / LPR, NW = ATT_THREADS / 32, STEP = NW * RPW * ATT_UNROLL;
	__shared__ float sm_m[NW][GB], sm_l[NW][GB];
	__shared__ float sm_acc[NW][GB][256];
	__shared__ int last;
	fpk_pdl_wait();
	const int wu = blockIdx.y, b = wu / a.upb, h0 = (wu % a.upb) * a.hb, G = a.H / a.Hkv, kvh = h0 / G;
	const int d = a.d, hb = a.hb;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, lir = lane % LPR, row = lane / LPR;
	const int dim0 = lir * 8;
	const bool act = dim0 < d;

	int n;
	const int32_t *list = nullptr;
	if (!a.idx) {
		n = a.lens[b];
	} else {
		int su = a.sel_per_head ? b * a.H + h0 : b * a.Hkv + kvh;
		int ns = a.nsel[su];
		if (ns < 0)
			n = -ns;
		else {
			n = ns;
			list = a.idx + (size_t)su * a.kcap;
		}
	}
	const int chunk = (n + a.nsplit - 1) / a.nsplit;
	const int t0 = blockIdx.x * chunk, t1 = min(n, t0 + chunk);

	float qf[GB][8], acc[GB][8], m[GB], l[GB];
#pragma unroll
	for (int g = 0; g < GB; g++) {
		m[g] = -INFINITY;
		l[g] = 0.0f;
#pragma unroll
		for (int i = 0; i < 8; i++)
			acc[g][i] = 0.0f, qf[g][i] = 0.0f;
		if (g < hb && act) {
			uint4 qv = *reinterpret_cast<const uint4 *>(reinterpret_cast<const T *>(a.q) +
								    ((size_t)b * a.H + h0 + g) * d + dim0);
			unpack8<T>(qv, qf[g]);
#pragma unroll
			for (int i = 0; i < 8; i++)
				qf[g][i] *= a.qscale;
		}
	}
	const T *kbase = reinterpret_cast<const T *>(a.k) + ((size_t)b * a.Hkv + kvh) * a.Lmax * d + dim0;
	const T *vbase = reinterpret_cast<const T *>(a.v) + ((size_t)b * a.Hkv + kvh) * a.Lmax * d + dim0;

	/* PF: rows loaded one step ahead (register double buffer) and the token indices of a selection two steps
	 * ahead, so that the index load is off the K/V loads' path; for 2-4 heads per block and for selections */
	uint4 kv[ATT_UNROLL], vv[ATT_UNROLL];
	bool ok[ATT_UNROLL];
	int tk[ATT_UNROLL];
	auto idx_load = [&](int base, int *tx) {
#pragma unroll
		for (int u = 0; u < ATT_UNROLL; u++) {
			int i = base + (u * NW + warp) * RPW + row;
			tx[u] = i < t1 ? (list ? __ldg(list + i) : i) : 0;
		}
	};
	auto kv_load = [&](int base, const int *tx, uint4 *kx, uint4 *vx, bool *okx) {
#pragma unroll
		for (int u = 0; u < ATT_UNROLL; u++) {
			int i = base + (u * NW + warp) * RPW + row;
			okx[u] = i < t1;
			if (okx[u] && act) {
				kx[u] = __ldg(reinterpret_cast<const uint4 *>(kbase + (size_t)tx[u] * d));
				vx[u] = __ldg(reinterpret_cast<const uint4 *>(vbase + (size_t)tx[u] * d));
			} else {
				kx[u] = make_uint4(0, 0, 0, 0);
				vx[u] = make_uint4(0, 0, 0, 0);
			}
		}
	};
	if (PF) {
		idx_load(t0, tk);
		kv_load(t0, tk, kv, vv, ok);
		idx_load(t0 + STEP, tk);
	}
	for (int base = t0; base < t1; base += STEP) {
		uint4 kn[ATT_UNROLL], vn[ATT_UNROLL];
		bool okn[ATT_UNROLL];
		if (PF) {
			kv_load(base + STEP, tk, kn, vn, okn);
			idx_load(base + 2 * STEP, tk);
		} else {
			idx_load(base, tk);
			kv_load(base, tk, kv, vv, ok);
		}
		float s[GB][ATT_UNROLL];
#pragma unroll
		for (int u = 0; u < ATT_UNROLL; u++) {
			float kf[8];
			unpack8<T>(kv[u], kf);
#pragma unroll
			for (int g = 0; g < GB; g++) {
				float x = 0.0f;
#pragma unroll
				for (int i = 0; i < 8; i++)
					x = fmaf(qf[g][i], kf[i], x);
				s[g][u] = x;
			}
		}
#pragma unroll
		for (int o = LPR / 2; o > 0; o >>= 1)
#pragma unroll
			for (int g = 0; g < GB; g++)
#pragma unroll
				for (int u = 0; u < ATT_UNROLL; u++)
					s[g][u] += __shfl_xor_sync(0xffffffffu, s[g][u], o);
#pragma unroll
		for (int g = 0; g < GB; g++) {
			float mx = m[g];
#pragma unroll
			for (int u = 0; u < ATT_UNROLL; u++)
				if (ok[u])
					mx = fmaxf(mx, s[g][u]);
			if (mx == -INFINITY)
				continue;
			float c = exp2f(m[g] - mx);
			l[g] *= c;
#pragma unroll
			for (int i = 0; i < 8; i++)
				acc[g][i] *= c;
			m[g] = mx;
#pragma unroll
			for (int u = 0; u < ATT_UNROLL; u++) {
				float p = ok[u] ? exp2f(s[g][u] - mx) : 0.0f;
				l[g] += p;
				float vf[8];
				unpack8<T>(vv[u], vf);
#pragma unroll
				for (int i = 0; i < 8; i++)
					acc[g][i] = fmaf(p, vf[i], acc[g][i]);
			}
		}
		if (PF) {
#pragma unroll
			for (int u = 0; u < ATT_UNROLL; u++)
				kv[u] = kn[u], vv[u] = vn[u], ok[u] = okn[u];
		}
	}
	/* merge the row slots of the warp (lanes with equal lir) */
#pragma unroll
	for (int o = LPR; o < 32; o <<= 1)
#pragma unroll
		for (int g = 0; g < GB; g++) {
			float m2 = __shfl_xor_sync(0xffffffffu, m[g], o), l2 = __shfl_xor_sync(0xffffffffu, l[g], o);
			float mn = fmaxf(m[g], m2);
			float c1 = mn == -INFINITY ? 0.0f : exp2f(m[g] - mn), c2 = mn == -INFINITY ? 0.0f : exp2f(m2 - mn);
			l[g] = l[g] * c1 + l2 * c2;
#pragma unroll
			for (int i = 0; i < 8; i++) {
				float a2 = __shfl_xor_sync(0xffffffffu, acc[g][i], o);
				acc[g][i] = acc[g][i] * c1 + a2 * c2;
			}
			m[g] = mn;
		}
	if (row == 0) {
#pragma unroll
		for (int g = 0; g < GB; g++) {
			if (lir == 0) {
				sm_m[warp][g] = m[g];
				sm_l[warp][g] = l[g];
			}
			if (act)
#pragma unroll
				for (int i = 0; i < 8; i++)
					sm_acc[warp][g][dim0 + i] = acc[g][i];
		}
	}
	__syncthreads();
	const int D2 = d + 4; /* A[d], m, l, pad: 16-byte aligned rows */
	float *mypart = a.part + ((size_t)wu * a.nsplit + blockIdx.x) * hb * D2;
	for (int e = threadIdx.x; e < hb * d; e += ATT_THREADS) {
		int g = e / d, j = e % d;
		float M = -INFINITY;
#pragma unroll
		for (int w = 0; w < NW; w++)
			M = fmaxf(M, sm_m[w][g]);
		float L = 0.0f, A = 0.0f;
		if (M != -INFINITY)
#pragma unroll
			for (int w = 0; w < NW; w++) {
				float c = exp2f(sm_m[w][g] - M);
				L += sm_l[w][g] * c;
				A += sm_acc[w][g][j] * c;
			}
		if (a.nsplit == 1) {
			a.out[((size_t)b * a.H + h0 + g) * d + j] = A / L;
		} else {
			mypart[g * D2 + j] = A;
			if (j == 0) {
				mypart[g * D2 + d] = M;
				mypart[g * D2 + d + 1] = L;
			}
		}
	}
	if (a.nsplit == 1)
		return;
	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0)
		last = atomicAdd(&a.counter[wu], 1u) == (unsigned)a.nsplit - 1;
	__syncthreads();
	if (!last)
		return;
	__threadfence();
	/* merge the splits: (m, l) of all splits and heads in one pass into shared memory, per-head max and
	 * weights, then float4 weighted sums over the splits */
	const float *up = a.part + (size_t)wu * a.nsplit * hb * D2;
	__shared__ float sw[GB][NSPLIT_MAX], sl[GB][NSPLIT_MAX], sL[GB];
	for (int e = threadIdx.x; e < a.nsplit * hb; e += ATT_THREADS) {
		int s = e / hb, g = e % hb;
		sw[g][s] = __ldcg(up + (size_t)e * D2 + d);
		sl[g][s] = __ldcg(up + (size_t)e * D2 + d + 1);
	}
	__syncthreads();
	if (threadIdx.x < hb) {
		int g = threadIdx.x;
		float M = -INFINITY, L = 0.0f;
		for (int s = 0; s < a.nsplit; s++)
			M = fmaxf(M, sw[g][s]);
		for (int s = 0; s < a.nsplit; s++) {
			float w = sw[g][s] == -INFINITY ? 0.0f : exp2f(sw[g][s] - M);
			sw[g][s] = w;
			L += w * sl[g][s];
		}
		sL[g] = L;
	}
	__syncthreads();
	const int d4 = d / 4;
	for (int e = threadIdx.x; e < hb * d4; e += ATT_THREADS) {
		int g = e / d4, j = (e % d4) * 4;
		float4 A = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
		int s = 0;
		for (; s + 4 <= a.nsplit; s += 4) {
			float4 x[4];
#pragma unroll
			for (int i = 0; i < 4; i++)
				x[i] = __ldcg(reinterpret_cast<const float4 *>(up + ((size_t)(s + i) * hb + g) * D2 + j));
#pragma unroll
			for (int i = 0; i < 4; i++) {
				float w = sw[g][s + i];
				A.x += w * x[i].x, A.y += w * x[i].y, A.z += w * x[i].z, A.w += w * x[i].w;
			}
		}
		for (; s < a.nsplit; s++) {
			float4 x = __ldcg(reinterpret_cast<const float4 *>(up + ((size_t)s * hb + g) * D2 + j));
			float w = sw[g][s];
			A.x += w * x.x, A.y += w * x.y, A.z += w * x.z, A.w += w * x.w;
		}
		float inv = 1.0f / sL[g];
		float *o = a.out + ((size_t)b * a.H + h0 + g) * d + j;
		o[0] = A.x * inv, o[1] = A.y * inv, o[2] = A.z * inv, o[3] = A.w * inv;
	}
	if (threadIdx.x == 0)
		a.counter[wu] = 0;
}

/* ---- host side ---- */

static int device_sms(int *sms, int *cc_major)
{
	int dev;
	FPK_CU(cudaGetDevice(&dev));
	FPK_CU(cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, dev));
	FPK_CU(cudaDeviceGetAttribute(cc_major, cudaDevAttrComputeCapabilityMajor, dev));
	return 0;
}

/* the reference shape rules plus the kernels' own limit: batch x heads units index one grid dimension */
static int gpu_check_shape(const fpk_ds_shape *s)
{
	int rc = fpk_ds_check_shape(s);
	if (!rc && (long long)s->batch * s->heads > 65535)
		rc = fpk_error_set(FPK_EUSAGE,
				   "ds attention (GPU): batch %d x heads %d = %lld units, at most 65535 per call (split the batch)",
				   s->batch, s->heads, (long long)s->batch * s->heads);
	return rc;
}

typedef void (*cs_fn)(const uint16_t *, const int32_t *, const int32_t *, const uint8_t *, const uint16_t *, int32_t *,
		      int32_t *, unsigned *, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int);

template <int FMT> static cs_fn cs_pick(int vw)
{
	return vw == 16 ? ds_scsel_kernel<FMT, 16> : vw == 8 ? ds_scsel_kernel<FMT, 8> : ds_scsel_kernel<FMT, 4>;
}

static cs_fn cs_kernel(int fmt, int vw)
{
	return fmt == FPK_DS_LABEL_16 ? cs_pick<FPK_DS_LABEL_16>(vw)
				      : fmt == FPK_DS_LABEL_Q8 ? cs_pick<FPK_DS_LABEL_Q8>(vw) : cs_pick<FPK_DS_LABEL_Q4>(vw);
}

/* the fused kernel's launch: grid (cl, units), clusters of cl blocks, cs_smem of dynamic shared memory */
static void cs_config(cudaLaunchConfig_t *cfg, cudaLaunchAttribute *at, int cl, int units, int tpb, cudaStream_t st)
{
	memset(cfg, 0, sizeof(*cfg));
	memset(at, 0, sizeof(*at));
	cfg->gridDim = dim3(cl, units);
	cfg->blockDim = dim3(CS_THREADS);
	cfg->dynamicSmemBytes = cs_smem(cl, tpb);
	cfg->stream = st;
	at->id = cudaLaunchAttributeClusterDimension;
	at->val.clusterDim.x = cl;
	at->val.clusterDim.y = 1;
	at->val.clusterDim.z = 1;
	cfg->attrs = at;
	cfg->numAttrs = 1;
}

/* sm_90: the fused kernels may take the shared memory of CS_TPB_MAX keys and clusters of 16 blocks; how many
 * clusters of each size (with this workspace's keys per block) can be resident at once is asked once (csfit).
 * A GPU that refuses either attribute keeps csfit at 0: the split path, not a failed workspace. */
static void cs_setup(fpk_ds_workspace *ws)
{
	const int fmts[3] = {FPK_DS_LABEL_16, FPK_DS_LABEL_Q8, FPK_DS_LABEL_Q4}, vws[3] = {16, 8, 4};
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			cs_fn fn = cs_kernel(fmts[i], vws[j]);
			if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
						 (int)cs_smem(CS_CL_MAX, CS_TPB_MAX)) != cudaSuccess ||
			    cudaFuncSetAttribute(fn, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
				(void)cudaGetLastError(); /* a GPU that refuses: csfit stays 0, the split path runs */
				return;
			}
		}
	for (int i = 0, cl = 1; i < 5; i++, cl *= 2) {
		int tpb = ((ws->shape.max_len + cl - 1) / cl + 31) & ~31, ncl = 0;
		ws->csfit[i] = 0;
		if (tpb > CS_TPB_MAX)
			continue;
		cudaLaunchConfig_t cfg;
		cudaLaunchAttribute at;
		cs_config(&cfg, &at, cl, 1, tpb, NULL);
		if (cudaOccupancyMaxActiveClusters(&ncl, cs_kernel(FPK_DS_LABEL_16, 16), &cfg) == cudaSuccess)
			ws->csfit[i] = ncl;
		(void)cudaGetLastError(); /* a refusal is an answer (0 clusters), not an error */
	}
}

/* the fused score + select plan for U units: the cluster size (0: the split path) and the keys per block.
 * Each cluster-wide exchange of the fused kernel waits microseconds under the full memory load of the scoring, and
 * a block holds its SM slot (its keys) while it waits: with more clusters than can be resident at once the waits
 * add up wave after wave, and the split path is faster (docs/BENCHMARKS.md, runs 29-32). So: the smallest
 * power-of-two cluster whose blocks hold at most CS_TPB_MAX keys; the fused path only if all U clusters are
 * resident at once; then the cluster doubled while that still holds and blocks keep >= 1024 keys.
 * FPK_DS_SELECT=split forces the split path, FPK_DS_SELECT=fused the fused one whenever the keys fit. */
static int cs_plan(const fpk_ds_shape *s, const fpk_ds_workspace *ws, int U, int *tpb)
{
	const char *e = getenv("FPK_DS_SELECT");
	const int force = e && !strcmp(e, "fused");
	if (ws->cc_major < 9 || (e && !strcmp(e, "split")))
		return 0;
	int i = 0;
	while (i < 4 && (s->max_len + (1 << i) - 1) >> i > CS_TPB_MAX)
		i++;
	if ((s->max_len + (1 << i) - 1) >> i > CS_TPB_MAX || ws->csfit[i] < 1 || (!force && U > ws->csfit[i]))
		return 0;
	while (i < 4 && s->max_len >> (i + 1) >= 1024 && ws->csfit[i + 1] >= 1 && (force || U <= ws->csfit[i + 1]))
		i++;
	*tpb = ((s->max_len + (1 << i) - 1) / (1 << i) + 31) & ~31;
	return 1 << i;
}

static int launch_scsel(int cl, int tpb, int U, int vw, cudaStream_t st, const fpk_ds_decode_params *p,
			fpk_ds_workspace *ws, int LH, int rb)
{
	const fpk_ds_shape *s = &p->shape;
	cudaLaunchConfig_t cfg;
	cudaLaunchAttribute at;
	cs_config(&cfg, &at, cl, U, tpb, st);
	FPK_CU(cudaLaunchKernelEx(&cfg, cs_kernel(p->cfg.fmt, vw), (const uint16_t *)p->q, p->lens, p->cfg.ch,
				  (const uint8_t *)p->labels, (const uint16_t *)p->scales, ws->idx, ws->nsel, ws->fault,
				  s->heads, s->kv_heads, LH, s->head_dim, s->max_len, p->cfg.r, rb, p->sel_per_head,
				  p->cfg.per_head_labels, (int)(s->kv_dtype == FPK_BF16), tpb, ws->kcap, p->topk, p->topk_div,
				  p->dense_below));
	return 0;
}

extern "C" int fpk_ds_workspace_new(const fpk_ds_shape *s, int max_topk, fpk_ds_workspace **out)
{
	*out = NULL;
	int rc = gpu_check_shape(s);
	if (rc)
		return rc;
	if (max_topk < 1)
		return fpk_error_set(FPK_EUSAGE, "ds workspace: max top-k %d must be positive", max_topk);
	fpk_ds_workspace *ws = (fpk_ds_workspace *)calloc(1, sizeof(*ws));
	if (!ws)
		return fpk_error_set(FPK_EIO, "ds workspace: out of memory");
	ws->shape = *s;
	ws->kcap = max_topk < s->max_len ? max_topk : s->max_len;
	ws->lcap = (s->max_len + 7) & ~7;
	size_t U = (size_t)s->batch * s->heads;
#define ALLOC(ptr, n)                                                                                        \
	do {                                                                                                     \
		cudaError_t e_ = cudaMalloc((void **)&ws->ptr, sizeof(*ws->ptr) * (n));                             \
		if (e_ != cudaSuccess) {                                                                             \
			rc = fpk_error_set(FPK_EGPU, "ds workspace: cudaMalloc of '%s' (%zu bytes) failed: %s", #ptr,   \
					   sizeof(*ws->ptr) * (size_t)(n), cudaGetErrorString(e_));                       \
			goto done;                                                                               \
		}                                                                                                    \
	} while (0)
	if ((rc = device_sms(&ws->sms, &ws->cc_major)))
		goto done;
	if (ws->cc_major >= 9)
		cs_setup(ws);
	if (cudaFuncSetAttribute(ds_select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SEL_LIST * 8) !=
	    cudaSuccess) {
		rc = fpk_error_set(FPK_EGPU, "ds workspace: the selection kernel cannot get %d bytes of shared memory",
				   SEL_LIST * 8);
		goto done;
	}
	ALLOC(scores, U * ws->lcap);
	ALLOC(hist, U * HIST_BINS);
	ALLOC(ckey, U * ws->lcap);
	ALLOC(cidx, U * ws->lcap);
	ALLOC(fkey, U * ws->lcap);
	ALLOC(fidx, U * ws->lcap);
	ALLOC(ccnt, U * MAX_CHUNKS);
	ALLOC(bsel, U * 2);
	ALLOC(scnt, U);
	ALLOC(fault, 1);
	ALLOC(idx, U * ws->kcap);
	ALLOC(nsel, U);
	ALLOC(part, U * NSPLIT_MAX * (size_t)(s->head_dim + 4));
	ALLOC(counter, U);
#undef ALLOC
	if (cudaMemset(ws->hist, 0, sizeof(uint32_t) * U * HIST_BINS) != cudaSuccess ||
	    cudaMemset(ws->counter, 0, sizeof(unsigned) * U) != cudaSuccess ||
	    cudaMemset(ws->scnt, 0, sizeof(unsigned) * U) != cudaSuccess ||
	    cudaMemset(ws->fault, 0, sizeof(unsigned)) != cudaSuccess) {
		rc = fpk_error_set(FPK_EGPU, "ds workspace: cudaMemset failed");
		goto done;
	}
done:
	if (rc) {
		fpk_ds_workspace_free(ws);
		return rc;
	}
	*out = ws;
	return 0;
}

extern "C" void fpk_ds_workspace_free(fpk_ds_workspace *ws)
{
	if (!ws)
		return;
	cudaFree(ws->scores);
	cudaFree(ws->hist);
	cudaFree(ws->ckey);
	cudaFree(ws->cidx);
	cudaFree(ws->fkey);
	cudaFree(ws->fidx);
	cudaFree(ws->ccnt);
	cudaFree(ws->bsel);
	cudaFree(ws->scnt);
	cudaFree(ws->fault);
	cudaFree(ws->idx);
	cudaFree(ws->nsel);
	cudaFree(ws->part);
	cudaFree(ws->counter);
	free(ws);
}

extern "C" int fpk_ds_decode_fused(const fpk_ds_decode_params *p, const fpk_ds_workspace *ws)
{
	int tpb, U = p->shape.batch * (p->sel_per_head ? p->shape.heads : p->shape.kv_heads);
	return cs_plan(&p->shape, ws, U, &tpb);
}

extern "C" int fpk_ds_workspace_faults(fpk_ds_workspace *ws, unsigned *faults)
{
	*faults = 0;
	FPK_CU(cudaMemcpy(faults, ws->fault, sizeof(unsigned), cudaMemcpyDeviceToHost));
	FPK_CU(cudaMemset(ws->fault, 0, sizeof(unsigned)));
	return 0;
}

extern "C" void fpk_ds_workspace_selection(const fpk_ds_workspace *ws, const int32_t **idx, const int32_t **nsel,
					   int *kcap)
{
	*idx = ws->idx;
	*nsel = ws->nsel;
	*kcap = ws->kcap;
}

static int same_shape(const fpk_ds_shape *a, const fpk_ds_shape *b)
{
	return a->batch == b->batch && a->heads == b->heads && a->kv_heads == b->kv_heads &&
	       a->head_dim == b->head_dim && a->max_len == b->max_len;
}

extern "C" int fpk_ds_label_build(const fpk_ds_label_params *p, void *stream)
{
	const fpk_ds_shape *s = &p->shape;
	const fpk_ds_label_cfg *c = &p->cfg;
	int rc = gpu_check_shape(s);
	if (rc || (rc = fpk_ds_check_cfg(s, c)))
		return rc;
	if (c->fmt != FPK_DS_LABEL_16 && !p->scales)
		return fpk_error_set(FPK_EUSAGE, "ds labels: quantized labels need a scale array");
	cudaStream_t st = (cudaStream_t)stream;
	int G = s->heads / s->kv_heads, LH = c->per_head_labels ? s->heads : s->kv_heads;
	int rb = (int)fpk_ds_label_row_bytes(c), bf16 = s->kv_dtype == FPK_BF16;
	dim3 grid((s->max_len + 255) / 256, s->batch * LH);
	const uint16_t *k = (const uint16_t *)p->k;
	if (c->fmt == FPK_DS_LABEL_16)
		ds_label_kernel<<<grid, 256, 0, st>>>(k, p->lens, p->from, c->ch, p->labels, p->scales,
									 s->kv_heads, LH, G, c->per_head_labels, s->max_len,
									 s->head_dim, c->r, rb);
	else if (c->fmt == FPK_DS_LABEL_Q8)
		ds_label_q_kernel<FPK_DS_LABEL_Q8><<<grid, 256, 0, st>>>(k, p->lens, p->from, c->ch, p->labels, p->scales,
									   s->kv_heads, LH, G, c->per_head_labels,
									   s->max_len, s->head_dim, c->r, rb, bf16);
	else
		ds_label_q_kernel<FPK_DS_LABEL_Q4><<<grid, 256, 0, st>>>(k, p->lens, p->from, c->ch, p->labels, p->scales,
									   s->kv_heads, LH, G, c->per_head_labels,
									   s->max_len, s->head_dim, c->r, rb, bf16);
	FPK_CU(cudaGetLastError());
	return 0;
}

typedef void (*att_fn)(att_args);

template <typename T, int GB, bool PF> static att_fn pick_lpr(int lpr)
{
	switch (lpr) {
	case 1: return ds_attn_kernel<T, 1, GB, PF>;
	case 2: return ds_attn_kernel<T, 2, GB, PF>;
	case 4: return ds_attn_kernel<T, 4, GB, PF>;
	case 8: return ds_attn_kernel<T, 8, GB, PF>;
	case 16: return ds_attn_kernel<T, 16, GB, PF>;
	default: return ds_attn_kernel<T, 32, GB, PF>;
	}
}

template <typename T> static att_fn pick_gb(int gb, int lpr, bool sparse)
{
	switch (gb) {
	case 1: return sparse ? pick_lpr<T, 1, true>(lpr) : pick_lpr<T, 1, false>(lpr);
	case 2: return pick_lpr<T, 2, true>(lpr);
	case 4: return pick_lpr<T, 4, true>(lpr);
	default: return pick_lpr<T, 8, false>(lpr);
	}
}

/* attention over units of hb query heads; idx/nsel NULL for dense; nmax: the most tokens a unit may have */
static int launch_attention(const fpk_ds_shape *s, const void *q, const void *k, const void *v, const int32_t *lens,
			    const int32_t *idx, const int32_t *nsel, int kcap, int sel_per_head, int nmax, float *out,
			    fpk_ds_workspace *ws, cudaStream_t st, int pdl)
{
	int G = s->heads / s->kv_heads;
	int hb = 1;
	if (!sel_per_head)
		for (int x = 8; x >= 1; x--)
			if (G % x == 0) {
				hb = x;
				break;
			}
	int gb = hb <= 1 ? 1 : hb <= 2 ? 2 : hb <= 4 ? 4 : 8;
	int lpr = 1;
	while (lpr * 8 < s->head_dim)
		lpr *= 2;
	att_args a;
	a.q = q, a.k = k, a.v = v, a.lens = lens, a.idx = idx, a.nsel = nsel, a.out = out, a.part = ws->part;
	a.counter = ws->counter;
	a.H = s->heads, a.Hkv = s->kv_heads, a.d = s->head_dim, a.Lmax = s->max_len, a.hb = hb;
	a.upb = s->heads / hb, a.sel_per_head = sel_per_head, a.kcap = kcap;
	a.qscale = 1.4426950408889634f / sqrtf((float)s->head_dim);
	int units = s->batch * a.upb;
	att_fn fn = s->kv_dtype == FPK_BF16 ? pick_gb<__nv_bfloat16>(gb, lpr, idx != NULL)
					     : pick_gb<__half>(gb, lpr, idx != NULL);
	/* at most one full wave of resident blocks, at least 128 tokens per split */
	int bps = 1;
	FPK_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bps, fn, ATT_THREADS, 0));
	int want = bps * ws->sms / units;
	int cap = nmax / 128 > 1 ? nmax / 128 : 1;
	a.nsplit = want < cap ? want : cap;
	if (a.nsplit > NSPLIT_MAX)
		a.nsplit = NSPLIT_MAX;
	if (a.nsplit < 1)
		a.nsplit = 1;
	FPK_CU(fpk_launch_pdl(fn, dim3(a.nsplit, units), dim3(ATT_THREADS), 0, st, pdl, a));
	return 0;
}

extern "C" int fpk_ds_dense_decode(const fpk_ds_dense_params *p, fpk_ds_workspace *ws, void *stream)
{
	int rc = gpu_check_shape(&p->shape);
	if (rc)
		return rc;
	if (!same_shape(&p->shape, &ws->shape))
		return fpk_error_set(FPK_EUSAGE, "ds dense decode: workspace was made for another shape");
	return launch_attention(&p->shape, p->q, p->k, p->v, p->lens, NULL, NULL, 0, 0, p->shape.max_len, p->out, ws,
				(cudaStream_t)stream, fpk_pdl_enabled());
}

template <int FMT>
static void launch_score(int vw, dim3 grid, cudaStream_t st, const fpk_ds_decode_params *p, fpk_ds_workspace *ws,
			 int LH, int rb, int chunk)
{
	const fpk_ds_shape *s = &p->shape;
	auto fn = vw == 16 ? ds_score_kernel<FMT, 16> : vw == 8 ? ds_score_kernel<FMT, 8> : ds_score_kernel<FMT, 4>;
	fn<<<grid, 256, 0, st>>>((const uint16_t *)p->q, p->lens, p->cfg.ch, p->labels, p->scales, ws->scores, ws->hist,
				 ws->scnt, ws->bsel, s->heads, s->kv_heads, LH, s->head_dim, s->max_len, ws->lcap, p->cfg.r, rb,
				 p->sel_per_head, p->cfg.per_head_labels, s->kv_dtype == FPK_BF16, chunk, p->topk,
				 p->topk_div, p->dense_below);
}

/* which dependent launches of the step use programmatic dependent launch: 0 none, 1 the filter, 2 filter, select
 * and attention (default); FPK_DS_PDL=0|1|2 overrides it (for timing, or a driver that rejects PDL) */
static int pdl_mode(void)
{
	static int mode = -1;
	if (mode < 0) {
		const char *e = getenv("FPK_DS_PDL");
		mode = e && e[0] >= '0' && e[0] <= '2' && !e[1] ? e[0] - '0' : 2;
	}
	return fpk_pdl_enabled() ? mode : 0; /* FPK_PDL=0 (or a GPU before sm_90) turns off every PDL launch */
}

extern "C" int fpk_ds_decode(const fpk_ds_decode_params *p, fpk_ds_workspace *ws, void *stream)
{
	const fpk_ds_shape *s = &p->shape;
	int rc = gpu_check_shape(s);
	if (rc || (rc = fpk_ds_check_cfg(s, &p->cfg)))
		return rc;
	if (!same_shape(s, &ws->shape))
		return fpk_error_set(FPK_EUSAGE, "ds decode: workspace was made for another shape");
	if (p->cfg.per_head_labels && !p->sel_per_head)
		return fpk_error_set(FPK_EUSAGE, "ds attention: per-query-head labels need per-head selection");
	if (p->cfg.fmt != FPK_DS_LABEL_16 && !p->scales)
		return fpk_error_set(FPK_EUSAGE, "ds decode: quantized labels need a scale array");
	/* the largest k any sequence can get must fit the workspace */
	long long kmax = p->topk > 0 ? p->topk : (p->topk_div > 0 ? ((long long)s->max_len + p->topk_div - 1) / p->topk_div
								 : s->max_len);
	if (kmax > ws->kcap && kmax < s->max_len)
		return fpk_error_set(FPK_EUSAGE, "ds decode: top-k up to %lld over the workspace's %d", kmax, ws->kcap);
	cudaStream_t st = (cudaStream_t)stream;
	int per = p->sel_per_head ? s->heads : s->kv_heads, U = s->batch * per;
	int LH = p->cfg.per_head_labels ? s->heads : s->kv_heads;
	int rb = (int)fpk_ds_label_row_bytes(&p->cfg);
	int vw = rb % 16 == 0 ? 16 : rb % 8 == 0 ? 8 : 4;
	const int pm = pdl_mode();
	int nmax = ws->kcap;
	int db = p->dense_below < s->max_len ? p->dense_below : s->max_len;
	if (db > nmax)
		nmax = db;
	int tpb = 0, cl = cs_plan(s, ws, U, &tpb);
	if (cl) { /* scores and selection in one launch */
		if ((rc = launch_scsel(cl, tpb, U, vw, st, p, ws, LH, rb)))
			return rc;
		if (p->stop_after == 1 || p->stop_after == 2)
			return 0;
		return launch_attention(s, p->q, p->k, p->v, p->lens, ws->idx, ws->nsel, ws->kcap, p->sel_per_head,
					nmax, p->out, ws, st, pm >= 2);
	}
	/* chunks are multiples of 16 (float4 loads of the filter) and at most MAX_CHUNKS per unit */
	const int min_chunk = ((s->max_len + MAX_CHUNKS - 1) / MAX_CHUNKS + 15) & ~15;
	int target = (SCORE_WAVE * ws->sms + U - 1) / U; /* score blocks per unit */
	int chunk = (s->max_len + target - 1) / target;
	if (chunk < 512)
		chunk = 512;
	chunk = (chunk + 15) & ~15;
	if (chunk < min_chunk)
		chunk = min_chunk;
	dim3 grid((s->max_len + chunk - 1) / chunk, U);
	/* the filter's chunks: at most FILT_CHUNK tokens, so that a block does one round trip of loads */
	int fchunk = chunk < FILT_CHUNK ? chunk : FILT_CHUNK;
	if (fchunk < min_chunk)
		fchunk = min_chunk;
	dim3 fgrid((s->max_len + fchunk - 1) / fchunk, U);
	if (p->cfg.fmt == FPK_DS_LABEL_16)
		launch_score<FPK_DS_LABEL_16>(vw, grid, st, p, ws, LH, rb, chunk);
	else if (p->cfg.fmt == FPK_DS_LABEL_Q8)
		launch_score<FPK_DS_LABEL_Q8>(vw, grid, st, p, ws, LH, rb, chunk);
	else
		launch_score<FPK_DS_LABEL_Q4>(vw, grid, st, p, ws, LH, rb, chunk);
	FPK_CU(cudaGetLastError());
	if (p->stop_after == 1)
		return 0;
	const size_t sel_smem = (size_t)SEL_LIST * 8;
	FPK_CU(fpk_launch_pdl(ds_filter_kernel, fgrid, dim3(FILT_THREADS), 0, st, pm >= 1, ws->scores, ws->fkey,
			      ws->fidx, ws->ccnt, ws->bsel, p->lens, per, ws->lcap, fchunk, p->topk, p->topk_div,
			      p->dense_below));
	FPK_CU(fpk_launch_pdl(ds_select_kernel, dim3(U), dim3(SEL_THREADS), sel_smem, st, pm >= 2, ws->hist, ws->fkey,
			      ws->fidx, ws->ckey, ws->cidx, ws->ccnt, ws->bsel, ws->idx, ws->nsel, p->lens, per,
			      ws->lcap, ws->kcap, fchunk, p->topk, p->topk_div, p->dense_below, SEL_LIST, ws->fault));
	if (p->stop_after == 2)
		return 0;
	return launch_attention(s, p->q, p->k, p->v, p->lens, ws->idx, ws->nsel, ws->kcap, p->sel_per_head, nmax, p->out,
				ws, st, pm >= 2);
}
