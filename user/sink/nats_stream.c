// SPDX-License-Identifier: Apache-2.0
/* The NATS sink's JetStream stream: created when missing, checked when there. */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/nats_internal.h"
#include "util/clock.h"
#include "util/log.h"

/* Reports a failed stream lookup or creation, at most every 10 s: the
 * server's own text ("subjects overlap with an existing stream") and the
 * JetStream error code. Events wait in the queue meanwhile. */
static void stream_error(struct nats_sink *ns, const char *what, natsStatus st, jsErrCode jerr)
{
	const char *text = nats_GetLastError(NULL);
	uint64_t now = mono_ns();

	if (now < ns->next_stream_log)
		return;
	ns->next_stream_log = now + 10000000000ull;
	tlog(TLOG_ERR, "nats",
	     "stream %s: %s failed: %s (%s, JetStream error %d); events wait in the queue",
	     ns->stream, what, text && *text ? text : natsStatus_GetText(st),
	     natsStatus_GetText(st), (int)jerr);
}

/* Creates the stream or checks the existing one. Pipeline thread. 0 or -EAGAIN. */
int nats_ensure_stream(struct nats_sink *ns)
{
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsOptions o;
	jsErrCode jerr = 0;
	natsStatus st;
	char subj[300];
	const char *subjects[1] = {subj};
	uint64_t now;

	if (atomic_load(&ns->stream_ready))
		return 0; /* per event: no clock read before this */
	now = mono_ns();
	if (now < ns->next_stream_try)
		return -EAGAIN;
	/* The stream connection (libnats) reconnects on its own: wait for it. */
	if (natsConnection_Status(ns->nc) != NATS_CONN_STATUS_CONNECTED)
		return -EAGAIN;
	ns->next_stream_try = now + 500000000ull;
	snprintf(subj, sizeof(subj), "%s.>", ns->prefix);
	jsOptions_Init(&o);
	o.Wait = API_WAIT_MS;
	st = js_GetStreamInfo(&si, ns->js, ns->stream, &o, &jerr);
	if (st == NATS_OK) {
		bool covered = false;

		for (int i = 0; si->Config && i < si->Config->SubjectsLen; i++)
			if (!strcmp(si->Config->Subjects[i], subj))
				covered = true;
		if (!covered)
			tlog(TLOG_WARN, "nats",
			     "stream %s exists without subject %s; publishing anyway", ns->stream,
			     subj);
		if (si->Config && si->Config->Replicas && si->Config->Replicas != ns->replicas)
			tlog(TLOG_WARN, "nats",
			     "stream %s exists with %ld replicas, not %d: left as it is",
			     ns->stream, (long)si->Config->Replicas, ns->replicas);
		if (si->Config && si->Config->Duplicates != ns->dup_window_ns)
			tlog(TLOG_WARN, "nats",
			     "stream %s exists with a duplicate window of %.0f s, not %.0f s: left "
			     "as it is",
			     ns->stream, (double)si->Config->Duplicates / 1e9,
			     (double)ns->dup_window_ns / 1e9);
		jsStreamInfo_Destroy(si);
		atomic_store(&ns->stream_ready, true);
		return 0;
	}
	if (jerr != JSStreamNotFoundErr && st != NATS_NOT_FOUND) {
		stream_error(ns, "lookup", st, jerr);
		return -EAGAIN;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = ns->stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Retention = ns->retention;
	sc.MaxAge = ns->max_age_ns;
	sc.Storage = js_FileStorage;
	sc.Duplicates = ns->dup_window_ns; /* dedup window for republished ids */
	sc.Replicas = ns->replicas;
	jerr = 0;
	st = js_AddStream(&si, ns->js, &sc, &o, &jerr);
	if (st != NATS_OK) {
		stream_error(ns, "create", st, jerr);
		return -EAGAIN;
	}
	jsStreamInfo_Destroy(si);
	tlog(TLOG_INFO, "nats", "created stream %s for %s (%d replicas, duplicate window %.0f s)",
	     ns->stream, subj, ns->replicas, (double)ns->dup_window_ns / 1e9);
	atomic_store(&ns->stream_ready, true);
	return 0;
}

/* ---- publishing ---- */
