package queue

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOverlaps(t *testing.T) {
	roles := Config{}.WithDefaults().streamRoles()
	tests := []struct {
		name     string
		give     map[string][]string // stream → its subjects
		wantSubj []string            // the worker subjects caught, in order
	}{
		{name: "as the worker creates them", give: map[string][]string{
			DefaultStream: {DefaultSubject}, DefaultDLQStream: {DefaultDLQSubject}, DefaultResultStream: {DefaultResultSubject}}},
		{name: "request stream on a wildcard under the request subject", give: map[string][]string{
			DefaultStream: {DefaultSubject, DefaultSubject + ".>"}},
			wantSubj: []string{DefaultDLQSubject, DefaultResultSubject}},
		{name: "dead-letter stream on a wildcard above", give: map[string][]string{
			DefaultDLQStream: {"codearts.build.*"}},
			wantSubj: []string{DefaultSubject}},
		{name: "results stream takes one token", give: map[string][]string{
			DefaultResultStream: {"codearts.build.recover.*"}},
			wantSubj: []string{DefaultDLQSubject}},
		{name: "a stream's own subject is no overlap", give: map[string][]string{DefaultDLQStream: {DefaultDLQSubject, "codearts.build.recover.dlq.>"}}},
		{name: "other streams are not the worker's", give: map[string][]string{"EVERYTHING": {">"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, o := range overlaps(roles, tt.give) {
				got = append(got, o.Subject)
				require.NotEqual(t, o.Role, o.Holds)
			}
			require.Equal(t, tt.wantSubj, got)
		})
	}
}
