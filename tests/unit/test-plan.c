/* test-plan.c - the block layout planner. */
#include "plan.h"
#include "unit.h"

/* Walks the plan over size bytes; returns the block count, fills starts. */
static size_t walk(const pp_plan *plan, uint64_t size, uint64_t *starts,
		   bool *stored, size_t max)
{
	size_t n = 0;
	for (uint64_t pos = 0; pos < size && n < max; n++) {
		uint64_t len;
		pp_plan_block(plan, pos, &len, &stored[n]);
		starts[n] = pos;
		pos += len;
	}
	return n;
}

static void test_grid_only(void)
{
	pp_plan plan;
	uint64_t starts[16];
	bool stored[16];
	CHECK(pp_plan_init(&plan, NULL, 0, 100, NULL) == 0, "empty plan");
	size_t n = walk(&plan, 350, starts, stored, 16);
	CHECK(n == 4 && starts[1] == 100 && starts[3] == 300 && !stored[3],
	      "plain grid: 4 blocks of 100 over 350 bytes");
	pp_plan_free(&plan);
}

static void test_range_edges(void)
{
	pp_range keep[] = { { .offset = 150, .length = 120 } };
	pp_plan plan;
	uint64_t starts[16];
	bool stored[16];
	CHECK(pp_plan_init(&plan, keep, 1, 100, NULL) == 0, "one range");
	size_t n = walk(&plan, 400, starts, stored, 16);
	/* 0-100 | 100-150 | 150-200 S | 200-270 S | 270-300 | 300-400 */
	CHECK(n == 6, "boundaries at both edges and on the grid (%zu)", n);
	CHECK(starts[2] == 150 && stored[2] && starts[3] == 200 && stored[3],
	      "kept range stored, split on the grid");
	CHECK(starts[4] == 270 && !stored[4] && starts[5] == 300,
	      "compressed after the range end, grid resumes");
	CHECK(!stored[0] && !stored[1], "before the range compressed");
	pp_plan_free(&plan);
}

static void test_merging_and_spelling(void)
{
	pp_range a[] = { { 300, 50 }, { 10, 20 }, { 30, 5 }, { 320, 100 },
			 { 500, 0 } };
	pp_range b[] = { { 10, 25 }, { 300, 120 } };
	pp_plan pa, pb;
	CHECK(pp_plan_init(&pa, a, 5, 64, NULL) == 0 &&
	      pp_plan_init(&pb, b, 2, 64, NULL) == 0, "two spellings");
	CHECK(pa.stored_count == 2 && pa.stored[0].offset == 10 &&
	      pa.stored[0].length == 25 && pa.stored[1].length == 120,
	      "touching and overlapping ranges merge, empty ones drop");
	bool same = true;
	for (uint64_t pos = 0; pos < 600; pos++) {
		uint64_t la, lb;
		bool sa, sb;
		pp_plan_block(&pa, pos, &la, &sa);
		pp_plan_block(&pb, pos, &lb, &sb);
		same = same && la == lb && sa == sb;
	}
	CHECK(same, "same ranges spelled differently give the same layout");
	CHECK(pp_plan_end(&pa) == 420, "plan end is the last range's end");
	pp_plan_free(&pa);
	pp_plan_free(&pb);
}

static void test_properties_random(void)
{
	unsigned long long seed = 42;
	bool ok = true;
	for (int round = 0; round < 200 && ok; round++) {
		pp_range keep[4];
		for (int i = 0; i < 4; i++)
			keep[i] = (pp_range){ unit_random(&seed) % 5000,
					      unit_random(&seed) % 700 };
		uint64_t block = 1 + unit_random(&seed) % 900;
		pp_plan plan;
		ok = pp_plan_init(&plan, keep, 4, block, NULL) == 0;
		for (uint64_t pos = 0; ok && pos < 6000;) {
			uint64_t len;
			bool stored;
			pp_plan_block(&plan, pos, &len, &stored);
			/* never empty, never over a block, never crosses the
			 * grid, and stored exactly where some range covers */
			bool in_range = false;
			for (int i = 0; i < 4; i++)
				in_range |= keep[i].offset <= pos &&
					pos < keep[i].offset + keep[i].length;
			ok = len > 0 && len <= block &&
				pos / block == (pos + len - 1) / block &&
				stored == in_range;
			for (uint64_t x = pos; ok && x < pos + len; x++) {
				bool covered = false;
				for (int i = 0; i < 4; i++)
					covered |= keep[i].offset <= x &&
						x < keep[i].offset + keep[i].length;
				ok = covered == stored;
			}
			pos += len;
		}
		pp_plan_free(&plan);
	}
	CHECK(ok, "random plans: blocks never empty, within the grid, and "
	      "uniformly stored or compressed");
}

static void test_bad_input(void)
{
	pp_plan plan;
	pp_range overflow[] = { { UINT64_MAX - 5, 10 } };
	CHECK(pp_plan_init(&plan, NULL, 0, 0, NULL) == PP_ERR_USAGE,
	      "block size 0 refused");
	CHECK(pp_plan_init(&plan, overflow, 1, 64, NULL) == PP_ERR_USAGE,
	      "overflowing range refused");
}

int main(void)
{
	test_grid_only();
	test_range_edges();
	test_merging_and_spelling();
	test_properties_random();
	test_bad_input();
	return unit_done();
}
