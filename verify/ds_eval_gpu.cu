/* ds_eval_gpu.cu: Double Sparsity attention in the GPU perplexity path (verify --channels --device gpu).
 *
 * The engine runs nb windows of Tq tokens through a layer at once (model_gpu.cu) and hands this hook the layer's
 * fp32 queries, keys and values and its dense attention output. Per layer: the keys and values are rounded to the
 * KV dtype in the kernels' (B, Hkv, L, d) layout and the label cache is built once (a token's label does not
 * depend on the query position); then for every query position t whose length t + 1 takes Double Sparsity, one
 * decode step of our kernels (fpk_ds_decode: scores, top-k, sparse attention) runs with the nb windows as the
 * batch, and one statistics kernel per (window, query head) computes, against the exact fp32 softmax over keys
 * 0..t: the probability mass of the selected tokens (recall) and ||out_ds - out_dense|| / ||out_dense||, then puts
 * out_ds in place of the dense output. Positions below dense_below (or with k >= len) keep the dense output and
 * are not counted, as in the CPU reference (ds_eval.c). */
#include "ds_eval_gpu.h"

#include "ds_attention.h"
#include "ds_attention_ref.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
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

enum { ST_THREADS = 128, WS_SLOTS = 3 };

struct fpk_ds_gpu {
	fpk_ds_eval_cfg c;     /* c.ch: NULL (the device table is dch) */
	int n_layers, LH, kv_dtype, fmt;
	int32_t *dch;          /* (n_layers, LH, r) */
	/* buffers for up to cap_nb windows of cap_T tokens */
	int cap_nb, cap_T;
	uint16_t *k16, *v16;   /* (nb, Hkv, T, d) */
	uint16_t *q16;         /* (nb, H, d) */
	uint8_t *labels;
	uint16_t *scales;
	float *out;            /* (nb, H, d) */
	int32_t *lens;         /* (cap_T, cap_nb): t + 1 */
	/* statistics per (window slot, query head), summed over calls */
	unsigned long long *cnt;
	double *rsum, *esum;
	float *rmin, *emax;
	/* decode workspaces by call shape: a layer sees up to three (full groups of windows, a last partial group,
	 * the short last window), and reallocating on every change would synchronize the device each time */
	fpk_ds_workspace *ws[WS_SLOTS];
	int ws_nb[WS_SLOTS], ws_T[WS_SLOTS], ws_next;
	int lens_nb, lens_T;   /* the shape lens is filled for */
	unsigned faults;       /* selection self-check failures collected so far (collect_faults) */
	cudaEvent_t ev0, ev1;  /* DS time on the engine's stream */
	double seconds;
	uint64_t steps;
};

template <typename T> __device__ __forceinline__ uint16_t to16(float x);
template <> __device__ __forceinline__ uint16_t to16<__half>(float x) { return __half_as_ushort(__float2half_rn(x)); }
template <> __device__ __forceinline__ uint16_t to16<__nv_bfloat16>(float x)
{
	return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

/* kc/vc (nb, T, Hkv*d) fp32 -> k16/v16 (nb, Hkv, T, d) */
template <typename T>
static __global__ void k_kv16(uint16_t *k16, uint16_t *v16, const float *kc, const float *vc, int nb, int Tn, int Hkv,
	int d)
{
	size_t n = (size_t)nb * Tn * Hkv * d;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		int j = (int)(i % d);
		size_t r = i / d;
		int h = (int)(r % Hkv);
		r /= Hkv;
		int t = (int)(r % Tn);
		size_t b = r / Tn;
		size_t o = ((b * Hkv + h) * Tn + t) * d + j;
		k16[o] = to16<T>(kc[i]);
		v16[o] = to16<T>(vc[i]);
	}
}

/* q rows b*T + t (H*d each) -> q16 (nb, H, d) */
template <typename T> static __global__ void k_q16(uint16_t *q16, const float *q, int nb, int Tn, int t, int hd)
{
	int n = nb * hd;
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		int b = i / hd, j = i % hd;
		q16[i] = to16<T>(q[((size_t)b * Tn + t) * hd + j]);
	}
}

