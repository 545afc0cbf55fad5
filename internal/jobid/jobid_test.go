package jobid

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValid(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{give: "cb5fa20de5fd4cf8be681d4bd6fdd2f6", want: true},
		{give: "CB5FA20DE5FD4CF8BE681D4BD6FDD2F6", want: true},
		{give: "cb5fa20de5fd4cf8be681d4bd6fdd2f", want: false},
		{give: "cb5fa20de5fd4cf8be681d4bd6fdd2f66", want: false},
		{give: "cb5fa20de5fd4cf8be681d4bd6fdd2f-", want: false},
		{give: "../fa20de5fd4cf8be681d4bd6fdd2f6", want: false},
		{give: "сb5fa20de5fd4cf8be681d4bd6fdd2f", want: false}, // Cyrillic с, 32 bytes
		{give: "", want: false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Valid(tt.give), "%q", tt.give)
	}
}
