// Package producer is the producer side of the wire format: it turns a
// recover request into the message the worker reads (the canonical JSON
// body, a Nats-Msg-Id, the W3C traceparent of a producer span) and
// publishes it to JetStream, one at a time ([Client.Enqueue]) or many with
// a bounded window of unacknowledged publishes ([Batch],
// [Client.EnqueueMany]). `worker enqueue`, `worker dlq replay` and
// `worker demo` publish through it; so can any Go producer.
//
// Invariants owned here:
//   - [Encode] refuses what the worker's decoder would dead-letter as
//     invalid_request: a job id that is not 32 ASCII letters or digits, a
//     region outside [EncodeOptions.Regions], a reason over 256 characters,
//     requested_by or campaign over 256 bytes, a body over MaxBytes; and
//     text that is not valid UTF-8. What it accepts, the worker reads back
//     as it was given.
//   - A request's Nats-Msg-Id is its job id unless [EncodeOptions.MsgID]
//     says otherwise, so the request stream's duplicate window drops a
//     repeat, and a publish whose ack was lost can be sent again safely.
//   - A result says stored or duplicate only after JetStream acknowledged
//     the publish; every message a [Batch] sent has its fate known when
//     Close returns, even after its context ended.
//   - A [Batch] hands results to OnResult in publish order, from one
//     goroutine, and frees the message's window slot only when OnResult
//     returns: work that must follow the ack (removing a replayed dead
//     letter) is done before the window moves on.
//   - A campaign's record (StartCampaign, AddToCampaign; NATS KV bucket
//     CampaignBucket) keeps its first start and adds every run's stored
//     requests with a compare-and-set, so concurrent runs add up.
//
// It imports nats.go, the OpenTelemetry API and internal/jobid: not the
// worker's pool, queue or codearts, so a Go producer links none of them.
package producer
