package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// chartValues is the Helm chart's values file; its config block must offer
// every flag of `worker run` (as RECOVER_<FLAG>) with the same default.
const chartValues = "../../deploy/helm/codearts-recover-worker/values.yaml"

// notInChartConfig are the run flags the chart sets elsewhere: the ops port
// from metrics.port, NATS connection and secrets from the nats block, the
// page's token file from ui.tokenSecret, and --config (the chart uses the
// environment instead).
func notInChartConfig(flag string) bool {
	return flag == "config" || flag == "help" || flag == "http-addr" || flag == "ui-token-file" || flag == "context" || strings.HasPrefix(flag, "nats-")
}

// valuesKey is a flag name as a chart values key: dlq-max-age → dlqMaxAge.
func valuesKey(flag string) string {
	parts := strings.Split(flag, "-")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

func TestChartConfigCoversEveryRunFlag(t *testing.T) {
	data, err := os.ReadFile(chartValues)
	require.NoError(t, err)
	var values struct {
		Config map[string]any `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(data, &values))

	defaults := runDefaults()
	seen := map[string]bool{}
	defaults.VisitAll(func(f *pflag.Flag) {
		if notInChartConfig(f.Name) {
			return
		}
		key := valuesKey(f.Name)
		seen[key] = true
		v, ok := values.Config[key]
		if !assertChart(t, ok, "flag --%s has no config.%s in the chart's values.yaml (and values.schema.json)", f.Name, key) {
			return
		}
		// A value the chart sets must be the flag's own default, read the
		// way the worker reads RECOVER_<FLAG>.
		env := chartEnv(v)
		if env == "" {
			return
		}
		fresh := runDefaults()
		require.NoError(t, setFlag(fresh, fresh.Lookup(f.Name), env), "config.%s: %q", key, env)
		require.Equal(t, f.Value.String(), fresh.Lookup(f.Name).Value.String(), "config.%s default differs from --%s", key, f.Name)
	})
	for key := range values.Config {
		require.True(t, seen[key], "config.%s in the chart matches no flag of `worker run`", key)
	}
}

func assertChart(t *testing.T, ok bool, msg string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(msg, args...)
	}
	return ok
}

// chartEnv renders a values entry as the chart's ConfigMap does.
func chartEnv(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(x)
	}
}
