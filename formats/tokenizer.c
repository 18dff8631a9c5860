/* tokenizer.c: SentencePiece-style BPE from a Hugging Face tokenizer.json (hash maps for vocab and merges, a
 * heap-driven merge loop: O(n log n) in the text length). Tested by tests/unit/test_tokenizer.c. */
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xE2\x96\x81" /* U+2581 */

typedef struct str_slot {
	const char *key; /* points into tok->pieces */
	uint32_t len;
	int id;
} str_slot;

typedef struct merge_slot {
	uint64_t key; /* (left << 32 | right) + 1; 0 marks empty */
	int rank;
	int id;
} merge_slot;

struct fpk_tokenizer {
	int n_vocab;    /* max id + 1 */
	char **pieces;  /* (n_vocab) token strings, NULL for gaps */
	uint32_t *plen; /* (n_vocab) */
	int *byte_id;   /* (256) id of <0xXX>, -1 when absent */
	int *is_special;
	str_slot *vmap;
	size_t vcap;
	merge_slot *mmap;
	size_t mcap;
	int unk, bos, eos;
	int byte_fallback;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	return h;
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static int vocab_find(const fpk_tokenizer *t, const char *s, size_t n)
{
	size_t m = t->vcap - 1;
	for (size_t i = hash_bytes(s, n) & m;; i = (i + 1) & m) {
		const str_slot *e = &t->vmap[i];
		if (!e->key)
			return -1;
		if (e->len == n && !memcmp(e->key, s, n))
			return e->id;
	}
}

static void vocab_put(fpk_tokenizer *t, const char *s, size_t n, int id)
{
	size_t m = t->vcap - 1;
	for (size_t i = hash_bytes(s, n) & m;; i = (i + 1) & m) {
		str_slot *e = &t->vmap[i];
		if (!e->key) {
			e->key = s;
			e->len = (uint32_t)n;
			e->id = id;
			return;
		}
		if (e->len == n && !memcmp(e->key, s, n))
			return; /* first id wins */
	}
}

static const merge_slot *merge_find(const fpk_tokenizer *t, int a, int b)
{
	uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	size_t m = t->mcap - 1;
	for (size_t i = hash_u64(key) & m;; i = (i + 1) & m) {
		const merge_slot *e = &t->mmap[i];
		if (!e->key)
			return NULL;
		if (e->key == key)
			return e;
	}
}

static void merge_put(fpk_tokenizer *t, int a, int b, int rank, int id)
{
	uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	size_t m = t->mcap - 1;
	for (size_t i = hash_u64(key) & m;; i = (i + 1) & m) {
		merge_slot *e = &t->mmap[i];
		if (!e->key) {
			e->key = key;
			e->rank = rank;
			e->id = id;
			return;
		}
		if (e->key == key)
			return; /* lowest rank wins */
	}
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 16;
	while (c < n)
		c <<= 1;
	return c;
}

void fpk_tokenizer_free(fpk_tokenizer *t)
{
	if (!t)
		return;
	if (t->pieces)
		for (int i = 0; i < t->n_vocab; i++)
			free(t->pieces[i]);
	free(t->pieces);
	free(t->plen);
	free(t->byte_id);
	free(t->is_special);
	free(t->vmap);
	free(t->mmap);
	free(t);
}

static int unsupported(const char *name, const char *what)
{
	return fpk_error_set(FPK_EFORMAT,
		"unsupported tokenizer in '%s': %s (only SentencePiece-style BPE with byte fallback is supported; "
		"pass pre-tokenized ids with --tokens FILE)", name, what);
}

/* the normalizer must be Prepend(U+2581) + Replace(" " -> U+2581) (as a Sequence, in that order) */
static int check_normalizer(const cJSON *norm, const cJSON *pre, const char *name)
{
	if (pre && !cJSON_IsNull(pre)) {
		const cJSON *ty = cJSON_GetObjectItemCaseSensitive(pre, "type");
		if (!cJSON_IsString(ty))
			return unsupported(name, "pre_tokenizer without a type");
		if (!strcmp(ty->valuestring, "ByteLevel"))
			return unsupported(name, "byte-level BPE (pre_tokenizer ByteLevel)");
		if (strcmp(ty->valuestring, "Metaspace"))
			return unsupported(name, "pre_tokenizer other than Metaspace");
		return 0; /* Metaspace: same effect as the Prepend+Replace normalizer (split off: no) */
	}
	if (!norm || cJSON_IsNull(norm))
		return unsupported(name, "no normalizer and no Metaspace pre_tokenizer");
	const cJSON *ty = cJSON_GetObjectItemCaseSensitive(norm, "type");
	if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "Sequence"))
		return unsupported(name, "normalizer is not a Sequence of Prepend and Replace");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
	int have_prepend = 0, have_replace = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
		if (!cJSON_IsString(t))
			return unsupported(name, "normalizer without a type");
		if (!strcmp(t->valuestring, "Prepend")) {
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(it, "prepend");
			if (!cJSON_IsString(p) || strcmp(p->valuestring, SPM_SPACE))
				return unsupported(name, "Prepend normalizer with a string other than U+2581");
			have_prepend = 1;
		} else if (!strcmp(t->valuestring, "Replace")) {
			const cJSON *pat = cJSON_GetObjectItemCaseSensitive(it, "pattern");
			const cJSON *s = pat ? cJSON_GetObjectItemCaseSensitive(pat, "String") : NULL;
			const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
			if (!cJSON_IsString(s) || strcmp(s->valuestring, " ") || !cJSON_IsString(c) ||
				strcmp(c->valuestring, SPM_SPACE))
				return unsupported(name, "Replace normalizer other than ' ' -> U+2581");
			have_replace = 1;
		} else {
			return unsupported(name, "normalizer other than Prepend/Replace");
		}
	}
	if (!have_prepend || !have_replace)
		return unsupported(name, "normalizer lacks Prepend(U+2581) or Replace(' ' -> U+2581)");
	return 0;
}

