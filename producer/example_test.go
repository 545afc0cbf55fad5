package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// A Go producer enqueues one recover request per event and learns from
// JetStream's ack whether it was new. Here NATS runs in process with the
// worker's streams; in production nats.Connect dials the worker's NATS.
func Example() {
	url, stop := startNATS()
	defer stop()

	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	client, err := producer.New(nc, producer.Config{
		Stream: "CODEARTS_RECOVER", // refuse to publish anywhere else
		Encode: producer.EncodeOptions{Regions: []string{"cn-north-4"}},
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	req := producer.Request{
		JobID:       "cb5fa20de5fd4cf8be681d4bd6fdd2f6",
		Region:      "cn-north-4",
		Reason:      "build agent outage",
		RequestedBy: "incident-bot",
	}
	res, err := client.Enqueue(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stored as %s, stream sequence %d\n", res.MsgID, res.Seq)

	// The same job again within the stream's duplicate window (2 minutes)
	// is not stored twice: the Nats-Msg-Id is the job id.
	res, err = client.Enqueue(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("again: duplicate %t of sequence %d\n", res.Duplicate, res.Seq)

	// What the worker would dead-letter as invalid is refused here.
	_, err = client.Enqueue(ctx, producer.Request{JobID: "not-a-job"})
	fmt.Println(err)

	// Output:
	// stored as cb5fa20de5fd4cf8be681d4bd6fdd2f6, stream sequence 1
	// again: duplicate true of sequence 1
	// invalid request: job_id "not-a-job" is not 32 ASCII letters or digits
}

// Many requests at once: at most Window await their ack, each request has
// its result, and OnResult reports progress.
func ExampleClient_EnqueueMany() {
	url, stop := startNATS()
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	client, err := producer.New(nc, producer.Config{})
	if err != nil {
		log.Fatal(err)
	}

	reqs := []producer.Request{
		{JobID: "0f3c8e1a2b4d4e6f8a0b1c2d3e4f5a6b", Campaign: "outage-2024-06-01"},
		{JobID: "0f3c8e1a2b4d4e6f8a0b1c2d3e4f5a6b", Campaign: "outage-2024-06-01"},
		{JobID: "too-short", Campaign: "outage-2024-06-01"},
		{JobID: "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d", Campaign: "outage-2024-06-01"},
	}
	acked := 0
	results, err := client.EnqueueMany(context.Background(), reqs, producer.BatchConfig{
		Window:   64,
		OnResult: func(producer.BatchResult) { acked++ },
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		switch {
		case r.Err != nil:
			fmt.Printf("%d: %v\n", r.Ref, r.Err)
		case r.Duplicate:
			fmt.Printf("%d: %s duplicate of sequence %d\n", r.Ref, r.JobID, r.Seq)
		default:
			fmt.Printf("%d: %s stored, sequence %d\n", r.Ref, r.JobID, r.Seq)
		}
	}
	fmt.Println("acknowledged:", acked)

	// Output:
	// 0: 0f3c8e1a2b4d4e6f8a0b1c2d3e4f5a6b stored, sequence 1
	// 1: 0f3c8e1a2b4d4e6f8a0b1c2d3e4f5a6b duplicate of sequence 1
	// 2: invalid request: job_id "too-short" is not 32 ASCII letters or digits
	// 3: 9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d stored, sequence 2
	// acknowledged: 3
}

// startNATS starts an in-process nats-server with JetStream and the
// worker's streams, as `worker run` creates them on start.
func startNATS() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "producer-example-")
	if err != nil {
		log.Fatal(err)
	}
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, queue.Config{URL: ns.URL()})
	if err != nil {
		log.Fatal(err)
	}
	if err := conn.Ensure(ctx); err != nil {
		log.Fatal(err)
	}
	_ = conn.Close(time.Second)
	return ns.URL(), func() {
		ns.Shutdown()
		_ = os.RemoveAll(dir)
	}
}
