package naive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	v3 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3/model"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Config configures a Peer.
type Config struct {
	NATSURL string
	// Queue names the streams, subjects and the durable consumer (defaults
	// applied); the consumer must exist.
	Queue       queue.Config
	Endpoint    string
	AK, SK      string
	ProjectID   string
	Concurrency int
	Logger      *zap.Logger
}

// Peer is the naive pool.
type Peer struct {
	cfg Config
	nc  *nats.Conn
	js  nats.JetStreamContext
	sub *nats.Subscription
	sdk *v3.CodeArtsBuildClient
	log *zap.Logger
}

// New connects and binds the durable consumer.
func New(_ context.Context, cfg Config) (*Peer, error) {
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("naive-peer"))
	if err != nil {
		return nil, err
	}
	js, err := nc.JetStream()
	if err != nil {
		nc.Close()
		return nil, err
	}
	q := cfg.Queue
	sub, err := js.PullSubscribe(q.Subject, q.Consumer, nats.Bind(q.Stream, q.Consumer))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bind %s: %w", q.Consumer, err)
	}
	cred, err := basic.NewCredentialsBuilder().WithAk(cfg.AK).WithSk(cfg.SK).WithProjectId(cfg.ProjectID).SafeBuild()
	if err != nil {
		nc.Close()
		return nil, err
	}
	hc, err := v3.CodeArtsBuildClientBuilder().
		WithEndpoints([]string{cfg.Endpoint}).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithTimeout(10 * time.Second)).
		SafeBuild()
	if err != nil {
		nc.Close()
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Peer{cfg: cfg, nc: nc, js: js, sub: sub, sdk: v3.NewCodeArtsBuildClient(hc), log: log}, nil
}

// Run fetches batches and works on each message in its own goroutine until
// ctx ends, then waits for the goroutines.
func (p *Peer) Run(ctx context.Context) error {
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		msgs, err := p.sub.Fetch(p.cfg.Concurrency, nats.Context(fctx))
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.Is(err, nats.ErrTimeout) {
				p.log.Warn("fetch", zap.Error(err))
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		for _, m := range msgs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				_ = m.Nak()
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				p.handle(ctx, m)
			})
		}
	}
	return nil
}

// Close closes the connection.
func (p *Peer) Close() { p.nc.Close() }

func (p *Peer) handle(ctx context.Context, m *nats.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	start := time.Now()
	req, err := worker.Decode(m.Data, m.Header, worker.DecodeOptions{})
	if err != nil {
		p.deadLetter(m, meta, worker.DeadLetter{Reason: worker.ReasonInvalidRequest, ErrorMsg: err.Error()}, start)
		return
	}
	var last worker.DeadLetter
	calls := 0
	op := func() error {
		calls++
		_, err := p.sdk.EnableBuildJob(&model.EnableBuildJobRequest{JobId: req.JobID})
		if err == nil {
			return nil
		}
		var sre *sdkerr.ServiceResponseError
		if errors.As(err, &sre) {
			last = worker.DeadLetter{StatusCode: sre.StatusCode, ErrorCode: sre.ErrorCode, ErrorMsg: sre.ErrorMessage, RequestID: sre.RequestId}
			if sre.StatusCode >= 400 && sre.StatusCode < 500 && sre.StatusCode != http.StatusTooManyRequests && sre.StatusCode != http.StatusRequestTimeout {
				return backoff.Permanent(err)
			}
		}
		return err
	}
	err = backoff.Retry(op, backoff.WithContext(backoff.NewExponentialBackOff(), ctx))
	switch {
	case err == nil:
		p.finish(m, meta, worker.Result{JobID: req.JobID, Outcome: worker.OutcomeRecovered, Status: 200, Attempts: calls}, start)
	case ctx.Err() != nil:
		_ = m.Nak()
	default:
		last.JobID, last.Reason, last.Attempts = req.JobID, worker.ReasonClientError, calls
		p.deadLetter(m, meta, last, start)
	}
}

func (p *Peer) deadLetter(m *nats.Msg, meta *nats.MsgMetadata, d worker.DeadLetter, start time.Time) {
	d.Deliveries = meta.NumDelivered
	d.FailedAt = time.Now().UTC()
	d.EnqueuedAt = meta.Timestamp
	d.Worker = "naive"
	d.Original = worker.NewOriginal(m.Subject, meta.Sequence.Stream, m.Header, m.Data)
	data, err := d.Marshal()
	if err != nil {
		_ = m.Nak()
		return
	}
	if _, err := p.js.Publish(p.cfg.Queue.DLQSubject, data, nats.MsgId(worker.DeadLetterID(meta.Sequence.Stream, meta.Timestamp))); err != nil {
		_ = m.Nak()
		return
	}
	p.finish(m, meta, worker.Result{JobID: d.JobID, Outcome: worker.OutcomeDeadLettered, Reason: d.Reason,
		Status: d.StatusCode, ErrorCode: d.ErrorCode, RequestID: d.RequestID, Attempts: d.Attempts}, start)
}

func (p *Peer) finish(m *nats.Msg, meta *nats.MsgMetadata, r worker.Result, start time.Time) {
	r.Deliveries = meta.NumDelivered
	r.StreamSeq = meta.Sequence.Stream
	r.DurationMS = time.Since(start).Milliseconds()
	r.At = time.Now().UTC()
	r.Worker = "naive"
	data, err := json.Marshal(r)
	if err != nil {
		_ = m.Nak()
		return
	}
	if _, err := p.js.Publish(p.cfg.Queue.ResultSubject, data, nats.MsgId(worker.ResultID(meta.Sequence.Stream, meta.Timestamp))); err != nil {
		_ = m.Nak()
		return
	}
	if err := m.AckSync(); err != nil {
		p.log.Warn("ack", zap.Error(err))
	}
}