int fpk_tokenizer_parse(fpk_tokenizer **out, const char *json_text, size_t len, const char *name)
{
	int rc = 0;
	fpk_tokenizer *t = NULL;
	cJSON *root = cJSON_ParseWithLength(json_text, len);
	*out = NULL;
	if (!root || !cJSON_IsObject(root)) {
		rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s' is not a JSON object", name);
		goto done;
	}
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	const cJSON *mtype = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
	if (!cJSON_IsObject(model) || !cJSON_IsString(mtype)) {
		rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s' has no \"model\" with a \"type\"", name);
		goto done;
	}
	if (strcmp(mtype->valuestring, "BPE")) {
		char what[96];
		snprintf(what, sizeof(what), "model type \"%.40s\" is not BPE", mtype->valuestring);
		rc = unsupported(name, what);
		goto done;
	}
	if ((rc = check_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"),
		     cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), name)))
		goto done;
	const cJSON *bf = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
	if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
		rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s': model needs a \"vocab\" object and a \"merges\" array", name);
		goto done;
	}
	if (!(t = calloc(1, sizeof(*t)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	t->byte_fallback = cJSON_IsTrue(bf);
	t->unk = t->bos = t->eos = -1;
	/* vocab plus added_tokens: ids up to max */
	int max_id = -1, count = 0;
	const cJSON *it;
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
	cJSON_ArrayForEach(it, vocab)
	{
		if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 16777216.0 ||
			it->valuedouble != (double)(int)it->valuedouble) {
			rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s': vocab entry \"%.40s\" is not an id in 0..2^24", name,
				it->string);
			goto done;
		}
		if (it->valueint > max_id)
			max_id = it->valueint;
		count++;
	}
	cJSON_ArrayForEach(it, added)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
		if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216.0 || !cJSON_IsString(c)) {
			rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s': added_tokens entry needs an id in 0..2^24 and content",
				name);
			goto done;
		}
		if (id->valueint > max_id)
			max_id = id->valueint;
	}
	if (max_id < 0) {
		rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s': empty vocab", name);
		goto done;
	}
	t->n_vocab = max_id + 1;
	t->pieces = calloc((size_t)t->n_vocab, sizeof(char *));
	t->plen = calloc((size_t)t->n_vocab, sizeof(uint32_t));
	t->is_special = calloc((size_t)t->n_vocab, sizeof(int));
	t->byte_id = malloc(256 * sizeof(int));
	t->vcap = pow2_at_least((size_t)(count + 64) * 2);
	t->vmap = calloc(t->vcap, sizeof(str_slot));
	t->mcap = pow2_at_least((size_t)(cJSON_GetArraySize(merges) + 16) * 2);
	t->mmap = calloc(t->mcap, sizeof(merge_slot));
	if (!t->pieces || !t->plen || !t->is_special || !t->byte_id || !t->vmap || !t->mmap) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	cJSON_ArrayForEach(it, vocab)
	{
		int id = it->valueint;
		if (t->pieces[id]) {
			rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s': id %d appears twice in vocab", name, id);
			goto done;
		}
		size_t n = strlen(it->string);
		if (!(t->pieces[id] = malloc(n + 1))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		memcpy(t->pieces[id], it->string, n + 1);
		t->plen[id] = (uint32_t)n;
		vocab_put(t, t->pieces[id], n, id);
	}
	cJSON_ArrayForEach(it, added)
	{
		int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
		const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
		if (!t->pieces[id]) {
			size_t n = strlen(c);
			if (!(t->pieces[id] = malloc(n + 1))) {
				rc = fpk_error_set(FPK_EIO, "out of memory");
				goto done;
			}
			memcpy(t->pieces[id], c, n + 1);
			t->plen[id] = (uint32_t)n;
		}
		t->is_special[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
		if (!strcmp(c, "<s>"))
			t->bos = id;
		else if (!strcmp(c, "</s>"))
			t->eos = id;
		else if (!strcmp(c, "<unk>"))
			t->unk = id;
	}
	const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
	if (cJSON_IsString(unk))
		t->unk = vocab_find(t, unk->valuestring, strlen(unk->valuestring));
	for (int b = 0; b < 256; b++) {
		char s[8];
		snprintf(s, sizeof(s), "<0x%02X>", b);
		t->byte_id[b] = vocab_find(t, s, 6);
	}
	/* merges: "a b" strings or [a, b] pairs, rank = position */
	int rank = 0;
	cJSON_ArrayForEach(it, merges)
	{
		const char *a = NULL, *b = NULL;
		size_t la = 0, lb = 0;
		if (cJSON_IsString(it)) {
			const char *sp = strchr(it->valuestring, ' ');
			if (sp && !strchr(sp + 1, ' ')) {
				a = it->valuestring;
				la = (size_t)(sp - a);
				b = sp + 1;
				lb = strlen(b);
			}
		} else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
			   cJSON_IsString(it->child->next)) {
			a = it->child->valuestring;
			la = strlen(a);
			b = it->child->next->valuestring;
			lb = strlen(b);
		}
		if (!a) {
			rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s': merge %d is not \"a b\" or [a, b]", name, rank);
			goto done;
		}
		int ia = vocab_find(t, a, la), ib = vocab_find(t, b, lb);
		char *joined = malloc(la + lb + 1);
		if (!joined) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		memcpy(joined, a, la);
		memcpy(joined + la, b, lb);
		int ij = vocab_find(t, joined, la + lb);
		free(joined);
		if (ia < 0 || ib < 0 || ij < 0) {
			rc = fpk_error_set(FPK_EFORMAT, "tokenizer '%s': merge %d names a token missing from vocab", name, rank);
			goto done;
		}
		merge_put(t, ia, ib, rank, ij);
		rank++;
	}
	*out = t;
	t = NULL;
done:
	fpk_tokenizer_free(t);
	cJSON_Delete(root);
	return rc;
}

