package producer_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

const goodID = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

var at = time.Date(2024, 6, 1, 12, 30, 0, 500, time.FixedZone("CST", 8*3600))

// The canonical body is what `worker enqueue` has always published (the
// JSON of worker.Request, campaign appended), and the worker reads it back
// as it was given.
func TestEncode(t *testing.T) {
	regions := []string{"cn-north-4", "cn-east-3"}
	tests := []struct {
		name      string
		give      producer.Request
		giveOpts  producer.EncodeOptions
		wantBody  string
		wantMsgID string
		wantErr   string
	}{
		{
			name: "job id only", give: producer.Request{JobID: goodID},
			wantBody: `{"job_id":"` + goodID + `"}`, wantMsgID: goodID,
		},
		{
			name:     "every field",
			give:     producer.Request{JobID: goodID, Region: "cn-east-3", Reason: `said "please" <now>`, RequestedBy: "ops", RequestedAt: at, Campaign: "outage-1"},
			giveOpts: producer.EncodeOptions{Regions: regions},
			wantBody: `{"job_id":"` + goodID + `","region":"cn-east-3","reason":"said \"please\" \u003cnow\u003e","requested_by":"ops",` +
				`"requested_at":"2024-06-01T12:30:00.0000005+08:00","campaign":"outage-1"}`,
			wantMsgID: goodID,
		},
		{
			name: "message id from options", give: producer.Request{JobID: goodID, Region: "cn-east-3"},
			giveOpts:  producer.EncodeOptions{MsgID: func(r producer.Request) (string, error) { return r.JobID + "-" + r.Region, nil }},
			wantBody:  `{"job_id":"` + goodID + `","region":"cn-east-3"}`,
			wantMsgID: goodID + "-cn-east-3",
		},
		{
			name: "no message id", give: producer.Request{JobID: goodID},
			giveOpts: producer.EncodeOptions{MsgID: func(producer.Request) (string, error) { return "", nil }},
			wantBody: `{"job_id":"` + goodID + `"}`,
		},
		{
			name: "reason of 256 characters", give: producer.Request{JobID: goodID, Reason: strings.Repeat("é", 256)},
			wantBody: `{"job_id":"` + goodID + `","reason":"` + strings.Repeat("é", 256) + `"}`, wantMsgID: goodID,
		},
		{name: "bad job id", give: producer.Request{JobID: "cb5fa20de5fd4cf8be681d4bd6fdd2f"}, wantErr: `invalid request: job_id "cb5fa20de5fd4cf8be681d4bd6fdd2f" is not 32 ASCII letters or digits`},
		{name: "missing job id", give: producer.Request{Reason: "x"}, wantErr: `job_id "" is not 32`},
		{name: "non-ASCII job id", give: producer.Request{JobID: strings.Repeat("é", 16)}, wantErr: "is not 32 ASCII letters or digits"},
		{name: "region outside the set", give: producer.Request{JobID: goodID, Region: "mars-1"}, giveOpts: producer.EncodeOptions{Regions: regions}, wantErr: `region "mars-1" is not in the allowed set`},
		{name: "reason too long", give: producer.Request{JobID: goodID, Reason: strings.Repeat("x", 257)}, wantErr: "reason is over 256 characters"},
		{name: "requested_by too long", give: producer.Request{JobID: goodID, RequestedBy: strings.Repeat("x", 257)}, wantErr: "requested_by is over 256 bytes"},
		{name: "campaign too long", give: producer.Request{JobID: goodID, Campaign: strings.Repeat("x", 257)}, wantErr: "campaign is over 256 bytes"},
		{name: "invalid UTF-8", give: producer.Request{JobID: goodID, Reason: "\xff"}, wantErr: "not valid UTF-8"},
		{name: "body over the limit", give: producer.Request{JobID: goodID, Reason: "0123456789"}, giveOpts: producer.EncodeOptions{MaxBytes: 60}, wantErr: "body of 67 bytes is over the 60 byte limit"},
		{name: "year out of range", give: producer.Request{JobID: goodID, RequestedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, wantErr: "invalid request: json: error calling MarshalJSON"},
		{
			name: "message id error", give: producer.Request{JobID: goodID},
			giveOpts: producer.EncodeOptions{MsgID: func(producer.Request) (string, error) { return "", errors.New("dedup-key: no") }},
			wantErr:  "invalid request: dedup-key: no",
		},
		{
			name: "message id with a line break", give: producer.Request{JobID: goodID},
			giveOpts: producer.EncodeOptions{MsgID: func(producer.Request) (string, error) { return "a\nb", nil }},
			wantErr:  `message id "a\nb" has a line break`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := producer.Encode(tt.give, tt.giveOpts)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				inv, ok := errors.AsType[*producer.InvalidError](err)
				require.True(t, ok, "an *InvalidError: %v", err)
				require.Equal(t, tt.give.JobID, inv.JobID)
				require.Empty(t, m.Data)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantBody, string(m.Data))
			require.Equal(t, tt.wantMsgID, m.MsgID)
			require.Equal(t, tt.give.JobID, m.JobID)

			// The body is what enqueue published before the library: the
			// JSON of the worker's own Request, campaign added.
			old, err := json.Marshal(worker.Request{JobID: tt.give.JobID, Region: tt.give.Region, Reason: tt.give.Reason,
				RequestedBy: tt.give.RequestedBy, RequestedAt: tt.give.RequestedAt})
			require.NoError(t, err)
			want := string(old)
			if tt.give.Campaign != "" {
				want = strings.TrimSuffix(want, "}") + `,"campaign":"` + tt.give.Campaign + `"}`
			}
			require.Equal(t, want, string(m.Data))
			requireWorkerReads(t, tt.give, m, tt.giveOpts)
		})
	}
}

