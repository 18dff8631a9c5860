/* verify.c: structure (the pack reader's rules R1-R15), decode == --against, and numerics of the Tiled-CSL SpMM
 * per encoded tensor and batch size: our kernel vs cuBLAS (fp32 accumulate) on the GPU, or the scalar reference
 * kernels/spmm_ref.c vs a dense fp64 product on the CPU. Tests: tests/cli/verify_*.sh, tests/gpu/verify_stories.sh. */
#include "verify.h"
#include "pack.h"
#include "spmm_ref.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FPK_HAVE_CUDA
#include "fpk_cuda.h"
#include "spmm.h"
#endif

static const int default_batches[] = {1, 8, 16, 32};

static uint16_t to16(float f, fpk_dtype dt) { return dt == FPK_BF16 ? fpk_f32_to_bf16(f) : fpk_f32_to_f16(f); }
static float from16(uint16_t h, fpk_dtype dt) { return dt == FPK_BF16 ? fpk_bf16_to_f32(h) : fpk_f16_to_f32(h); }

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* seeded random normal X (n x k) in dtype: sum of 4 uniforms, scaled to unit variance */
static void random_x(uint16_t *x, int64_t n, int64_t k, fpk_dtype dt, uint64_t seed, const char *name)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull + (uint64_t)n;
	for (const char *c = name; *c; c++)
		s = (s ^ (uint8_t)*c) * 0x100000001B3ull;
	if (!s)
		s = 1;
	for (int64_t i = 0; i < n * k; i++) {
		uint64_t u = rng_next(&s);
		float a = (float)((u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff) + (u >> 48)) / 65536.0f;
		x[i] = to16((a - 2.0f) * 1.7320508f, dt);
	}
}

/* dense fp64 reference, row by row */
typedef struct dense_ctx {
	const uint16_t *w, *x;
	int64_t m, k, n;
	fpk_dtype dt;
	double *y; /* n x m */
} dense_ctx;

static int dense_row(void *ctx, size_t item, int tid)
{
	dense_ctx *c = ctx;
	int64_t o = (int64_t)item;
	for (int64_t t = 0; t < c->n; t++) {
		double acc = 0;
		for (int64_t i = 0; i < c->k; i++) {
			uint16_t wb = c->w[o * c->k + i];
			if (wb & 0x7fff)
				acc += (double)from16(wb, c->dt) * (double)from16(c->x[t * c->k + i], c->dt);
		}
		c->y[t * c->m + o] = acc;
	}
	return 0;
}

static void score(fpk_verify_batch *b, double max_abs, double scale, int bad, double tol)
{
	b->max_abs = max_abs;
	b->scale = scale;
	b->max_rel = scale > 0 ? max_abs / scale : max_abs;
	b->pass = !bad && b->max_rel <= tol;
}

/* CPU: spmm_ref (fp32 accumulation, output rounded to the dtype as the kernel does) vs dense fp64 */
static int check_cpu(const fpk_pack_tensor *e, const uint16_t *wd, const uint16_t *x, fpk_verify_batch *b, double tol,
		     int threads)
{
	const fpk_tcsl *t = &e->tcsl;
	int64_t n = b->n;
	float *y = malloc(sizeof(float) * (size_t)(n * t->m));
	double *yd = malloc(sizeof(double) * (size_t)(n * t->m));
	int rc = 0, bad = 0;
	double md = 0, sc = 0;
	if (!y || !yd) {
		rc = fpk_error_set(FPK_EFAIL, "out of memory verifying '%s'", e->name);
		goto done;
	}
	if ((rc = fpk_spmm_ref(t, x, n, y, threads)))
		goto done;
	dense_ctx c = {wd, x, t->m, t->k, n, t->dtype, yd};
	if ((rc = fpk_parallel_for((size_t)t->m, threads, dense_row, &c)))
		goto done;
	for (int64_t i = 0; i < n * t->m; i++) {
		double g = from16(to16(y[i], t->dtype), t->dtype), d = fabs(g - yd[i]);
		if (!isfinite(g) || isnan(d))
			bad = 1;
		else if (d > md)
			md = d;
		if (fabs(yd[i]) > sc)
			sc = fabs(yd[i]);
	}
	score(b, md, sc, bad, tol);
done:
	free(y);
	free(yd);
	return rc;
}