int fpk_tokenizer_load(fpk_tokenizer **out, const char *path)
{
	char *p = NULL, *buf = NULL;
	size_t len = 0;
	int rc;
	*out = NULL;
	if (fpk_is_dir(path)) {
		p = fpk_path_join(path, "tokenizer.json");
		if (!p)
			return fpk_error_set(FPK_EIO, "out of memory");
		if (!fpk_path_exists(p)) {
			rc = fpk_error_set(FPK_EUSAGE, "no tokenizer.json in '%s' (pass pre-tokenized ids with --tokens FILE)",
				path);
			free(p);
			return rc;
		}
	}
	const char *f = p ? p : path;
	if ((rc = fpk_read_file(f, &buf, &len)) == 0)
		rc = fpk_tokenizer_parse(out, buf, len, f);
	free(buf);
	free(p);
	return rc;
}

int fpk_tokenizer_vocab_size(const fpk_tokenizer *t) { return t->n_vocab; }
int fpk_tokenizer_bos(const fpk_tokenizer *t) { return t->bos; }
int fpk_tokenizer_eos(const fpk_tokenizer *t) { return t->eos; }

/* ---- encoding ---- */

typedef struct sym {
	int id;
	int prev, next; /* -1 at the ends */
} sym;

typedef struct heap_item {
	int rank;
	int pos; /* index of the left symbol (symbols keep their text order) */
	int left, right; /* ids when pushed: stale entries are skipped */
} heap_item;

