package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
)

// goldenReport is a campaign in the middle of its drain, with every kind
// of outcome.
func goldenReport() *admin.CampaignReport {
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	at := start.Add(3 * time.Minute)
	return &admin.CampaignReport{
		Campaign: "outage-2026-12-03", StartedAt: start, Enqueued: 3000,
		Recovered: 2990, Verified: 2988, AlreadyEnabled: 4, DeadLettered: 5,
		ByReason: []admin.ReasonCount{
			{Reason: "client_error", ErrorCode: "CB.00031006", Count: 3},
			{Reason: "not_recovered", Count: 2},
		},
		InFlight: 1, LastResultAt: at,
		Jobs: []admin.JobOutcome{
			{JobID: "0a1b2c3d4e5f60718293a4b5c6d7e8f9", Outcome: "already_enabled", Attempts: 0, At: at, StreamSeq: 17},
			{JobID: "1b2c3d4e5f60718293a4b5c6d7e8f90a", Outcome: "dead_lettered", Reason: "client_error", Status: 422,
				ErrorCode: "CB.00031006", RequestID: "4a6f0b1c2d3e4f5a6b7c8d9e0f1a2b3c", Attempts: 1, At: at, StreamSeq: 18},
			{JobID: "2c3d4e5f60718293a4b5c6d7e8f90a1b", Outcome: "dead_lettered", Reason: "not_recovered", Status: 200,
				RequestID: "=cmd|' /C calc'!A0", Attempts: 5, At: at, StreamSeq: 19},
			{JobID: "3d4e5f60718293a4b5c6d7e8f90a1b2c", Outcome: "in_flight", StreamSeq: 20},
			{JobID: "4e5f60718293a4b5c6d7e8f90a1b2c3d", Outcome: "recovered", Verified: true, Status: 200,
				RequestID: "5b7f1c2d3e4f5a6b7c8d9e0f1a2b3c4d", Attempts: 2, At: at, StreamSeq: 21},
		},
	}
}

func TestReportGolden(t *testing.T) {
	r := goldenReport()
	var b bytes.Buffer
	require.NoError(t, printReport(&b, r, r.StartedAt.Add(10*time.Minute)))
	checkGolden(t, "report.golden", b.String())

	b.Reset()
	require.NoError(t, printReportJSON(&b, r))
	checkGolden(t, "report_json.golden", b.String())

	b.Reset()
	require.NoError(t, printReportCSV(&b, r))
	checkGolden(t, "report_csv.golden", b.String())
}

func TestReportFlagErrors(t *testing.T) {
	r := cli(t, "", "report")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.err, "campaign: campaign: empty name")
	r = cli(t, "", "report", "--campaign", "c", "--json", "--csv")
	require.Contains(t, r.err, "json and csv: choose one")
}
