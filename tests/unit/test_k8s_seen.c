/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's uid -> resourceVersion record and its state file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "collectors/k8s/seen.h"
#include "util/strbuf.h"

Test(k8s_seen, rv_compare)
{
	cr_assert_eq(k8s_rv_cmp("10", "9"), 1);
	cr_assert_eq(k8s_rv_cmp("9", "10"), -1);
	cr_assert_eq(k8s_rv_cmp("0010", "10"), 0);
	cr_assert_eq(k8s_rv_cmp("123456789012345678901", "123456789012345678900"), 1);
	cr_assert_eq(k8s_rv_cmp("abc", "abc"), 0);
	cr_assert_eq(k8s_rv_cmp("abc", "abd"), 2);
	cr_assert_eq(k8s_rv_cmp("1", "x"), 2);
	cr_assert_eq(k8s_rv_cmp("", ""), 0);
}

static void count_fn(void *ctx, const struct seen_entry *e)
{
	cr_assert_neq(e->gen, 2);
	(*(int *)ctx)++;
}

Test(k8s_seen, put_has_grow_sweep)
{
	struct seen_map m;
	cr_assert_eq(seen_init(&m, 0), 0);
	char uid[32], rv[16];
	for (int i = 0; i < 5000; i++) {
		snprintf(uid, sizeof(uid), "uid-%d", i);
		snprintf(rv, sizeof(rv), "%d", 100 + i);
		cr_assert_eq(seen_put(&m, uid, "ns", "n", rv, false, 1), 0);
	}
	cr_assert_eq(m.n, 5000);
	cr_assert(seen_has(&m, "uid-7", "107"));
	cr_assert(seen_has(&m, "uid-7", "50"));
	cr_assert_not(seen_has(&m, "uid-7", "108"));
	cr_assert_not(seen_has(&m, "uid-x", "1"));
	cr_assert_eq(seen_put(&m, "uid-7", "ns", "n", "200", true, 2), 0);
	cr_assert(seen_get(&m, "uid-7")->deleted);
	cr_assert_str_eq(seen_get(&m, "uid-7")->rv, "200");
	cr_assert_eq(m.n, 5000);
	cr_assert_eq(seen_put(&m, "", "ns", "n", "1", false, 1), -EINVAL);
	cr_assert_eq(seen_put(&m, "long", "ns", "n", "012345678901234567890123456789012", false, 1),
		     -ENAMETOOLONG);

	int calls = 0;
	seen_sweep(&m, 2, count_fn, &calls);
	cr_assert_eq(calls, 4999);
	cr_assert_eq(m.n, 1);
	cr_assert_not_null(seen_get(&m, "uid-7"));
	seen_free(&m);
	seen_free(&m);
}

Test(k8s_seen, bounded)
{
	struct seen_map m;
	cr_assert_eq(seen_init(&m, 2), 0);
	cr_assert_eq(seen_put(&m, "a", "", "a", "1", false, 0), 0);
	cr_assert_eq(seen_put(&m, "b", "", "b", "1", false, 0), 0);
	cr_assert_eq(seen_put(&m, "c", "", "c", "1", false, 0), -ENOSPC);
	cr_assert_eq(m.overflow, 1);
	cr_assert_eq(seen_put(&m, "a", "", "a", "2", false, 0), 0); /* updates still work */
	seen_free(&m);
}

Test(k8s_seen, save_and_load)
{
	struct seen_map m, l;
	cr_assert_eq(seen_init(&m, 0), 0);
	cr_assert_eq(seen_put(&m, "u1", "default", "web", "10", false, 0), 0);
	cr_assert_eq(seen_put(&m, "u2", "", "node-a", "11", true, 0), 0);
	cr_assert_eq(seen_put(&m, "u3", "bad\tns", "x", "12", false, 0), 0); /* left out */
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(seen_serialize(&m, &sb), 0);
	cr_assert_not(m.dirty);
	cr_assert_eq(seen_init(&l, 0), 0);
	uint64_t bad = 0;
	cr_assert_eq(seen_parse(&l, sb.buf, sb.len, &bad), 0);
	cr_assert_eq(bad, 0);
	cr_assert_eq(l.n, 2);
	cr_assert_str_eq(seen_get(&l, "u1")->ns, "default");
	cr_assert_str_eq(seen_get(&l, "u1")->name, "web");
	cr_assert_str_eq(seen_get(&l, "u2")->rv, "11");
	cr_assert(seen_get(&l, "u2")->deleted);
	cr_assert_null(seen_get(&l, "u3"));
	/* Every truncation loads or is refused cleanly, and never invents entries. */
	for (size_t i = 0; i < sb.len; i++) {
		struct seen_map t;
		seen_init(&t, 0);
		uint64_t b = 0;
		int rc = seen_parse(&t, sb.buf, i, &b);
		cr_assert(rc == 0 || rc == -EINVAL);
		cr_assert_leq(t.n, 2);
		seen_free(&t);
	}
	sb_free(&sb);
	seen_free(&m);
	seen_free(&l);
}

Test(k8s_seen, hostile_file)
{
	struct seen_map m;
	uint64_t bad = 0;
	seen_init(&m, 0);
	cr_assert_eq(seen_parse(&m, "garbage\n", 8, &bad), -EINVAL);
	const char f[] = "tapio-k8s-seen 1\n"
			 "u1\t5\t0\tns\tname\n"	  /* good */
			 "u2\t5\t2\tns\tname\n"	  /* bad flag */
			 "u3\t5\t0\tns\n"	  /* too few fields */
			 "u4\t5\t0\tns\tna\tme\n" /* a tab in the name */
			 "\t5\t0\tns\tname\n"	  /* no uid */
			 "u5\t0123456789012345678901234567890123\t0\tns\tn\n" /* rv too long */
			 "u6\t5\t0\tns\tn\0x\n"				      /* NUL */
			 "u7\t5\t0\tns\tunterminated";
	cr_assert_eq(seen_parse(&m, f, sizeof(f) - 1, &bad), 0);
	cr_assert_eq(m.n, 1);
	cr_assert_eq(bad, 7);
	char huge[4000];
	memset(huge, 'a', sizeof(huge));
	memcpy(huge, "tapio-k8s-seen 1\n", 17);
	huge[sizeof(huge) - 1] = '\n';
	cr_assert_eq(seen_parse(&m, huge, sizeof(huge), &bad), 0);
	cr_assert_eq(bad, 8);
	seen_free(&m);
}