// requireWorkerReads checks that the worker's decoder accepts m and reads
// r from it.
func requireWorkerReads(t *testing.T, r producer.Request, m producer.Message, opts producer.EncodeOptions) {
	t.Helper()
	got, err := worker.Decode(m.Data, nil, decodeOptions(opts))
	require.NoError(t, err)
	require.Equal(t, r.JobID, got.JobID)
	require.Equal(t, r.Region, got.Region)
	require.Equal(t, r.Reason, got.Reason)
	require.Equal(t, r.RequestedBy, got.RequestedBy)
	require.True(t, r.RequestedAt.Equal(got.RequestedAt), "requested_at %s, read %s", r.RequestedAt, got.RequestedAt)
}

// decodeOptions are the worker's settings that match opts (nil regions:
// any).
func decodeOptions(opts producer.EncodeOptions) worker.DecodeOptions {
	return worker.DecodeOptions{MaxBytes: opts.MaxBytes, ValidRegion: func(r string) bool {
		if opts.Regions == nil {
			return true
		}
		for _, ok := range opts.Regions {
			if r == ok {
				return true
			}
		}
		return false
	}}
}

// Encode refuses exactly what the worker would dead-letter as invalid (and
// invalid UTF-8, which the worker would read altered), and the worker
// reads back what it accepts.
func FuzzEncodeAgreesWithWorker(f *testing.F) {
	f.Add(goodID, "", "", "", "", int64(0))
	f.Add(goodID, "cn-north-4", "r", "ops", "c", int64(1717245000))
	f.Add(goodID, "mars-1", strings.Repeat("é", 257), "", "", int64(-1))
	f.Add("not-an-id", "", "", strings.Repeat("x", 300), "", int64(0))
	f.Add("0", "", "", "", "", int64(253402300800))
	f.Add(goodID, "", "\xff", "", "", int64(0))
	f.Add(goodID, "", strings.Repeat("\"", 256), strings.Repeat("<", 256), "", int64(253402300800))
	f.Fuzz(func(t *testing.T, id, region, reason, by, campaign string, unix int64) {
		r := producer.Request{JobID: id, Region: region, Reason: reason, RequestedBy: by, Campaign: campaign}
		if unix != 0 {
			r.RequestedAt = time.Unix(unix, 0).UTC()
		}
		opts := producer.EncodeOptions{MaxBytes: 1024, Regions: []string{"cn-north-4"}}
		m, err := producer.Encode(r, opts)
		if err == nil {
			requireWorkerReads(t, r, m, opts)
			return
		}
		_, ok := errors.AsType[*producer.InvalidError](err)
		require.True(t, ok, "an *InvalidError: %v", err)
		if strings.Contains(err.Error(), "not valid UTF-8") || strings.Contains(err.Error(), "MarshalJSON") {
			return // the worker would read it altered, or cannot be sent it
		}
		body, jerr := json.Marshal(r)
		if jerr != nil {
			return // a time no JSON can carry: nothing to compare
		}
		_, werr := worker.Decode(body, nil, decodeOptions(opts))
		require.Error(t, werr, "Encode refused what the worker accepts: %v", err)
	})
}

// The defaults are the worker's.
func TestDefaultsAreTheWorkers(t *testing.T) {
	require.Equal(t, queue.DefaultSubject, producer.DefaultSubject)
	require.Equal(t, queue.DefaultStream, producer.DefaultStream)
	id := `{"job_id":"` + goodID + `","padding":"`
	fits := id + strings.Repeat("x", producer.DefaultMaxBytes-len(id)-2) + `"}`
	_, err := worker.Decode([]byte(fits), nil, worker.DecodeOptions{})
	require.NoError(t, err, "a body of DefaultMaxBytes is accepted")
	_, err = worker.Decode([]byte(fits+" "), nil, worker.DecodeOptions{})
	require.Error(t, err, "one byte more is not")
}