#ifdef FPK_HAVE_CUDA
static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

/* GPU: our kernel vs cuBLAS (fp32 output) on the decoded weights; --bench: medians of 15 timed calls each */
static int check_gpu(void *handle, const fpk_pack_tensor *e, const uint16_t *wd, const uint16_t *x, fpk_verify_batch *b,
		     double tol, int bench)
{
	const fpk_tcsl *t = &e->tcsl;
	int64_t n = b->n, m = t->m, k = t->k;
	fpk_spmm_weights dw = {0};
	void *dwd = NULL, *dx = NULL, *dy = NULL, *dyr = NULL, *ws = NULL;
	uint16_t *y = malloc(2 * (size_t)(n * m));
	float *yr = malloc(4 * (size_t)(n * m));
	size_t wss = fpk_spmm_workspace_size(m, n);
	cudaEvent_t ev0 = NULL, ev1 = NULL;
	int rc = 0, bad = 0;
	double md = 0, sc = 0;
	if (!y || !yr) {
		rc = fpk_error_set(FPK_EFAIL, "out of memory verifying '%s'", e->name);
		goto done;
	}
	if ((rc = fpk_spmm_upload(&dw, t)) || (rc = fpk_spmm_workspace_alloc(&ws, wss)))
		goto done;
	FPK_CUDA_GOTO(cudaMalloc(&dwd, 2 * (size_t)(m * k)), rc, done);
	FPK_CUDA_GOTO(cudaMalloc(&dx, 2 * (size_t)(n * k)), rc, done);
	FPK_CUDA_GOTO(cudaMalloc(&dy, 2 * (size_t)(n * m)), rc, done);
	FPK_CUDA_GOTO(cudaMalloc(&dyr, 4 * (size_t)(n * m)), rc, done);
	FPK_CUDA_GOTO(cudaMemcpy(dwd, wd, 2 * (size_t)(m * k), cudaMemcpyHostToDevice), rc, done);
	FPK_CUDA_GOTO(cudaMemcpy(dx, x, 2 * (size_t)(n * k), cudaMemcpyHostToDevice), rc, done);
	FPK_CUDA_GOTO(cudaMemset(dy, 0xff, 2 * (size_t)(n * m)), rc, done); /* NaN: unwritten outputs fail */
	fpk_spmm_params p = {.w = &dw, .x = dx, .y = dy, .n = n, .workspace = ws, .workspace_size = wss};
	if ((rc = fpk_spmm_run(&p)) || (rc = fpk_dense_gemm(handle, t->dtype, FPK_F32, dwd, dx, dyr, m, k, n, NULL)))
		goto done;
	FPK_CUDA_GOTO(cudaDeviceSynchronize(), rc, done);
	FPK_CUDA_GOTO(cudaMemcpy(y, dy, 2 * (size_t)(n * m), cudaMemcpyDeviceToHost), rc, done);
	FPK_CUDA_GOTO(cudaMemcpy(yr, dyr, 4 * (size_t)(n * m), cudaMemcpyDeviceToHost), rc, done);
	for (int64_t i = 0; i < n * m; i++) {
		double g = from16(y[i], t->dtype), d = fabs(g - (double)yr[i]);
		if (!isfinite(g) || isnan(d))
			bad = 1;
		else if (d > md)
			md = d;
		if (fabs((double)yr[i]) > sc)
			sc = fabs((double)yr[i]);
	}
	score(b, md, sc, bad, tol);
	if (bench) {
		float s[2][15];
		FPK_CUDA_GOTO(cudaEventCreate(&ev0), rc, done);
		FPK_CUDA_GOTO(cudaEventCreate(&ev1), rc, done);
		for (int which = 0; which < 2; which++)
			for (int q = -3; q < 15; q++) {
				FPK_CUDA_GOTO(cudaEventRecord(ev0, NULL), rc, done);
				rc = which ? fpk_dense_gemm(handle, t->dtype, t->dtype, dwd, dx, dy, m, k, n, NULL) : fpk_spmm_run(&p);
				if (rc)
					goto done;
				FPK_CUDA_GOTO(cudaEventRecord(ev1, NULL), rc, done);
				FPK_CUDA_GOTO(cudaEventSynchronize(ev1), rc, done);
				if (q >= 0)
					FPK_CUDA_GOTO(cudaEventElapsedTime(&s[which][q], ev0, ev1), rc, done);
			}
		qsort(s[0], 15, sizeof(float), cmp_float);
		qsort(s[1], 15, sizeof(float), cmp_float);
		b->us_ours = s[0][7] * 1000.0;
		b->us_dense = s[1][7] * 1000.0;
	}
done:
	if (ev0)
		cudaEventDestroy(ev0);
	if (ev1)
		cudaEventDestroy(ev1);
	fpk_spmm_weights_free(&dw);
	fpk_spmm_workspace_free(ws);
	cudaFree(dwd);
	cudaFree(dx);
	cudaFree(dy);
	cudaFree(dyr);
	free(y);
	free(yr);
	return rc;
}
#endif

