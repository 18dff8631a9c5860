/* model_gpu.cu: the engine's GPU path, fp32: cuBLAS SGEMM for the linear layers and for attention (per head,
 * batched over blocks: S = K^T Q, causal softmax kernel, O = V P), small kernels for norms, RoPE, activations,
 * residuals and the calibration statistics (double accumulators, fixed order: deterministic).
 * Calibration is layer-streamed: one decoder layer's weights on the GPU at a time (the next one prefetched by a
 * thread on a non-blocking stream), the hidden states of all blocks carried from layer to layer. Generation keeps every layer resident (small models).
 * Tested by tests/gpu/test_model_gpu.c (label gpu): llama2.c golden and CPU-vs-GPU calibration statistics. */
#include "model_gpu.h"
#include "attn_prefill.h"
#include "channels.h"
#include "spmm.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(x)                                                                                                       \
	do {                                                                                                            \
		cudaError_t e_ = (x);                                                                                       \
		if (e_ != cudaSuccess) {                                                                                    \
			rc = fpk_error_set(FPK_EGPU, "%s failed at %s:%d: %s", #x, __FILE__, __LINE__, cudaGetErrorString(e_)); \
			goto done;                                                                                              \
		}                                                                                                           \
	} while (0)
#define CB(x)                                                                                                       \
	do {                                                                                                            \
		cublasStatus_t s_ = (x);                                                                                    \
		if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                          \
			rc = fpk_error_set(FPK_EGPU, "%s failed at %s:%d: cublas status %d", #x, __FILE__, __LINE__, (int)s_);  \
			goto done;                                                                                              \
		}                                                                                                           \
	} while (0)
#define KCHECK() CK(cudaGetLastError())

extern "C" int fpk_gpu_available(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError();
		return 0;
	}
	return n > 0;
}

/* ---- kernels ---- */

/* out[r] = norm(x[r]) * w (+ b): RMSNorm (ln == 0) or LayerNorm; one block per row */
static __global__ void k_norm(float *out, const float *x, const float *w, const float *b, int n, float eps, int ln)
{
	__shared__ float red[32];
	const float *xr = x + (size_t)blockIdx.x * n;
	float *orow = out + (size_t)blockIdx.x * n;
	float mean = 0;
	if (ln) {
		float s = 0;
		for (int i = threadIdx.x; i < n; i += blockDim.x)
			s += xr[i];
		for (int o = 16; o; o >>= 1)
			s += __shfl_xor_sync(0xffffffff, s, o);
		if ((threadIdx.x & 31) == 0)
			red[threadIdx.x >> 5] = s;
		__syncthreads();
		if (threadIdx.x < 32) {
			s = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0;
			for (int o = 16; o; o >>= 1)
				s += __shfl_xor_sync(0xffffffff, s, o);
			if (threadIdx.x == 0)
				red[0] = s;
		}
		__syncthreads();
		mean = red[0] / n;
		__syncthreads();
	}
	float ss = 0;
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		ss += (xr[i] - mean) * (xr[i] - mean);
	for (int o = 16; o; o >>= 1)
		ss += __shfl_xor_sync(0xffffffff, ss, o);
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = ss;
	__syncthreads();
	if (threadIdx.x < 32) {
		ss = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0;
		for (int o = 16; o; o >>= 1)
			ss += __shfl_xor_sync(0xffffffff, ss, o);
		if (threadIdx.x == 0)
			red[0] = ss;
	}
	__syncthreads();
	float inv = rsqrtf(red[0] / n + eps);
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		orow[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

static __global__ void k_bias(float *y, const float *b, size_t rows, int n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * n)
		y[i] += b[i % n];
}

static __global__ void k_add(float *x, const float *y, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		x[i] += y[i];
}

/* rotate-half RoPE in place on (rows, heads*d); row r has position pos0 + r % T; one block per row (32-bit index
 * arithmetic inside the row: the former one-thread-per-pair version spent most of its time in 64-bit divisions) */
static __global__ void k_rope(float *x, const float *inv_freq, int heads, int d, int T, int pos0)
{
	int half = d / 2, n = heads * half;
	float p = (float)(pos0 + (int)(blockIdx.x % (unsigned)T));
	float *xr = x + (size_t)blockIdx.x * heads * d;
	for (int e = threadIdx.x; e < n; e += blockDim.x) {
		int h = e / half, j = e - h * half;
		float *v = xr + (size_t)h * d;
		float a = p * inv_freq[j];
		float cs = cosf(a), sn = sinf(a), x1 = v[j], x2 = v[j + half];
		v[j] = x1 * cs - x2 * sn;
		v[j + half] = x2 * cs + x1 * sn;
	}
}

enum { ACT_SILU, ACT_RELU, ACT_GELU, ACT_GELU_TANH };
static __device__ float act_fn(int act, float x)
{
	switch (act) {
	case ACT_SILU: return x / (1.0f + expf(-x));
	case ACT_RELU: return x > 0 ? x : 0;
	case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678f));
	default: return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
	}
}

/* h1 = act(h2) * h1 (gated) or h1 = act(h1) */
static __global__ void k_act(float *h1, const float *h2, size_t n, int act)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		h1[i] = h2 ? act_fn(act, h2[i]) * h1[i] : act_fn(act, h1[i]);
}

/* causal softmax over S rows: row r = (block, t) of length L; valid keys 0..pos0+t */
static __global__ void k_softmax(float *S, int Tq, int L, int pos0)
{
	__shared__ float red[32];
	size_t r = blockIdx.x;
	int t = (int)(r % Tq), valid = pos0 + t + 1;
	float *s = S + r * L;
	float mx = -INFINITY;
	for (int i = threadIdx.x; i < valid; i += blockDim.x)
		mx = fmaxf(mx, s[i]);
	for (int o = 16; o; o >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = mx;
	__syncthreads();
	if (threadIdx.x < 32) {
		mx = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : -INFINITY;
		for (int o = 16; o; o >>= 1)
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
		if (threadIdx.x == 0)
			red[0] = mx;
	}
	__syncthreads();
	mx = red[0];
	__syncthreads();
	float sum = 0;
	for (int i = threadIdx.x; i < valid; i += blockDim.x) {
		float e = expf(s[i] - mx);
		s[i] = e;
		sum += e;
	}
	for (int o = 16; o; o >>= 1)
		sum += __shfl_xor_sync(0xffffffff, sum, o);
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = sum;
	__syncthreads();
	if (threadIdx.x < 32) {
		sum = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0;
		for (int o = 16; o; o >>= 1)
			sum += __shfl_xor_sync(0xffffffff, sum, o);
		if (threadIdx.x == 0)
			red[0] = sum;
	}
	__syncthreads();
	float inv = 1.0f / red[0];
	for (int i = threadIdx.x; i < L; i += blockDim.x)
		s[i] = i < valid ? s[i] * inv : 0.0f;
}

/* calibration sums over the whole GPU, deterministic (fixed order everywhere, no atomics):
 * pass 1 (k_colsum_part): block (blockIdx.x, blockIdx.y) = 32 columns x one segment of rows; thread (tx, ty) sums
 * rows seg0 + ty, seg0 + ty + CS_TY, ... of column c in double, the CS_TY partials are added in ty order and written
 * to part[seg * cols + c]; pass 2 (k_colsum_fin): acc[c] += sum of part[seg * cols + c] over seg in order.
 * mode 0: |a[r, c]|; mode 1 (qk): |a[r, h*d+c] * b[r, (h/grp)*d+c]| */
#define CS_TX 32
#define CS_TY 8
#define CS_SEG_MAX 64
static __global__ void k_colsum_part(double *part, const float *a, const float *b, size_t rows, size_t seg_rows,
	int cols, int bcols, int d, int grp)
{
	__shared__ double sh[CS_TY][CS_TX];
	int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * CS_TX + tx;
	size_t r0 = (size_t)blockIdx.y * seg_rows, r1 = r0 + seg_rows < rows ? r0 + seg_rows : rows;
	double s = 0;
	if (c < cols) {
		if (!b) {
			for (size_t r = r0 + ty; r < r1; r += CS_TY)
				s += fabsf(a[r * cols + c]);
		} else {
			int h = c / d, j = c % d, bc = (h / grp) * d + j;
			for (size_t r = r0 + ty; r < r1; r += CS_TY)
				s += fabsf(a[r * cols + c] * b[r * bcols + bc]);
		}
	}
	sh[ty][tx] = s;
	__syncthreads();
	if (ty == 0 && c < cols) {
		double t = sh[0][tx];
		for (int i = 1; i < CS_TY; i++)
			t += sh[i][tx];
		part[(size_t)blockIdx.y * cols + c] = t;
	}
}

static __global__ void k_colsum_fin(double *acc, const double *part, int nseg, int cols)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= cols)
		return;
	double s = 0;
	for (int i = 0; i < nseg; i++)
		s += part[(size_t)i * cols + c];
	acc[c] += s;
}

