package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// dlqDuplicateWindow is the dead-letter stream's Nats-Msg-Id window. A dead
// letter's id is derived from the request's stream sequence, so a worker
// that crashed after dead-lettering but before acking publishes the same
// id again on redelivery; an hour covers any AckWait and restart.
const dlqDuplicateWindow = time.Hour

// requestHeaderRoom is what the request stream's MaxMsgSize allows on top of
// MaxBodyBytes for headers (message id, trace context, CloudEvents
// attributes): the decoder judges the body, the stream only keeps out what
// no decoder would accept.
const requestHeaderRoom = 8 << 10

// recordMaxMsgSize bounds the messages of the streams of records the worker
// writes (dead letters, result events, advisories), capped at the server's
// max_payload. The worker keeps a dead letter under 32 KiB and a result
// event under 4 KiB (a large original body is kept as size, SHA-256 and a
// prefix); the margin lets a later version write larger records without a
// stream update, while a stray multi-megabyte publish is refused.
const recordMaxMsgSize = 256 << 10

// ErrIncompatible is wrapped by the error for an existing stream the worker
// cannot work with as it is (e.g. a request stream without work-queue
// retention). NATS cannot change it in place: an operator must.
var ErrIncompatible = errors.New("incompatible stream")

// RequestStreamConfig is the request stream the worker creates: work-queue
// retention (a message leaves when acked), file storage, Discard new so a
// full stream refuses new requests instead of silently dropping old ones,
// and MaxMsgSize so an oversized request is refused at publish.
func (c Config) RequestStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "CodeArts Build recover requests",
		Subjects:    []string{c.Subject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		MaxMsgSize:  int32(c.MaxBodyBytes + requestHeaderRoom), //nolint:gosec // Validate bounds MaxBodyBytes
	}
}

// DLQStreamConfig is the dead-letter stream: limits retention for DLQMaxAge.
func (c Config) DLQStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.DLQStream,
		Description: "CodeArts Build recover requests that failed for good",
		Subjects:    []string{c.DLQSubject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.DLQMaxAge,
		Replicas:    c.Replicas,
		Duplicates:  min(dlqDuplicateWindow, c.DLQMaxAge),
		MaxMsgSize:  recordMaxMsgSize,
	}
}

// ResultStreamConfig is the result-event stream: limits retention for
// ResultMaxAge, so automation and reconciliation can read outcomes back.
func (c Config) ResultStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.ResultStream,
		Description: "CodeArts Build recover results, one per finished request",
		Subjects:    []string{c.ResultSubject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.ResultMaxAge,
		Replicas:    c.Replicas,
		Duplicates:  min(dlqDuplicateWindow, c.ResultMaxAge),
		MaxMsgSize:  recordMaxMsgSize,
	}
}

// ConsumerConfig is the durable pull consumer the pool fetches from.
func (c Config) ConsumerConfig() jetstream.ConsumerConfig {
	c = c.WithDefaults()
	return jetstream.ConsumerConfig{
		Durable:       c.Consumer,
		Description:   "codearts-recover-worker pool",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
		FilterSubject: c.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Pull requests larger than the pool never happen (we fetch for
		// free slots only); the cap protects against a misbehaving client.
		MaxRequestBatch: 1024,
		Replicas:        0, // inherit the stream's
	}
}

// streamConfigs are the streams Ensure creates, as it would create them on
// this server: requests, dead letters and results (when on). Advisories
// creates the advisory stream.
func (c *Conn) streamConfigs() []jetstream.StreamConfig {
	cfg := c.cfg
	out := []jetstream.StreamConfig{c.onServer(cfg.RequestStreamConfig()), c.onServer(cfg.DLQStreamConfig())}
	if cfg.Results() {
		out = append(out, c.onServer(cfg.ResultStreamConfig()))
	}
	return out
}

// onServer caps sc's MaxMsgSize at the server's max_payload, the most any
// message can be anyway.
func (c *Conn) onServer(sc jetstream.StreamConfig) jetstream.StreamConfig {
	if mp := c.NC.MaxPayload(); mp > 0 && int64(sc.MaxMsgSize) > mp {
		sc.MaxMsgSize = int32(mp) //nolint:gosec // below an int32 MaxMsgSize
	}
	return sc
}

// Ensure creates the streams and the consumer that do not exist yet. A
// stream that exists keeps its operator's settings (a missing subject is
// added): each difference from what the worker would create is logged at
// warn, and changed only with UpdateStreams. A request stream without
// work-queue retention is an error wrapping ErrIncompatible. With NoCreate
// it only checks that the streams and the consumer exist.
//
// Ensure makes one try; Await runs it until JetStream can answer.
func (c *Conn) Ensure(ctx context.Context) error {
	cfg := c.cfg
	if cfg.NoCreate {
		for _, name := range []string{cfg.Stream, cfg.DLQStream} {
			s, err := c.JS.Stream(ctx, name)
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			if name == cfg.Stream {
				if err := checkRequestStream(s.CachedInfo().Config); err != nil {
					return err
				}
			}
		}
		if _, err := c.JS.Consumer(ctx, cfg.Stream, cfg.Consumer); err != nil {
			return fmt.Errorf("consumer %s on %s: %w", cfg.Consumer, cfg.Stream, err)
		}
		return nil
	}
	for _, sc := range c.streamConfigs() {
		if err := c.ensureStream(ctx, sc); err != nil {
			return err
		}
	}
	if _, err := c.JS.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.ConsumerConfig()); err != nil {
		return fmt.Errorf("create or update consumer %s on %s: %w", cfg.Consumer, cfg.Stream, err)
	}
	return nil
}

