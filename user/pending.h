/* SPDX-License-Identifier: Apache-2.0 */
/* Weak references to modules that are not merged yet (see user/pending/).
 * A missing module's functions are NULL; callers check before calling. */
#ifndef TAPIO_PENDING_H
#define TAPIO_PENDING_H
#pragma weak kernel_collector_new
#pragma weak kernel_collector_available
#pragma weak kernel_parse_events
#pragma weak kernel_collector_disabled
#pragma weak kevent_json
#pragma weak kevent_text
#pragma weak kevent_pid_comm
#pragma weak k8s_collector_new
#pragma weak k8s_collector_available
#pragma weak etcd_collector_new
#pragma weak etcd_collector_available
#pragma weak cni_collector_new
#pragma weak cni_collector_available
#pragma weak metrics_start
#pragma weak metrics_stop
#pragma weak sink_nats_new
#pragma weak podmeta_new
#pragma weak podmeta_free
#pragma weak podmeta_lookup
#pragma weak podmeta_forget
#pragma weak podmeta_observe
#pragma weak cmd_trace
#pragma weak cmd_probe
#pragma weak watch_global_init
#endif