/* ---- device weights of one layer ---- */

/* p[j]: slot j of FPK_LW_*; the seven matrices are in the context's wdt (fp32, fp16 or bf16), everything else
 * fp32. An encoded matrix of a pack (fpk_model_layer_tcsl) is sp[j] instead (p[j] NULL): its Tiled-CSL arrays in
 * vals[j]/offs[j], allocated once for the largest such matrix over all layers and refilled per layer. */
typedef struct glayer {
	void *p[FPK_LW_COUNT];
	int half;
	fpk_spmm_weights sp[FPK_LW_COUNT];
	void *vals[FPK_LW_COUNT], *offs[FPK_LW_COUNT];
} glayer;
#define WF(w, j) ((const float *)(w)->p[j])
#define HAS_W(w, j) ((w)->p[j] || (w)->sp[j].values)

static int is_matrix(int j)
{
	return j == FPK_LW_Q || j == FPK_LW_K || j == FPK_LW_V || j == FPK_LW_O || j == FPK_LW_GATE || j == FPK_LW_UP ||
	       j == FPK_LW_DOWN;
}

typedef struct gctx {
	const fpk_model *m;
	cublasHandle_t cb;
	int act, half;
	fpk_dtype wdt;   /* dense layer matrices on the device: F32, F16 (half mode) or the out16 precision */
	int out16;       /* linear products give wdt outputs (rounded as the SpMM kernel's are), then fp32 */
	float *inv_freq;
	/* activations for up to rows_cap rows and attention scores for one head over cb blocks */
	size_t rows_cap;
	float *xb, *q, *att, *h1, *h2, *S, *tmp;
	void *xh;        /* 16-bit copy of a linear layer's input (half/out16 mode, encoded weights) */
	int xh_dt;       /* what xh holds: 1 fp16, 2 bf16 (0: nothing yet) */
	int xh_keep;     /* 1: the caller's input is the one xh was converted from (q/k/v and up/gate share theirs) */
	void *yh;        /* 16-bit output of a linear product (out16 mode, encoded weights) */
	void *ws;        /* SpMM workspace (models with encoded weights), ws_size bytes */
	size_t ws_size;
	size_t S_cap;
	void *stage;     /* pinned host staging for one matrix */
	size_t stage_cap;
	double *part;    /* colsum partials: CS_SEG_MAX * max(q_dim, kv_dim) */
	cudaEvent_t ev[8];
	double t_upload, t_linear, t_attn, t_total;
	const fpk_gpu_attend_hook *hook; /* perplexity: attention override (verify --channels) */
	int layer, hook_nb, hook_T;      /* the layer run_layer is on; bounds passed to the hook */
} gctx;

static int act_of(const char *s)
{
	if (!strcmp(s, "relu"))
		return ACT_RELU;
	if (!strcmp(s, "gelu"))
		return ACT_GELU;
	if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_fast"))
		return ACT_GELU_TANH;
	return ACT_SILU;
}

static void glayer_free(glayer *g)
{
	for (int j = 0; j < FPK_LW_COUNT; j++) {
		if (g->p[j])
			cudaFree(g->p[j]);
		if (g->vals[j])
			cudaFree(g->vals[j]);
		if (g->offs[j])
			cudaFree(g->offs[j]);
	}
	memset(g, 0, sizeof(*g));
}

typedef struct cvt_ctx {
	const fpk_st_tensor *t;
	const float *f32;
	void *dst;
	fpk_dtype dt; /* F32, F16 or BF16 */
	size_t n;
} cvt_ctx;

static int cvt_chunk(void *vc, size_t i, int tid)
{
	(void)tid;
	const cvt_ctx *c = (const cvt_ctx *)vc;
	size_t b = i << 18, e = b + ((size_t)1 << 18) < c->n ? b + ((size_t)1 << 18) : c->n;
	for (size_t k = b; k < e; k++) {
		float v = c->f32 ? c->f32[k] : fpk_load_f32(c->t->data, c->t->dtype, k);
		if (c->dt == FPK_F16)
			((uint16_t *)c->dst)[k] = fpk_f32_to_f16(v);
		else if (c->dt == FPK_BF16)
			((uint16_t *)c->dst)[k] = fpk_f32_to_bf16(v);
		else
			((float *)c->dst)[k] = v;
	}
	return 0;
}

typedef struct mcp_ctx {
	uint8_t *dst;
	const uint8_t *src;
	size_t n;
} mcp_ctx;

/* one 4 MiB piece of a parallel copy (the reads fault the mapped file in from several threads) */
static int mcp_chunk(void *vc, size_t i, int tid)
{
	(void)tid;
	const mcp_ctx *c = (const mcp_ctx *)vc;
	size_t b = i << 22, e = b + ((size_t)1 << 22) < c->n ? b + ((size_t)1 << 22) : c->n;
	memcpy(c->dst + b, c->src + b, e - b);
	return 0;
}

/* bytes host -> device. cs != 0 (the prefetch thread): through the pinned staging buffer in 64 MiB pieces (the reads
 * fault a mapped file in from several threads) with cudaMemcpyAsync on cs, synchronized on cs only; else cudaMemcpy */
static int h2d(gctx *g, void *dst, const void *src, size_t bytes, cudaStream_t cs)
{
	int rc = 0;
	if (!cs) {
		CK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
		return 0;
	}
	{
		size_t piece = (size_t)64 << 20;
		if (g->stage_cap < piece) {
			if (g->stage)
				cudaFreeHost(g->stage);
			g->stage = NULL;
			g->stage_cap = 0;
			CK(cudaMallocHost(&g->stage, piece));
			g->stage_cap = piece;
		}
		piece = g->stage_cap;
		for (size_t off = 0; off < bytes; off += piece) {
			size_t nb = bytes - off < piece ? bytes - off : piece;
			mcp_ctx mc = {(uint8_t *)g->stage, (const uint8_t *)src + off, nb};
			if ((rc = fpk_parallel_for((nb + ((size_t)1 << 22) - 1) >> 22, g->m->threads, mcp_chunk, &mc)))
				goto done;
			CK(cudaMemcpyAsync((uint8_t *)dst + off, g->stage, nb, cudaMemcpyHostToDevice, cs));
			CK(cudaStreamSynchronize(cs));
		}
	}
done:
	return rc;
}

/* slot j of layer l encoded in the pack: its Tiled-CSL arrays straight from the pack's mapping to the device (the
 * offsets with one spare int past the spec's T + 2, as fpk_spmm_upload does); the arrays were checked (R1-R15) by
 * fpk_pack_open. The device arrays are sized once for the largest encoded slot j over all layers. */
