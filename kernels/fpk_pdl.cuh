/* fpk_pdl.cuh: programmatic dependent launch (PDL, sm_90+), shared by the kernels of kernels/ and model/.
 *
 * A kernel launched with programmatic stream serialization (fpk_launch_pdl) may start while the previous kernel
 * of its stream still runs. Its blocks may do, before fpk_pdl_wait(), only work that does not depend on that
 * kernel and writes nothing another kernel reads (load weights, fill shared memory); fpk_pdl_wait() blocks until
 * the previous kernel has finished and its writes are visible, and every block must call it before touching
 * what earlier kernels wrote (or return without touching anything). Because each kernel waits for its
 * predecessor, "finished" is transitive down the stream. fpk_pdl_trigger() lets the next kernel's blocks be
 * scheduled as soon as this grid's blocks have all called it (otherwise: when they exit). Both are no-ops below
 * sm_90 and when the kernel was launched normally. */
#ifndef FPK_PDL_CUH
#define FPK_PDL_CUH

#include <cuda_runtime.h>
#include <stdlib.h>

static __device__ __forceinline__ void fpk_pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void fpk_pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* 1 when launches should use PDL: the current device is sm_90 or later and FPK_PDL is not "0" (FPK_PDL=0 is for
 * timing the difference, or for a driver that rejects the attribute) */
static int fpk_pdl_enabled(void)
{
	static int env = -1;
	int dev = 0, major = 0;
	if (env < 0) {
		const char *e = getenv("FPK_PDL");
		env = !(e && e[0] == '0' && !e[1]);
	}
	if (!env || cudaGetDevice(&dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
		return 0;
	return major >= 9;
}

/* launch fn with programmatic stream serialization when pdl is set, as a plain launch otherwise */
template <typename... KArgs, typename... Args>
static cudaError_t fpk_launch_pdl(void (*fn)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, int pdl,
				  Args... args)
{
	cudaLaunchConfig_t cfg = {};
	cudaLaunchAttribute at[1];
	at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	at[0].val.programmaticStreamSerializationAllowed = 1;
	cfg.gridDim = grid;
	cfg.blockDim = block;
	cfg.dynamicSmemBytes = smem;
	cfg.stream = st;
	cfg.attrs = pdl ? at : NULL;
	cfg.numAttrs = pdl ? 1 : 0;
	return cudaLaunchKernelEx(&cfg, fn, ((KArgs)args)...);
}

#endif
