/* attn_prefill.cu: fused causal attention for blocks of queries (see attn_prefill.h).
 *
 * One thread block per (64 queries, head, block): 4 warps of 16 query rows. The queries are loaded once into
 * mma A fragments (scaled by scale * log2(e) and rounded to fp16). Keys and values stream through shared memory
 * in tiles of 64 positions, converted from fp32 to fp16 on the way (K row-major, V transposed so that both
 * products read their B fragments as 32-bit words without bank conflicts). Per tile each warp computes its
 * 16 x 64 scores with mma.sync m16n8k16 (fp32 accumulation), masks the causal future, updates the running row
 * maximum and sum (online softmax, exp2), rescales its 16 x d output accumulators and multiplies the
 * probabilities (fp16, taken straight from the score accumulators' register layout) with the value tile.
 * Tiles entirely in a warp's future are skipped; the scores never leave registers.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 .f16): lane = 4 * g + t. A (16 x 16, row-major): reg 0 = row g,
 * columns 2t, 2t+1; reg 1 = row g + 8, same columns; regs 2, 3 = the same rows at columns + 8. B (16 x 8,
 * "col"): reg 0 = k rows 2t, 2t+1 of column g; reg 1 = k rows + 8. C (16 x 8): c0, c1 = row g, columns 2t, 2t+1;
 * c2, c3 = row g + 8. Two adjacent C tiles of P are therefore one A fragment of the next product. */
#include "attn_prefill.h"
#include "fpk_cuda.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#define AP_BQ 64 /* queries per block (4 warps x 16 rows) */
#define AP_BK 64 /* key positions per tile */
#define AP_THREADS 128

