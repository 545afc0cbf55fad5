package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Permission is one thing the worker does on NATS and whether this
// connection's user may do it, as `worker doctor` probes it.
type Permission struct {
	// What the worker needs it for, in plain words.
	What string `json:"what"`
	// Subject is the subject the worker publishes to for it.
	Subject string `json:"subject"`
	// Allowed: the server routed the probe. False with Err empty: the
	// server refused it (a permission violation).
	Allowed bool `json:"allowed"`
	// Err is set when the probe could not tell (no answer in time).
	Err string `json:"error,omitempty"`
}

// probe is one permission probe: a publish the server routes only when the
// user may publish on subject, built so that routing it changes nothing.
type probe struct {
	what, subject string
	header        nats.Header
	body          []byte
	reply         bool // the server answers it: wait for that answer
}

// noSuchStream is the expected stream of a probe publish on a stream's
// subject: JetStream refuses it (10060, stream does not match) before it
// stores anything.
const noSuchStream = "WORKER-DOCTOR-PROBE-NO-SUCH-STREAM"

// badJSON is the body of a probe of a JetStream API call: the server
// answers "invalid JSON" (or 400 for a pull request) before acting.
var badJSON = []byte("{")

// probes are the worker's NATS permissions, as e2e/privilege_e2e_test.go
// finds them by running `worker run --no-create` with less: each is probed
// with a request the server answers without acting (a publish whose
// expected stream does not match, a JetStream API call with a body that is
// not JSON, an ack whose body is no ack verb).
func (c *Conn) probes() []probe {
	cfg := c.cfg
	s, cons := cfg.Stream, cfg.Consumer
	adv, advCons := cfg.AdvisoryStream(), cons+"-maxdeliver"
	bucket, outcomes := s+"_RATE", cfg.OutcomeBucketName()
	expect := nats.Header{jetstream.ExpectedStreamHeader: []string{noSuchStream}}
	api := func(what, subject string) probe {
		return probe{what: what, subject: subject, body: badJSON, reply: true}
	}
	store := func(what, subject string) probe {
		return probe{what: what, subject: subject, header: expect, reply: true}
	}
	out := []probe{
		api("read the request stream", "$JS.API.STREAM.INFO."+s),
		api("read the dead-letter stream", "$JS.API.STREAM.INFO."+cfg.DLQStream),
		api("read the consumer (consumer info)", "$JS.API.CONSUMER.INFO."+s+"."+cons),
		api("fetch requests", "$JS.API.CONSUMER.MSG.NEXT."+s+"."+cons),
		{what: "acknowledge requests", subject: "$JS.ACK." + s + "." + cons + ".doctor", body: []byte("-DOCTOR")},
		api("pause the consumer fleet-wide on bad credentials", "$JS.API.CONSUMER.PAUSE."+s+"."+cons),
		store("publish dead letters", cfg.DLQSubject),
		store("requeue hand-backs on the request subject", cfg.Subject),
	}
	if cfg.Results() {
		out = append(out, store("publish result events", cfg.ResultSubject))
	}
	return append(out,
		api("advisories: read the MAX_DELIVERIES consumer", "$JS.API.CONSUMER.INFO."+adv+"."+advCons),
		api("advisories: fetch them", "$JS.API.CONSUMER.MSG.NEXT."+adv+"."+advCons),
		probe{what: "advisories: acknowledge them", subject: "$JS.ACK." + adv + "." + advCons + ".doctor", body: []byte("-DOCTOR")},
		api("advisories: read a stranded request", "$JS.API.STREAM.MSG.GET."+s),
		api("advisories: delete a stranded request", "$JS.API.STREAM.MSG.DELETE."+s),
		api("KV: read the fleet rate bucket", "$JS.API.STREAM.INFO.KV_"+bucket),
		probe{what: "KV: read the fleet rate", subject: "$JS.API.DIRECT.GET.KV_" + bucket + ".$KV." + bucket + ".doctor", reply: true},
		store("KV: write the fleet rate", "$KV."+bucket+".doctor"),
		api("KV: read the outcome bucket", "$JS.API.STREAM.INFO.KV_"+outcomes),
		probe{what: "KV: read a claimed outcome", subject: "$JS.API.DIRECT.GET.KV_" + outcomes + ".$KV." + outcomes + ".doctor", reply: true},
		store("KV: claim an outcome", "$KV."+outcomes+".doctor"),
	)
}

