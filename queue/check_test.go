package queue_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// ReadSyncSetting reads what the server's /varz says of JetStream's fsync.
func TestReadSyncSetting(t *testing.T) {
	for _, tt := range []struct {
		name         string
		giveAlways   bool
		giveInterval time.Duration
		want         queue.SyncSetting
	}{
		{name: "default", want: queue.SyncSetting{Server: "n1", Interval: 2 * time.Minute}},
		{name: "interval", giveInterval: 10 * time.Second, want: queue.SyncSetting{Server: "n1", Interval: 10 * time.Second}},
		{name: "always", giveAlways: true, want: queue.SyncSetting{Server: "n1", Always: true, Interval: 2 * time.Minute}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := startServer(t, true, func(o *server.Options) {
				o.ServerName, o.HTTPHost, o.HTTPPort = "n1", "127.0.0.1", -1
				o.SyncAlways, o.SyncInterval = tt.giveAlways, tt.giveInterval
			})
			url := fmt.Sprintf("http://%s", ns.MonitorAddr())
			client := &http.Client{Timeout: 10 * time.Second}
			t.Cleanup(client.CloseIdleConnections)
			got, err := queue.ReadSyncSetting(context.Background(), client, url)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