static __device__ double block_sum(double v, double *sh)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	double s = 0;
	for (int w = 0; w < ST_THREADS / 32; w++)
		s += sh[w];
	__syncthreads();
	return s;
}

static __device__ float block_max(float v, float *sh)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	float s = -INFINITY;
	for (int w = 0; w < ST_THREADS / 32; w++)
		s = fmaxf(s, sh[w]);
	__syncthreads();
	return s;
}

/* one block per (window b, query head h) at query position t: recall and error of the selection, then att = out */
static __global__ void k_stats(float *att, const float *out, const float *q, const float *kc, const int32_t *idx,
	const int32_t *nsel, int kcap, int sel_per_head, int H, int Hkv, int d, int Tn, int t, float scale,
	unsigned long long *cnt, double *rsum, double *esum, float *rmin, float *emax)
{
	__shared__ double shd[ST_THREADS / 32];
	__shared__ float shf[ST_THREADS / 32];
	int b = blockIdx.x / H, h = blockIdx.x % H, G = H / Hkv, kvh = h / G;
	int u = sel_per_head ? b * H + h : b * Hkv + kvh;
	int ns = nsel[u];
	if (ns < 0)
		return; /* dense: att keeps the dense output */
	const int qd = H * d, kd = Hkv * d;
	const float *qv = q + ((size_t)b * Tn + t) * qd + (size_t)h * d;
	const float *kb = kc + (size_t)b * Tn * kd + (size_t)kvh * d;
	/* exact softmax over keys 0..t: max, then normaliser, then the selected tokens' mass */
	float m = -INFINITY;
	for (int j = threadIdx.x; j <= t; j += ST_THREADS) {
		const float *kv = kb + (size_t)j * kd;
		float s = 0;
		for (int x = 0; x < d; x++)
			s = fmaf(qv[x], kv[x], s);
		m = fmaxf(m, s * scale);
	}
	m = block_max(m, shf);
	double z = 0, mass = 0;
	for (int j = threadIdx.x; j <= t; j += ST_THREADS) {
		const float *kv = kb + (size_t)j * kd;
		float s = 0;
		for (int x = 0; x < d; x++)
			s = fmaf(qv[x], kv[x], s);
		z += exp((double)(s * scale - m));
	}
	const int32_t *sel = idx + (size_t)u * kcap;
	for (int i = threadIdx.x; i < ns; i += ST_THREADS) {
		const float *kv = kb + (size_t)sel[i] * kd;
		float s = 0;
		for (int x = 0; x < d; x++)
			s = fmaf(qv[x], kv[x], s);
		mass += exp((double)(s * scale - m));
	}
	z = block_sum(z, shd);
	mass = block_sum(mass, shd);
	/* output error vs the dense output, then the Double Sparsity output in its place */
	float *a = att + ((size_t)b * Tn + t) * qd + (size_t)h * d;
	const float *o = out + ((size_t)b * H + h) * d;
	double e2 = 0, n2 = 0;
	for (int x = threadIdx.x; x < d; x += ST_THREADS) {
		double df = (double)o[x] - a[x];
		e2 += df * df;
		n2 += (double)a[x] * a[x];
	}
	e2 = block_sum(e2, shd);
	n2 = block_sum(n2, shd);
	for (int x = threadIdx.x; x < d; x += ST_THREADS)
		a[x] = o[x];
	if (threadIdx.x == 0) {
		double rec = z > 0 ? mass / z : 0, err = sqrt(e2) / (n2 > 0 ? sqrt(n2) : 1.0);
		int sl = blockIdx.x;
		cnt[sl] += 1;
		rsum[sl] += rec;
		esum[sl] += err;
		rmin[sl] = fminf(rmin[sl], (float)rec);
		emax[sl] = fmaxf(emax[sl], (float)err);
	}
}

static __global__ void k_fill_lens(int32_t *lens, int nb, int Tn)
{
	int n = nb * Tn;
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
		lens[i] = i / nb + 1;
}