// checkRequestStream refuses a request stream the pool cannot drain
// correctly: with limits or interest retention an acknowledged request
// stays in the stream (or one without consumers vanishes), and NATS cannot
// change a stream's retention.
func checkRequestStream(have jetstream.StreamConfig) error {
	if have.Retention == jetstream.WorkQueuePolicy {
		return nil
	}
	return fmt.Errorf("%w: stream %s has %s retention, but the request stream must have work-queue retention "+
		"(a request leaves it once finished); NATS cannot change retention in place: move its messages elsewhere, "+
		"delete it and let the worker create it, or point --stream at a work-queue stream",
		ErrIncompatible, have.Name, retentionName(have.Retention))
}

// ensureStream creates sc, or leaves an existing stream's settings as they
// are (adding a missing subject), logging each difference from sc once;
// with UpdateStreams it changes what NATS can change in place.
func (c *Conn) ensureStream(ctx context.Context, sc jetstream.StreamConfig) error {
	s, err := c.JS.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := c.JS.CreateStream(ctx, sc); err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
		c.log.Info("stream created", zap.String("stream", sc.Name), zap.Strings("subjects", sc.Subjects),
			zap.Int("replicas", sc.Replicas), zap.Int32("max_msg_size", sc.MaxMsgSize))
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", sc.Name, err)
	}
	have := s.CachedInfo().Config
	if sc.Name == c.cfg.Stream {
		if err := checkRequestStream(have); err != nil {
			return err
		}
	}
	update := have
	update.Subjects = mergeSubjects(have.Subjects, sc.Subjects)
	changed := len(update.Subjects) != len(have.Subjects)
	var applied []Drift
	for _, d := range diffStream(have, sc) {
		if d.Setting == settingSubjects {
			continue
		}
		if c.cfg.UpdateStreams && d.Updatable {
			settingByName(d.Setting).copy(&update, sc)
			applied = append(applied, d)
			changed = true
			continue
		}
		c.warnOnce(d)
	}
	if !changed {
		return nil
	}
	if _, err := c.JS.UpdateStream(ctx, update); err != nil {
		return fmt.Errorf("update stream %s: %w", sc.Name, err)
	}
	if len(update.Subjects) != len(have.Subjects) {
		c.log.Info("stream subjects added", zap.String("stream", sc.Name), zap.Strings("subjects", update.Subjects))
	}
	for _, d := range applied {
		c.log.Warn("stream setting changed (--update-streams)", zap.String("stream", d.Stream),
			zap.String("setting", d.Setting), zap.String("was", d.Have), zap.String("now", d.Want))
	}
	return nil
}

// warnOnce logs a drift the first time this connection sees it (Ensure may
// run again while the start-up waits for JetStream).
func (c *Conn) warnOnce(d Drift) {
	key := d.Stream + "\x00" + d.Setting + "\x00" + d.Have + "\x00" + d.Want
	if _, seen := c.warned.LoadOrStore(key, true); seen {
		return
	}
	c.log.Warn("existing stream setting kept", zap.String("stream", d.Stream), zap.String("setting", d.Setting),
		zap.String("have", d.Have), zap.String("worker", d.Want), zap.String("detail", d.String()))
}

// Drift is one setting in which an existing stream differs from what the
// worker would create.
type Drift struct {
	Stream  string `json:"stream"`
	Setting string `json:"setting"`
	// Have is the stream's value, Want the worker's, both as shown to
	// operators ("unlimited", "336h", "workqueue").
	Have string `json:"have"`
	Want string `json:"want"`
	// Updatable: `worker run --update-streams` would change it. Storage and
	// retention cannot be changed in place.
	Updatable bool `json:"updatable"`
}

// String says what differs and how to change it, for a log line or a
// status page.
func (d Drift) String() string {
	if d.Setting == settingSubjects {
		return fmt.Sprintf("stream %s lacks subject %s; the worker adds it at start", d.Stream, d.Want)
	}
	s := fmt.Sprintf("stream %s keeps %s %s; the worker would create %s", d.Stream, d.Setting, d.Have, d.Want)
	if d.Updatable {
		return s + "; pass --update-streams to change it"
	}
	return s + "; NATS cannot change it in place (recreate the stream to change it)"
}

