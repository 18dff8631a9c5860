/* fileio.c: read-only mappings, atomic output files and directories, small path helpers.
 * Nothing here ever writes to an input; outputs appear under their final name only when complete. */
#include "fpk_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

uint32_t fpk_crc32(uint32_t crc, const void *buf, size_t len)
{
	const Bytef *p = buf;
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = (uint32_t)crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return crc;
}

int fpk_map_file(fpk_map *m, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	m->data = NULL;
	m->size = 0;
	if (fd < 0)
		return fpk_error_set(FPK_EIO, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return fpk_error_set(FPK_EIO, "cannot stat '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fpk_error_set(FPK_EIO, "'%s' is not a regular file", path);
	}
	if (st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			close(fd);
			return fpk_error_set(FPK_EIO, "cannot map '%s': %s", path, strerror(e));
		}
		m->data = p;
		m->size = (uint64_t)st.st_size;
	}
	close(fd);
	return 0;
}

void fpk_map_release(fpk_map *m)
{
	if (m->data)
		munmap((void *)m->data, (size_t)m->size);
	m->data = NULL;
	m->size = 0;
}

static char *fmt_alloc(const char *fmt, const char *a, long b)
{
	int n = snprintf(NULL, 0, fmt, a, b);
	char *s = malloc((size_t)n + 1);
	if (s)
		snprintf(s, (size_t)n + 1, fmt, a, b);
	return s;
}

/* durability of committed outputs: 1 (default) fsyncs before the rename; 0 only renames (like cp: complete and
 * atomic for readers, but not forced to disk). Set once by the CLI (--no-sync) before any output is written. */
static int io_durable = 1;

void fpk_io_set_durable(int on)
{
	io_durable = on != 0;
}

int fpk_io_durable(void)
{
	return io_durable;
}

int fpk_atomic_open(fpk_atomic_file *f, const char *path)
{
	f->fd = -1;
	f->path = strdup(path);
	f->tmp_path = fmt_alloc("%s.tmp.%ld", path, (long)getpid());
	if (!f->path || !f->tmp_path) {
		fpk_atomic_abort(f);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		int e = errno;
		free(f->path);
		free(f->tmp_path);
		f->path = f->tmp_path = NULL;
		return fpk_error_set(FPK_EIO, "cannot create '%s': %s", path, strerror(e));
	}
	return 0;
}

int fpk_atomic_write(fpk_atomic_file *f, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(f->fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fpk_error_set(FPK_EIO, "write to '%s' failed: %s", f->path, strerror(errno));
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int fpk_atomic_commit(fpk_atomic_file *f)
{
	int rc = 0;
	if (io_durable && fsync(f->fd) < 0)
		rc = fpk_error_set(FPK_EIO, "fsync of '%s' failed: %s", f->path, strerror(errno));
	if (close(f->fd) < 0 && !rc)
		rc = fpk_error_set(FPK_EIO, "close of '%s' failed: %s", f->path, strerror(errno));
	f->fd = -1;
	if (!rc && rename(f->tmp_path, f->path) < 0)
		rc = fpk_error_set(FPK_EIO, "cannot rename '%s' to '%s': %s", f->tmp_path, f->path, strerror(errno));
	if (rc)
		unlink(f->tmp_path);
	free(f->path);
	free(f->tmp_path);
	f->path = f->tmp_path = NULL;
	return rc;
}

void fpk_atomic_abort(fpk_atomic_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp_path)
		unlink(f->tmp_path);
	free(f->path);
	free(f->tmp_path);
	f->path = f->tmp_path = NULL;
}

int fpk_write_file_atomic(const char *path, const void *buf, size_t len)
{
	fpk_atomic_file f;
	int rc = fpk_atomic_open(&f, path);
	if (rc)
		return rc;
	rc = fpk_atomic_write(&f, buf, len);
	if (rc) {
		fpk_atomic_abort(&f);
		return rc;
	}
	return fpk_atomic_commit(&f);
}

int fpk_read_file(const char *path, char **buf, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *b = NULL;
	long n;
	*buf = NULL;
	if (len)
		*len = 0;
	if (!fp)
		return fpk_error_set(FPK_EIO, "cannot open '%s': %s", path, strerror(errno));
	if (fseek(fp, 0, SEEK_END) < 0 || (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) < 0) {
		fclose(fp);
		return fpk_error_set(FPK_EIO, "cannot read '%s': not a regular file", path);
	}
	b = malloc((size_t)n + 1);
	if (!b) {
		fclose(fp);
		return fpk_error_set(FPK_EIO, "out of memory reading '%s'", path);
	}
	if (n > 0 && fread(b, 1, (size_t)n, fp) != (size_t)n) {
		free(b);
		fclose(fp);
		return fpk_error_set(FPK_EIO, "cannot read '%s'", path);
	}
	fclose(fp);
	b[n] = 0;
	*buf = b;
	if (len)
		*len = (size_t)n;
	return 0;
}

int fpk_path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

int fpk_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fpk_mkdir_p(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return fpk_error_set(FPK_EIO, "out of memory");
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			free(p);
			return fpk_error_set(FPK_EIO, "cannot create directory '%s': %s", path, strerror(e));
		}
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		free(p);
		return fpk_error_set(FPK_EIO, "cannot create directory '%s': %s", path, strerror(e));
	}
	free(p);
	return 0;
}

