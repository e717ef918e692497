/*
 * internal.h - every per-piece header of the library at once, for the
 * files that include it: each piece now declares what it offers in a
 * header of its own (container.h is the seam, archive.h the handle), and
 * a file includes the headers of the pieces it uses.
 */
#ifndef PARTPACK_INTERNAL_H
#define PARTPACK_INTERNAL_H

#include "base.h"
#include "appliance.h"
#include "archio.h"
#include "archive.h"
#include "array.h"
#include "blocks.h"
#include "bmap.h"
#include "cache.h"
#include "check.h"
#include "container.h"
#include "crc.h"
#include "error.h"
#include "format.h"
#include "io.h"
#include "journal.h"
#include "map.h"
#include "plan.h"
#include "pool.h"
#include "ptable.h"
#include "read.h"
#include "reuse.h"
#include "sha256.h"
#include "unpack.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/types.h>

#endif