static __device__ __forceinline__ void mma_f16(float *c, const unsigned *a, unsigned b0, unsigned b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
		     "{%0,%1,%2,%3};\n"
		     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* two floats as one fp16x2 word, lo in the low half (the lower column of a fragment) */
static __device__ __forceinline__ unsigned pack_h2(float lo, float hi)
{
	__half2 h = __floats2half2_rn(lo, hi);
	return *reinterpret_cast<unsigned *>(&h);
}

template <int D> static __global__ void __launch_bounds__(AP_THREADS) k_attn_prefill(fpk_attn_prefill_params p)
{
	constexpr int KS = D + 8;     /* K tile row stride in halves: rows land 4 banks apart */
	constexpr int VS = AP_BK + 8; /* V^T tile row stride */
	__shared__ __align__(16) __half Ks[AP_BK * KS];
	__shared__ __align__(16) __half Vt[D * VS];

	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
	const int h = blockIdx.y, b = blockIdx.z, kvh = h / (p.heads / p.kv_heads);
	const int wrow = blockIdx.x * AP_BQ + warp * 16; /* the warp's first query */
	const int ra = wrow + g, rb = ra + 8;             /* this thread's two query rows */
	const int pa = p.pos0 + ra, pb = p.pos0 + rb;     /* and their positions */
	const int last_q = min(p.Tq, (int)(blockIdx.x + 1) * AP_BQ) - 1;
	const int kend = p.pos0 + last_q + 1; /* keys the block needs: 0 .. kend - 1 */
	const int warp_last = p.pos0 + min(p.Tq - 1, wrow + 15);
	const bool warp_idle = wrow >= p.Tq;

	/* queries -> A fragments, pre-scaled so that the scores come out in log2 units */
	const float qs = p.scale * 1.4426950408889634f;
	unsigned qa[D / 16][4];
	{
		const float *q = p.q + (size_t)b * p.Tq * p.q_ld + (size_t)h * D;
#pragma unroll
		for (int c = 0; c < D / 16; c++) {
			const int col = c * 16 + 2 * t;
			float2 x0 = make_float2(0.f, 0.f), x1 = x0, x2 = x0, x3 = x0;
			if (ra < p.Tq) {
				x0 = *reinterpret_cast<const float2 *>(q + (size_t)ra * p.q_ld + col);
				x2 = *reinterpret_cast<const float2 *>(q + (size_t)ra * p.q_ld + col + 8);
			}
			if (rb < p.Tq) {
				x1 = *reinterpret_cast<const float2 *>(q + (size_t)rb * p.q_ld + col);
				x3 = *reinterpret_cast<const float2 *>(q + (size_t)rb * p.q_ld + col + 8);
			}
			qa[c][0] = pack_h2(x0.x * qs, x0.y * qs);
			qa[c][1] = pack_h2(x1.x * qs, x1.y * qs);
			qa[c][2] = pack_h2(x2.x * qs, x2.y * qs);
			qa[c][3] = pack_h2(x3.x * qs, x3.y * qs);
		}
	}

	float o[D / 8][4];
#pragma unroll
	for (int j = 0; j < D / 8; j++)
		o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
	float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

	const float *kb = p.k + (size_t)b * p.kv_bstride + (size_t)kvh * D;
	const float *vb = p.v + (size_t)b * p.kv_bstride + (size_t)kvh * D;
	for (int k0 = 0; k0 < kend; k0 += AP_BK) {
		__syncthreads(); /* the previous tile is no longer read */
		for (int i = threadIdx.x; i < AP_BK * D / 4; i += AP_THREADS) {
			const int r = i / (D / 4), c4 = (i % (D / 4)) * 4;
			float4 kx = make_float4(0.f, 0.f, 0.f, 0.f), vx = kx;
			if (k0 + r < kend) {
				kx = *reinterpret_cast<const float4 *>(kb + (size_t)(k0 + r) * p.kv_ld + c4);
				vx = *reinterpret_cast<const float4 *>(vb + (size_t)(k0 + r) * p.kv_ld + c4);
			}
			*reinterpret_cast<__half2 *>(&Ks[r * KS + c4]) = __floats2half2_rn(kx.x, kx.y);
			*reinterpret_cast<__half2 *>(&Ks[r * KS + c4 + 2]) = __floats2half2_rn(kx.z, kx.w);
			Vt[(c4 + 0) * VS + r] = __float2half_rn(vx.x);
			Vt[(c4 + 1) * VS + r] = __float2half_rn(vx.y);
			Vt[(c4 + 2) * VS + r] = __float2half_rn(vx.z);
			Vt[(c4 + 3) * VS + r] = __float2half_rn(vx.w);
		}
		__syncthreads();
		if (warp_idle || k0 > warp_last) /* the whole tile is in this warp's future (warp-uniform) */
			continue;

		float s[AP_BK / 8][4];
#pragma unroll
		for (int j = 0; j < AP_BK / 8; j++)
			s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
		for (int c = 0; c < D / 16; c++) {
#pragma unroll
			for (int j = 0; j < AP_BK / 8; j++) {
				const __half *kr = &Ks[(j * 8 + g) * KS + c * 16 + 2 * t];
				mma_f16(s[j], qa[c], *reinterpret_cast<const unsigned *>(kr),
					*reinterpret_cast<const unsigned *>(kr + 8));
			}
		}
		/* causal mask and the tile's row maxima (each row is spread over the 4 lanes of a quad) */
		float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
		for (int j = 0; j < AP_BK / 8; j++) {
#pragma unroll
			for (int e = 0; e < 2; e++) {
				const int key = k0 + j * 8 + 2 * t + e;
				if (key > pa)
					s[j][e] = -INFINITY;
				if (key > pb)
					s[j][2 + e] = -INFINITY;
				mx_a = fmaxf(mx_a, s[j][e]);
				mx_b = fmaxf(mx_b, s[j][2 + e]);
			}
		}
		mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
		mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
		mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
		mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
		const float na = fmaxf(m_a, mx_a), nb = fmaxf(m_b, mx_b);
		/* a row that has seen no key yet keeps -inf: use 0 as its reference so that exp2 gives exact zeros */
		const float ref_a = na == -INFINITY ? 0.f : na, ref_b = nb == -INFINITY ? 0.f : nb;
		const float al_a = exp2f(m_a - ref_a), al_b = exp2f(m_b - ref_b);
		m_a = na;
		m_b = nb;
		l_a *= al_a;
		l_b *= al_b;
#pragma unroll
		for (int j = 0; j < D / 8; j++) {
			o[j][0] *= al_a;
			o[j][1] *= al_a;
			o[j][2] *= al_b;
			o[j][3] *= al_b;
		}
#pragma unroll
		for (int j = 0; j < AP_BK / 8; j++) {
			s[j][0] = exp2f(s[j][0] - ref_a);
			s[j][1] = exp2f(s[j][1] - ref_a);
			s[j][2] = exp2f(s[j][2] - ref_b);
			s[j][3] = exp2f(s[j][3] - ref_b);
			l_a += s[j][0] + s[j][1];
			l_b += s[j][2] + s[j][3];
		}
		/* O += P V: the probabilities of key columns 16 c2 .. 16 c2 + 15 are the A fragment */
#pragma unroll
		for (int c2 = 0; c2 < AP_BK / 16; c2++) {
			const unsigned pf[4] = {pack_h2(s[2 * c2][0], s[2 * c2][1]), pack_h2(s[2 * c2][2], s[2 * c2][3]),
				pack_h2(s[2 * c2 + 1][0], s[2 * c2 + 1][1]), pack_h2(s[2 * c2 + 1][2], s[2 * c2 + 1][3])};
#pragma unroll
			for (int j = 0; j < D / 8; j++) {
				const __half *vr = &Vt[(j * 8 + g) * VS + c2 * 16 + 2 * t];
				mma_f16(o[j], pf, *reinterpret_cast<const unsigned *>(vr),
					*reinterpret_cast<const unsigned *>(vr + 8));
			}
		}
	}
	if (warp_idle)
		return;
	l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
	l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
	l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
	l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
	const float ia = 1.f / l_a, ib = 1.f / l_b;
	float *out = p.out + (size_t)b * p.Tq * p.q_ld + (size_t)h * D + 2 * t;
#pragma unroll
	for (int j = 0; j < D / 8; j++) {
		if (ra < p.Tq)
			*reinterpret_cast<float2 *>(out + (size_t)ra * p.q_ld + j * 8) = make_float2(o[j][0] * ia, o[j][1] * ia);
		if (rb < p.Tq)
			*reinterpret_cast<float2 *>(out + (size_t)rb * p.q_ld + j * 8) = make_float2(o[j][2] * ib, o[j][3] * ib);
	}
}

extern "C" int fpk_attn_prefill_supported(int d)
{
	return d == 16 || d == 32 || d == 64 || d == 128;
}

static int aligned(const void *ptr, uintptr_t a)
{
	return ((uintptr_t)ptr & (a - 1)) == 0;
}

extern "C" int fpk_attn_prefill(const fpk_attn_prefill_params *p)
{
	if (!p || !p->q || !p->k || !p->v || !p->out)
		return fpk_error_set(FPK_EUSAGE, "attn_prefill: missing buffer");
	if (p->nb < 1 || p->Tq < 1 || p->pos0 < 0 || p->heads < 1 || p->kv_heads < 1 || p->heads % p->kv_heads)
		return fpk_error_set(FPK_EUSAGE, "attn_prefill: bad shape (nb %d, Tq %d, pos0 %d, heads %d/%d)", p->nb, p->Tq,
			p->pos0, p->heads, p->kv_heads);
	if (!fpk_attn_prefill_supported(p->d))
		return fpk_error_set(FPK_EUSAGE, "attn_prefill: head_dim %d has no kernel (16, 32, 64, 128)", p->d);
	if (p->q_ld < (int64_t)p->heads * p->d || p->kv_ld < (int64_t)p->kv_heads * p->d || p->q_ld % 2 ||
		p->kv_ld % 4 || p->kv_bstride % 4 || (p->nb > 1 && p->kv_bstride < (int64_t)(p->pos0 + p->Tq) * p->kv_ld))
		return fpk_error_set(FPK_EUSAGE, "attn_prefill: bad strides (q_ld %lld, kv_ld %lld, kv_bstride %lld)",
			(long long)p->q_ld, (long long)p->kv_ld, (long long)p->kv_bstride);
	if (!aligned(p->q, 8) || !aligned(p->out, 8) || !aligned(p->k, 16) || !aligned(p->v, 16))
		return fpk_error_set(FPK_EUSAGE, "attn_prefill: buffers must be 8-byte (q, out) and 16-byte (k, v) aligned");
	if (p->heads > 65535 || p->nb > 65535)
		return fpk_error_set(FPK_EUSAGE, "attn_prefill: at most 65535 heads and blocks per launch");
	dim3 grid((unsigned)((p->Tq + AP_BQ - 1) / AP_BQ), (unsigned)p->heads, (unsigned)p->nb);
	cudaStream_t s = (cudaStream_t)p->stream;
	switch (p->d) {
	case 16: k_attn_prefill<16><<<grid, AP_THREADS, 0, s>>>(*p); break;
	case 32: k_attn_prefill<32><<<grid, AP_THREADS, 0, s>>>(*p); break;
	case 64: k_attn_prefill<64><<<grid, AP_THREADS, 0, s>>>(*p); break;
	default: k_attn_prefill<128><<<grid, AP_THREADS, 0, s>>>(*p); break;
	}
	FPK_CUDA_TRY(cudaGetLastError());
	return 0;
}
