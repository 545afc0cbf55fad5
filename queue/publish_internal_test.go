package queue

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestParsePubAck(t *testing.T) {
	tests := []struct {
		name          string
		give          string
		wantDuplicate bool
		wantAPIError  bool
		wantInvalid   bool
	}{
		{name: "stored", give: `{"stream":"DLQ","seq":7}`},
		{name: "stored in a domain", give: `{"stream":"DLQ","seq":7,"domain":"hub"}`},
		{name: "duplicate as the server writes it", give: `{"stream":"DLQ","seq":1,"duplicate": true}`, wantDuplicate: true},
		{name: "duplicate", give: `{"stream":"DLQ","seq":7,"duplicate":true}`, wantDuplicate: true},
		{name: "duplicate false", give: `{"stream":"DLQ","seq":7,"duplicate":false}`},
		{name: "other field order", give: `{"seq":7,"stream":"DLQ","duplicate":true}`, wantDuplicate: true},
		{name: "refused", give: `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"DLQ","seq":0}`, wantAPIError: true},
		{name: "refused alone", give: `{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}`, wantAPIError: true},
		{name: "no stream", give: `{"seq":7}`, wantInvalid: true},
		{name: "not JSON", give: `+OK`, wantInvalid: true},
		{name: "empty", give: ``, wantInvalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dup, err := parsePubAck([]byte(tt.give))
			switch {
			case tt.wantAPIError:
				var apiErr *jetstream.APIError
				require.ErrorAs(t, err, &apiErr)
			case tt.wantInvalid:
				require.ErrorIs(t, err, jetstream.ErrInvalidJSAck)
			default:
				require.NoError(t, err)
				require.Equal(t, tt.wantDuplicate, dup)
			}
		})
	}
}

func BenchmarkParsePubAck(b *testing.B) {
	ack := []byte(`{"stream":"CODEARTS_RECOVER_RESULTS","seq":123456}`)
	for b.Loop() {
		if _, err := parsePubAck(ack); err != nil {
			b.Fatal(err)
		}
	}
}