// StreamDrift compares each of the worker's streams that exists with what
// the worker would create with this Config, setting by setting. A stream
// that does not exist is left out (the worker creates it as it wants).
func (c *Conn) StreamDrift(ctx context.Context) ([]Drift, error) {
	var out []Drift
	for _, sc := range append(c.streamConfigs(), c.onServer(c.cfg.advisoryStreamConfig())) {
		s, err := c.JS.Stream(ctx, sc.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", sc.Name, err)
		}
		out = append(out, diffStream(s.CachedInfo().Config, sc)...)
	}
	return out, nil
}

const settingSubjects = "subjects"

// streamSetting is one compared setting: how it is shown (normalised, so the
// server's spelling of a default matches ours) and how it is copied.
type streamSetting struct {
	name      string
	updatable bool
	show      func(jetstream.StreamConfig) string
	copy      func(dst *jetstream.StreamConfig, src jetstream.StreamConfig)
}

// streamSettings are the settings the worker chooses when it creates a
// stream; everything else (description, compression, sources…) is the
// operator's alone.
var streamSettings = []streamSetting{
	{"retention", false, func(s jetstream.StreamConfig) string { return retentionName(s.Retention) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Retention = s.Retention }},
	{"storage", false, func(s jetstream.StreamConfig) string { return storageName(s.Storage) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Storage = s.Storage }},
	{"replicas", true, func(s jetstream.StreamConfig) string { return strconv.Itoa(max(s.Replicas, 1)) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Replicas = s.Replicas }},
	{"max_age", true, func(s jetstream.StreamConfig) string { return showDuration(s.MaxAge, "unlimited") },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxAge = s.MaxAge }},
	{"max_msgs", true, func(s jetstream.StreamConfig) string { return showLimit(s.MaxMsgs) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxMsgs = s.MaxMsgs }},
	{"max_bytes", true, func(s jetstream.StreamConfig) string { return showLimit(s.MaxBytes) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxBytes = s.MaxBytes }},
	{"max_msg_size", true, func(s jetstream.StreamConfig) string { return showLimit(int64(s.MaxMsgSize)) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxMsgSize = s.MaxMsgSize }},
	{"max_msgs_per_subject", true, func(s jetstream.StreamConfig) string { return showLimit(s.MaxMsgsPerSubject) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxMsgsPerSubject = s.MaxMsgsPerSubject }},
	{"duplicate_window", true, func(s jetstream.StreamConfig) string { return showDuration(s.Duplicates, "none") },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Duplicates = s.Duplicates }},
	{"discard", true, func(s jetstream.StreamConfig) string { return discardName(s.Discard) },
		func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Discard = s.Discard }},
}

func settingByName(name string) streamSetting {
	for _, s := range streamSettings {
		if s.name == name {
			return s
		}
	}
	panic("queue: no stream setting " + name)
}

// diffStream lists how have (an existing stream) differs from want (what
// the worker would create): each compared setting, and each subject of
// want that none of have's subjects covers.
func diffStream(have, want jetstream.StreamConfig) []Drift {
	var out []Drift
	for _, w := range want.Subjects {
		if !covered(have.Subjects, w) {
			out = append(out, Drift{Stream: have.Name, Setting: settingSubjects,
				Have: strings.Join(have.Subjects, ", "), Want: w, Updatable: true})
		}
	}
	for _, s := range streamSettings {
		if s.name == "duplicate_window" && want.Duplicates == 0 {
			continue // the worker leaves it to the server's default
		}
		if h, w := s.show(have), s.show(want); h != w {
			out = append(out, Drift{Stream: have.Name, Setting: s.name, Have: h, Want: w, Updatable: s.updatable})
		}
	}
	return out
}

// mergeSubjects is have plus each subject of want that none of have's
// (wildcards included) already covers.
func mergeSubjects(have, want []string) []string {
	out := slices.Clone(have)
	for _, w := range want {
		if !covered(out, w) {
			out = append(out, w)
		}
	}
	return out
}

func covered(patterns []string, subject string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return subjectCovered(subject, p) })
}

func retentionName(r jetstream.RetentionPolicy) string {
	switch r {
	case jetstream.LimitsPolicy:
		return "limits"
	case jetstream.InterestPolicy:
		return "interest"
	case jetstream.WorkQueuePolicy:
		return "workqueue"
	}
	return strconv.Itoa(int(r))
}

func storageName(s jetstream.StorageType) string {
	switch s {
	case jetstream.FileStorage:
		return "file"
	case jetstream.MemoryStorage:
		return "memory"
	}
	return strconv.Itoa(int(s))
}

func discardName(d jetstream.DiscardPolicy) string {
	switch d {
	case jetstream.DiscardOld:
		return "old"
	case jetstream.DiscardNew:
		return "new"
	}
	return strconv.Itoa(int(d))
}

// showLimit shows a count or size limit; zero and negative mean none (the
// server stores -1 for "not set").
func showLimit(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

// showDuration shows a duration without trailing zero units (2160h, 2m,
// 1h30m), and zero as zero.
func showDuration(d time.Duration, zero string) string {
	if d <= 0 {
		return zero
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
