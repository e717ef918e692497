/*
 * fsdiff.c - the runs where a filesystem's new bytes differ from its old
 * ones, which both engines (fsext.c, fsbytes.c) hand back as the changes
 * of an edit.  In the editing layer of lib/LAYERS, under the engines and
 * fs.c, which collects the runs: it calls nothing of theirs.
 */
#include "fs.h"

int pp_fs_emit_diff(const uint8_t *old, const uint8_t *new_bytes, size_t len,
		    uint64_t offset, pp_fs_change_fn emit, void *opaque,
		    pp_error *err)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && old[i] == new_bytes[i])
			i++;
		if (i == len)
			break;
		size_t start = i, end = i + 1, equal = 0;
		/* Extend over differences and short equal gaps. */
		for (i = end; i < len && equal < PP_FS_DIFF_GAP; i++) {
			if (old[i] == new_bytes[i]) {
				equal++;
			} else {
				equal = 0;
				end = i + 1;
			}
		}
		int status = emit(opaque, offset + start, new_bytes + start,
				  end - start, err);
		if (status)
			return status;
		i = end;
	}
	return 0;
}
