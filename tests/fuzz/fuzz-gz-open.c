/*
 * fuzz-gz-open.c - the container harness again, as a target of its own so
 * the gzip parser (partpack's index, the scanner for other gzip files) gets
 * a corpus grown from gzip seeds.  pp_open picks the parser by magic, so
 * the code is the same; see fuzz-xz-open.c.
 */
#include "fuzz-xz-open.c"