/* decode == against bit for bit (+0 and -0 are equal: the encoder stores no zeros) */
static int compare_against(const fpk_st_model *ag, const fpk_pack_tensor *e, const uint16_t *wd, char **mismatch)
{
	const fpk_tcsl *t = &e->tcsl;
	const fpk_st_tensor *a = fpk_st_model_find(ag, e->name);
	char buf[512];
	*mismatch = NULL;
	if (!a)
		snprintf(buf, sizeof(buf), "tensor '%s' is missing from --against", e->name);
	else if (a->dtype != t->dtype || a->ndim != 2 || a->shape[0] != t->m || a->shape[1] != t->k)
		snprintf(buf, sizeof(buf), "tensor '%s': --against has %s [%lld, %lld], the pack %s [%lld, %lld]", e->name,
			 fpk_dtypes[a->dtype].name, (long long)(a->ndim > 0 ? a->shape[0] : 0),
			 (long long)(a->ndim > 1 ? a->shape[1] : 0), fpk_dtypes[t->dtype].name, (long long)t->m, (long long)t->k);
	else {
		const uint16_t *ad = (const uint16_t *)a->data;
		for (int64_t i = 0; i < t->m * t->k; i++) {
			uint16_t p = wd[i], q;
			memcpy(&q, ad + i, 2);
			if (p != q && ((p | q) & 0x7fff)) {
				snprintf(buf, sizeof(buf),
					 "tensor '%s': decoded element [%lld, %lld] is 0x%04x, --against has 0x%04x", e->name,
					 (long long)(i / t->k), (long long)(i % t->k), p, q);
				*mismatch = strdup(buf);
				return 0;
			}
		}
		return 1;
	}
	*mismatch = strdup(buf);
	return 0;
}

void fpk_verify_report_free(fpk_verify_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_tensors; i++) {
		free(r->t[i].name);
		free(r->t[i].mismatch);
	}
	free(r->t);
	free(r->note);
	free(r);
}

