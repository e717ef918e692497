/*
 * map - list the image inside an .xz, .gz or .zst archive as extents of stored
 * data, compressed data and zeros, from the archive's index alone (no
 * block is decoded), the way SEEK_DATA or NBD block status see a disk.
 *
 *   cc map.c $(pkg-config --cflags --libs partpack) -o map
 *   ./map disk.img.xz                  # the whole image
 *   ./map disk.img.xz 1MiB 8MiB        # a range of it
 *
 * Each line: image offset, length, kind (stored, data, zero) and the
 * archive offset of its bytes (stored) or of its block (data, zero).
 */
#include <partpack.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	uint64_t offset = 0, length = UINT64_MAX;
	if ((argc != 2 && argc != 4) ||
	    (argc == 4 && (pp_parse_size(argv[2], &offset) ||
			   pp_parse_size(argv[3], &length)))) {
		fprintf(stderr, "usage: map ARCHIVE [OFFSET LENGTH]\n");
		return 2;
	}
	pp_archive *archive;
	pp_error err;
	if (pp_open(argv[1], PP_OPEN_READ, &archive, &err)) {
		fprintf(stderr, "map: %s\n", err.message);
		return 1;
	}
	static const char *const kinds[] = {
		[PP_EXTENT_DATA] = "data",
		[PP_EXTENT_STORED] = "stored",
		[PP_EXTENT_ZERO] = "zero",
	};
	pp_map_extent *extents;
	size_t count;
	int status = pp_map(archive, offset, length, &extents, &count, &err);
	if (status)
		fprintf(stderr, "map: %s\n", err.message);
	for (size_t i = 0; status == 0 && i < count; i++)
		printf("%llu %llu %s %llu\n",
		       (unsigned long long)extents[i].offset,
		       (unsigned long long)extents[i].length,
		       kinds[extents[i].kind],
		       (unsigned long long)extents[i].file_offset);
	free(extents);
	pp_close(archive);
	return status ? 1 : 0;
}