// CheckPermissions probes each NATS permission the worker needs (publish,
// consumer info, fetch and ack, pause, advisories, the KV bucket) with a
// message the server answers without acting on it, waiting at most timeout
// for each answer. Nothing is stored, fetched, acked or deleted.
func (c *Conn) CheckPermissions(ctx context.Context, timeout time.Duration) []Permission {
	var out []Permission
	for _, p := range c.probes() {
		allowed, err := c.probe(ctx, p, timeout)
		perm := Permission{What: p.what, Subject: p.subject, Allowed: allowed}
		if err != nil {
			perm.Err = err.Error()
		}
		out = append(out, perm)
	}
	return out
}

// errNoAnswer is a probe the server neither refused nor answered in time.
var errNoAnswer = errors.New("no answer")

func (c *Conn) probe(ctx context.Context, p probe, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := &nats.Msg{Subject: p.subject, Header: p.header, Data: p.body}
	var sub *nats.Subscription
	if p.reply {
		msg.Reply = c.NC.NewInbox()
		var err error
		if sub, err = c.NC.SubscribeSync(msg.Reply); err != nil {
			return false, fmt.Errorf("subscribe to a reply inbox: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if err := c.NC.PublishMsg(msg); err != nil {
		return false, err
	}
	// The server answers a refused publish (or subscription) with -ERR
	// before the PONG of this flush, and nats.go records it as the last
	// error before it reads the PONG.
	if err := c.NC.FlushWithContext(ctx); err != nil {
		return false, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	if err := c.violated(p.subject, msg.Reply); err != nil {
		return false, nil
	}
	if sub == nil {
		return true, nil
	}
	// Any answer, "no responders" included, says the server routed it.
	_, err := sub.NextMsgWithContext(ctx)
	switch {
	case err == nil, errors.Is(err, nats.ErrNoResponders):
		return true, nil
	case c.violated(p.subject, msg.Reply) != nil:
		return false, nil
	case errors.Is(err, context.DeadlineExceeded):
		return false, fmt.Errorf("%w within %s", errNoAnswer, timeout)
	}
	return false, fmt.Errorf("%w: %w", errNoAnswer, err)
}

// violated returns the connection's last error when it is the server's
// refusal to let this user publish to subject or subscribe to inbox.
func (c *Conn) violated(subject, inbox string) error {
	err := c.NC.LastError()
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, strings.ToLower(`publish to "`+subject+`"`)) ||
		inbox != "" && strings.Contains(msg, strings.ToLower(`subscription to "`+inbox+`"`)) {
		return err
	}
	return nil
}

// ServerTime asks the server for its clock: the time stamp of the request
// stream's info (the stream must exist).
func (c *Conn) ServerTime(ctx context.Context) (time.Time, error) {
	s, err := c.JS.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return time.Time{}, fmt.Errorf("stream %s: %w", c.cfg.Stream, err)
	}
	ts := s.CachedInfo().TimeStamp
	if ts.IsZero() {
		return time.Time{}, errors.New("the server sent no time stamp")
	}
	return ts, nil
}

// ConsumerDrift compares the worker's consumer on the server with what
// `worker run` would create (ack policy, AckWait, MaxDeliver,
// MaxAckPending, filter subject). exists is false when there is none.
// `worker run` updates it to its own at start unless NoCreate.
func (c *Conn) ConsumerDrift(ctx context.Context) (drift []Drift, exists bool, err error) {
	want := c.cfg.ConsumerConfig()
	info, err := c.ConsumerInfo(ctx, c.cfg.Stream, c.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	have := info.Config
	name := c.cfg.Stream + "/" + c.cfg.Consumer
	add := func(setting, h, w string) {
		if h != w {
			drift = append(drift, Drift{Stream: name, Setting: setting, Have: h, Want: w, Updatable: true})
		}
	}
	add("ack_policy", have.AckPolicy.String(), want.AckPolicy.String())
	add("ack_wait", showDuration(have.AckWait, "30s"), showDuration(want.AckWait, "30s"))
	add("max_deliver", fmt.Sprint(have.MaxDeliver), fmt.Sprint(want.MaxDeliver))
	add("max_ack_pending", fmt.Sprint(have.MaxAckPending), fmt.Sprint(want.MaxAckPending))
	filter := have.FilterSubject
	if filter == "" && len(have.FilterSubjects) > 0 {
		filter = strings.Join(have.FilterSubjects, ", ")
	}
	add("filter_subject", filter, want.FilterSubject)
	return drift, true, nil
}

// SyncSetting is how a server flushes JetStream writes to disk, read from
// its monitoring endpoint.
type SyncSetting struct {
	Server string `json:"server"`
	// Always is sync_interval: always (every write is fsynced).
	Always bool `json:"always"`
	// Interval is the background fsync interval otherwise (server default
	// 2m).
	Interval time.Duration `json:"interval"`
}

// ReadSyncSetting reads the JetStream sync setting of the server whose
// monitoring endpoint is monitorURL (e.g. http://nats:8222), from its
// /varz. client nil means http.DefaultClient.
func ReadSyncSetting(ctx context.Context, client *http.Client, monitorURL string) (SyncSetting, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(monitorURL, "/")+"/varz", nil)
	if err != nil {
		return SyncSetting{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return SyncSetting{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return SyncSetting{}, fmt.Errorf("GET /varz: %s", resp.Status)
	}
	var v struct {
		Name      string `json:"server_name"`
		JetStream struct {
			Config *struct {
				SyncInterval time.Duration `json:"sync_interval"`
				SyncAlways   bool          `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&v); err != nil {
		return SyncSetting{}, fmt.Errorf("GET /varz: %w", err)
	}
	if v.JetStream.Config == nil {
		return SyncSetting{}, errors.New("GET /varz: no JetStream configuration (is JetStream enabled on this server?)")
	}
	interval := v.JetStream.Config.SyncInterval
	if interval == 0 {
		interval = 2 * time.Minute // the server's default
	}
	return SyncSetting{Server: v.Name, Always: v.JetStream.Config.SyncAlways, Interval: interval}, nil
}

// SubjectOverlap is a subject the worker publishes on for one purpose that
// a stream of another purpose stores: dead letters caught by the request
// stream are delivered to the workers as requests (each is poison, dead-
// lettered again, caught again), requests caught by the DLQ never reach a
// worker. The server refuses two streams that overlap, so the second
// stream cannot even be created.
type SubjectOverlap struct {
	// Subject is the worker's subject and Role what it publishes there.
	Subject string `json:"subject"`
	Role    string `json:"role"`
	// Stream stores Subject through its subject Pattern, and holds Holds.
	Stream  string `json:"stream"`
	Pattern string `json:"pattern"`
	Holds   string `json:"holds"`
}

// streamRole is one of the worker's streams and the subject it is for.
type streamRole struct {
	stream, subject, role string
}

func (c Config) streamRoles() []streamRole {
	roles := []streamRole{
		{c.Stream, c.Subject, "recover requests"},
		{c.DLQStream, c.DLQSubject, "dead letters"},
	}
	if c.Results() {
		roles = append(roles, streamRole{c.ResultStream, c.ResultSubject, "result events"})
	}
	return roles
}

// overlaps lists each role's subject that the existing subjects (by stream
// name) of another role's stream cover.
func overlaps(roles []streamRole, subjects map[string][]string) []SubjectOverlap {
	var out []SubjectOverlap
	for _, holder := range roles {
		for _, pattern := range subjects[holder.stream] {
			for _, r := range roles {
				if r.stream != holder.stream && subjectCovered(r.subject, pattern) {
					out = append(out, SubjectOverlap{Subject: r.subject, Role: r.role, Stream: holder.stream, Pattern: pattern, Holds: holder.role})
				}
			}
		}
	}
	return out
}

// SubjectOverlaps reads the subjects of the worker's streams that exist and
// lists the overlaps between them (see SubjectOverlap).
func (c *Conn) SubjectOverlaps(ctx context.Context) ([]SubjectOverlap, error) {
	roles := c.cfg.streamRoles()
	subjects := map[string][]string{}
	for _, r := range roles {
		s, err := c.JS.Stream(ctx, r.stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", r.stream, err)
		}
		subjects[r.stream] = s.CachedInfo().Config.Subjects
	}
	return overlaps(roles, subjects), nil
}
