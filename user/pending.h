/* SPDX-License-Identifier: Apache-2.0 */
/* Weak references to modules that are not merged yet (see user/pending/).
 * A missing module's functions are NULL; callers check before calling. */
#ifndef TAPIO_PENDING_H
#define TAPIO_PENDING_H
#pragma weak metrics_start
#pragma weak metrics_stop
#pragma weak sink_nats_new
#endif
