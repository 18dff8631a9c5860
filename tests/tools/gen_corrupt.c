/* gen_corrupt.c: writes the corrupt-input corpus for the safetensors reader: one file (or directory) per rule,
 * each made from a valid image by one change, plus cases.tsv ("name<TAB>expected message part").
 * Usage: gen_corrupt OUTDIR. Replayed by tests/cli/corrupt_corpus.sh (every case must exit 3). */
#include "fpk_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *cases;
static const char *outdir;

/* a safetensors image: 8-byte length (hl, or the header's true length when hl < 0), header, data bytes */
static void emit_n(const char *name, const char *header, size_t h, long long hl, size_t data_len,
		   size_t truncate_to, const char *expect)
{
	char path[4096];
	uint64_t field = hl < 0 ? h : (uint64_t)hl;
	size_t n = 8 + h + data_len;
	uint8_t *b = malloc(n);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(field >> (8 * i));
	memcpy(b + 8, header, h);
	for (size_t i = 0; i < data_len; i++)
		b[8 + h + i] = (uint8_t)(0x3c + i); /* non-zero data */
	if (truncate_to && truncate_to < n)
		n = truncate_to;
	snprintf(path, sizeof(path), "%s/%s.safetensors", outdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n) {
		fprintf(stderr, "gen_corrupt: cannot write '%s'\n", path);
		exit(4);
	}
	fclose(f);
	free(b);
	fprintf(cases, "%s.safetensors\t%s\n", name, expect);
}

static void emit(const char *name, const char *header, long long hl, size_t data_len, size_t truncate_to,
		 const char *expect)
{
	emit_n(name, header, strlen(header), hl, data_len, truncate_to, expect);
}

static void write_text(const char *dir, const char *file, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, dir, file);
	FILE *f = fopen(path, "wb");
	if (!f || fputs(text, f) < 0) {
		fprintf(stderr, "gen_corrupt: cannot write '%s'\n", path);
		exit(4);
	}
	fclose(f);
}

#define T1 "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}"
#define T2 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}"

int main(int argc, char **argv)
{
	char path[4096];
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corrupt OUTDIR\n");
		return 2;
	}
	outdir = argv[1];
	if (fpk_mkdir_p(outdir)) {
		fprintf(stderr, "gen_corrupt: %s\n", fpk_error_msg());
		return 4;
	}
	snprintf(path, sizeof(path), "%s/cases.tsv", outdir);
	cases = fopen(path, "w");
	if (!cases)
		return 4;
	const char *good = "{" T1 "," T2 "}";
	emit("valid", good, -1, 16, 0, "OK");
	emit("truncated_length", good, -1, 16, 5, "truncated");
	emit("truncated_data", good, -1, 16, 8 + strlen(good) + 12, "run past the end of the data region");
	emit("header_past_end", good, 1000, 16, 0, "runs past the end of the file");
	emit("huge_header_length", good, 0x7fffffffffffll, 16, 0, "exceeds the maximum");
	emit("invalid_json", "{" T1 "," T2, -1, 16, 0, "not valid JSON");
	emit("not_an_object", "[1, 2, 3]", -1, 0, 0, "not start with '{'");
	emit("trailing_bytes", "{" T1 "," T2 "}x", -1, 16, 0, "bytes after the JSON object");
	emit("bad_utf8", "{\"a\xc3\x28\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}," T2 "}", -1, 16, 0,
	     "not valid UTF-8");
	emit("unknown_dtype", "{\"a\":{\"dtype\":\"F12\",\"shape\":[2,2],\"data_offsets\":[0,8]}," T2 "}", -1, 16, 0,
	     "unknown dtype 'F12'");
	emit("offsets_past_end", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", -1, 16, 0,
	     "run past the end of the data region");
	emit("overlapping", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, 0,
	     "overlaps");
	emit("shape_size_mismatch", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,8]}," T2 "}", -1, 16, 0,
	     "shape/size mismatch");
	emit("duplicate_names", "{" T1 ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1, 16, 0,
	     "duplicate tensor name 'a'");
	emit("gap_in_data", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", -1, 20, 0, "gap");
	emit("uncovered_tail", good, -1, 24, 0, "not fully covered");
	emit("negative_dim", "{\"a\":{\"dtype\":\"F16\",\"shape\":[-2,-2],\"data_offsets\":[0,8]}," T2 "}", -1, 16, 0,
	     "non-negative integer");
	emit("fractional_offset", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8.5]}," T2 "}", -1, 16, 0,
	     "not non-negative integers");
	emit("bad_offsets_arity", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0]}," T2 "}", -1, 16, 0,
	     "array of 2 integers");
	emit("metadata_not_string", "{\"__metadata__\":{\"format\":7}," T1 "," T2 "}", -1, 16, 0, "is not a string");
	emit("missing_dtype", "{\"a\":{\"shape\":[2,2],\"data_offsets\":[0,8]}," T2 "}", -1, 16, 0, "\"dtype\"");
	emit_n("nul_in_header", "{" T1 "," T2 "}\0       ", strlen("{" T1 "," T2 "}") + 8, -1, 16, 0, "NUL");

	/* sharded directories */
	const char *dirs[] = {"missing_shard", "index_unlisted_tensor", "index_unknown_tensor"};
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", outdir, dirs[i]);
		fpk_mkdir_p(path);
	}
	/* shard files: valid images holding a and b */
	for (int i = 0; i < 3; i++) {
		char name[256];
		snprintf(name, sizeof(name), "%s/model-00001-of-00001", dirs[i]);
		FILE *save = cases;
		cases = fopen("/dev/null", "w");
		emit(name, good, -1, 16, 0, "");
		fclose(cases);
		cases = save;
	}
	write_text("missing_shard", "model.safetensors.index.json",
		   "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00001.safetensors\","
		   "\"b\":\"model-00002-of-00002.safetensors\"}}");
	fprintf(cases, "missing_shard\tdoes not exist\n");
	write_text("index_unlisted_tensor", "model.safetensors.index.json",
		   "{\"weight_map\":{\"a\":\"model-00001-of-00001.safetensors\"}}");
	fprintf(cases, "index_unlisted_tensor\tis not listed in the index\n");
	write_text("index_unknown_tensor", "model.safetensors.index.json",
		   "{\"weight_map\":{\"a\":\"model-00001-of-00001.safetensors\",\"b\":\"model-00001-of-00001.safetensors\","
		   "\"c\":\"model-00001-of-00001.safetensors\"}}");
	fprintf(cases, "index_unknown_tensor\tno shard holds it\n");
	fclose(cases);
	return 0;
}
