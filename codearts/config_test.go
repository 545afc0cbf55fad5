package codearts

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		give    Config
		wantErr string // "" = valid
	}{
		{name: "zero", give: Config{}},
		{name: "full", give: Config{
			Region: "cn-east-3", Regions: []string{"cn-north-4", "ap-southeast-3"}, ProjectID: "p",
			Timeout: time.Second, MaxConns: 8, Credentials: Credentials{AK: "a", SK: "s"},
		}},
		{name: "any region with endpoint", give: Config{Endpoint: "http://127.0.0.1:8081", Region: "sim-1", Regions: []string{"sim-2"}}},
		{name: "negative timeout", give: Config{Timeout: -time.Second}, wantErr: "Config.Timeout"},
		{name: "negative max conns", give: Config{MaxConns: -1}, wantErr: "Config.MaxConns"},
		{name: "relative endpoint", give: Config{Endpoint: "127.0.0.1:8081"}, wantErr: "Config.Endpoint"},
		{name: "ftp endpoint", give: Config{Endpoint: "ftp://host"}, wantErr: "Config.Endpoint"},
		{name: "unknown region", give: Config{Region: "xx-nowhere-1"}, wantErr: "Config.Region"},
		{name: "unknown allowed region", give: Config{Regions: []string{"cn-east-3", "xx-nowhere-1"}}, wantErr: "Config.Regions[1]"},
		{name: "empty allowed region", give: Config{Endpoint: "http://h", Regions: []string{""}}, wantErr: "Config.Regions[0]"},
		{name: "AK without SK", give: Config{Credentials: Credentials{AK: "a"}}, wantErr: "Config.Credentials: SK is required"},
		{name: "SK without AK", give: Config{Credentials: Credentials{SK: "s"}}, wantErr: "Config.Credentials: AK is required"},
		{name: "token only", give: Config{Credentials: Credentials{SecurityToken: "t"}}, wantErr: "Config.Credentials: AK and SK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	require.Equal(t, DefaultRegion, got.Region)
	require.Equal(t, DefaultTimeout, got.Timeout)
	require.Equal(t, DefaultMaxConns, got.MaxConns)
	require.NotNil(t, got.Logger)
}

func TestTransportSizedToConcurrency(t *testing.T) {
	c, err := NewClient(Config{MaxConns: 200, Endpoint: "http://127.0.0.1:1", Credentials: Credentials{AK: "a", SK: "s"}})
	require.NoError(t, err)
	require.GreaterOrEqual(t, c.rt.base.MaxIdleConnsPerHost, 200)
	require.False(t, c.rt.base.DisableKeepAlives)
	require.Zero(t, c.http.Retries)
	require.Zero(t, c.http.Timeout)
	require.NoError(t, c.Close())
}
