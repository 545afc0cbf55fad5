package retry

import (
	"context"
	"fmt"
	"io"
	"testing"
)

func BenchmarkClassify(b *testing.B) {
	operator, err := ParseRules([]string{"500:CB.00069999=throttled", "*:CB.00060300=success", "418=transient"})
	if err != nil {
		b.Fatal(err)
	}
	withRules, err := NewClassifier(operator...)
	if err != nil {
		b.Fatal(err)
	}
	benches := []struct {
		name       string
		classifier *Classifier
		err        error
	}{
		{"nil", nil, nil},
		{"throttle_500_CB.00060211", nil, apiErr(500, "CB.00060211")},
		{"status_404", nil, apiErr(404, "CB.00060404")},
		{"status_503", nil, apiErr(503, "")},
		{"wrapped_answer", nil, fmt.Errorf("recover cb5f: %w", apiErr(429, "APIG.0308"))},
		{"transport_eof", nil, fmt.Errorf("post: %w", io.ErrUnexpectedEOF)},
		{"canceled", nil, fmt.Errorf("post: %w", context.Canceled)},
		{"operator_rules_miss", withRules, apiErr(503, "")},
		{"operator_rules_hit", withRules, apiErr(500, "CB.00069999")},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bb.classifier.Classify(bb.err)
			}
		})
	}
}

func BenchmarkLimiter(b *testing.B) {
	ctx := context.Background()
	b.Run("wait_unlimited", func(b *testing.B) {
		l, _ := NewLimiter(LimiterConfig{})
		b.ReportAllocs()
		for b.Loop() {
			_ = l.Wait(ctx)
		}
	})
	b.Run("wait_capped_not_binding", func(b *testing.B) {
		l, _ := NewLimiter(LimiterConfig{Rate: 1e12})
		b.ReportAllocs()
		for b.Loop() {
			_ = l.Wait(ctx)
		}
	})
	b.Run("succeeded_at_cap", func(b *testing.B) {
		l, _ := NewLimiter(LimiterConfig{Rate: 100})
		b.ReportAllocs()
		for b.Loop() {
			l.Succeeded()
		}
	})
	b.Run("wait_succeeded_parallel", func(b *testing.B) {
		l, _ := NewLimiter(LimiterConfig{Rate: 1e12})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = l.Wait(ctx)
				l.Succeeded()
			}
		})
	})
}
