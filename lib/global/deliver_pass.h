/* deliver_pass.h: one recipient handed by a delivery agent to the agent of
 * another transport, as Postfix's deliver_pass: local(8) gives mailbox
 * deliveries to mailbox_transport (an LMTP server, typically) after it has
 * resolved aliases and .forward. The caller speaks the delivery protocol
 * (doc/PROTOCOLS.md, "Delivery agents") as qmgr does, for one recipient,
 * with DELIVER_FLAG_PASSED in the request: the address is the one to
 * deliver to (an alias's target, say), the R record at the offset is the
 * caller's, and the caller, not the other agent, marks it done. */
#ifndef TERN_DELIVER_PASS_H
#define TERN_DELIVER_PASS_H

#include <sys/types.h>

#include "delivery_status.h"

/* Deliver rcpt of the message queue_path (relative to queue_directory)
 * through transport, written "transport" or "transport:nexthop" as
 * mailbox_transport is; without a next hop, nexthop is used. The agent
 * logs the delivery. res is always set: a transport that cannot be
 * reached or fails the protocol is a 4.3.0 deferral. */
void deliver_pass(const char *transport, const char *nexthop, const char *queue_id,
                  const char *queue_path, const char *sender, const char *rcpt,
                  const char *orcpt, const char *notify, off_t offset, int timeout,
                  struct delivery_status *res);

#endif
