//go:build !nodemo

package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/discover"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// demoCampaignName is the campaign the demo runs.
const demoCampaignName = "demo"

// demoCampaignSummary is the demo's campaign: discover → enqueue → drain
// (with the demo's other requests, by the same pool) → verify (the
// projects listed again: none of the campaign's jobs may still be
// disabled) → report (`worker report --campaign demo`).
type demoCampaignSummary struct {
	Name string `json:"name"`
	// Listed and Disabled are what discover read (Pages pages of Projects
	// projects).
	Projects int `json:"projects"`
	Pages    int `json:"pages"`
	Listed   int `json:"listed"`
	Disabled int `json:"disabled"`
	// StillDisabled counts the campaign's jobs the verifying list found
	// disabled after the drain; a recovered one among them is lost.
	StillDisabled int `json:"still_disabled"`
	// Report is `worker report --campaign demo --json` after the drain.
	Report *admin.CampaignReport `json:"report"`
	// ids are the jobs enqueued.
	ids []string
}

// demoCampaignSim is the simulator's job catalog for a campaign of n
// jobs, half of them disabled, over two projects.
func demoCampaignSim(n int, seed uint64) codeartssim.Option {
	return codeartssim.WithJobs(codeartssim.JobSeed{Projects: 2, Jobs: n, Disabled: 0.5, Seed: seed})
}

// discoverDemoCampaign discovers the simulator's disabled jobs, as worker
// discover does (paging under the pool's limiter, retrying its faults),
// and enqueues them as `discover --enqueue --campaign demo` does.
func discoverDemoCampaign(ctx context.Context, conn *queue.Conn, api *codearts.Client, sim *codeartssim.Server, lim discover.Limiter) (*demoCampaignSummary, error) {
	sum := &demoCampaignSummary{Name: demoCampaignName, Projects: len(sim.Projects())}
	// 37 a page: the pages do not divide the projects evenly.
	p, err := discover.Run(ctx, discover.Config{API: api, Projects: sim.Projects(), PageSize: 37, Limiter: lim, Policy: retry.DefaultPolicy()},
		func(j discover.Job) error {
			sum.ids = append(sum.ids, j.ID)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("campaign: discover: %w", err)
	}
	sum.Pages, sum.Listed, sum.Disabled = p.Pages, p.Listed, p.Disabled
	qcfg := conn.Config()
	client, err := producer.New(conn.NC, producer.Config{Subject: qcfg.Subject, Stream: qcfg.Stream})
	if err != nil {
		return nil, err
	}
	if _, err := client.StartCampaign(ctx, demoCampaignName); err != nil {
		return nil, err
	}
	var stored int64
	for _, id := range sum.ids {
		res, err := client.Enqueue(ctx, producer.Request{JobID: id, Reason: "demo campaign", RequestedBy: "worker demo", Campaign: demoCampaignName})
		if err != nil {
			return nil, fmt.Errorf("campaign: enqueue %s: %w", id, err)
		}
		if !res.Duplicate {
			stored++
		}
	}
	if _, err := client.AddToCampaign(ctx, demoCampaignName, stored); err != nil {
		return nil, err
	}
	return sum, nil
}

// finish verifies the campaign by listing its projects again and reads its
// report.
func (s *demoCampaignSummary) finish(ctx context.Context, conn *queue.Conn, api *codearts.Client, sim *codeartssim.Server, lim discover.Limiter) error {
	mine := make(map[string]bool, len(s.ids))
	for _, id := range s.ids {
		mine[id] = true
	}
	_, err := discover.Run(ctx, discover.Config{API: api, Projects: sim.Projects(), PageSize: 37, Limiter: lim, Policy: retry.DefaultPolicy()},
		func(j discover.Job) error {
			if mine[j.ID] {
				s.StillDisabled++
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("campaign: verify: %w", err)
	}
	// The result events of the last requests may land just after their
	// acks: read until every request of the campaign has one, or a bound.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err := admin.CollectCampaign(ctx, conn, s.Name, admin.CampaignConfig{})
		if err != nil {
			return fmt.Errorf("campaign: report: %w", err)
		}
		s.Report = rep
		if rep.InFlight == 0 || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lost counts the campaign's jobs reported recovered but still disabled:
// at most the jobs still disabled.
func (s *demoCampaignSummary) lost() int {
	if s == nil || s.Report == nil {
		return 0
	}
	return int(min(int64(s.StillDisabled), s.Report.Recovered))
}

func (s *demoCampaignSummary) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign %s\t%d disabled of %d jobs in %d projects (%d pages)\n", s.Name, s.Disabled, s.Listed, s.Projects, s.Pages)
	if r := s.Report; r != nil {
		fmt.Fprintf(tw, "  enqueued\t%d\n", r.Enqueued)
		fmt.Fprintf(tw, "  recovered\t%d\n", r.Recovered)
		fmt.Fprintf(tw, "  dead-lettered\t%d\n", r.DeadLettered)
		fmt.Fprintf(tw, "  in flight\t%d\n", r.InFlight)
	}
	fmt.Fprintf(tw, "  still disabled\t%d\t(listed again after the drain)\n", s.StillDisabled)
	_ = tw.Flush()
}
