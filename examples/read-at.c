/*
 * read-at - a small program using libpartpack: print bytes of the image
 * inside an .xz, .gz or .zst archive, decoding only the blocks that hold them,
 * and say whether they could be patched in place.
 *
 *   cc read-at.c $(pkg-config --cflags --libs partpack) -o read-at
 *   ./read-at disk.img.xz 512 8        # the GPT signature: "EFI PART"
 */
#include <partpack.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	uint64_t offset, length;
	if (argc != 4 || pp_parse_size(argv[2], &offset) ||
	    pp_parse_size(argv[3], &length) || length > 1 << 20) {
		fprintf(stderr, "usage: read-at ARCHIVE OFFSET LENGTH (<= 1MiB)\n");
		return 2;
	}
	pp_archive *archive;
	pp_error err;
	if (pp_open(argv[1], PP_OPEN_READ, &archive, &err)) {
		fprintf(stderr, "read-at: %s\n", err.message);
		return 1;
	}
	unsigned char *bytes = malloc(length ? length : 1);
	uint64_t stored;
	int status = !bytes ||
		pp_pread(archive, bytes, length, offset, &err) ||
		pp_stored_run(archive, offset, &stored, &err);
	if (status) {
		fprintf(stderr, "read-at: %s\n", bytes ? err.message : "out of memory");
	} else {
		for (uint64_t i = 0; i < length; i += 16) {
			printf("%012llx ", (unsigned long long)(offset + i));
			for (uint64_t j = i; j < i + 16 && j < length; j++)
				printf(" %02x", bytes[j]);
			printf("  ");
			for (uint64_t j = i; j < i + 16 && j < length; j++)
				putchar(isprint(bytes[j]) ? bytes[j] : '.');
			putchar('\n');
		}
		printf("%s\n", stored >= length ?
		       "patchable in place: all of it is stored data" :
		       "not patchable in place: some of it is compressed");
	}
	free(bytes);
	pp_close(archive);
	return status;
}
