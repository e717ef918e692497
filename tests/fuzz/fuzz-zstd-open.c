/*
 * fuzz-zstd-open.c - the container harness again, as a target of its own so
 * the zstd parser (the seek table, the frame and block header hops, the
 * scan of .zst files without a table) gets a corpus grown from zstd seeds.
 * pp_open picks the parser by magic, so the code is the same; see
 * fuzz-xz-open.c.
 */
#include "fuzz-xz-open.c"
