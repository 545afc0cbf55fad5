package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"
)

// newLogger builds the process logger: JSON (default) or console, at level,
// with sampling so a bulk drain does not log every recovered request.
func newLogger(w io.Writer, format, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", level)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		if useColor(w) {
			encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("log-format: %q is not json or console", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	// Per message: the first 20 lines a second, then 1 in 100. Pauses,
	// breaker transitions and errors are rare and always pass. At debug
	// every line is written: whoever asks for each attempt wants them all.
	if lvl > zapcore.DebugLevel {
		core = zapcore.NewSamplerWithOptions(core, time.Second, 20, 100)
	}
	return zap.New(core, zap.ErrorOutput(zapcore.AddSync(w))), nil
}

// startupFields describe the build and the effective value of every run
// flag for the startup line. Secrets never appear: flags that hold one
// print only whether they are set, and URLs lose their user info.
func (o *runOptions) startupFields() []zap.Field {
	bi := buildinfo.Get(buildVersion())
	fields := []zap.Field{
		zap.String("version", bi.Version), zap.String("commit", bi.Commit), zap.String("go", bi.GoVersion),
	}
	if o.fs != nil {
		fields = append(fields, zap.Object("config", flagConfig{o.fs}))
	}
	return fields
}

// flagConfig logs a flag set as an object keyed by snake_case flag name.
type flagConfig struct{ fs *pflag.FlagSet }

func (c flagConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	c.fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		enc.AddString(strings.ReplaceAll(f.Name, "-", "_"), redactFlag(f.Name, f.Value.String()))
	})
	return nil
}

// secretFlag matches the names of flags whose value is itself a secret
// (not a path to one): --nats-password, --nats-token, and any future
// *-secret, *-sk, *-seed or *-key-value flag.
var secretFlag = regexp.MustCompile(`(^|-)(password|passwd|token|secret|sk|seed|ak-sk|key-value)$`)

// redactFlag returns a flag value fit for a log line.
func redactFlag(name, value string) string {
	switch {
	case value == "":
		return ""
	case secretFlag.MatchString(name):
		return "[redacted]"
	case strings.Contains(value, "://"):
		return queue.RedactURL(value)
	}
	return value
}
