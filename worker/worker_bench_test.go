package worker_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

const benchJobID = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

// BenchmarkDecode measures Decode on each accepted wire form and on the
// poison messages that must be rejected without reaching the API: every
// request pays for one Decode.
func BenchmarkDecode(b *testing.B) {
	regions := func(r string) bool { return r == "cn-north-4" || r == "ap-southeast-3" }
	opts := worker.DecodeOptions{MaxBytes: 64 << 10, ValidRegion: regions}
	benches := []struct {
		name     string
		body     string
		header   map[string][]string
		wantFail bool
	}{
		{name: "bare_id", body: benchJobID},
		{name: "json_id_only", body: `{"job_id":"` + benchJobID + `"}`},
		{name: "json_all_fields", body: `{"job_id":"` + benchJobID + `","region":"cn-north-4","reason":"outage 2026-11-27",` +
			`"requested_by":"ops-automation","requested_at":"2026-11-27T10:00:00Z","unknown":{"ignored":[1,2,3]}}`},
		{name: "cloudevents_structured", body: `{"specversion":"1.0","id":"e-1","source":"ops/automation","type":"codearts.build.recover",` +
			`"datacontenttype":"application/json","data":{"job_id":"` + benchJobID + `","region":"cn-north-4"}}`},
		{name: "cloudevents_binary", body: `{"job_id":"` + benchJobID + `"}`, header: map[string][]string{
			"ce-specversion": {"1.0"}, "ce-id": {"e-1"}, "ce-source": {"ops/automation"}, "ce-type": {"codearts.build.recover"},
			"Nats-Msg-Id": {benchJobID},
		}},
		{name: "poison_bad_json", body: `{"job_id":"` + benchJobID, wantFail: true},
		{name: "poison_bad_id", body: `{"job_id":"../../etc/passwd"}`, wantFail: true},
		{name: "poison_oversize", body: strings.Repeat("a", 65<<10), wantFail: true},
	}
	for _, bb := range benches {
		body := []byte(bb.body)
		if _, err := worker.Decode(body, bb.header, opts); (err != nil) != bb.wantFail {
			b.Fatalf("%s: Decode error %v, want failure %v", bb.name, err, bb.wantFail)
		}
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_, _ = worker.Decode(body, bb.header, opts)
			}
		})
	}
}

// BenchmarkDeadLetter measures building and encoding a dead-letter record,
// with its message id, as the pool does for every failed request.
func BenchmarkDeadLetter(b *testing.B) {
	stored := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	header := map[string][]string{"Nats-Msg-Id": {benchJobID}, "ce-specversion": {"1.0"}}
	benches := []struct {
		name   string
		reason string
		body   []byte
	}{
		{"client_error", worker.ReasonClientError, []byte(`{"job_id":"` + benchJobID + `","reason":"outage"}`)},
		{"invalid_utf8_body", worker.ReasonInvalidRequest, []byte{0xff, 0xfe, 'j', 'o', 'b', 0x00, 0x80}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d := worker.DeadLetter{
					JobID: benchJobID, Reason: bb.reason, StatusCode: 404, ErrorCode: "CB.00060214",
					ErrorMsg: "The build job does not exist", RequestID: "d9ff73f5914e9b110000000000000008",
					Attempts: 1, Deliveries: 1, FirstAttemptAt: stored, EnqueuedAt: stored, FailedAt: stored,
					Worker:   "recover-worker-7d9f8b-x2k4q",
					Original: worker.NewOriginal("codearts.build.recover", 123456, header, bb.body),
				}
				if _, err := d.Marshal(); err != nil {
					b.Fatal(err)
				}
				_ = worker.DeadLetterID(123456, stored)
			}
		})
	}
}

// BenchmarkResult measures encoding the result event and its message id,
// which every request that reaches a terminal state pays for.
func BenchmarkResult(b *testing.B) {
	stored := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		r := worker.Result{
			JobID: benchJobID, Outcome: worker.OutcomeRecovered, Status: 200,
			RequestID: "d9ff73f5914e9b11000000000000001e", Attempts: 1, Deliveries: 1,
			DurationMS: 52, StreamSeq: 123456, At: stored, Worker: "recover-worker-7d9f8b-x2k4q",
		}
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
		_ = worker.ResultID(123456, stored)
	}
}