int fpk_verify_run(const fpk_verify_opts *o, fpk_verify_report **out)
{
	fpk_pack *p = NULL;
	fpk_st_model *ag = NULL;
	fpk_verify_report *r = NULL;
	uint16_t *wd = NULL, *x = NULL;
	void *handle = NULL;
	int rc = 0, use_gpu = 0, have_gpu = 0;
	int threads = o->threads > 0 ? o->threads : fpk_default_threads();
	(void)handle;
	const int *batches = o->n_batches > 0 ? o->batches : default_batches;
	int nb = o->n_batches > 0 ? o->n_batches : 4;
	*out = NULL;
	if (nb > FPK_VERIFY_MAX_BATCH)
		return fpk_error_set(FPK_EUSAGE, "at most %d batch sizes", FPK_VERIFY_MAX_BATCH);
	for (int i = 0; i < nb; i++)
		if (batches[i] < 1 || batches[i] > 65536)
			return fpk_error_set(FPK_EUSAGE, "batch size %d is not in 1..65536", batches[i]);
	if (!(r = calloc(1, sizeof(*r))))
		return fpk_error_set(FPK_EFAIL, "out of memory");
	if ((rc = fpk_pack_open(&p, o->pack, threads)))
		goto done;
	r->structure_ok = 1;
#ifdef FPK_HAVE_CUDA
	{
		int nd = 0;
		if (cudaGetDeviceCount(&nd) == cudaSuccess && nd > 0) {
			struct cudaDeviceProp prop;
			have_gpu = 1;
			if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
				snprintf(r->device_name, sizeof(r->device_name), "%.127s", prop.name);
		}
		cudaGetLastError();
	}
#endif
	if (!have_gpu && (o->device == FPK_VERIFY_GPU || o->require_gpu)) {
		rc = fpk_error_set(FPK_EGPU, "no usable GPU (--device gpu or --require-gpu)%s",
#ifdef FPK_HAVE_CUDA
				   ""
#else
				   ": this build has no CUDA"
#endif
		);
		goto done;
	}
	use_gpu = have_gpu && o->device != FPK_VERIFY_CPU;
	if (!have_gpu && o->device == FPK_VERIFY_AUTO)
		r->note = strdup("no GPU found: using the CPU path (kernels/spmm_ref.c vs a dense fp64 product)");
	if (!use_gpu)
		snprintf(r->device_name, sizeof(r->device_name), "cpu");
	r->gpu = use_gpu;
	if (o->against && (rc = fpk_st_model_open(&ag, o->against)))
		goto done;
#ifdef FPK_HAVE_CUDA
	if (use_gpu && (rc = fpk_dense_handle(&handle)))
		goto done;
#endif
	if (!(r->t = calloc(p->n_encoded ? p->n_encoded : 1, sizeof(*r->t)))) {
		rc = fpk_error_set(FPK_EFAIL, "out of memory");
		goto done;
	}
	r->pass = 1;
	for (size_t i = 0; i < p->n_encoded; i++) {
		const fpk_pack_tensor *e = &p->encoded[i];
		const fpk_tcsl *t = &e->tcsl;
		fpk_verify_tensor *vt = &r->t[i];
		r->n_tensors = i + 1;
		vt->name = strdup(e->name);
		vt->m = t->m;
		vt->k = t->k;
		vt->dtype = t->dtype;
		vt->nnz = t->nnz;
		vt->tol = o->rtol > 0 ? o->rtol : t->dtype == FPK_BF16 ? 1e-2 : 2e-3;
		vt->against = -1;
		vt->pass = 1;
		if (o->progress)
			o->progress(o->progress_ud, e->name, i, p->n_encoded);
		free(wd);
		if (!(wd = malloc(2 * (size_t)(t->m * t->k)))) {
			rc = fpk_error_set(FPK_EFAIL, "out of memory decoding '%s'", e->name);
			goto done;
		}
		if ((rc = fpk_pack_decode_tensor(e, wd)))
			goto done;
		if (ag) {
			vt->against = compare_against(ag, e, wd, &vt->mismatch);
			if (!vt->against)
				vt->pass = 0;
		}
		for (int bi = 0; bi < nb; bi++) {
			fpk_verify_batch *b = &vt->b[bi];
			b->n = batches[bi];
			free(x);
			if (!(x = malloc(2 * (size_t)((int64_t)b->n * t->k)))) {
				rc = fpk_error_set(FPK_EFAIL, "out of memory");
				goto done;
			}
			random_x(x, b->n, t->k, t->dtype, o->seed, e->name);
#ifdef FPK_HAVE_CUDA
			if (use_gpu)
				rc = check_gpu(handle, e, wd, x, b, vt->tol, o->bench);
			else
#endif
				rc = check_cpu(e, wd, x, b, vt->tol, threads);
			if (rc)
				goto done;
			if (!b->pass)
				vt->pass = 0;
		}
		vt->n_batches = nb;
		if (!vt->pass) {
			r->pass = 0;
			r->n_failed++;
		}
	}
	if (o->progress)
		o->progress(o->progress_ud, "done", p->n_encoded, p->n_encoded);
	if (!p->n_encoded) {
		r->pass = 0;
		free(r->note);
		r->note = strdup("the pack holds no encoded tensor");
	}
	*out = r;
	r = NULL;
done:
#ifdef FPK_HAVE_CUDA
	fpk_dense_handle_free(handle);
#endif
	free(wd);
	free(x);
	fpk_verify_report_free(r);
	fpk_st_model_close(ag);
	fpk_pack_close(p);
	return rc;
}

