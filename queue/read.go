package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StoredMsg is a message read back from a stream.
type StoredMsg struct {
	Seq     uint64
	Subject string
	Header  map[string][]string
	Data    []byte
	Time    time.Time
}

// ErrIncomplete says a Scan stopped before the last sequence the stream
// held when it began: what fn saw is only part of the stream.
var ErrIncomplete = errors.New("scan incomplete")

// scanWait is how long one fetch of a Scan waits for messages, and
// scanEmptyTries how many empty fetches in a row, with messages still
// left up to the end, make a Scan give up with ErrIncomplete.
var (
	scanWait       = 2 * time.Second
	scanEmptyTries = 5
)

// Scan reads every message of stream in order, from its first sequence to
// the last one present when Scan started, calling fn for each, without
// holding them in memory. It uses an ephemeral ordered consumer, so it
// neither acks nor disturbs the worker's consumer. A fetch that comes back
// empty ends the scan only if the stream holds nothing more up to that last
// sequence (deleted meanwhile); otherwise Scan fetches again, and if it
// cannot get there it returns an error wrapping ErrIncomplete: a caller
// never acts on part of a stream believing it is all of it.
func (c *Conn) Scan(ctx context.Context, stream string, fn func(StoredMsg) error) error {
	_, err := c.ScanFrom(ctx, stream, 0, fn)
	return err
}

// ScanFrom is Scan from sequence from on (0 or 1: the whole stream). It
// returns the last sequence the stream held when it began, so a caller
// that reads a stream as it grows asks next for what follows it, and never
// reads a message twice.
func (c *Conn) ScanFrom(ctx context.Context, stream string, from uint64, fn func(StoredMsg) error) (last uint64, err error) {
	s, err := c.JS.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	last = info.State.LastSeq
	if info.State.Msgs == 0 || from > last {
		return last, nil
	}
	occ := jetstream.OrderedConsumerConfig{}
	var pos uint64 // the last sequence read
	if from > info.State.FirstSeq {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
		pos = from - 1
	}
	oc, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return last, fmt.Errorf("read %s: %w", stream, err)
	}
	return last, scan(ctx, s, oc, stream, info, pos, fn)
}

func scan(ctx context.Context, s jetstream.Stream, oc jetstream.Consumer, stream string, info *jetstream.StreamInfo, pos uint64, fn func(StoredMsg) error) error {
	last := info.State.LastSeq
	empty, read := 0, uint64(0)
	for {
		// Ask for no more than the stream held at the start and is not read
		// yet: a pull for more would wait out scanWait at the end of every
		// scan (the status page scans several streams a refresh); a scan
		// from a later sequence has no more than last-pos left.
		want := int(min(max(min(info.State.Msgs-min(read, info.State.Msgs), last-pos), 1), 256))
		done, got, err := scanBatch(ctx, oc, want, last, &pos, fn)
		read += uint64(got) //nolint:gosec // a count of messages, never negative
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if done {
			return nil
		}
		if got > 0 {
			empty = 0
			continue
		}
		more, err := remains(ctx, s, pos, last)
		if err != nil {
			return fmt.Errorf("read %s: read up to sequence %d of %d, then could not tell whether more remain: %w: %w", stream, pos, last, ErrIncomplete, err)
		}
		if !more {
			return nil // everything up to last was deleted meanwhile
		}
		if empty++; empty >= scanEmptyTries {
			return fmt.Errorf("read %s: read up to sequence %d of %d, then %d fetches came back empty: %w", stream, pos, last, empty, ErrIncomplete)
		}
	}
}

// SeqAt returns the sequence of the first message of stream stored at or
// after t (the stream's last sequence + 1 when none is): where a reader of
// what happened since t starts, found with a binary search over stored
// times (about 20 reads for a million messages) instead of a scan.
func (c *Conn) SeqAt(ctx context.Context, stream string, t time.Time) (uint64, error) {
	s, err := c.JS.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1 // the answer is in [lo, hi]
	if info.State.Msgs == 0 {
		return hi, nil
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		// The first message at or after mid (mid itself may be deleted).
		m, err := s.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(">"))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			hi = mid // nothing from mid on
			continue
		case err != nil:
			return 0, fmt.Errorf("stream %s: time %s: %w", stream, t.Format(time.RFC3339), err)
		}
		if m.Time.Before(t) {
			lo = m.Sequence + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// remains reports whether stream holds a message after pos up to last.
func remains(ctx context.Context, s jetstream.Stream, pos, last uint64) (bool, error) {
	m, err := s.GetMsg(ctx, pos+1, jetstream.WithGetMsgSubject(">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.Sequence <= last, nil
}

// scanBatch reads one batch, moving pos to the last sequence read; the pull
// ends within scanWait and is drained when it returns, so no fetch
// goroutine outlives it (ctx is checked between batches).
func scanBatch(ctx context.Context, oc jetstream.Consumer, want int, last uint64, pos *uint64, fn func(StoredMsg) error) (done bool, got int, err error) {
	mb, err := oc.Fetch(want, jetstream.FetchMaxWait(scanWait))
	if err != nil {
		if benign(err) && ctx.Err() == nil {
			return false, 0, nil // an empty fetch; Scan decides
		}
		return false, 0, err
	}
	defer func() {
		for range mb.Messages() {
			// drain so the fetch goroutine exits
		}
	}()
	for m := range mb.Messages() {
		got++
		meta, err := m.Metadata()
		if err != nil {
			return false, got, err
		}
		*pos = meta.Sequence.Stream
		if err := fn(StoredMsg{Seq: meta.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp}); err != nil {
			return false, got, err
		}
		if meta.Sequence.Stream >= last {
			return true, got, nil
		}
	}
	if err := mb.Error(); err != nil && !benign(err) {
		return false, got, err
	}
	return false, got, ctx.Err()
}

// StreamInfo returns a stream's current state.
func (c *Conn) StreamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error) {
	s, err := c.JS.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return info, nil
}