static __global__ void k_stats_init(float *rmin, float *emax, int n)
{
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
		rmin[i] = 1.0f;
		emax[i] = 0.0f;
	}
}

static void free_bufs(fpk_ds_gpu *g)
{
	void *p[] = {g->k16, g->v16, g->q16, g->labels, g->scales, g->out, g->lens, g->cnt, g->rsum, g->esum, g->rmin, g->emax};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (p[i])
			cudaFree(p[i]);
	g->k16 = g->v16 = g->q16 = NULL;
	g->labels = NULL;
	g->scales = NULL;
	g->out = NULL;
	g->lens = NULL;
	g->cnt = NULL;
	g->rsum = g->esum = NULL;
	g->rmin = g->emax = NULL;
	for (int i = 0; i < WS_SLOTS; i++) {
		fpk_ds_workspace_free(g->ws[i]);
		g->ws[i] = NULL;
		g->ws_nb[i] = g->ws_T[i] = 0;
	}
	g->ws_next = 0;
	g->lens_nb = g->lens_T = 0;
	g->cap_nb = g->cap_T = 0;
}

extern "C" void fpk_ds_gpu_free(fpk_ds_gpu *g)
{
	if (!g)
		return;
	free_bufs(g);
	if (g->dch)
		cudaFree(g->dch);
	if (g->ev0)
		cudaEventDestroy(g->ev0);
	if (g->ev1)
		cudaEventDestroy(g->ev1);
	free(g);
}

static int kcap_of(const fpk_ds_eval_cfg *c, int T)
{
	long long k = c->topk > 0 ? c->topk : (c->topk_div > 0 ? ((long long)T + c->topk_div - 1) / c->topk_div : T);
	if (k < 1)
		k = 1;
	return k < T ? (int)k : T;
}

/* k of a query with len keys, or 0 when it stays dense: the rule of ds_eval.c and the kernels */
static int seq_topk(const fpk_ds_eval_cfg *c, int len)
{
	long long k = c->topk > 0 ? c->topk : (c->topk_div > 0 ? ((long long)len + c->topk_div - 1) / c->topk_div : len);
	if (k < 1)
		k = 1;
	return (len < c->dense_below || k >= len) ? 0 : (int)k;
}

extern "C" int fpk_ds_gpu_new(const fpk_ds_eval_cfg *c, int n_layers, int kv_dtype, fpk_ds_gpu **out)
{
	int rc = 0;
	*out = NULL;
	if (kv_dtype != FPK_F16 && kv_dtype != FPK_BF16)
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): KV dtype must be F16 or BF16");
	if (c->head_dim < 8 || c->head_dim > 256 || c->head_dim % 8)
		return fpk_error_set(FPK_EUSAGE,
			"ds eval (GPU): head_dim %d: the Double Sparsity kernels take multiples of 8 in 8..256 (use --device cpu)",
			c->head_dim);
	if (c->heads < 1 || c->kv_heads < 1 || c->heads % c->kv_heads)
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): heads %d must be a positive multiple of kv heads %d", c->heads,
			c->kv_heads);
	if (c->r < 1 || c->r > c->head_dim)
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): heavy channels r = %d must be in 1..%d", c->r, c->head_dim);
	if (c->label_bits != 16 && c->label_bits != 8 && c->label_bits != 4)
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): label bits %d must be 16, 8 or 4", c->label_bits);
	if (c->per_head_labels && !c->sel_per_head)
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): per-query-head labels need per-head selection");
	if (!c->ch || n_layers < 1)
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): no channel table");
	int LH = c->per_head_labels ? c->heads : c->kv_heads;
	size_t nch = (size_t)n_layers * LH * c->r;
	for (size_t i = 0; i < nch; i++)
		if (c->ch[i] < 0 || c->ch[i] >= c->head_dim)
			return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): channel %d out of range 0..%d", c->ch[i], c->head_dim - 1);
	fpk_ds_gpu *g = (fpk_ds_gpu *)calloc(1, sizeof(*g));
	if (!g)
		return fpk_error_set(FPK_EIO, "out of memory");
	g->c = *c;
	g->c.ch = NULL;
	g->n_layers = n_layers;
	g->LH = LH;
	g->kv_dtype = kv_dtype;
	g->fmt = c->label_bits == 16 ? FPK_DS_LABEL_16 : c->label_bits == 8 ? FPK_DS_LABEL_Q8 : FPK_DS_LABEL_Q4;
	CK(cudaMalloc(&g->dch, nch * sizeof(int32_t)));
	CK(cudaMemcpy(g->dch, c->ch, nch * sizeof(int32_t), cudaMemcpyHostToDevice));
	CK(cudaEventCreate(&g->ev0));
	CK(cudaEventCreate(&g->ev1));
