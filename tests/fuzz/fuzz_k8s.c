/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the k8s collector's parsers: the first byte picks the
 * parser (watch line, List body, metadata-only filter, kubeconfig, the
 * emitted-version state file), the rest is its input. Each is checked for the
 * promises its header makes, not just for crashes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/k8s_parse.h"
#include "collectors/k8s/kubeconfig.h"
#include "collectors/k8s/seen.h"

static int on_item(void *ctx, const char *obj, size_t len, const struct k8s_objmeta *m)
{
	const char *lo = ((const char **)ctx)[0], *hi = ((const char **)ctx)[1];
	if (obj < lo || obj + len > hi || !m->uid[0] || !m->rv[0])
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	char err[256];
	switch (data[0] % 5) {
	case 0: {
		struct k8s_watch_event ev;
		int rc = k8s_parse_watch_line(in, n, &ev, err, sizeof(err));
		if (rc == 0 && ev.type != K8S_EV_ERROR &&
		    (ev.obj < in || ev.obj + ev.obj_len > in + n))
			abort();
		if (rc != 0 && rc != -EBADMSG && rc != -ENOMEM)
			abort();
		break;
	}
	case 1: {
		struct k8s_list_info info;
		const char *bounds[2] = {in, in + n};
		int rc = k8s_parse_list(in, n, on_item, bounds, &info, err, sizeof(err));
		if (rc && info.cont)
			abort();
		free(info.cont);
		break;
	}
	case 2: {
		char *out;
		size_t ol;
		int rc = k8s_metadata_only(in, n, &out, &ol);
		if (rc == 1) {
			/* the stripped copy must itself be clean */
			char *again;
			size_t al;
			if (k8s_metadata_only(out, ol, &again, &al) != 0)
				abort();
			free(out);
		}
		break;
	}
	case 3: {
		struct kubeconfig kc;
		if (kubeconfig_parse(in, n, NULL, &kc, err, sizeof(err)) == 0 && !kc.server)
			abort();
		kubeconfig_free(&kc);
		break;
	}
	case 4: {
		struct seen_map m;
		uint64_t bad = 0;
		if (seen_init(&m, 64))
			return 0;
		seen_parse(&m, in, n, &bad);
		if (m.n > 64)
			abort();
		seen_free(&m);
		break;
	}
	}
	return 0;
}
