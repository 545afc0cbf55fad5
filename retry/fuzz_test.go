package retry

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	for _, s := range []string{
		"120", "0", "-1", "+5", "1.5", "", " 7 ", "9223372036", "9223372037",
		"Wed, 21 Oct 2015 07:28:30 GMT", "Wednesday, 21-Oct-15 07:29:00 GMT", "Wed Oct 21 07:28:10 2015",
		"Tue, 20 Oct 2015 07:28:00 GMT", "2015-10-21T07:28:30Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		require.GreaterOrEqual(t, d, time.Duration(0), "never negative")
		if !ok {
			require.Zero(t, d)
			return
		}
		// A valid delta-seconds value formats back to itself (up to leading zeros).
		if d < time.Hour && isDigits(v) {
			got, ok := ParseRetryAfter(strconv.FormatInt(int64(d/time.Second), 10), now)
			require.True(t, ok)
			require.Equal(t, d, got)
		}
	})
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"500:CB.00060211=throttled", "*:CB.00060201=client_error", "418=transient", "*=success",
		"500", "=x", "0=transient", "500:=throttled", "500=canceled", " 409 : A-b_c.9 = Forbidden ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			require.ErrorIs(t, err, ErrBadRule)
			require.Contains(t, err.Error(), "retry: bad classify rule")
			return
		}
		back, err := ParseRule(r.String())
		require.NoError(t, err, "String of a parsed rule parses")
		require.Equal(t, r, back)
		c, err := NewClassifier(r)
		require.NoError(t, err, "a parsed rule is a valid rule")
		if r.Status != 0 && r.Status/100 != 2 {
			require.Equal(t, r.Class, c.Classify(apiErr(r.Status, r.ErrorCode)), "the rule decides what it names")
		}
	})
}
