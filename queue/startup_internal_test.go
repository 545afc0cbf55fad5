package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestPermanent(t *testing.T) {
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("create stream X: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: "…"})
	}
	tests := []struct {
		giveName string
		give     error
		want     bool
	}{
		{"timeout", fmt.Errorf("bind consumer: %w", context.DeadlineExceeded), false},
		{"no responders (JetStream not up, no leader)", fmt.Errorf("stream X: %w", nats.ErrNoResponders), false},
		{"JetStream not enabled yet", jetstream.ErrJetStreamNotEnabled, false},
		{"JetStream system temporarily unavailable", api(503, 10008), false},
		{"stream not found (not provisioned yet)", fmt.Errorf("stream X: %w", jetstream.ErrStreamNotFound), false},
		{"consumer not found", jetstream.ErrConsumerNotFound, false},
		{"no suitable peers (cluster nodes down)", api(400, 10005), false},
		{"concurrent create with other settings", api(400, 10058), false},
		{"insufficient resources", api(503, 10023), false},
		{"stream offline", api(500, 10118), false},
		{"unknown error", errors.New("something else"), false},
		{"connection closed", nats.ErrConnectionClosed, false},

		{"authorization violation", fmt.Errorf("connect: %w", nats.ErrAuthorization), true},
		{"permission violation", fmt.Errorf("%w: Permissions Violation for Publish to X", nats.ErrPermissionViolation), true},
		{"incompatible stream", fmt.Errorf("%w: stream X has limits retention", ErrIncompatible), true},
		{"subjects overlap another stream", api(400, 10065), true},
		{"max ack pending over the server limit", api(400, 10121), true},
		{"account stream limit", api(400, 10027), true},
		{"invalid stream configuration", api(500, 10052), true},
		{"replicas without clustering", api(500, 10074), true},
		{"invalid stream name", jetstream.ErrInvalidStreamName, true},
	}
	for _, tt := range tests {
		t.Run(tt.giveName, func(t *testing.T) {
			require.Equal(t, tt.want, Permanent(tt.give), "%v", tt.give)
		})
	}
}

// diffStream on settings a single test server cannot show: replicas,
// storage and retention.
func TestDiffStream(t *testing.T) {
	want := Config{Replicas: 1}.RequestStreamConfig()
	tests := []struct {
		giveName string
		give     func(*jetstream.StreamConfig)
		want     []Drift
	}{
		{"the worker's own stream", func(*jetstream.StreamConfig) {}, nil},
		{"as the server reports defaults", func(s *jetstream.StreamConfig) {
			s.Replicas, s.MaxMsgs, s.MaxBytes, s.MaxMsgsPerSubject = 0, -1, -1, -1
		}, nil},
		{"a wildcard covers the subject", func(s *jetstream.StreamConfig) { s.Subjects = []string{"codearts.build.>"} }, nil},
		{"R3 by the operator", func(s *jetstream.StreamConfig) { s.Replicas = 3 }, []Drift{
			{Stream: DefaultStream, Setting: "replicas", Have: "3", Want: "1", Updatable: true},
		}},
		{"memory storage, interest retention", func(s *jetstream.StreamConfig) {
			s.Storage, s.Retention = jetstream.MemoryStorage, jetstream.InterestPolicy
		}, []Drift{
			{Stream: DefaultStream, Setting: "retention", Have: "interest", Want: "workqueue"},
			{Stream: DefaultStream, Setting: "storage", Have: "memory", Want: "file"},
		}},
		{"limits", func(s *jetstream.StreamConfig) {
			s.MaxAge, s.MaxBytes, s.MaxMsgsPerSubject = 36*time.Hour+30*time.Minute, 1<<30, 1
		}, []Drift{
			{Stream: DefaultStream, Setting: "max_age", Have: "36h30m", Want: "unlimited", Updatable: true},
			{Stream: DefaultStream, Setting: "max_bytes", Have: "1073741824", Want: "unlimited", Updatable: true},
			{Stream: DefaultStream, Setting: "max_msgs_per_subject", Have: "1", Want: "unlimited", Updatable: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.giveName, func(t *testing.T) {
			have := want
			tt.give(&have)
			require.Equal(t, tt.want, diffStream(have, want))
		})
	}
	d := Drift{Stream: "S", Setting: "storage", Have: "memory", Want: "file"}
	require.Equal(t, "stream S keeps storage memory; the worker would create file; NATS cannot change it in place (recreate the stream to change it)", d.String())
}
