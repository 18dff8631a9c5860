/* dtype.c: the dtype table and 16-bit float conversions (round to nearest even).
 * Tested by tests/unit/test_common.c (exhaustively over all 65536 patterns). */
#include "fpk_common.h"

#include <math.h>
#include <string.h>

const fpk_dtype_info fpk_dtypes[FPK_DTYPE_COUNT] = {
	[FPK_F64] = {"F64", 8, 1},       [FPK_F32] = {"F32", 4, 1},       [FPK_F16] = {"F16", 2, 1},
	[FPK_BF16] = {"BF16", 2, 1},     [FPK_I64] = {"I64", 8, 0},       [FPK_I32] = {"I32", 4, 0},
	[FPK_I16] = {"I16", 2, 0},       [FPK_I8] = {"I8", 1, 0},         [FPK_U64] = {"U64", 8, 0},
	[FPK_U32] = {"U32", 4, 0},       [FPK_U16] = {"U16", 2, 0},       [FPK_U8] = {"U8", 1, 0},
	[FPK_BOOL] = {"BOOL", 1, 0},     [FPK_F8_E4M3] = {"F8_E4M3", 1, 0}, [FPK_F8_E5M2] = {"F8_E5M2", 1, 0},
};

int fpk_dtype_from_name(const char *name, fpk_dtype *out)
{
	for (int i = 0; i < FPK_DTYPE_COUNT; i++) {
		if (!strcmp(fpk_dtypes[i].name, name)) {
			*out = (fpk_dtype)i;
			return 0;
		}
	}
	return FPK_EFORMAT;
}

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float fpk_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	if (exp == 0x1f)
		return u2f(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		/* zero or subnormal: man * 2^-24 */
		float v = (float)man * 5.9604644775390625e-8f;
		return sign ? -v : v;
	}
	return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t fpk_f32_to_f16(float f)
{
	uint32_t u = f2u(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffffu;
	if (a >= 0x7f800000u) /* Inf or NaN (quiet NaN kept) */
		return sign | 0x7c00 | (a > 0x7f800000u ? (uint16_t)(0x200 | ((a >> 13) & 0x3ff)) : 0);
	if (a >= 0x477ff000u) /* rounds to >= 65520: overflow to Inf */
		return sign | 0x7c00;
	if (a < 0x38800000u) { /* below the smallest normal 2^-14: subnormal or zero */
		float v = u2f(a) * 16777216.0f; /* scale by 2^24: integer part is the subnormal mantissa */
		uint32_t m = (uint32_t)v;
		float rem = v - (float)m;
		if (rem > 0.5f || (rem == 0.5f && (m & 1)))
			m++;
		return sign | (uint16_t)m;
	}
	uint32_t r = a + 0xfffu + ((a >> 13) & 1); /* round to nearest even on the 13 dropped bits */
	return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float fpk_bf16_to_f32(uint16_t h)
{
	return u2f((uint32_t)h << 16);
}

uint16_t fpk_f32_to_bf16(float f)
{
	uint32_t u = f2u(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40); /* keep NaN quiet */
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

float fpk_load_f32(const void *data, fpk_dtype dt, size_t i)
{
	switch (dt) {
	case FPK_F32: { float v; memcpy(&v, (const char *)data + 4 * i, 4); return v; }
	case FPK_F16: { uint16_t h; memcpy(&h, (const char *)data + 2 * i, 2); return fpk_f16_to_f32(h); }
	case FPK_BF16: { uint16_t h; memcpy(&h, (const char *)data + 2 * i, 2); return fpk_bf16_to_f32(h); }
	case FPK_F64: { double v; memcpy(&v, (const char *)data + 8 * i, 8); return (float)v; }
	default: return NAN;
	}
}