int fpk_rmtree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : fpk_error_set(FPK_EIO, "cannot stat '%s': %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		if (!d)
			return fpk_error_set(FPK_EIO, "cannot open directory '%s': %s", path, strerror(errno));
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char *sub = fpk_path_join(path, e->d_name);
			int rc = sub ? fpk_rmtree(sub) : FPK_EIO;
			free(sub);
			if (rc) {
				closedir(d);
				return rc;
			}
		}
		closedir(d);
		if (rmdir(path) < 0)
			return fpk_error_set(FPK_EIO, "cannot remove '%s': %s", path, strerror(errno));
		return 0;
	}
	if (unlink(path) < 0)
		return fpk_error_set(FPK_EIO, "cannot remove '%s': %s", path, strerror(errno));
	return 0;
}

int fpk_copy_file(const char *src, const char *dst)
{
	fpk_map m;
	int rc = fpk_map_file(&m, src);
	if (rc)
		return rc;
	rc = fpk_write_file_atomic(dst, m.data ? (const void *)m.data : "", (size_t)m.size);
	fpk_map_release(&m);
	return rc;
}

char *fpk_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	size_t o = la;
	if (la > 0 && a[la - 1] != '/')
		s[o++] = '/';
	memcpy(s + o, b, lb + 1);
	return s;
}

/* realpath of path, or of its parent joined with the last component when path does not exist yet */
static char *resolve(const char *path)
{
	char *r = realpath(path, NULL);
	if (r)
		return r;
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	size_t n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = 0;
	char *slash = strrchr(copy, '/');
	char *parent, *leaf;
	if (!slash) {
		parent = realpath(".", NULL);
		leaf = copy;
	} else {
		*slash = 0;
		parent = realpath(slash == copy ? "/" : copy, NULL);
		leaf = slash + 1;
	}
	r = parent ? fpk_path_join(parent, leaf) : NULL;
	free(parent);
	free(copy);
	return r;
}

int fpk_path_is_within(const char *inner, const char *outer)
{
	char *a = resolve(inner), *b = resolve(outer);
	int within = 0;
	if (a && b) {
		size_t lb = strlen(b);
		within = !strncmp(a, b, lb) && (a[lb] == 0 || a[lb] == '/' || (lb == 1 && b[0] == '/'));
	}
	free(a);
	free(b);
	return within;
}

int fpk_outdir_begin(fpk_outdir *d, const char *path, int force)
{
	d->force = force;
	d->path = strdup(path);
	/* "out/" names the directory out: strip trailing slashes so the temporary is built beside it */
	for (size_t n = d->path ? strlen(d->path) : 0; n > 1 && d->path[n - 1] == '/'; n--)
		d->path[n - 1] = 0;
	d->tmp_path = d->path ? fmt_alloc("%s.tmp.%ld", d->path, (long)getpid()) : NULL;
	if (!d->path || !d->tmp_path) {
		fpk_outdir_abort(d);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	if (fpk_path_exists(d->path) && !force) {
		int rc = fpk_error_set(FPK_EUSAGE, "output '%s' already exists (use --force to replace it)", d->path);
		fpk_outdir_abort(d);
		return rc;
	}
	int rc = fpk_rmtree(d->tmp_path);
	if (!rc)
		rc = fpk_mkdir_p(d->tmp_path);
	if (rc) {
		fpk_outdir_abort(d);
		return rc;
	}
	return 0;
}

int fpk_outdir_commit(fpk_outdir *d)
{
	int rc = 0;
	if (fpk_path_exists(d->path)) {
		if (!d->force)
			rc = fpk_error_set(FPK_EUSAGE, "output '%s' appeared while writing", d->path);
		else
			rc = fpk_rmtree(d->path);
	}
	if (!rc && rename(d->tmp_path, d->path) < 0)
		rc = fpk_error_set(FPK_EIO, "cannot rename '%s' to '%s': %s", d->tmp_path, d->path, strerror(errno));
	if (rc) {
		fpk_outdir_abort(d);
		return rc;
	}
	free(d->path);
	free(d->tmp_path);
	d->path = d->tmp_path = NULL;
	return 0;
}

void fpk_outdir_abort(fpk_outdir *d)
{
	if (d->tmp_path)
		fpk_rmtree(d->tmp_path);
	free(d->path);
	free(d->tmp_path);
	d->path = d->tmp_path = NULL;
}

double fpk_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

long fpk_peak_rss_kb(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return ru.ru_maxrss;
}
