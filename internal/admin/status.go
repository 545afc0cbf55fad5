package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// Status is where the requests are; its JSON is `worker status --json`
// and is stable for scripts.
type Status struct {
	Stream   StreamStatus    `json:"stream"`
	Consumer *ConsumerStatus `json:"consumer"`
	DLQ      DLQStatus       `json:"dlq"`
	Results  *ResultsStatus  `json:"results,omitempty"`
}

// StreamStatus is the request stream.
type StreamStatus struct {
	Name     string   `json:"name"`
	Subjects []string `json:"subjects"`
	// Messages: requests stored and not finished yet (a work-queue stream
	// removes a request once it is acknowledged): the backlog.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// ConsumerStatus is the workers' durable consumer.
type ConsumerStatus struct {
	Name string `json:"name"`
	// Pending: stored, not yet delivered to any worker.
	Pending uint64 `json:"pending"`
	// InFlight: delivered, not yet acknowledged (ack pending).
	InFlight int `json:"in_flight"`
	// Redelivered: in flight and delivered more than once.
	Redelivered int `json:"redelivered"`
	// WaitingPulls: pull requests of idle workers waiting for messages.
	WaitingPulls int  `json:"waiting_pulls"`
	Paused       bool `json:"paused,omitempty"`
}

// DLQStatus is the dead-letter stream.
type DLQStatus struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// ByReason counts dead letters by reason; records that are not
	// dead-letter records count as "unreadable".
	ByReason map[string]int `json:"by_reason"`
}

// ResultsStatus is the result stream, when it exists.
type ResultsStatus struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// Unreadable is the reason a Status or a Group gives a stored message that
// is not a dead-letter record.
const Unreadable = "unreadable"

// RequireStream returns a stream that must exist, with its info, or an
// error that says which flag names it.
func RequireStream(ctx context.Context, conn *queue.Conn, name, flag string) (*queue.Stream, *jetstream.StreamInfo, error) {
	s, err := conn.Stream(ctx, name)
	if errors.Is(err, queue.ErrStreamNotFound) {
		return nil, nil, fmt.Errorf("stream %s does not exist (check --%s; 'worker run' creates it on start)", name, flag)
	}
	if err != nil {
		return nil, nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	return s, info, nil
}

// CollectStatus reads the request stream, the consumer, the dead-letter
// stream (scanning it to count by reason) and, when resultStream is not ""
// and exists, the result stream. A consumer that does not exist yet is nil.
func CollectStatus(ctx context.Context, conn *queue.Conn, resultStream string) (Status, error) {
	rep, _, err := collectQueue(ctx, conn, resultStream)
	if err != nil {
		return rep, err
	}
	rep.DLQ.ByReason = map[string]int{}
	_, _, err = Scan(ctx, conn, &Filter{}, 0, func(r Record) error {
		rep.DLQ.ByReason[r.reason()]++
		return nil
	})
	return rep, err
}

// collectQueue reads everything but the dead letters themselves.
func collectQueue(ctx context.Context, conn *queue.Conn, results string) (Status, *jetstream.StreamInfo, error) {
	cfg := conn.Config()
	var rep Status
	_, info, err := RequireStream(ctx, conn, cfg.Stream, "stream")
	if err != nil {
		return rep, nil, err
	}
	rep.Stream = StreamStatus{
		Name: info.Config.Name, Subjects: info.Config.Subjects, Messages: info.State.Msgs,
		Bytes: info.State.Bytes, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
	}
	ci, err := conn.ConsumerInfo(ctx, cfg.Stream, cfg.Consumer)
	switch {
	case errors.Is(err, queue.ErrConsumerNotFound):
	case err != nil:
		return rep, nil, err
	default:
		rep.Consumer = &ConsumerStatus{
			Name: ci.Name, Pending: ci.NumPending, InFlight: ci.NumAckPending,
			Redelivered: ci.NumRedelivered, WaitingPulls: ci.NumWaiting, Paused: ci.Paused,
		}
	}
	_, dinfo, err := RequireStream(ctx, conn, cfg.DLQStream, "dlq-stream")
	if err != nil {
		return rep, nil, err
	}
	rep.DLQ = DLQStatus{Name: dinfo.Config.Name, Messages: dinfo.State.Msgs, Bytes: dinfo.State.Bytes}
	if results != "" {
		rinfo, err := conn.StreamInfo(ctx, results)
		switch {
		case errors.Is(err, queue.ErrStreamNotFound):
		case err != nil:
			return rep, nil, err
		default:
			rep.Results = &ResultsStatus{Name: results, Messages: rinfo.State.Msgs, Bytes: rinfo.State.Bytes}
		}
	}
	return rep, dinfo, nil
}
