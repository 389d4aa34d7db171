/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster role's Lease record: parsing, the body of a create/update,
 * the cursor annotations, the time format, the deadline, and the roles. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "collectors/k8s/internal.h"
#include "collectors/k8s/lease.h"
#include "util/strbuf.h"

static const char lease_json[] =
    "{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
    "\"metadata\":{\"name\":\"tapio-cluster\",\"namespace\":\"tapio\",\"resourceVersion\":\"42\","
    "\"annotations\":{\"tapio.io/rv-services\":\"1001\",\"tapio.io/rv-events\":\"1005\","
    "\"other.io/x\":\"y\"}},"
    "\"spec\":{\"holderIdentity\":\"node-a/tapio-abc\",\"leaseDurationSeconds\":15,"
    "\"acquireTime\":\"2026-11-27T00:00:00.000000Z\",\"renewTime\":\"2026-11-27T00:00:10.000000Z\","
    "\"leaseTransitions\":3}}";

Test(k8s_lease, parse)
{
	struct k8s_lease_rec r;
	char why[96];
	cr_assert_eq(k8s_lease_parse(lease_json, strlen(lease_json), &r, why, sizeof(why)), 0);
	cr_assert_str_eq(r.rv, "42");
	cr_assert_str_eq(r.holder, "node-a/tapio-abc");
	cr_assert_eq(r.duration, 15);
	cr_assert_eq(r.transitions, 3);
	cr_assert_str_eq(r.acquire, "2026-11-27T00:00:00.000000Z");
	cr_assert_str_eq(r.renew, "2026-11-27T00:00:10.000000Z");
	cr_assert_eq(r.ncur, 2);
	cr_assert_str_eq(k8s_lease_cursor(&r, "services"), "1001");
	cr_assert_str_eq(k8s_lease_cursor(&r, "events"), "1005");
	cr_assert_null(k8s_lease_cursor(&r, "pods"));
}

Test(k8s_lease, parse_rejects)
{
	struct k8s_lease_rec r;
	char why[96];
	const char *bad[] = {"",
			     "nope",
			     "[]",
			     "{\"spec\":{}}",
			     "{\"metadata\":{}}",
			     "{\"metadata\":{\"resourceVersion\":7}}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(k8s_lease_parse(bad[i], strlen(bad[i]), &r, why, sizeof(why)),
			     -EBADMSG, "%s", bad[i]);
		cr_assert_neq(why[0], '\0');
	}
	/* A free lease (no spec) is fine. */
	const char *free_ = "{\"metadata\":{\"resourceVersion\":\"9\"}}";
	cr_assert_eq(k8s_lease_parse(free_, strlen(free_), &r, why, sizeof(why)), 0);
	cr_assert_str_eq(r.holder, "");
	cr_assert_eq(r.duration, 0);
}

Test(k8s_lease, body_round_trip)
{
	struct k8s_lease_rec r, back;
	char why[96];
	cr_assert_eq(k8s_lease_parse(lease_json, strlen(lease_json), &r, why, sizeof(why)), 0);
	cr_assert_eq(k8s_lease_set_cursor(&r, "services", "2000"), 0);
	cr_assert_eq(k8s_lease_set_cursor(&r, "nodes", "1999"), 0);
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(k8s_lease_body(&sb, "tapio-cluster", "tapio", &r), 0);
	cr_assert(strstr(sb.buf, "\"namespace\":\"tapio\""));
	cr_assert_eq(k8s_lease_parse(sb.buf, sb.len, &back, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(back.rv, "42");
	cr_assert_str_eq(back.holder, r.holder);
	cr_assert_eq(back.duration, 15);
	cr_assert_eq(back.transitions, 3);
	cr_assert_str_eq(back.renew, r.renew);
	cr_assert_eq(back.ncur, 3);
	cr_assert_str_eq(k8s_lease_cursor(&back, "services"), "2000");
	cr_assert_str_eq(k8s_lease_cursor(&back, "nodes"), "1999");
	/* A create carries no resourceVersion. */
	r.rv[0] = '\0';
	sb_reset(&sb);
	cr_assert_eq(k8s_lease_body(&sb, "tapio-cluster", "tapio", &r), 0);
	cr_assert_null(strstr(sb.buf, "resourceVersion"));
	sb_free(&sb);
}

Test(k8s_lease, cursor_limits)
{
	struct k8s_lease_rec r;
	memset(&r, 0, sizeof(r));
	char name[16];
	for (int i = 0; i < K8S_LEASE_MAX_CURSORS; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		cr_assert_eq(k8s_lease_set_cursor(&r, name, "1"), 0);
	}
	cr_assert_eq(k8s_lease_set_cursor(&r, "one-more", "1"), -ENOSPC);
	cr_assert_eq(k8s_lease_set_cursor(&r, "r3", "77"), 0); /* an update still fits */
	cr_assert_str_eq(k8s_lease_cursor(&r, "r3"), "77");
	char longrv[80];
	memset(longrv, '9', sizeof(longrv) - 1);
	longrv[sizeof(longrv) - 1] = '\0';
	cr_assert_eq(k8s_lease_set_cursor(&r, "r1", longrv), -ENAMETOOLONG);
}

Test(k8s_lease, microtime_and_deadline)
{
	char buf[40];
	k8s_lease_microtime(1795737600123456789ull, buf, sizeof(buf));
	cr_assert_str_eq(buf, "2026-11-27T00:00:00.123456Z");
	/* The holder gives up before anyone can see the lease expire. */
	cr_assert_eq(k8s_lease_deadline_ms(15000, 10000), 12500);
	cr_assert_eq(k8s_lease_deadline_ms(3000, 1000), 2000);
	cr_assert_lt(k8s_lease_deadline_ms(15000, 10000), 15000);
}

Test(k8s_lease, roles)
{
	enum k8s_role role;
	cr_assert_eq(k8s_role_parse("", &role), 0);
	cr_assert_eq(role, K8S_ROLE_AUTO);
	cr_assert_eq(k8s_role_parse("node", &role), 0);
	cr_assert_eq(role, K8S_ROLE_NODE);
	cr_assert_eq(k8s_role_parse("cluster", &role), 0);
	cr_assert_eq(role, K8S_ROLE_CLUSTER);
	cr_assert_eq(k8s_role_parse("leader", &role), -EINVAL);

	struct res_def pods = {"pods", "/api/v1/pods", "Pod", "v1", false, true};
	struct res_def svc = {"services", "/api/v1/services", "Service", "v1", false, false};
	struct k8s k;
	memset(&k, 0, sizeof(k));
	char sel[] = "spec.nodeName%3Dnode-a";
	/* Without a node name, pods are cluster-wide too. */
	cr_assert(k8s_role_is_cluster(&k, &pods));
	k.node_sel = sel;
	cr_assert_not(k8s_role_is_cluster(&k, &pods));
	cr_assert(k8s_role_is_cluster(&k, &svc));
	k.role = K8S_ROLE_NODE;
	cr_assert(k8s_role_runs(&k, &pods));
	cr_assert_not(k8s_role_runs(&k, &svc));
	k.role = K8S_ROLE_CLUSTER;
	cr_assert_not(k8s_role_runs(&k, &pods));
	cr_assert(k8s_role_runs(&k, &svc));
	k.role = K8S_ROLE_AUTO;
	cr_assert(k8s_role_runs(&k, &pods) && k8s_role_runs(&k, &svc));
}
