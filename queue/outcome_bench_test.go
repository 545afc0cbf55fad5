package queue_test

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkFinishRecords measures what a request's terminal step stores:
// the outcome claim (a KV create) next to the result event's publish (the
// record every request stored before claims), on an embedded R1 server.
// A claim is one more JetStream round trip of about the same cost.
func BenchmarkFinishRecords(b *testing.B) {
	result := []byte(`{"job_id":"cb5fa20de5fd4cf8be681d4bd6fdd2f6","outcome":"recovered","status":200,` +
		`"request_id":"d9ff73f5914e9b11000000000000001e","attempts":1,"deliveries":1,"duration_ms":52,` +
		`"stream_seq":123456,"at":"2026-11-27T10:00:00Z","worker":"recover-worker-7d9f8b-x2k4q"}`)
	claim := []byte(`{"outcome":"recovered","result":` + string(result) + `}`)
	b.Run("result_publish", func(b *testing.B) {
		c := adminConn(b)
		ctx := context.Background()
		i := 0
		for b.Loop() {
			i++
			if err := c.Result(ctx, "result-"+strconv.Itoa(i)+"-1700000000000000000", result); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("claim", func(b *testing.B) {
		c := adminConn(b)
		ctx := context.Background()
		o, err := c.Outcomes(ctx)
		if err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			i++
			if _, won, err := o.Claim(ctx, strconv.Itoa(i)+"-1700000000000000000", claim); err != nil || !won {
				b.Fatal(won, err)
			}
		}
	})
}
