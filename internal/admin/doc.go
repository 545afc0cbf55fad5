// Package admin is what an operator reads and repairs on the worker's
// streams, shared by the command line (`worker status`, `worker dlq …`) and
// the status page, so both show the same figures and replay through one
// code path.
//
// Invariants it owns:
//   - A replayed dead letter is removed from the dead-letter stream only
//     after the request stream acknowledged its replay; a failure between the
//     two leaves it in place, and the replay's Nats-Msg-Id (derived from the
//     dead letter's sequence and stored time) makes a rerun within the
//     request stream's duplicate window store nothing twice.
//   - Reading never disturbs the worker: dead letters are read with an
//     ephemeral ordered consumer, never acked, never held in memory as a
//     whole (a scan streams; a Snapshot keeps counts and a few samples).
//   - A Snapshot's figures are exactly CollectStatus's for the same stream
//     state; the dead-letter stream is rescanned only when it changed.
package admin
