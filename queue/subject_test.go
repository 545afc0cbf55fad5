package queue

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// subjectCovered agrees with nats-server's SubjectMatchesFilter.
func TestSubjectCovered(t *testing.T) {
	subjects := []string{"a", "a.b", "a.b.c", "a.*", "a.>", "*", ">", "*.b", "a.*.c", "b.b", "a.b.>", "a.*.>"}
	for _, s := range subjects {
		for _, f := range subjects {
			require.Equal(t, server.SubjectMatchesFilter(s, f), subjectCovered(s, f), "subject %q, filter %q", s, f)
		}
	}
}