done:
	if (rc) {
		fpk_ds_gpu_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

/* buffers for max_nb windows of max_T tokens (the run's bounds: allocated once) */
static int ensure(fpk_ds_gpu *g, int max_nb, int max_T)
{
	int rc = 0;
	if (g->cap_nb >= max_nb && g->cap_T >= max_T)
		return 0;
	if (g->cnt) { /* statistics live in these buffers: the bounds must not grow during a run */
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): window bounds grew during the run (%d x %d -> %d x %d)",
			g->cap_nb, g->cap_T, max_nb, max_T);
	}
	const fpk_ds_eval_cfg *c = &g->c;
	int H = c->heads, Hkv = c->kv_heads, d = c->head_dim;
	size_t kv = (size_t)max_nb * Hkv * max_T * d, slots = (size_t)max_nb * H;
	fpk_ds_shape s = {max_nb, H, Hkv, d, max_T, g->kv_dtype};
	fpk_ds_label_cfg lc = {c->r, g->fmt, c->per_head_labels, g->dch};
	size_t lb = 0, sb = 0;
	fpk_ds_label_cache_bytes(&s, &lc, &lb, &sb);
	CK(cudaMalloc(&g->k16, kv * 2));
	CK(cudaMalloc(&g->v16, kv * 2));
	CK(cudaMalloc(&g->q16, slots * d * 2));
	CK(cudaMalloc(&g->labels, lb));
	if (sb)
		CK(cudaMalloc(&g->scales, sb));
	CK(cudaMalloc(&g->out, slots * d * sizeof(float)));
	CK(cudaMalloc(&g->lens, (size_t)max_nb * max_T * sizeof(int32_t)));
	CK(cudaMalloc(&g->cnt, slots * sizeof(unsigned long long)));
	CK(cudaMalloc(&g->rsum, slots * sizeof(double)));
	CK(cudaMalloc(&g->esum, slots * sizeof(double)));
	CK(cudaMalloc(&g->rmin, slots * sizeof(float)));
	CK(cudaMalloc(&g->emax, slots * sizeof(float)));
	CK(cudaMemset(g->cnt, 0, slots * sizeof(unsigned long long)));
	CK(cudaMemset(g->rsum, 0, slots * sizeof(double)));
	CK(cudaMemset(g->esum, 0, slots * sizeof(double)));
	k_stats_init<<<(unsigned)((slots + 255) / 256), 256>>>(g->rmin, g->emax, (int)slots);
	CK(cudaGetLastError());
	g->cap_nb = max_nb;
	g->cap_T = max_T;
done:
	if (rc)
		free_bufs(g);
	return rc;
}

/* adds workspace slot i's selection self-check failures to g->faults (before the slot is freed or read out) */
static int collect_faults(fpk_ds_gpu *g, int i)
{
	unsigned f = 0;
	int rc = g->ws[i] ? fpk_ds_workspace_faults(g->ws[i], &f) : 0;
	g->faults += f;
	return rc;
}

