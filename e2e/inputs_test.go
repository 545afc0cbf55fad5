//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// newRand returns the test's random source, seeded from E2E_SEED or the
// clock; the seed is logged so a failing run can be replayed.
func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("E2E_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (E2E_SEED=%d replays it)", seed, seed)
	return rand.New(rand.NewPCG(seed, 0x5eed))
}

const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// jobID returns a random well-formed job id (32 letters/digits) starting
// with prefix. The simulator answers by prefix: "400", "403", "404" with
// those statuses; good ids start with "ok" so they match none.
func jobID(r *rand.Rand, prefix string) string {
	b := []byte(prefix)
	for len(b) < 32 {
		b = append(b, alnum[r.IntN(len(alnum))])
	}
	return string(b)
}

// goodItem is a valid request for id in one of the accepted wire forms:
// bare id, JSON object, CloudEvents structured or binary mode.
func goodItem(r *rand.Rand, id, want string) *item {
	it := &item{msgID: id, jobID: id, want: want}
	switch r.IntN(4) {
	case 0:
		it.body = []byte(id)
	case 1:
		// The reason is free text: a newline and an ANSI escape in it must
		// not forge a log line.
		it.body = mustJSON(map[string]any{"job_id": id, "reason": "e2e\n{\"level\":\"fatal\",\"msg\":\"forged\"}\x1b[31m", "requested_by": "e2e",
			"requested_at": time.Now().UTC().Format(time.RFC3339)})
	case 2:
		it.body = mustJSON(map[string]any{"specversion": "1.0", "type": "com.example.build.failed",
			"source": "/e2e", "id": id, "data": map[string]any{"job_id": id}})
	default:
		it.header = nats.Header{"ce-specversion": {"1.0"}, "ce-type": {"com.example.build.failed"},
			"ce-source": {"/e2e"}, "ce-id": {id}}
		it.body = mustJSON(map[string]any{"job_id": id})
	}
	return it
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// mix is the share of each kind of request in a mixed run; the rest are
// good requests.
type mix struct {
	clientError float64 // ids the API answers 400, 404 or 422: dead-lettered client_error
	invalid     float64 // bad messages: dead-lettered invalid_request
}

func mixedItems(r *rand.Rand, n int, m mix) []*item {
	items := make([]*item, 0, n)
	for i := range n {
		x := r.Float64()
		switch {
		case x < m.invalid:
			items = append(items, badItem(r, i))
		case x < m.invalid+m.clientError:
			items = append(items, goodItem(r, jobID(r, []string{"400", "404", "422"}[r.IntN(3)]), worker.ReasonClientError))
		default:
			items = append(items, goodItem(r, jobID(r, "ok"), outcomeRecovered))
		}
	}
	return items
}

// badItems returns n messages that are not recover requests, drawn in turn
// from every kind of hostile input the SPEC names and a few more. Some of
// them carry a well-formed job id inside (over the size limit, unknown
// region, over-long reason): that id must never reach the API.
func badItems(r *rand.Rand, n int) []*item {
	items := make([]*item, n)
	for i := range n {
		items[i] = badItem(r, i)
	}
	return items
}

// badItem is the i-th bad message (kinds in turn).
func badItem(r *rand.Rand, i int) *item {
	it := badKinds[i%len(badKinds)](r)
	it.msgID = fmt.Sprintf("bad-%06d", i)
	it.want = worker.ReasonInvalidRequest
	it.bad = true
	return it
}

var badKinds = []func(r *rand.Rand) *item{
	// random bytes
	func(r *rand.Rand) *item {
		b := make([]byte, 1+r.IntN(300))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if len(b) > 0 && (b[0] == '{' || b[0] == ' ') {
			b[0] = 0xff
		}
		return &item{body: b}
	},
	// over the size limit (64 KiB), valid otherwise
	func(r *rand.Rand) *item {
		id := jobID(r, "ok")
		return &item{jobID: id, body: mustJSON(map[string]any{"job_id": id, "pad": strings.Repeat("x", 65<<10+r.IntN(4096))})}
	},
	// path traversal and URL syntax inside a 32-character id
	func(r *rand.Rand) *item { return idItem(r, "../../v3/jobs/") },
	func(r *rand.Rand) *item { return idItem(r, "..%2f..%2f") },
	func(r *rand.Rand) *item { return idItem(r, "%2e%2e") },
	func(r *rand.Rand) *item { return idItem(r, "/") },
	func(r *rand.Rand) *item { return idItem(r, "?x=") },
	func(r *rand.Rand) *item { return idItem(r, "#") },
	func(r *rand.Rand) *item { return idItem(r, "\r\n") },
	func(r *rand.Rand) *item { return idItem(r, "\n") },
	func(r *rand.Rand) *item { return idItem(r, "\x00") },
	func(r *rand.Rand) *item { return idItem(r, " ") },
	// log injection: ANSI escapes and a forged JSON log line
	func(r *rand.Rand) *item { return idItem(r, "\x1b[2J") },
	func(r *rand.Rand) *item {
		return &item{body: mustJSON(map[string]any{"job_id": "x\n{\"level\":\"fatal\",\"msg\":\"forged\"}\x1b[31m"})}
	},
	// Unicode look-alikes: Cyrillic а/о/е, Greek Ο, fullwidth Ａ/０,
	// a zero-width space; some keep the id exactly 32 bytes long
	func(r *rand.Rand) *item { return idItem(r, "а") }, // U+0430, 2 bytes
	func(r *rand.Rand) *item { return idItem(r, "о") },
	func(r *rand.Rand) *item { return idItem(r, "Ο") },
	func(r *rand.Rand) *item { return idItem(r, "Ａ") },
	func(r *rand.Rand) *item { return idItem(r, "０") },
	func(r *rand.Rand) *item { return idItem(r, "\u200b") },
	// 31 and 33 characters
	func(r *rand.Rand) *item { return &item{body: []byte(jobID(r, "ok")[:31])} },
	func(r *rand.Rand) *item { return &item{body: []byte(jobID(r, "ok") + "a")} },
	func(r *rand.Rand) *item { return &item{body: mustJSON(map[string]any{"job_id": jobID(r, "ok")[:31]})} },
	func(r *rand.Rand) *item { return &item{body: mustJSON(map[string]any{"job_id": jobID(r, "ok") + "7"})} },
	// CloudEvents without data, with null data, base64 data, wrong version
	func(r *rand.Rand) *item {
		return &item{body: mustJSON(map[string]any{"specversion": "1.0", "type": "t", "source": "/e2e", "id": "1"})}
	},
	func(r *rand.Rand) *item {
		return &item{body: []byte(`{"specversion":"1.0","type":"t","source":"/e2e","id":"1","data":null}`)}
	},
	func(r *rand.Rand) *item {
		return &item{body: mustJSON(map[string]any{"specversion": "1.0", "type": "t", "source": "/e2e", "id": "1",
			"data_base64": "eyJqb2JfaWQiOiJ4In0="})}
	},
	func(r *rand.Rand) *item {
		id := jobID(r, "ok")
		return &item{jobID: id, body: mustJSON(map[string]any{"specversion": "0.3", "data": map[string]any{"job_id": id}})}
	},
	func(r *rand.Rand) *item { // binary mode, empty body
		return &item{header: nats.Header{"ce-specversion": {"1.0"}, "ce-type": {"t"}}, body: nil}
	},
	// deep JSON nesting
	func(r *rand.Rand) *item {
		d := 5000 + r.IntN(25000)
		return &item{body: []byte(`{"job_id":` + strings.Repeat("[", d) + strings.Repeat("]", d) + `}`)}
	},
	func(r *rand.Rand) *item {
		d := 3000 + r.IntN(8000)
		return &item{body: []byte(strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d))}
	},
	// well-formed id, but an unknown region or an over-long reason
	func(r *rand.Rand) *item {
		id := jobID(r, "ok")
		return &item{jobID: id, body: mustJSON(map[string]any{"job_id": id, "region": "xx-evil-1"})}
	},
	func(r *rand.Rand) *item {
		id := jobID(r, "ok")
		return &item{jobID: id, body: mustJSON(map[string]any{"job_id": id, "reason": strings.Repeat("r", 300)})}
	},
	// not an object, wrong types, missing id, empty
	func(r *rand.Rand) *item { return &item{body: []byte(`{"job_id":12345678901234567890123456789012}`)} },
	func(r *rand.Rand) *item { return &item{body: []byte(`{"job_id":["` + jobID(r, "ok") + `"]}`)} },
	func(r *rand.Rand) *item { return &item{body: []byte(`{"reason":"no id"}`)} },
	func(r *rand.Rand) *item { return &item{body: []byte(`{"job_id":"` + jobID(r, "ok"))} },
	func(r *rand.Rand) *item { return &item{body: []byte(" \t\r\n ")} },
	func(r *rand.Rand) *item { return &item{body: []byte("null")} },
}

// idItem embeds s into a job id: 32 characters (runes) in all, as a bare
// body or in a JSON object.
func idItem(r *rand.Rand, s string) *item {
	id := jobID(r, "ok")
	pos := r.IntN(32 - len([]rune(s)) + 1)
	bad := id[:pos] + s + id[pos+len([]rune(s)):]
	if r.IntN(2) == 0 {
		return &item{body: []byte(bad)}
	}
	return &item{body: mustJSON(map[string]any{"job_id": bad})}
}