static int item_less(const heap_item *a, const heap_item *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(heap_item *h, size_t *n, heap_item x)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!item_less(&x, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
	heap_item top = h[0], x = h[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const heap_item *best = &x;
		if (l < *n && item_less(&h[l], best)) {
			m = l;
			best = &h[l];
		}
		if (r < *n && item_less(&h[r], best))
			m = r;
		if (m == i)
			break;
		h[i] = h[m];
		i = m;
	}
	if (*n)
		h[i] = x;
	return top;
}

static size_t utf8_len(const uint8_t *s, size_t left)
{
	uint8_t c = s[0];
	size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
	if (n > left)
		return 1;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 1;
	return n;
}

static void try_pair(const fpk_tokenizer *t, const sym *s, int pos, heap_item *h, size_t *nh)
{
	int nx = s[pos].next;
	if (nx < 0)
		return;
	const merge_slot *m = merge_find(t, s[pos].id, s[nx].id);
	if (m)
		heap_push(h, nh, (heap_item){m->rank, pos, s[pos].id, s[nx].id});
}

int fpk_tokenizer_encode(const fpk_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, size_t *n)
{
	int rc = 0;
	char *norm = NULL;
	sym *s = NULL;
	heap_item *h = NULL;
	int *res = NULL;
	*ids = NULL;
	*n = 0;
	/* normalize: prepend U+2581 (non-empty text), spaces -> U+2581 */
	size_t spaces = 0;
	for (size_t i = 0; i < len; i++)
		spaces += text[i] == ' ';
	size_t nlen = len ? len + 3 + 2 * spaces : 0, o = 0;
	if (!(norm = malloc(nlen + 1)) || !(s = malloc((nlen + 1) * 4 * sizeof(sym))) ||
		!(h = malloc((nlen + 1) * 4 * sizeof(heap_item))) || !(res = malloc((nlen * 4 + 2) * sizeof(int)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory for %zu bytes of text", len);
		goto done;
	}
	if (len) {
		memcpy(norm, SPM_SPACE, 3);
		o = 3;
		for (size_t i = 0; i < len; i++) {
			if (text[i] == ' ') {
				memcpy(norm + o, SPM_SPACE, 3);
				o += 3;
			} else {
				norm[o++] = text[i];
			}
		}
	}
	/* initial symbols: characters in vocab, else their bytes (byte fallback), else unk */
	int ns = 0;
	for (size_t i = 0; i < o;) {
		size_t cl = utf8_len((const uint8_t *)norm + i, o - i);
		int id = vocab_find(t, norm + i, cl);
		if (id >= 0) {
			s[ns++].id = id;
		} else if (t->byte_fallback) {
			for (size_t k = 0; k < cl; k++) {
				int b = t->byte_id[(uint8_t)norm[i + k]];
				if (b < 0 && t->unk < 0) {
					rc = fpk_error_set(FPK_EFORMAT, "tokenizer has no byte token <0x%02X> and no unk token",
						(uint8_t)norm[i + k]);
					goto done;
				}
				s[ns++].id = b >= 0 ? b : t->unk;
			}
		} else {
			if (t->unk < 0) {
				rc = fpk_error_set(FPK_EFORMAT, "text has a character outside the vocabulary and there is no unk token");
				goto done;
			}
			if (!(ns > 0 && s[ns - 1].id == t->unk)) /* fuse_unk */
				s[ns++].id = t->unk;
		}
		i += cl;
	}
	for (int i = 0; i < ns; i++) {
		s[i].prev = i - 1;
		s[i].next = i + 1 < ns ? i + 1 : -1;
	}
	size_t nh = 0;
	for (int i = 0; i < ns; i++)
		try_pair(t, s, i, h, &nh);
	while (nh) {
		heap_item x = heap_pop(h, &nh);
		int l = x.pos, r = s[l].next;
		if (s[l].id != x.left || r < 0 || s[r].id != x.right) /* stale */
			continue;
		const merge_slot *m = merge_find(t, x.left, x.right);
		s[l].id = m->id;
		s[l].next = s[r].next;
		if (s[r].next >= 0)
			s[s[r].next].prev = l;
		s[r].id = -1; /* dead */
		if (s[l].prev >= 0)
			try_pair(t, s, s[l].prev, h, &nh);
		try_pair(t, s, l, h, &nh);
	}
	size_t k = 0;
	if (add_bos && t->bos >= 0)
		res[k++] = t->bos;
	for (int i = ns ? 0 : -1; i >= 0; i = s[i].next)
		res[k++] = s[i].id;
	*ids = res;
	*n = k;
	res = NULL;
done:
	free(norm);
	free(s);
	free(h);
	free(res);
	return rc;
}

/* ---- decoding ---- */

static int byte_token(const char *p, uint32_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	if (n != 6 || memcmp(p, "<0x", 3) || p[5] != '>')
		return -1;
	const char *a = strchr(hex, p[3]), *b = strchr(hex, p[4]);
	if (!a || !b || !p[3] || !p[4])
		return -1;
	return (int)((a - hex) * 16 + (b - hex));
}

int fpk_tokenizer_piece(const fpk_tokenizer *t, int prev, int id, char *buf, size_t cap)
{
	if (id < 0 || id >= t->n_vocab || !t->pieces[id])
		return fpk_error_set(FPK_EFORMAT, "token id %d is outside the vocabulary (%d)", id, t->n_vocab);
	size_t o = 0;
	const char *p = t->pieces[id];
	uint32_t n = t->plen[id];
	int b = t->byte_fallback ? byte_token(p, n) : -1;
	if (cap == 0)
		return 0;
	if (b >= 0) {
		if (cap > 1)
			buf[o++] = (char)b;
	} else if (t->is_special[id]) {
		/* specials print as nothing */
	} else {
		for (uint32_t i = 0; i < n && o + 1 < cap;) {
			if (i + 3 <= n && !memcmp(p + i, SPM_SPACE, 3)) {
				buf[o++] = ' ';
				i += 3;
			} else {
				buf[o++] = p[i++];
			}
		}
		if (prev == t->bos && o > 0 && buf[0] == ' ') {
			memmove(buf, buf + 1, o - 1);
			o--;
		}
	}
	buf[o] = 0;
	return (int)o;
}

int fpk_tokenizer_decode(const fpk_tokenizer *t, const int *ids, size_t n, char **text, size_t *len)
{
	size_t cap = 64, o = 0;
	char *out = malloc(cap), piece[512];
	*text = NULL;
	if (!out)
		return fpk_error_set(FPK_EIO, "out of memory");
	int prev = t->bos;
	for (size_t i = 0; i < n; i++) {
		int pl = fpk_tokenizer_piece(t, i == 0 ? t->bos : prev, ids[i], piece, sizeof(piece));
		if (pl < 0) {
			free(out);
			return pl;
		}
		if (o + (size_t)pl + 1 > cap) {
			while (o + (size_t)pl + 1 > cap)
				cap *= 2;
			char *nb = realloc(out, cap);
			if (!nb) {
				free(out);
				return fpk_error_set(FPK_EIO, "out of memory");
			}
			out = nb;
		}
		memcpy(out + o, piece, (size_t)pl);
		o += (size_t)pl;
		prev = ids[i];
	}
	out[o] = 0;
	*text = out;
	if (len)
		*len = o;
	return 0;
}

/* ---- pre-tokenized ids ---- */

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

int fpk_tokens_read(const char *path, int vocab, int **ids, size_t *n)
{
	char *buf = NULL;
	size_t len = 0;
	int rc, *v = NULL;
	size_t k = 0;
	*ids = NULL;
	*n = 0;
	if ((rc = fpk_read_file(path, &buf, &len)))
		return rc;
	if (ends_with(path, ".bin") || ends_with(path, ".u32")) {
		if (len % 4) {
			rc = fpk_error_set(FPK_EFORMAT, "token file '%s': %zu bytes is not a whole number of uint32 ids", path, len);
			goto done;
		}
		if (!(v = malloc((len / 4 + 1) * sizeof(int)))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < len / 4; i++) {
			const uint8_t *p = (const uint8_t *)buf + 4 * i;
			uint32_t x = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
			if (x > 0x7fffffffu || (vocab > 0 && x >= (uint32_t)vocab)) {
				rc = fpk_error_set(FPK_EFORMAT, "token file '%s': id %u at byte %zu is outside the vocabulary (%d)",
					path, x, 4 * i, vocab);
				goto done;
			}
			v[k++] = (int)x;
		}
	} else {
		if (!(v = malloc((len / 2 + 2) * sizeof(int)))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		const char *p = buf, *end = buf + len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
				p++;
			if (p >= end)
				break;
			if (*p < '0' || *p > '9') {
				rc = fpk_error_set(FPK_EFORMAT, "token file '%s': byte %zu is not a decimal id or whitespace", path,
					(size_t)(p - buf));
				goto done;
			}
			unsigned long long x = 0;
			const char *st = p;
			while (p < end && *p >= '0' && *p <= '9' && x <= 0x7fffffffull)
				x = x * 10 + (unsigned)(*p++ - '0');
			if (x > 0x7fffffffull || (p < end && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')) {
				rc = fpk_error_set(FPK_EFORMAT, "token file '%s': bad id at byte %zu (expected decimal ids)", path,
					(size_t)(st - buf));
				goto done;
			}
			if (vocab > 0 && x >= (unsigned long long)vocab) {
				rc = fpk_error_set(FPK_EFORMAT, "token file '%s': id %llu at byte %zu is outside the vocabulary (%d)",
					path, x, (size_t)(st - buf), vocab);
				goto done;
			}
			v[k++] = (int)x;
		}
	}
	*ids = v;
	*n = k;
	v = NULL;
done:
	free(buf);
	free(v);
	return rc;
}