char *fpk_verify_report_json(const fpk_verify_report *r, const fpk_verify_opts *o)
{
	cJSON *j = cJSON_CreateObject(), *arr;
	char *s;
	cJSON_AddStringToObject(j, "pack", o->pack);
	if (o->against)
		cJSON_AddStringToObject(j, "against", o->against);
	cJSON_AddStringToObject(j, "device", r->gpu ? "gpu" : "cpu");
	cJSON_AddStringToObject(j, "device_name", r->device_name);
	if (r->note)
		cJSON_AddStringToObject(j, "note", r->note);
	cJSON_AddNumberToObject(j, "seed", (double)o->seed);
	cJSON_AddBoolToObject(j, "structure_ok", r->structure_ok);
	cJSON_AddBoolToObject(j, "pass", r->pass);
	cJSON_AddNumberToObject(j, "tensors", (double)r->n_tensors);
	cJSON_AddNumberToObject(j, "failed", (double)r->n_failed);
	arr = cJSON_AddArrayToObject(j, "results");
	for (size_t i = 0; i < r->n_tensors; i++) {
		const fpk_verify_tensor *t = &r->t[i];
		cJSON *x = cJSON_CreateObject(), *ba, *sh;
		cJSON_AddStringToObject(x, "name", t->name);
		cJSON_AddStringToObject(x, "dtype", fpk_dtypes[t->dtype].name);
		sh = cJSON_AddArrayToObject(x, "shape");
		cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->m));
		cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->k));
		cJSON_AddNumberToObject(x, "nnz", (double)t->nnz);
		cJSON_AddNumberToObject(x, "rtol", t->tol);
		if (t->against >= 0)
			cJSON_AddBoolToObject(x, "against_equal", t->against);
		if (t->mismatch)
			cJSON_AddStringToObject(x, "mismatch", t->mismatch);
		ba = cJSON_AddArrayToObject(x, "batches");
		for (int b = 0; b < t->n_batches; b++) {
			cJSON *y = cJSON_CreateObject();
			cJSON_AddNumberToObject(y, "n", t->b[b].n);
			cJSON_AddNumberToObject(y, "max_abs_err", t->b[b].max_abs);
			cJSON_AddNumberToObject(y, "output_scale", t->b[b].scale);
			cJSON_AddNumberToObject(y, "max_rel_err", t->b[b].max_rel);
			cJSON_AddBoolToObject(y, "pass", t->b[b].pass);
			if (t->b[b].us_ours > 0) {
				cJSON_AddNumberToObject(y, "us_ours", t->b[b].us_ours);
				cJSON_AddNumberToObject(y, "us_cublas", t->b[b].us_dense);
			}
			cJSON_AddItemToArray(ba, y);
		}
		cJSON_AddBoolToObject(x, "pass", t->pass);
		cJSON_AddItemToArray(arr, x);
	}
	s = cJSON_Print(j);
	cJSON_Delete(j);
	return s;
}
