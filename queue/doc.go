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
// CheckPermissions, ServerTime, ConsumerDrift and ReadSyncSetting
// (check.go) are `worker doctor`'s reads: each permission probe is a message
// the server answers without acting on it (a publish whose expected stream
// does not match, a JetStream API call whose body is not JSON), so a probe
// never stores, fetches, acks or deletes anything.
//
// queue imports neither worker nor codearts; internal/wire adapts it to the
// worker's seams.
package queue
