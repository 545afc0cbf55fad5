package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// envName is the environment variable that fills a flag: RECOVER_ + the
// flag name in upper snake case.
func envName(flag string) string {
	return "RECOVER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envAliases are extra environment names some flags also read: the nats
// CLI's, so an operator's shell set up for `nats` works for the worker.
var envAliases = map[string][]string{
	"nats-url":      {"NATS_URL"},
	"nats-user":     {"NATS_USER"},
	"nats-password": {"NATS_PASSWORD"},
	"nats-creds":    {"NATS_CREDS"},
	"nats-nkey":     {"NATS_NKEY"},
	"nats-tls-ca":   {"NATS_CA"},
	"nats-tls-cert": {"NATS_CERT"},
	"nats-tls-key":  {"NATS_KEY"},
	"context":       {"NATS_CONTEXT"},
}

// layerConfig fills every flag the command line did not set: first from the
// environment, then from the YAML file named by --config (if any). Flags
// are the source of truth; an unknown YAML key or a bad value is an error
// naming it.
func layerConfig(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { set[f.Name] = true })

	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if set[f.Name] || f.Name == "help" {
			return
		}
		for _, name := range append([]string{envName(f.Name)}, envAliases[f.Name]...) {
			v, ok := lookupEnv(name)
			if !ok || v == "" {
				continue
			}
			if err := setFlag(fs, f, v); err != nil {
				errs = append(errs, fmt.Errorf("%s (from %s): %w", f.Name, name, err))
			}
			set[f.Name] = true
			return
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}

	cf := fs.Lookup("config")
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	path := cf.Value.String()
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the config file on purpose
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			errs = append(errs, fmt.Errorf("config %s: unknown key %q", path, k))
			continue
		}
		if set[k] {
			continue
		}
		vals := yamlValues(doc[k])
		var err error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = sv.Replace(vals)
		} else if len(vals) == 1 {
			err = fs.Set(f.Name, vals[0])
		} else {
			err = fmt.Errorf("expects one value, got %d", len(vals))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("config %s: %s: %w", path, k, err))
		}
	}
	return errors.Join(errs...)
}

// yamlValues turns a YAML scalar or list into flag values.
func yamlValues(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	default:
		return []string{fmt.Sprint(x)}
	}
}

func setFlag(fs *pflag.FlagSet, f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		// Environment lists are comma separated; replace, don't append.
		return sv.Replace(splitList(v))
	}
	return fs.Set(f.Name, v)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
