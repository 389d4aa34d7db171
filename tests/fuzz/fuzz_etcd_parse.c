// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for the etcd watch-response parser and the event encoder:
 * any input is either refused with a reason or parsed into events whose
 * encoding is valid JSON with the same revision.
 *
 * Build and run: make fuzz-etcd-parse && build/fuzz/fuzz_etcd_parse -max_total_time=60
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/etcd/etcd.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct etcd_watch_resp r;
	char err[200] = "";
	int rc = etcd_watch_parse((const char *)data, size, &r, err, sizeof(err));
	if (rc) {
		if (!err[0] || r.nev || r.json)
			abort();
		return 0;
	}
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < r.nev; i++) {
		const struct etcd_event *e = &r.ev[i];
		if (e->kv.mod_rev <= 0 || !e->key || strlen(e->kv.value_b64) != e->kv.value_b64_len)
			abort();
		sb_reset(&sb);
		etcd_event_json(&sb, e);
		if (sb.err)
			abort();
		cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
		if (!j)
			abort();
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "mod_revision");
		if (!cJSON_IsNumber(m))
			abort();
		cJSON_Delete(j);
		char rt[64];
		etcd_resource_type(e->key, e->key_len, rt, sizeof(rt));
		if (strlen(rt) >= sizeof(rt))
			abort();
	}
	sb_free(&sb);
	etcd_watch_resp_free(&r);
	return 0;
}
