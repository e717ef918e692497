/* test-fetchplan.c - wanted bytes of an archive into single-range requests,
 * and image bytes of a stored block into file ranges. */
#include "fetchplan.h"
#include "unit.h"

static const pp_request_rules rules = {
	.merge_gap = 100, .split_min = 1000, .connections = 4,
};

static void test_merging(void)
{
	/* Unsorted, overlapping, touching, close, far, and empty. */
	pp_range wants[] = {
		{ 5000, 10 }, { 0, 50 }, { 40, 20 }, { 60, 10 },
		{ 150, 10 }, { 300, 0 }, { 171, 9 }, { 5005, 20 },
	};
	pp_range *requests;
	size_t count;
	CHECK(pp_plan_requests(wants, 8, &(pp_request_rules){ 100, UINT64_MAX, 1 },
			       &requests, &count, NULL) == 0, "planned");
	/* 0-70 and 150-160 are 80 apart: one request; 171-180 is 11 from
	 * 160: the same; 5000-5025 is far: its own. */
	CHECK(count == 2, "two requests (%zu)", count);
	CHECK(requests[0].offset == 0 && requests[0].length == 180,
	      "close ranges joined: 0+%llu",
	      (unsigned long long)requests[0].length);
	CHECK(requests[1].offset == 5000 && requests[1].length == 25,
	      "overlapping ranges joined, far ones apart");
	free(requests);
}

static void test_gap_bound(void)
{
	pp_range wants[] = { { 0, 10 }, { 110, 10 }, { 219, 1 } };
	pp_range *requests;
	size_t count;
	pp_request_rules one = { 100, UINT64_MAX, 1 };
	CHECK(pp_plan_requests(wants, 3, &one, &requests, &count, NULL) == 0 &&
	      count == 2 && requests[0].length == 10 &&
	      requests[1].offset == 110 && requests[1].length == 110,
	      "a gap of exactly merge_gap is not joined; 99 is");
	free(requests);
}

static void test_splitting(void)
{
	pp_range big[] = { { 0, 8000 } };
	pp_range *requests;
	size_t count;
	CHECK(pp_plan_requests(big, 1, &rules, &requests, &count, NULL) == 0,
	      "one large range");
	CHECK(count == 4, "cut for four idle connections (%zu)", count);
	uint64_t at = 0;
	bool contiguous = true;
	for (size_t i = 0; i < count; i++) {
		contiguous = contiguous && requests[i].offset == at &&
			requests[i].length >= rules.split_min;
		at += requests[i].length;
	}
	CHECK(contiguous && at == 8000, "the parts cover it in order, none "
	      "below split_min");
	free(requests);
	pp_range small[] = { { 0, 1500 } };
	CHECK(pp_plan_requests(small, 1, &rules, &requests, &count, NULL) == 0 &&
	      count == 1, "a range under twice split_min stays whole");
	free(requests);
	CHECK(pp_plan_requests(small, 0, &rules, &requests, &count, NULL) == 0 &&
	      count == 0 && requests == NULL, "nothing wanted, no request");
}

static void test_file_ranges(void)
{
	/* A stored block at image 1000: chunks of 100 bytes behind 3-byte
	 * headers from file offset 50. */
	pp_extent extents[] = {
		{ .uoffset = 1000, .length = 100, .foffset = 53 },
		{ .uoffset = 1100, .length = 100, .foffset = 156 },
		{ .uoffset = 1200, .length = 50, .foffset = 259 },
	};
	pp_range *ranges = NULL;
	size_t count = 0, capacity = 0;
	CHECK(pp_plan_file_ranges(extents, 3, 1050, 100, &ranges, &count,
				  &capacity, NULL) == 0, "mapped");
	CHECK(count == 2 && ranges[0].offset == 103 && ranges[0].length == 50 &&
	      ranges[1].offset == 156 && ranges[1].length == 50,
	      "a range across a chunk header: two file ranges");
	pp_error err;
	CHECK(pp_plan_file_ranges(extents, 3, 1240, 20, &ranges, &count,
				  &capacity, &err) == PP_ERR_NOT_STORED &&
	      count == 2, "bytes past the last extent: refused, nothing added");
	CHECK(pp_plan_file_ranges(extents, 3, 900, 150, &ranges, &count,
				  &capacity, &err) == PP_ERR_NOT_STORED &&
	      count == 2, "bytes before the first extent: refused");
	free(ranges);
}

int main(void)
{
	test_merging();
	test_gap_bound();
	test_splitting();
	test_file_ranges();
	return unit_done();
}