static int tcsl_upload(gctx *g, glayer *w, int l, int j, const fpk_tcsl *t, cudaStream_t cs)
{
	int rc = 0;
	const fpk_model *m = g->m;
	int32_t *ho = NULL;
	int64_t T = t->tiles_m * t->tiles_k;
	if (t->n_entries / 4 > 0x7fffffffull || T > 0x7fffffffll)
		return fpk_error_set(FPK_EGPU, "layer %d: an encoded matrix of %llu entries is too large for the spmm kernel",
			l, (unsigned long long)t->n_entries);
	if (!w->vals[j]) {
		size_t vmax = 16, omax = 0;
		for (int i = 0; i < m->cfg.n_layers; i++) {
			const fpk_tcsl *u = fpk_model_layer_tcsl(m, i, j);
			if (!u)
				continue;
			size_t vb = (size_t)u->n_entries * 4, ob = (size_t)(u->tiles_m * u->tiles_k + 3) * 4;
			vmax = vb > vmax ? vb : vmax;
			omax = ob > omax ? ob : omax;
		}
		CK(cudaMalloc(&w->vals[j], vmax));
		CK(cudaMalloc(&w->offs[j], omax));
	}
	if (!(ho = (int32_t *)malloc((size_t)(T + 3) * sizeof(int32_t)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	memcpy(ho, t->offsets, (size_t)(T + 2) * sizeof(int32_t));
	ho[T + 2] = t->offsets[T + 1];
	if (t->n_entries && (rc = h2d(g, w->vals[j], t->values, (size_t)t->n_entries * 4, cs)))
		goto done;
	if ((rc = h2d(g, w->offs[j], ho, (size_t)(T + 3) * sizeof(int32_t), cs)))
		goto done;
	w->sp[j].values = (const uint32_t *)w->vals[j];
	w->sp[j].offsets = (const int32_t *)w->offs[j];
	w->sp[j].m = t->m;
	w->sp[j].k = t->k;
	w->sp[j].tiles_m = t->tiles_m;
	w->sp[j].tiles_k = t->tiles_k;
	w->sp[j].n_vectors = t->n_entries / 4;
	w->sp[j].dtype = t->dtype;
	w->sp[j].owned = 0;
done:
	free(ho);
	return rc;
}

/* the host (fp32) tensors of a layer in FPK_LW_* order; NULL where absent or left in the file (lazy) */
static void layer_host(const fpk_layer_weights *hw, const float *host[FPK_LW_COUNT])
{
	const float *h[FPK_LW_COUNT] = {hw->ln1_w, hw->ln1_b, hw->ln2_w, hw->ln2_b, hw->wq, hw->wk, hw->wv, hw->wo,
		hw->bq, hw->bk, hw->bv, hw->bo, hw->w_gate, hw->w_up, hw->b_up, hw->w_down, hw->b_down};
	memcpy(host, h, sizeof(h));
}

/* allocate (once) and upload layer l: from the fp32 host copy, or (lazy model) straight from the mapped file
 * (converted to the context's wdt unless the file has it), or (lazy pack) the encoded matrices' Tiled-CSL arrays.
 * cs != 0 (the prefetch thread): every copy goes through the pinned staging buffer with cudaMemcpyAsync on cs
 * (a non-blocking stream, so it overlaps the compute on the default stream), synchronized on cs only. */
static int glayer_upload(gctx *g, glayer *w, int l, cudaStream_t cs)
{
	int rc = 0;
	const fpk_model *m = g->m;
	const fpk_model_config *c = &m->cfg;
	size_t H = c->hidden, I = c->intermediate, q = m->q_dim, kv = m->kv_dim;
	const float *host[FPK_LW_COUNT];
	layer_host(&m->layers[l], host);
	size_t n[FPK_LW_COUNT] = {H, H, H, H, q * H, kv * H, kv * H, H * q, q, kv, kv, H, I * H, I * H, I, H * I, H};
	w->half = g->half;
	for (int j = 0; j < FPK_LW_COUNT; j++) {
		const fpk_tcsl *tc = fpk_model_layer_tcsl(m, l, j);
		const fpk_st_tensor *t = fpk_model_layer_src(m, l, j);
		memset(&w->sp[j], 0, sizeof(w->sp[j]));
		if (tc) {
			if ((rc = tcsl_upload(g, w, l, j, tc, cs)))
				goto done;
			continue;
		}
		if (!host[j] && !t)
			continue;
		fpk_dtype dt = is_matrix(j) ? g->wdt : FPK_F32;
		size_t bytes = n[j] * fpk_dtypes[dt].size;
		if (!w->p[j])
			CK(cudaMalloc(&w->p[j], bytes));
		if (host[j] && dt == FPK_F32) {
			if ((rc = h2d(g, w->p[j], host[j], bytes, cs)))
				goto done;
		} else if (t && t->dtype == dt) {
			if ((rc = h2d(g, w->p[j], t->data, bytes, cs))) /* raw file bytes */
				goto done;
		} else {
			if (bytes > g->stage_cap) {
				if (g->stage)
					cudaFreeHost(g->stage);
				g->stage = NULL;
				g->stage_cap = 0;
				CK(cudaMallocHost(&g->stage, bytes));
				g->stage_cap = bytes;
			}
			cvt_ctx cc = {t, host[j], g->stage, dt, n[j]};
			if ((rc = fpk_parallel_for((n[j] + ((size_t)1 << 18) - 1) >> 18, m->threads, cvt_chunk, &cc)))
				goto done;
			if (cs) {
				CK(cudaMemcpyAsync(w->p[j], g->stage, bytes, cudaMemcpyHostToDevice, cs));
				CK(cudaStreamSynchronize(cs));
			} else {
				CK(cudaMemcpy(w->p[j], g->stage, bytes, cudaMemcpyHostToDevice));
			}
		}
	}
done:
	return rc;
}

static void gctx_free(gctx *g)
{
	float *bufs[] = {g->inv_freq, g->xb, g->q, g->att, g->h1, g->h2, g->S, g->tmp};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		if (bufs[i])
			cudaFree(bufs[i]);
	if (g->xh)
		cudaFree(g->xh);
	if (g->yh)
		cudaFree(g->yh);
	if (g->ws)
		fpk_spmm_workspace_free(g->ws);
	if (g->part)
		cudaFree(g->part);
	if (g->stage)
		cudaFreeHost(g->stage);
	for (int i = 0; i < 8; i++)
		if (g->ev[i])
			cudaEventDestroy(g->ev[i]);
	if (g->cb)
		cublasDestroy(g->cb);
	memset(g, 0, sizeof(*g));
}

/* half: calibration's speed mode (fp16 weights and inputs, fp32 outputs, TF32 attention). out16 (FPK_F16 or
 * FPK_BF16; FPK_F32: off): every linear product takes out16 weights and inputs and gives an out16 output with fp32
 * accumulation, as the SpMM kernel does for encoded weights; attention and norms stay fp32 (no TF32). */
static int gctx_init(gctx *g, const fpk_model *m, size_t rows_cap, size_t S_cap, int half, fpk_dtype out16)
{
	int rc = 0;
	const fpk_model_config *c = &m->cfg;
	size_t H = c->hidden, I = c->intermediate, W = (size_t)(m->q_dim > (int)H ? m->q_dim : (int)H);
	size_t wmax = H > I ? H : I;
	int64_t enc_m = 0; /* largest output dimension of an encoded matrix */
	if ((size_t)m->q_dim > wmax)
		wmax = (size_t)m->q_dim;
	memset(g, 0, sizeof(*g));
	g->m = m;
	g->act = act_of(c->hidden_act);
	g->rows_cap = rows_cap;
	g->S_cap = S_cap;
	g->half = half;
	g->out16 = out16 == FPK_F16 || out16 == FPK_BF16;
	g->wdt = g->out16 ? out16 : half ? FPK_F16 : FPK_F32;
	for (int l = 0; l < c->n_layers; l++)
		for (int j = 0; j < FPK_LW_COUNT; j++) {
			const fpk_tcsl *t = fpk_model_layer_tcsl(m, l, j);
			if (t && t->m > enc_m)
				enc_m = t->m;
		}
	CB(cublasCreate(&g->cb));
	/* exact mode: fp32 exactly, no TF32; half mode: fp16 weights, TF32 tensor cores for the attention products;
	 * out16: tensor cores for the 16-bit products, fp32 (no TF32) for everything else */
	CB(cublasSetMathMode(g->cb, half ? CUBLAS_TF32_TENSOR_OP_MATH : g->out16 ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH));
	for (int i = 0; i < 8; i++)
		CK(cudaEventCreate(&g->ev[i]));
	if (g->wdt != FPK_F32 || enc_m)
		CK(cudaMalloc(&g->xh, rows_cap * wmax * 2));
	if (g->out16 || enc_m)
		CK(cudaMalloc(&g->yh, rows_cap * wmax * 2));
	if (enc_m) {
		g->ws_size = fpk_spmm_workspace_size(enc_m, (int64_t)rows_cap);
		if ((rc = fpk_spmm_workspace_alloc(&g->ws, g->ws_size)))
			goto done;
	}
	CK(cudaMalloc(&g->xb, rows_cap * H * sizeof(float)));
	CK(cudaMalloc(&g->q, rows_cap * m->q_dim * sizeof(float)));
	CK(cudaMalloc(&g->att, rows_cap * W * sizeof(float)));
	CK(cudaMalloc(&g->tmp, rows_cap * W * sizeof(float)));
	CK(cudaMalloc(&g->h1, rows_cap * I * sizeof(float)));
	CK(cudaMalloc(&g->h2, rows_cap * I * sizeof(float)));
	CK(cudaMalloc(&g->S, S_cap * sizeof(float)));
	CK(cudaMalloc(&g->part, (size_t)CS_SEG_MAX * (m->q_dim > m->kv_dim ? m->q_dim : m->kv_dim) * sizeof(double)));
	if (m->inv_freq) {
		CK(cudaMalloc(&g->inv_freq, (size_t)(c->head_dim / 2) * sizeof(float)));
		CK(cudaMemcpy(g->inv_freq, m->inv_freq, (size_t)(c->head_dim / 2) * sizeof(float), cudaMemcpyHostToDevice));
	}
done:
	if (rc)
		gctx_free(g);
	return rc;
}

static unsigned nblk(size_t n) { return (unsigned)((n + 255) / 256); }

static __global__ void k_to_half(__half *y, const float *x, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		y[i] = __float2half(x[i]);
}

static __global__ void k_to_bf16(__nv_bfloat16 *y, const float *x, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		y[i] = __float2bfloat16(x[i]);
}

/* y (rows, n) fp32 = x (16-bit) (+ b) */
static __global__ void k_from16(float *y, const uint16_t *x, const float *b, size_t rows, int n, int bf)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < rows * n) {
		float v = bf ? __bfloat162float(__ushort_as_bfloat16(x[i])) : __half2float(__ushort_as_half(x[i]));
		y[i] = v + (b ? b[i % n] : 0.0f);
	}
}

/* Y (rows, out) = X (rows, in) W^T (+ b); W row-major (out, in), fp32 or (half mode) __half with fp32 accumulation */
/* xh = X (n values) as fp16 (bf = 0) or bf16, unless the caller keeps the input (xh_keep) and xh already holds it
 * in that type */
static int to16(gctx *g, const float *X, size_t n, int bf)
{
	int rc = 0;
	if (g->xh_keep && g->xh_dt == 1 + bf)
		return 0;
	if (bf)
		k_to_bf16<<<nblk(n), 256>>>((__nv_bfloat16 *)g->xh, X, n);
	else
		k_to_half<<<nblk(n), 256>>>((__half *)g->xh, X, n);
	KCHECK();
	g->xh_dt = 1 + bf;
done:
	return rc;
}

static int linear(gctx *g, float *Y, const float *X, const void *W, int half, const float *b, size_t rows, int in,
	int out)
{
	int rc = 0;
	const float one = 1.0f, zero = 0.0f;
	if (half) {
		if ((rc = to16(g, X, rows * in, 0)))
			goto done;
		CB(cublasGemmEx(g->cb, CUBLAS_OP_T, CUBLAS_OP_N, out, (int)rows, in, &one, W, CUDA_R_16F, in, g->xh, CUDA_R_16F,
			in, &zero, Y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
	} else {
		CB(cublasSgemm(g->cb, CUBLAS_OP_T, CUBLAS_OP_N, out, (int)rows, in, &one, (const float *)W, in, X, in, &zero, Y,
			out));
	}
	if (b) {
		k_bias<<<nblk(rows * out), 256>>>(Y, b, rows, out);
		KCHECK();
	}
done:
	return rc;
}

/* Y (rows, out) fp32 = X (rows, in) W_j^T (+ b) for slot j of layer w: an encoded matrix through our Tiled-CSL SpMM
 * kernel (X rounded to its dtype, output in its dtype, fp32 accumulation); in out16 mode a dense one through
 * cublasGemmEx at the same precision (wdt inputs and output, fp32 accumulation), so that a pack and its dense
 * checkpoint differ only by the order of accumulation; else linear() */
static int lin(gctx *g, const glayer *w, int j, float *Y, const float *X, const float *b, size_t rows, int in, int out)
{
	int rc = 0;
	const float one = 1.0f, zero = 0.0f;
	const fpk_spmm_weights *sp = &w->sp[j];
	fpk_dtype dt = sp->values ? sp->dtype : g->wdt;
	int bf = dt == FPK_BF16;
	if (!sp->values && !g->out16)
		return linear(g, Y, X, w->p[j], w->half, b, rows, in, out);
	if ((rc = to16(g, X, rows * in, bf)))
		goto done;
	if (sp->values) {
		fpk_spmm_params p;
		memset(&p, 0, sizeof(p));
		p.w = sp;
		p.x = g->xh;
		p.y = g->yh;
		p.n = (int64_t)rows;
		p.workspace = g->ws;
		p.workspace_size = g->ws_size;
		if ((rc = fpk_spmm_run(&p)))
			goto done;
	} else {
		cudaDataType_t ty = bf ? CUDA_R_16BF : CUDA_R_16F;
		CB(cublasGemmEx(g->cb, CUBLAS_OP_T, CUBLAS_OP_N, out, (int)rows, in, &one, w->p[j], ty, in, g->xh, ty, in, &zero,
			g->yh, ty, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
	}
	k_from16<<<nblk(rows * out), 256>>>(Y, (const uint16_t *)g->yh, b, rows, out, bf);
	KCHECK();
done:
	return rc;
}

/* acc[cols] += column sums of |a| or |a * b (GQA-expanded)| over rows (see k_colsum_part) */
static int colsum(gctx *g, double *acc, const float *a, const float *b, size_t rows, int cols, int bcols, int d,
	int grp)
{
	int rc = 0;
	/* segments of at least 256 rows, at most CS_SEG_MAX: with 4096 columns and 16,384 rows, 128 x 64 blocks */
	size_t nseg = (rows + 255) / 256;
	if (nseg > CS_SEG_MAX)
		nseg = CS_SEG_MAX;
	if (nseg < 1)
		nseg = 1;
	size_t seg_rows = (rows + nseg - 1) / nseg;
	dim3 grid((unsigned)((cols + CS_TX - 1) / CS_TX), (unsigned)nseg), blk(CS_TX, CS_TY);
	k_colsum_part<<<grid, blk>>>(g->part, a, b, rows, seg_rows, cols, bcols, d, grp);
	KCHECK();
	k_colsum_fin<<<nblk((size_t)cols), 256>>>(acc, g->part, (int)nseg, cols);
	KCHECK();
done:
	return rc;
}

/* sums: per mode (NULL when not wanted) device accumulators (heads(m) * d) for this layer */
typedef struct gsums {
	double *d[FPK_CH_MODES];
} gsums;

/* One decoder layer over nb blocks of Tq rows each (x: (nb*Tq, H), in place). Keys/values go to kc/vc:
 * block b's cache at kc + b*ctx*kv_dim, rows pos0..pos0+Tq-1 (nb == 1 or pos0 == 0 with ctx == Tq). */
static int run_layer(gctx *g, const glayer *w, float *x, int nb, int Tq, int pos0, float *kc, float *vc, int ctx,
	const gsums *sums)
{
	int rc = 0;
	const fpk_model *m = g->m;
	const fpk_model_config *c = &m->cfg;
	int H = c->hidden, I = c->intermediate, d = c->head_dim, nh = c->n_heads, grp = c->n_heads / c->n_kv_heads;
	int opt = c->arch == FPK_ARCH_OPT, pre_ln = !opt || c->do_layer_norm_before, L = pos0 + Tq;
	size_t rows = (size_t)nb * Tq;
	float *k = kc + (size_t)pos0 * m->kv_dim, *v = vc + (size_t)pos0 * m->kv_dim;
	const float one = 1.0f, zero = 0.0f, scale = 1.0f / sqrtf((float)d);
	if (pre_ln) {
		k_norm<<<(unsigned)rows, 256>>>(g->xb, x, WF(w, FPK_LW_LN1_W), WF(w, FPK_LW_LN1_B), H, (float)c->norm_eps, opt);
		KCHECK();
	} else {
		CK(cudaMemcpy(g->xb, x, rows * H * sizeof(float), cudaMemcpyDeviceToDevice));
	}
	CK(cudaEventRecord(g->ev[0]));
	/* q, k and v share their input: its 16-bit copy is made once */
	if ((rc = lin(g, w, FPK_LW_Q, g->q, g->xb, WF(w, FPK_LW_BQ), rows, H, m->q_dim)))
		goto done;
	g->xh_keep = 1;
	rc = lin(g, w, FPK_LW_K, k, g->xb, WF(w, FPK_LW_BK), rows, H, m->kv_dim);
	if (!rc)
		rc = lin(g, w, FPK_LW_V, v, g->xb, WF(w, FPK_LW_BV), rows, H, m->kv_dim);
	g->xh_keep = 0;
	if (rc)
		goto done;
	CK(cudaEventRecord(g->ev[1]));
	if (sums && sums->d[FPK_CH_Q]) {
		if ((rc = colsum(g, sums->d[FPK_CH_Q], g->q, NULL, rows, m->q_dim, 0, d, 1)))
			goto done;
	}
	if (sums && sums->d[FPK_CH_K]) {
		if ((rc = colsum(g, sums->d[FPK_CH_K], k, NULL, rows, m->kv_dim, 0, d, 1)))
			goto done;
	}
	if (!opt) {
		k_rope<<<(unsigned)rows, 256>>>(g->q, g->inv_freq, nh, d, Tq, pos0);
		KCHECK();
		k_rope<<<(unsigned)rows, 256>>>(k, g->inv_freq, c->n_kv_heads, d, Tq, pos0);
		KCHECK();
	}
	if (sums && sums->d[FPK_CH_QK]) {
		if ((rc = colsum(g, sums->d[FPK_CH_QK], g->q, k, rows, m->q_dim, m->kv_dim, d, grp)))
			goto done;
	}
	/* attention per head, batched over blocks: S (nb, Tq, L) */
	if ((size_t)nb * Tq * L > g->S_cap) {
		rc = fpk_error_set(FPK_EGPU, "attention scratch too small (%zu < %zu)", g->S_cap, (size_t)nb * Tq * L);
		goto done;
	}
	CK(cudaEventRecord(g->ev[2]));
	if (g->half && fpk_attn_prefill_supported(d)) {
		/* mixed precision: one fused launch (fp16 tensor-core products, fp32 online softmax, scores on chip) */
		fpk_attn_prefill_params ap = {g->q, kc, vc, g->att, nb, Tq, pos0, nh, c->n_kv_heads, d, m->q_dim,
			m->kv_dim, (int64_t)ctx * m->kv_dim, scale, NULL};
		if ((rc = fpk_attn_prefill(&ap)))
			goto done;
	} else for (int h = 0; h < nh; h++) {
		int kvh = h / grp;
		long long sK = (long long)ctx * m->kv_dim, sQ = (long long)Tq * m->q_dim, sS = (long long)Tq * L;
		CB(cublasSgemmStridedBatched(g->cb, CUBLAS_OP_T, CUBLAS_OP_N, L, Tq, d, &scale, kc + (size_t)kvh * d,
			m->kv_dim, sK, g->q + (size_t)h * d, m->q_dim, sQ, &zero, g->S, L, sS, nb));
		k_softmax<<<(unsigned)rows, 128>>>(g->S, Tq, L, pos0);
		KCHECK();
		CB(cublasSgemmStridedBatched(g->cb, CUBLAS_OP_N, CUBLAS_OP_N, d, Tq, L, &one, vc + (size_t)kvh * d, m->kv_dim,
			sK, g->S, L, sS, &zero, g->att + (size_t)h * d, m->q_dim, sQ, nb));
	}
	if (g->hook && g->hook->attend &&
	    (rc = g->hook->attend(g->hook->ud, g->layer, nb, Tq, g->hook_nb, g->hook_T, g->q, kc, vc, g->att)))
		goto done;
	CK(cudaEventRecord(g->ev[3]));
	if ((rc = lin(g, w, FPK_LW_O, g->xb, g->att, WF(w, FPK_LW_BO), rows, m->q_dim, H)))
		goto done;
	CK(cudaEventRecord(g->ev[4]));
	k_add<<<nblk(rows * H), 256>>>(x, g->xb, rows * H);
	KCHECK();
	if (!pre_ln) {
		k_norm<<<(unsigned)rows, 256>>>(x, x, WF(w, FPK_LW_LN1_W), WF(w, FPK_LW_LN1_B), H, (float)c->norm_eps, opt);
		KCHECK();
	}
	/* MLP */
	if (pre_ln) {
		k_norm<<<(unsigned)rows, 256>>>(g->xb, x, WF(w, FPK_LW_LN2_W), WF(w, FPK_LW_LN2_B), H, (float)c->norm_eps, opt);
		KCHECK();
	} else {
		CK(cudaMemcpy(g->xb, x, rows * H * sizeof(float), cudaMemcpyDeviceToDevice));
	}
	CK(cudaEventRecord(g->ev[5]));
	if ((rc = lin(g, w, FPK_LW_UP, g->h1, g->xb, WF(w, FPK_LW_BUP), rows, H, I)))
		goto done;
	g->xh_keep = 1; /* gate reads the same input as up */
	rc = HAS_W(w, FPK_LW_GATE) ? lin(g, w, FPK_LW_GATE, g->h2, g->xb, NULL, rows, H, I) : 0;
	g->xh_keep = 0;
	if (rc)
		goto done;
	k_act<<<nblk(rows * I), 256>>>(g->h1, HAS_W(w, FPK_LW_GATE) ? g->h2 : NULL, rows * I, g->act);
	KCHECK();
	if ((rc = lin(g, w, FPK_LW_DOWN, g->xb, g->h1, WF(w, FPK_LW_BDOWN), rows, I, H)))
		goto done;
	CK(cudaEventRecord(g->ev[6]));
	if (g->t_total >= 0) { /* timing split (calibration): linear = qkv + o + MLP products, attention = the head loop */
		float a01, a23, a34, a56;
		CK(cudaEventSynchronize(g->ev[6]));
		CK(cudaEventElapsedTime(&a01, g->ev[0], g->ev[1]));
		CK(cudaEventElapsedTime(&a23, g->ev[2], g->ev[3]));
		CK(cudaEventElapsedTime(&a34, g->ev[3], g->ev[4]));
		CK(cudaEventElapsedTime(&a56, g->ev[5], g->ev[6]));
		g->t_linear += (a01 + a34 + a56) * 1e-3;
		g->t_attn += a23 * 1e-3;
	}
	k_add<<<nblk(rows * H), 256>>>(x, g->xb, rows * H);
	KCHECK();
	if (!pre_ln) {
		k_norm<<<(unsigned)rows, 256>>>(x, x, WF(w, FPK_LW_LN2_W), WF(w, FPK_LW_LN2_B), H, (float)c->norm_eps, opt);
		KCHECK();
	}
done:
	return rc;
}

/* host-side embedding (+ OPT learned positions) of nb blocks of T tokens at positions pos0.. into hx */
static int embed_host(const fpk_model *m, const int *tokens, size_t rows, int T, int pos0, float *hx)
{
	const fpk_model_config *c = &m->cfg;
	int H = c->hidden;
	if (m->proj_in)
		return fpk_error_set(FPK_EGPU, "the GPU path does not handle OPT project_in/project_out yet: use --device cpu");
	for (size_t r = 0; r < rows; r++) {
		if (tokens[r] < 0 || tokens[r] >= c->vocab)
			return fpk_error_set(FPK_EFORMAT, "token id %d is outside the model's vocabulary (%d)", tokens[r], c->vocab);
		memcpy(hx + r * H, m->embed + (size_t)tokens[r] * H, (size_t)H * sizeof(float));
		if (m->pos_embed)
			for (int i = 0; i < H; i++)
				hx[r * H + i] += m->pos_embed[(size_t)(pos0 + (int)(r % T) + 2) * H + i];
	}
	return 0;
}

/* the weight prefetch thread's work: upload layer l into w on cs; the error message is per thread: kept in msg */
typedef struct upload_job_t {
	gctx *g;
	glayer *w;
	int l, rc;
	cudaStream_t cs;
	char msg[512];
} upload_job_t;

static void *upload_job(void *p)
{
	upload_job_t *j = (upload_job_t *)p;
	j->rc = glayer_upload(j->g, j->w, j->l, j->cs);
	if (j->rc)
		snprintf(j->msg, sizeof(j->msg), "%s", fpk_error_msg());
	return NULL;
}

/* x[r] = emb[tok[r]] (rows x H); one block per row */
static __global__ void k_gather(float *x, const float *emb, const int *tok, int H)
{
	const float *src = emb + (size_t)tok[blockIdx.x] * H;
	float *dst = x + (size_t)blockIdx.x * H;
	for (int i = threadIdx.x; i < H; i += blockDim.x)
		dst[i] = src[i];
}

extern "C" int fpk_model_gpu_qk_sums(const fpk_model *m, const int *tokens, int nb, int len, int modes, int half,
	double *sum[3], double timing[4], fpk_progress_fn progress, void *progress_ud)
{
	int rc = 0;
	const fpk_model_config *c = &m->cfg;
	gctx g;
	glayer w[2];
	cudaStream_t cs = NULL;
	pthread_t th;
	int th_on = 0;
	upload_job_t job;
	float *dx = NULL, *kc = NULL, *vc = NULL, *hx = NULL, *demb = NULL;
	int *dtok = NULL;
	double *dsum[FPK_CH_MODES] = {NULL, NULL, NULL}, *hsum = NULL;
	size_t rows = (size_t)nb * len, H = c->hidden;
	memset(&g, 0, sizeof(g));
	memset(w, 0, sizeof(w));
	memset(&job, 0, sizeof(job));
	/* blocks per chunk: activations of cbk blocks at a time; the hidden states of all blocks stay resident */
	int cbk = (int)(16384 / len);
	if (cbk < 1)
		cbk = 1;
	if (cbk > nb)
		cbk = nb;
	double t_up = 0, t_run = 0, t0;
	if (!fpk_gpu_available())
		return fpk_error_set(FPK_EGPU, "no CUDA device is visible");
	if ((rc = gctx_init(&g, m, (size_t)cbk * len, (size_t)cbk * len * len, half, FPK_F32)))
		return rc;
	CK(cudaMalloc(&dx, rows * H * sizeof(float)));
	if (m->pos_embed || m->proj_in) { /* embeddings on the host (OPT positions; project_in is refused there) */
		if (!(hx = (float *)malloc(rows * H * sizeof(float)))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		if ((rc = embed_host(m, tokens, rows, len, 0, hx)))
			goto done;
		CK(cudaMemcpy(dx, hx, rows * H * sizeof(float), cudaMemcpyHostToDevice));
	} else { /* upload the table (vocab x hidden) and the ids, gather on the GPU: far fewer bytes than rows x hidden */
		for (size_t r = 0; r < rows; r++)
			if (tokens[r] < 0 || tokens[r] >= c->vocab) {
				rc = fpk_error_set(FPK_EFORMAT, "token id %d is outside the model's vocabulary (%d)", tokens[r],
					c->vocab);
				goto done;
			}
		CK(cudaMalloc(&demb, (size_t)c->vocab * H * sizeof(float)));
		CK(cudaMalloc(&dtok, rows * sizeof(int)));
		CK(cudaMemcpy(demb, m->embed, (size_t)c->vocab * H * sizeof(float), cudaMemcpyHostToDevice));
		CK(cudaMemcpy(dtok, tokens, rows * sizeof(int), cudaMemcpyHostToDevice));
		k_gather<<<(unsigned)rows, 256>>>(dx, demb, dtok, (int)H);
		KCHECK();
		CK(cudaDeviceSynchronize());
		cudaFree(demb);
		cudaFree(dtok);
		demb = NULL;
		dtok = NULL;
	}
	CK(cudaMalloc(&kc, (size_t)cbk * len * m->kv_dim * sizeof(float)));
	CK(cudaMalloc(&vc, (size_t)cbk * len * m->kv_dim * sizeof(float)));
	for (int k = 0; k < FPK_CH_MODES; k++)
		if (modes >> k & 1)
			CK(cudaMalloc(&dsum[k], (size_t)m->q_dim * sizeof(double)));
	if (!(hsum = (double *)malloc((size_t)m->q_dim * sizeof(double)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	/* weights: layer 0 here, layer l + 1 read and copied by a thread on the non-blocking stream cs while layer l
	 * computes on the default stream (two device weight sets, alternating) */
	CK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
	for (int l = 0; l < c->n_layers; l++) {
		glayer *wl = &w[l & 1];
		t0 = fpk_now_s();
		if (l == 0) {
			rc = glayer_upload(&g, wl, 0, cs);
		} else {
			pthread_join(th, NULL);
			th_on = 0;
			if ((rc = job.rc))
				fpk_error_set(rc, "%s", job.msg);
		}
		if (rc)
			goto done;
		t_up += fpk_now_s() - t0;
		if (l + 1 < c->n_layers) {
			job.g = &g;
			job.w = &w[(l + 1) & 1];
			job.l = l + 1;
			job.cs = cs;
			job.rc = 0;
			if (pthread_create(&th, NULL, upload_job, &job)) {
				rc = fpk_error_set(FPK_EIO, "cannot start the weight prefetch thread");
				goto done;
			}
			th_on = 1;
		}
		t0 = fpk_now_s();
		gsums gs;
		for (int k = 0; k < FPK_CH_MODES; k++) {
			gs.d[k] = dsum[k];
			if (dsum[k])
				CK(cudaMemset(dsum[k], 0, (size_t)m->q_dim * sizeof(double)));
		}
		for (int b0 = 0; b0 < nb; b0 += cbk) {
			int n = nb - b0 < cbk ? nb - b0 : cbk;
			if ((rc = run_layer(&g, wl, dx + (size_t)b0 * len * H, n, len, 0, kc, vc, len, &gs)))
				goto done;
		}
		CK(cudaStreamSynchronize(0));
		t_run += fpk_now_s() - t0;
		for (int k = 0; k < FPK_CH_MODES; k++) {
			if (!dsum[k])
				continue;
			size_t cnt = (size_t)(k == FPK_CH_K ? c->n_kv_heads : c->n_heads) * c->head_dim;
			CK(cudaMemcpy(hsum, dsum[k], cnt * sizeof(double), cudaMemcpyDeviceToHost));
			for (size_t i = 0; i < cnt; i++)
				sum[k][(size_t)l * cnt + i] += hsum[i];
		}
		if (progress)
			progress(progress_ud, "calibrate (gpu, layer by layer)", (uint64_t)l + 1, (uint64_t)c->n_layers);
	}
	if (timing) {
		timing[0] = t_up;
		timing[1] = g.t_linear;
		timing[2] = g.t_attn;
		timing[3] = t_run - g.t_linear - g.t_attn;
	}
done:
	if (th_on)
		pthread_join(th, NULL);
	if (cs)
		cudaStreamDestroy(cs);
	for (int k = 0; k < FPK_CH_MODES; k++)
		if (dsum[k])
			cudaFree(dsum[k]);
	if (dx)
		cudaFree(dx);
	if (kc)
		cudaFree(kc);
	if (vc)
		cudaFree(vc);
	if (demb)
		cudaFree(demb);
	if (dtok)
		cudaFree(dtok);
	free(hx);
	free(hsum);
	glayer_free(&w[0]);
	glayer_free(&w[1]);
	gctx_free(&g);
	return rc;
}

/* nll[r] = log(sum_i exp(lg_i - max)) + max - lg[tgt[r]] for row r of logits (rows, V), 0 where tgt[r] < 0; the
 * arithmetic of fpk_model_nll (float max, double exponentials and sum); one block per row, fixed reduction order */
static __global__ void k_nll(double *nll, const float *logits, const int *tgt, int V)
{
	__shared__ float rmx[32];
	__shared__ double rsum[32];
	const float *lg = logits + (size_t)blockIdx.x * V;
	int t = tgt[blockIdx.x], lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
	if (t < 0) {
		if (threadIdx.x == 0)
			nll[blockIdx.x] = 0;
		return;
	}
	float mx = -INFINITY;
	for (int i = threadIdx.x; i < V; i += blockDim.x)
		mx = fmaxf(mx, lg[i]);
	for (int o = 16; o; o >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
	if (lane == 0)
		rmx[wid] = mx;
	__syncthreads();
	mx = rmx[0];
	for (int i = 1; i < nw; i++)
		mx = fmaxf(mx, rmx[i]);
	double z = 0;
	for (int i = threadIdx.x; i < V; i += blockDim.x)
		z += exp((double)(lg[i] - mx));
	for (int o = 16; o; o >>= 1)
		z += __shfl_xor_sync(0xffffffff, z, o);
	if (lane == 0)
		rsum[wid] = z;
	__syncthreads();
	if (threadIdx.x == 0) {
		z = 0;
		for (int i = 0; i < nw; i++)
			z += rsum[i];
		nll[blockIdx.x] = log(z) + (double)mx - (double)lg[t];
	}
}

extern "C" int fpk_model_gpu_nll(const fpk_model *m, const int *tokens, size_t n, int ctx, fpk_dtype prec,
	double *mean_nll, size_t *count, float *logits, int nlog, fpk_gpu_eval_info *info)
{
	return fpk_model_gpu_nll_hooked(m, tokens, n, ctx, prec, NULL, mean_nll, count, logits, nlog, info);
}

extern "C" int fpk_model_gpu_nll_hooked(const fpk_model *m, const int *tokens, size_t n, int ctx, fpk_dtype prec,
	const fpk_gpu_attend_hook *hook, double *mean_nll, size_t *count, float *logits, int nlog,
	fpk_gpu_eval_info *info)
{
	int rc = 0;
	const fpk_model_config *c = &m->cfg;
	const int nl = c->n_layers;
	gctx g;
	glayer w[2];
	cudaStream_t cs = NULL;
	pthread_t th;
	int th_on = 0;
	upload_job_t job;
	float *dx = NULL, *kc = NULL, *vc = NULL, *hx = NULL, *demb = NULL, *dlm = NULL, *dnw = NULL, *dnb = NULL,
	      *dlog = NULL;
	int *dtok = NULL, *dtgt = NULL, *htgt = NULL;
	double *dnll = NULL, *hnll = NULL, sum = 0, t_start = fpk_now_s(), t_up = 0, t0;
	size_t H = c->hidden, V = c->vocab, cnt = 0, hr, wpp, npass, pass_rows;
	memset(&g, 0, sizeof(g));
	memset(w, 0, sizeof(w));
	memset(&job, 0, sizeof(job));
	*mean_nll = 0;
	*count = 0;
	if (info)
		memset(info, 0, sizeof(*info));
	if (n < 2)
		return fpk_error_set(FPK_EUSAGE, "perplexity needs at least 2 tokens (got %zu)", n);
	if (ctx < 2)
		return fpk_error_set(FPK_EUSAGE, "perplexity needs windows of at least 2 tokens (got %d)", ctx);
	if (prec != FPK_F32 && prec != FPK_F16 && prec != FPK_BF16)
		return fpk_error_set(FPK_EUSAGE, "GPU perplexity: precision %s is not F32, F16 or BF16",
			(unsigned)prec < FPK_DTYPE_COUNT ? fpk_dtypes[prec].name : "?");
	if (nlog < 0 || (size_t)nlog > n || nlog > ctx || (nlog > 0 && !logits))
		return fpk_error_set(FPK_EUSAGE, "GPU perplexity: %d logit rows asked for, the first window has %d", nlog,
			(int)(n < (size_t)ctx ? n : (size_t)ctx));
	for (size_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= c->vocab)
			return fpk_error_set(FPK_EFORMAT, "token %zu has id %d, outside the model's vocabulary (%d)", i, tokens[i],
				c->vocab);
	if (!fpk_gpu_available())
		return fpk_error_set(FPK_EGPU, "no CUDA device is visible");
	if (m->proj_in)
		return fpk_error_set(FPK_EGPU, "the GPU path does not handle OPT project_in/project_out yet: use --device cpu");
	/* windows as fpk_model_nll: [s0, s0 + L) for s0 = 0, ctx, 2 ctx, ... with L >= 2; all full but maybe the last.
	 * Row r of the whole run is token r: window r / ctx, position r % ctx, target tokens[r + 1] unless last. */
	size_t nfull = n / (size_t)ctx, rem = n % (size_t)ctx;
	int Lp = rem >= 2 ? (int)rem : 0;
	size_t nwin = nfull + (Lp ? 1 : 0), R = nfull * (size_t)ctx + (size_t)Lp;
	/* chunk: cbk windows through one run_layer call (activations and scores of cbk windows) */
	size_t cbk = 16384 / (size_t)ctx;
	if (cbk < 1)
		cbk = 1;
	if (cbk > nwin)
		cbk = nwin;
	if (hook && hook->max_windows > 0 && cbk > (size_t)hook->max_windows)
		cbk = (size_t)hook->max_windows;
	size_t rows_cap = cbk * (size_t)ctx;
	if ((rc = gctx_init(&g, m, rows_cap, rows_cap * (size_t)ctx, 0, prec)))
		return rc;
	g.t_total = -1; /* no per-layer timing split */
	g.hook = hook;
	g.hook_nb = (int)cbk;
	g.hook_T = ctx;
	/* final norm and LM head (fp32) on hr rows at a time, logits of at most 256 MiB */
	hr = ((size_t)256 << 20) / (V * sizeof(float));
	if (hr < 1)
		hr = 1;
	if (hr > rows_cap)
		hr = rows_cap;
	CK(cudaMalloc(&dlm, V * H * sizeof(float)));
	CK(cudaMemcpy(dlm, m->lm_head, V * H * sizeof(float), cudaMemcpyHostToDevice));
	if (m->norm_w) {
		CK(cudaMalloc(&dnw, H * sizeof(float)));
		CK(cudaMemcpy(dnw, m->norm_w, H * sizeof(float), cudaMemcpyHostToDevice));
	}
	if (m->norm_b) {
		CK(cudaMalloc(&dnb, H * sizeof(float)));
		CK(cudaMemcpy(dnb, m->norm_b, H * sizeof(float), cudaMemcpyHostToDevice));
	}
	CK(cudaMalloc(&dlog, hr * V * sizeof(float)));
	CK(cudaMalloc(&dnll, hr * sizeof(double)));
	CK(cudaMalloc(&dtgt, hr * sizeof(int)));
	CK(cudaMalloc(&kc, rows_cap * m->kv_dim * sizeof(float)));
	CK(cudaMalloc(&vc, rows_cap * m->kv_dim * sizeof(float)));
	if (!m->pos_embed) {
		CK(cudaMalloc(&demb, V * H * sizeof(float)));
		CK(cudaMemcpy(demb, m->embed, V * H * sizeof(float), cudaMemcpyHostToDevice));
	}
	if (!(hnll = (double *)malloc(hr * sizeof(double))) || !(htgt = (int *)malloc(hr * sizeof(int)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	/* a pass: as many whole windows as 40% of the free device memory holds as fp32 hidden states (all of the text
	 * unless it is very long); the layers are streamed once per pass */
	{
		size_t fr = 0, tot = 0;
		CK(cudaMemGetInfo(&fr, &tot));
		wpp = (size_t)((double)fr * 0.4 / ((double)ctx * (double)H * sizeof(float)));
	}
	if (getenv("FPK_GPU_PASS_WINDOWS") && atoi(getenv("FPK_GPU_PASS_WINDOWS")) > 0) /* tests: force several passes */
		wpp = (size_t)atoi(getenv("FPK_GPU_PASS_WINDOWS"));
	if (wpp < 1)
		wpp = 1;
	if (wpp > nwin)
		wpp = nwin;
	npass = (nwin + wpp - 1) / wpp;
	pass_rows = wpp * (size_t)ctx;
	CK(cudaMalloc(&dx, pass_rows * H * sizeof(float)));
	if (m->pos_embed && !(hx = (float *)malloc(pass_rows * H * sizeof(float)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	if (!m->pos_embed)
		CK(cudaMalloc(&dtok, pass_rows * sizeof(int)));
	CK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
	for (size_t step = 0; step < npass * (size_t)nl; step++) {
		size_t pass = step / (size_t)nl, w0 = pass * wpp, pw = nwin - w0 < wpp ? nwin - w0 : wpp;
		size_t r0 = w0 * (size_t)ctx, prow = (w0 + pw) * (size_t)ctx > R ? R - r0 : pw * (size_t)ctx;
		int l = (int)(step % (size_t)nl);
		glayer *wl = &w[step & 1];
		if (l == 0) { /* this pass's hidden states: embeddings of tokens r0 .. r0 + prow - 1 */
			if (m->pos_embed) {
				if ((rc = embed_host(m, tokens + r0, prow, ctx, 0, hx)))
					goto done;
				CK(cudaMemcpy(dx, hx, prow * H * sizeof(float), cudaMemcpyHostToDevice));
			} else {
				CK(cudaMemcpy(dtok, tokens + r0, prow * sizeof(int), cudaMemcpyHostToDevice));
				k_gather<<<(unsigned)prow, 256>>>(dx, demb, dtok, (int)H);
				KCHECK();
			}
		}
		t0 = fpk_now_s();
		if (step == 0) {
			rc = glayer_upload(&g, wl, 0, cs);
		} else {
			pthread_join(th, NULL);
			th_on = 0;
			if ((rc = job.rc))
				fpk_error_set(rc, "%s", job.msg);
		}
		if (rc)
			goto done;
		t_up += fpk_now_s() - t0;
		if (step + 1 < npass * (size_t)nl) {
			job.g = &g;
			job.w = &w[(step + 1) & 1];
			job.l = (int)((step + 1) % (size_t)nl);
			job.cs = cs;
			job.rc = 0;
			if (pthread_create(&th, NULL, upload_job, &job)) {
				rc = fpk_error_set(FPK_EIO, "cannot start the weight prefetch thread");
				goto done;
			}
			th_on = 1;
		}
		for (size_t b0 = 0; b0 < pw;) {
			size_t nb = pw - b0 < cbk ? pw - b0 : cbk;
			int Tq = ctx;
			if (w0 + b0 + nb > nfull) { /* the short last window runs alone */
				if (w0 + b0 < nfull) {
					nb = nfull - (w0 + b0);
				} else {
					nb = 1;
					Tq = Lp;
				}
			}
			g.layer = l;
			if ((rc = run_layer(&g, wl, dx + b0 * (size_t)ctx * H, (int)nb, Tq, 0, kc, vc, Tq, NULL)))
				goto done;
			b0 += nb;
		}
		CK(cudaStreamSynchronize(0));
		if (l + 1 < nl)
			continue;
		/* final norm, LM head, per-row NLL over this pass, hr rows at a time */
		for (size_t h0 = 0; h0 < prow; h0 += hr) {
			size_t hn = prow - h0 < hr ? prow - h0 : hr;
			const float *xin = dx + h0 * H;
			for (size_t i = 0; i < hn; i++) {
				size_t r = r0 + h0 + i, L = r / (size_t)ctx < nfull ? (size_t)ctx : (size_t)Lp;
				htgt[i] = r % (size_t)ctx + 1 < L ? tokens[r + 1] : -1;
			}
			CK(cudaMemcpy(dtgt, htgt, hn * sizeof(int), cudaMemcpyHostToDevice));
			if (dnw) {
				k_norm<<<(unsigned)hn, 256>>>(g.xb, xin, dnw, dnb, (int)H, (float)c->norm_eps, c->arch == FPK_ARCH_OPT);
				KCHECK();
				xin = g.xb;
			}
			if ((rc = linear(&g, dlog, xin, dlm, 0, NULL, hn, (int)H, (int)V)))
				goto done;
			k_nll<<<(unsigned)hn, 256>>>(dnll, dlog, dtgt, (int)V);
			KCHECK();
			CK(cudaMemcpy(hnll, dnll, hn * sizeof(double), cudaMemcpyDeviceToHost));
			for (size_t i = 0; i < hn; i++)
				if (htgt[i] >= 0) {
					sum += hnll[i];
					cnt++;
				}
			if (r0 + h0 < (size_t)nlog) { /* logits of the first window's first nlog tokens */
				size_t k = (size_t)nlog - (r0 + h0) < hn ? (size_t)nlog - (r0 + h0) : hn;
				CK(cudaMemcpy(logits + (r0 + h0) * V, dlog, k * V * sizeof(float), cudaMemcpyDeviceToHost));
			}
		}
	}
	*mean_nll = cnt ? sum / (double)cnt : 0;
	*count = cnt;
	if (info) {
		cudaDeviceProp prop;
		if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
			snprintf(info->device, sizeof(info->device), "%s", prop.name);
		info->dtype = prec;
		for (int li = 0; li < nl; li++)
			for (int j = 0; j < FPK_LW_COUNT; j++) {
				if (!is_matrix(j))
					continue;
				const float *host[FPK_LW_COUNT];
				layer_host(&m->layers[li], host);
				if (fpk_model_layer_tcsl(m, li, j))
					info->spmm_matrices++;
				else if (fpk_model_layer_src(m, li, j) || host[j])
					info->dense_matrices++;
			}
		info->passes = (int)npass;
		info->windows = nwin;
		info->upload_wait_s = t_up;
		info->seconds = fpk_now_s() - t_start;
	}
done:
	if (th_on)
		pthread_join(th, NULL);
	if (cs)
		cudaStreamDestroy(cs);
	{
		float *bufs[] = {dx, kc, vc, demb, dlm, dnw, dnb, dlog};
		for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
			if (bufs[i])
				cudaFree(bufs[i]);
	}
	if (dtok)
		cudaFree(dtok);
	if (dtgt)
		cudaFree(dtgt);
	if (dnll)
		cudaFree(dnll);
	free(hx);
	free(hnll);
	free(htgt);
	glayer_free(&w[0]);
	glayer_free(&w[1]);
	gctx_free(&g);
	return rc;
}

extern "C" int fpk_model_gpu_generate_greedy(const fpk_model *m, const int *prompt, int n_prompt, int steps, int *out,
	int *n_out)
{
	int rc = 0, k = 0;
	const fpk_model_config *c = &m->cfg;
	gctx g;
	glayer *ws = NULL;
	float *dx = NULL, *kc = NULL, *vc = NULL, *hx = NULL, *dlm = NULL, *dnw = NULL, *dnb = NULL, *dlog = NULL,
	      *logits = NULL;
	size_t H = c->hidden, V = c->vocab;
	*n_out = 0;
	memset(&g, 0, sizeof(g));
	if (n_prompt < 1 || steps < 1)
		return fpk_error_set(FPK_EUSAGE, "generate: need a prompt of at least one token and steps >= 1");
	if (n_prompt > steps)
		n_prompt = steps;
	if (!fpk_gpu_available())
		return fpk_error_set(FPK_EGPU, "no CUDA device is visible");
	if (m->proj_in)
		return fpk_error_set(FPK_EGPU, "the GPU path does not handle OPT project_in/project_out yet: use --device cpu");
	if ((rc = gctx_init(&g, m, (size_t)n_prompt, (size_t)n_prompt * steps, 0, FPK_F32)))
		return rc;
	g.t_total = -1; /* no timing split */
	ws = (glayer *)calloc((size_t)c->n_layers, sizeof(glayer));
	hx = (float *)malloc((size_t)n_prompt * H * sizeof(float));
	logits = (float *)malloc(V * sizeof(float));
	if (!ws || !hx || !logits) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	for (int l = 0; l < c->n_layers; l++)
		if ((rc = glayer_upload(&g, &ws[l], l, 0)))
			goto done;
	CK(cudaMalloc(&dx, (size_t)n_prompt * H * sizeof(float)));
	CK(cudaMalloc(&kc, (size_t)c->n_layers * steps * m->kv_dim * sizeof(float)));
	CK(cudaMalloc(&vc, (size_t)c->n_layers * steps * m->kv_dim * sizeof(float)));
	CK(cudaMalloc(&dlm, V * H * sizeof(float)));
	CK(cudaMemcpy(dlm, m->lm_head, V * H * sizeof(float), cudaMemcpyHostToDevice));
	CK(cudaMalloc(&dlog, V * sizeof(float)));
	if (m->norm_w) {
		CK(cudaMalloc(&dnw, H * sizeof(float)));
		CK(cudaMemcpy(dnw, m->norm_w, H * sizeof(float), cudaMemcpyHostToDevice));
	}
	if (m->norm_b) {
		CK(cudaMalloc(&dnb, H * sizeof(float)));
		CK(cudaMemcpy(dnb, m->norm_b, H * sizeof(float), cudaMemcpyHostToDevice));
	}
	{
		int pos = 0, n = n_prompt;
		const int *toks = prompt;
		int tok;
		for (;;) {
			if ((rc = embed_host(m, toks, (size_t)n, n, pos, hx)))
				goto done;
			CK(cudaMemcpy(dx, hx, (size_t)n * H * sizeof(float), cudaMemcpyHostToDevice));
			for (int l = 0; l < c->n_layers; l++) {
				size_t off = (size_t)l * steps * m->kv_dim;
				if ((rc = run_layer(&g, &ws[l], dx, 1, n, pos, kc + off, vc + off, steps, NULL)))
					goto done;
			}
			float *last = dx + (size_t)(n - 1) * H;
			if (dnw) {
				k_norm<<<1, 256>>>(g.xb, last, dnw, dnb, (int)H, (float)c->norm_eps, c->arch == FPK_ARCH_OPT);
				KCHECK();
				last = g.xb;
			}
			if ((rc = linear(&g, dlog, last, dlm, 0, NULL, 1, (int)H, (int)V)))
				goto done;
			CK(cudaMemcpy(logits, dlog, V * sizeof(float), cudaMemcpyDeviceToHost));
			pos += n;
			tok = 0;
			for (size_t i = 1; i < V; i++)
				if (logits[i] > logits[tok])
					tok = (int)i;
			if (tok == c->bos_id || tok == c->eos_id)
				break;
			out[k++] = tok;
			if (pos >= steps)
				break;
			toks = &out[k - 1];
			n = 1;
		}
	}
	*n_out = k;
done:
	if (ws) {
		for (int l = 0; l < c->n_layers; l++)
			glayer_free(&ws[l]);
		free(ws);
	}
	float *bufs[] = {dx, kc, vc, dlm, dnw, dnb, dlog};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		if (bufs[i])
			cudaFree(bufs[i]);
	free(hx);
	free(logits);
	gctx_free(&g);
	return rc;
}