extern "C" int fpk_ds_gpu_attend(void *ud, int layer, int nb, int Tq, int max_nb, int max_T, const float *q,
	const float *kc, const float *vc, float *att)
{
	fpk_ds_gpu *g = (fpk_ds_gpu *)ud;
	const fpk_ds_eval_cfg *c = &g->c;
	int rc = 0, H = c->heads, Hkv = c->kv_heads, d = c->head_dim, bf = g->kv_dtype == FPK_BF16;
	if (layer < 0 || layer >= g->n_layers || nb < 1 || Tq < 1 || nb > max_nb || Tq > max_T)
		return fpk_error_set(FPK_EUSAGE, "ds eval (GPU): layer %d, %d windows of %d tokens outside the bounds", layer,
			nb, Tq);
	if ((rc = ensure(g, max_nb, max_T)))
		return rc;
	/* nothing to do when every position stays dense (short windows) */
	int first = -1;
	for (int t = 0; t < Tq; t++)
		if (seq_topk(c, t + 1)) {
			first = t;
			break;
		}
	if (first < 0)
		return 0;
	fpk_ds_workspace *ws = NULL;
	CK(cudaEventRecord(g->ev0, 0));
	for (int i = 0; i < WS_SLOTS; i++)
		if (g->ws[i] && g->ws_nb[i] == nb && g->ws_T[i] == Tq)
			ws = g->ws[i];
	if (!ws) { /* replace the oldest slot */
		int i = g->ws_next;
		g->ws_next = (i + 1) % WS_SLOTS;
		if ((rc = collect_faults(g, i)))
			return rc;
		fpk_ds_workspace_free(g->ws[i]);
		g->ws[i] = NULL;
		g->ws_nb[i] = g->ws_T[i] = 0;
		fpk_ds_shape s = {nb, H, Hkv, d, Tq, g->kv_dtype};
		if ((rc = fpk_ds_workspace_new(&s, kcap_of(c, Tq), &g->ws[i])))
			return rc;
		g->ws_nb[i] = nb;
		g->ws_T[i] = Tq;
		ws = g->ws[i];
	}
	if (g->lens_nb != nb || g->lens_T != Tq) {
		g->lens_nb = g->lens_T = 0;
		k_fill_lens<<<(unsigned)(((size_t)nb * Tq + 255) / 256), 256>>>(g->lens, nb, Tq);
		CK(cudaGetLastError());
		g->lens_nb = nb;
		g->lens_T = Tq;
	}
	{
		fpk_ds_shape s = {nb, H, Hkv, d, Tq, g->kv_dtype};
		fpk_ds_label_cfg lc = {c->r, g->fmt, c->per_head_labels, g->dch + (size_t)layer * g->LH * c->r};
		size_t n = (size_t)nb * Tq * Hkv * d;
		unsigned grid = (unsigned)((n + 255) / 256 < 65536 ? (n + 255) / 256 : 65536);
		if (bf)
			k_kv16<__nv_bfloat16><<<grid, 256>>>(g->k16, g->v16, kc, vc, nb, Tq, Hkv, d);
		else
			k_kv16<__half><<<grid, 256>>>(g->k16, g->v16, kc, vc, nb, Tq, Hkv, d);
		CK(cudaGetLastError());
		/* labels of all Tq tokens of every window: lens row Tq - 1 holds Tq */
		fpk_ds_label_params lp = {s, lc, g->k16, g->lens + (size_t)(Tq - 1) * nb, NULL, g->labels,
			g->fmt == FPK_DS_LABEL_16 ? NULL : g->scales};
		if ((rc = fpk_ds_label_build(&lp, NULL)))
			return rc;
		const int32_t *idx, *nsel;
		int kcap;
		fpk_ds_workspace_selection(ws, &idx, &nsel, &kcap);
		int hd = H * d;
		unsigned qgrid = (unsigned)(((size_t)nb * hd + 255) / 256);
		for (int t = first; t < Tq; t++) {
			if (!seq_topk(c, t + 1))
				continue;
			if (bf)
				k_q16<__nv_bfloat16><<<qgrid, 256>>>(g->q16, q, nb, Tq, t, hd);
			else
				k_q16<__half><<<qgrid, 256>>>(g->q16, q, nb, Tq, t, hd);
			CK(cudaGetLastError());
			fpk_ds_decode_params dp;
			memset(&dp, 0, sizeof(dp));
			dp.shape = s;
			dp.cfg = lc;
			dp.q = g->q16;
			dp.k = g->k16;
			dp.v = g->v16;
			dp.lens = g->lens + (size_t)t * nb;
			dp.labels = g->labels;
			dp.scales = g->fmt == FPK_DS_LABEL_16 ? NULL : g->scales;
			dp.sel_per_head = c->sel_per_head;
			dp.topk = c->topk;
			dp.topk_div = c->topk_div;
			dp.dense_below = c->dense_below;
			dp.out = g->out;
			if ((rc = fpk_ds_decode(&dp, ws, NULL)))
				return rc;
			k_stats<<<(unsigned)(nb * H), ST_THREADS>>>(att, g->out, q, kc, idx, nsel, kcap, c->sel_per_head, H, Hkv, d,
				Tq, t, 1.0f / sqrtf((float)d), g->cnt, g->rsum, g->esum, g->rmin, g->emax);
			CK(cudaGetLastError());
			g->steps++;
		}
	}
	/* waits for this layer's DS work only (not for the engine's weight prefetch on its own stream); an
	 * asynchronous fault in the kernels above surfaces here */
	CK(cudaEventRecord(g->ev1, 0));
	CK(cudaEventSynchronize(g->ev1));
	{
		float ms = 0.0f;
		CK(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
		g->seconds += ms * 1e-3;
	}
done:
	return rc;
}

extern "C" int fpk_ds_gpu_stats(fpk_ds_gpu *g, fpk_ds_eval_stats *st)
{
	int rc = 0;
	size_t slots = (size_t)g->cap_nb * g->c.heads;
	unsigned long long *cnt = NULL;
	double *rs = NULL, *es = NULL;
	float *rm = NULL, *em = NULL;
	for (int i = 0; i < WS_SLOTS; i++)
		if ((rc = collect_faults(g, i)))
			return rc;
	if (g->faults) /* the kernels' own invariant, checked on every call: never expected */
		return fpk_error_set(FPK_EGPU, "internal error: %u GPU top-k selections did not take exactly k tokens "
				     "(a kernel bug; the statistics of this run are not trustworthy)", g->faults);
	if (!slots)
		return 0;
	cnt = (unsigned long long *)malloc(slots * sizeof(*cnt));
	rs = (double *)malloc(slots * sizeof(double));
	es = (double *)malloc(slots * sizeof(double));
	rm = (float *)malloc(slots * sizeof(float));
	em = (float *)malloc(slots * sizeof(float));
	if (!cnt || !rs || !es || !rm || !em) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	CK(cudaMemcpy(cnt, g->cnt, slots * sizeof(*cnt), cudaMemcpyDeviceToHost));
	CK(cudaMemcpy(rs, g->rsum, slots * sizeof(double), cudaMemcpyDeviceToHost));
	CK(cudaMemcpy(es, g->esum, slots * sizeof(double), cudaMemcpyDeviceToHost));
	CK(cudaMemcpy(rm, g->rmin, slots * sizeof(float), cudaMemcpyDeviceToHost));
	CK(cudaMemcpy(em, g->emax, slots * sizeof(float), cudaMemcpyDeviceToHost));
	for (size_t i = 0; i < slots; i++) {
		if (!cnt[i])
			continue;
		fpk_ds_eval_stats s;
		fpk_ds_eval_stats_init(&s);
		s.count = cnt[i];
		s.recall_sum = rs[i];
		s.err_sum = es[i];
		s.recall_min = rm[i];
		s.err_max = em[i];
		fpk_ds_eval_stats_add(st, &s);
	}
done:
	free(cnt), free(rs), free(es), free(rm), free(em);
	return rc;
}

extern "C" int fpk_ds_gpu_max_windows(const fpk_ds_gpu *g)
{
	int w = 4096 / g->c.heads;
	return w > 1 ? w : 1;
}

extern "C" void fpk_ds_gpu_timing(const fpk_ds_gpu *g, double *seconds, uint64_t *steps)
{
	*seconds = g->seconds;
	*steps = g->steps;
}
