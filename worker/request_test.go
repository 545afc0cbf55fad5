package worker

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const goodID = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

func TestDecode(t *testing.T) {
	regions := func(r string) bool { return r == "cn-north-4" || r == "ap-southeast-3" }
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		giveBody   string
		giveHeader map[string][]string
		giveMax    int
		want       Request
		wantErr    string
	}{
		{name: "json object", giveBody: `{"job_id":"` + goodID + `"}`, want: Request{JobID: goodID}},
		{name: "json all fields", giveBody: `{"job_id":"` + goodID + `","region":"cn-north-4","reason":"outage","requested_by":"ops","requested_at":"2026-11-27T10:00:00Z","extra":1}`,
			want: Request{JobID: goodID, Region: "cn-north-4", Reason: "outage", RequestedBy: "ops", RequestedAt: at}},
		{name: "json campaign", giveBody: `{"job_id":"` + goodID + `","campaign":"outage-42"}`, want: Request{JobID: goodID, Campaign: "outage-42"}},
		{name: "cloudevents data campaign", giveBody: `{"specversion":"1.0","id":"1","data":{"job_id":"` + goodID + `","campaign":"outage-42"}}`,
			want: Request{JobID: goodID, Campaign: "outage-42"}},
		{name: "campaign too long", giveBody: `{"job_id":"` + goodID + `","campaign":"` + strings.Repeat("c", 257) + `"}`, wantErr: "campaign is over 256 bytes"},
		{name: "bare id", giveBody: goodID, want: Request{JobID: goodID}},
		{name: "bare id with newline", giveBody: goodID + "\n", want: Request{JobID: goodID}},
		{name: "cloudevents structured", giveBody: `{"specversion":"1.0","type":"codearts.recover","source":"/ops","id":"1","data":{"job_id":"` + goodID + `","region":"ap-southeast-3"}}`,
			want: Request{JobID: goodID, Region: "ap-southeast-3"}},
		{name: "cloudevents extensions named like request fields", giveBody: `{"specversion":"1.0","id":"1","region":5,"reason":{"k":1},"data":{"job_id":"` + goodID + `"}}`,
			want: Request{JobID: goodID}},
		{name: "cloudevents structured string data", giveBody: `{"specversion":"1.0","id":"1","data":"` + goodID + `"}`, want: Request{JobID: goodID}},
		{name: "cloudevents binary json", giveBody: `{"job_id":"` + goodID + `"}`,
			giveHeader: map[string][]string{"ce-specversion": {"1.0"}, "ce-type": {"x"}}, want: Request{JobID: goodID}},
		{name: "cloudevents binary bare id, header case", giveBody: goodID,
			giveHeader: map[string][]string{"Ce-Specversion": {"1.0"}}, want: Request{JobID: goodID}},

		{name: "empty", giveBody: "", wantErr: "empty body"},
		{name: "bad json", giveBody: `{"job_id":`, wantErr: "not valid JSON"},
		{name: "job id missing", giveBody: `{"region":"cn-north-4"}`, wantErr: "job_id is missing"},
		{name: "job id number", giveBody: `{"job_id":12}`, wantErr: "not a valid request object"},
		{name: "31 chars", giveBody: goodID[:31], wantErr: "not 32 ASCII"},
		{name: "33 chars", giveBody: goodID + "a", wantErr: "not 32 ASCII"},
		{name: "path traversal", giveBody: "../" + goodID[3:], wantErr: "not 32 ASCII"},
		{name: "percent encoded dot", giveBody: "%2e" + goodID[3:], wantErr: "not 32 ASCII"},
		{name: "slash", giveBody: goodID[:16] + "/" + goodID[17:], wantErr: "not 32 ASCII"},
		{name: "query", giveBody: goodID[:31] + "?", wantErr: "not 32 ASCII"},
		{name: "fragment", giveBody: goodID[:31] + "#", wantErr: "not 32 ASCII"},
		{name: "crlf inside", giveBody: goodID[:16] + "\r\n" + goodID[18:], wantErr: "not 32 ASCII"},
		{name: "nul", giveBody: goodID[:31] + "\x00", wantErr: "not 32 ASCII"},
		{name: "unicode look-alike", giveBody: "сb5fa20de5fd4cf8be681d4bd6fdd2f", wantErr: "not 32 ASCII"},
		{name: "unknown region", giveBody: `{"job_id":"` + goodID + `","region":"eu-west-0"}`, wantErr: "region"},
		{name: "reason too long", giveBody: `{"job_id":"` + goodID + `","reason":"` + strings.Repeat("x", 257) + `"}`, wantErr: "reason"},
		{name: "bad requested_at", giveBody: `{"job_id":"` + goodID + `","requested_at":"yesterday"}`, wantErr: "RFC 3339"},
		{name: "over size", giveBody: `{"job_id":"` + goodID + `"}`, giveMax: 10, wantErr: "over the 10 byte limit"},
		{name: "cloudevents no data", giveBody: `{"specversion":"1.0","id":"1"}`, wantErr: "no data"},
		{name: "cloudevents null data", giveBody: `{"specversion":"1.0","data":null}`, wantErr: "no data"},
		{name: "cloudevents wrong version", giveBody: `{"specversion":"0.3","data":{"job_id":"` + goodID + `"}}`, wantErr: "specversion"},
		{name: "cloudevents base64", giveBody: `{"specversion":"1.0","data_base64":"eyJ9"}`, wantErr: "data_base64"},
		{name: "cloudevents array data", giveBody: `{"specversion":"1.0","data":[1]}`, wantErr: "JSON object"},
		{name: "deep nesting", giveBody: `{"job_id":"` + goodID + `","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, giveMax: 1 << 20, wantErr: "not valid JSON"},
		{name: "binary mode bad version", giveBody: goodID, giveHeader: map[string][]string{"ce-specversion": {"2.0"}}, wantErr: "specversion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.giveBody), tt.giveHeader, DecodeOptions{MaxBytes: tt.giveMax, ValidRegion: regions})
			if tt.wantErr != "" {
				require.Error(t, err)
				var ie *InvalidError
				require.ErrorAs(t, err, &ie)
				require.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		goodID, `{"job_id":"` + goodID + `"}`, ` { "job_id" : "` + goodID + `" , "reason":"r\u00e9","region":"x"} `,
		`{"job_id":"a","job_id":"b"}`, `{"JOB_ID":"` + goodID + `"}`, `{}`, `{"reason":"` + "\xff" + `"}`, `{"specversion":"1.0","data":{"job_id":"` + goodID + `"}}`,
		`{"specversion":"1.0","data":"` + goodID + `"}`, "", "{", "\x00\xff", `{"job_id":null}`, `[[[[`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, binary bool) {
		var h map[string][]string
		if binary {
			h = map[string][]string{"ce-specversion": {"1.0"}}
		}
		req, err := Decode(body, h, DecodeOptions{MaxBytes: 4096})
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error is not *InvalidError: %v", err)
			}
			return
		}
		// Anything accepted must be safe to put in a URL path.
		if !ValidJobID(req.JobID) {
			t.Fatalf("accepted invalid job id %q", req.JobID)
		}
		if req.Region != "" {
			t.Fatalf("accepted region %q with no allowed set", req.Region)
		}
	})
}

// The message ids of dead letters and result events are part of the wire:
// a worker of another version must derive the same ones, or a crash between
// storing and acking during a rolling upgrade would store a record twice.
func TestRecordIDsAreStable(t *testing.T) {
	tests := []struct {
		giveSeq    uint64
		giveStored time.Time
	}{
		{giveSeq: 1, giveStored: time.Unix(0, 1)},
		{giveSeq: 123456, giveStored: time.Date(2026, 11, 27, 20, 47, 33, 123456789, time.UTC)},
		{giveSeq: math.MaxUint64, giveStored: time.Unix(0, math.MaxInt64)},
		{giveSeq: 7, giveStored: time.Unix(-5, 0)},
	}
	for _, tt := range tests {
		require.Equal(t, fmt.Sprintf("dlq-%d-%d", tt.giveSeq, tt.giveStored.UnixNano()), DeadLetterID(tt.giveSeq, tt.giveStored))
		require.Equal(t, fmt.Sprintf("result-%d-%d", tt.giveSeq, tt.giveStored.UnixNano()), ResultID(tt.giveSeq, tt.giveStored))
	}
}
