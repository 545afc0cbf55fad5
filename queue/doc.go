// Package queue is the NATS JetStream transport of the worker: it connects
// (user/password, token, NKey, creds file, TLS), creates or updates the
// request, dead-letter and result streams and the durable pull consumer,
// fetches requests only for free worker slots, and publishes records whose
// publish acknowledgement it waits for.
//
// Invariants owned here:
//   - Fetch never asks the server for more messages than the caller has
//     free slots, so nothing sits prefetched in the client while its
//     AckWait runs out.
//   - Publish returns nil only after JetStream acknowledged the write
//     (stored, or recognised as a duplicate of a stored message through
//     Nats-Msg-Id).
//   - Ack is confirmed (double ack): it returns nil only once the server
//     recorded it.
//
// queue imports neither worker nor codearts; internal/wire adapts it to the
// worker's seams.
package queue
