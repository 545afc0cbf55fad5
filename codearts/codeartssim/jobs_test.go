package codeartssim_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3/model"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// startSim starts an unauthenticated simulator with opts.
func startSim(t *testing.T, opts ...codeartssim.Option) *codeartssim.Server {
	t.Helper()
	sim := codeartssim.New(opts...)
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { require.NoError(t, sim.Close()) })
	return sim
}

// listPage reads one page of a list answer in either shape: the ids, each
// job's disabled flag, and the total.
func listPage(t *testing.T, body map[string]any) (ids []string, disabled map[string]bool, total int) {
	t.Helper()
	list, ok := body["jobs"].([]any)
	tot := body["total"]
	if res, isResult := body["result"].(map[string]any); isResult {
		list, _ = res["job_list"].([]any)
		tot = res["total"]
		require.Equal(t, "success", body["status"])
	} else {
		require.True(t, ok, "neither shape: %v", body)
	}
	disabled = make(map[string]bool)
	for _, v := range list {
		j := v.(map[string]any)
		id := j["id"].(string)
		ids = append(ids, id)
		disabled[id] = j["disabled"].(bool)
	}
	return ids, disabled, int(tot.(float64))
}

func TestCatalogListsPageBothShapes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		giveShape codeartssim.ListShape
		wantFirst int // page_index of the first page
	}{
		{"sdk shape counts pages from 1", codeartssim.ShapeSDK, 1},
		{"result shape counts pages from 0", codeartssim.ShapeResult, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 3, Jobs: 25, Disabled: 0.4, Seed: 7}),
				codeartssim.WithListShape(tt.giveShape))
			truth := sim.Jobs()
			require.Len(t, truth, 25)
			require.Len(t, sim.DisabledJobs(), 10)

			var seen []string
			disabled, calls := 0, int64(0)
			for _, p := range sim.Projects() {
				for page := tt.wantFirst; ; page++ {
					status, body, _ := send(t, sim, http.MethodGet, fmt.Sprintf("/v3/%s/jobs?page_index=%d&page_size=4", p, page), nil)
					require.Equal(t, http.StatusOK, status)
					calls++
					ids, dis, total := listPage(t, body)
					if len(ids) == 0 {
						break
					}
					require.Len(t, ids, min(4, total-4*(page-tt.wantFirst)))
					seen = append(seen, ids...)
					for _, d := range dis {
						if d {
							disabled++
						}
					}
				}
			}
			want := make([]string, len(truth))
			for i, j := range truth {
				want[i] = j.ID
			}
			require.Equal(t, want, seen, "every job once, in catalog order")
			require.Equal(t, 10, disabled)

			// The v1 list holds every project's jobs, from page 0, with project_id.
			status, body, _ := send(t, sim, http.MethodGet, "/v1/job/list?page_index=6&page_size=4", nil)
			require.Equal(t, http.StatusOK, status)
			ids, _, total := listPage(t, body)
			require.Equal(t, 25, total)
			require.Equal(t, []string{truth[24].ID}, ids)
			require.Equal(t, truth[24].ProjectID, body["result"].(map[string]any)["job_list"].([]any)[0].(map[string]any)["project_id"])
			require.Equal(t, map[string]int64{codeartssim.ReadProjectJobs: calls, codeartssim.ReadJobList: 1},
				sim.Stats().Reads)
		})
	}
}

func TestCatalogRejectsBadPages(t *testing.T) {
	sim := startSim(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 3}))
	for _, q := range []string{"page_size=101", "page_size=0", "page_index=-1", "page_size=x"} {
		status, body, _ := send(t, sim, http.MethodGet, "/v1/job/list?"+q, nil)
		require.Equal(t, http.StatusBadRequest, status, q)
		require.Equal(t, codeartssim.CodeInvalidParam, body["error_code"], q)
	}
}

func TestRecoverEnablesAndShowDisableSaysSo(t *testing.T) {
	sim, b := setup(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 2, Jobs: 6, Disabled: 1}))
	sdk := rawSDKClient(t, sim.URL(), testAK, testSK, nil)
	jobs := sim.Jobs()
	job, refusing := jobs[0], jobs[1]
	at := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	require.True(t, sim.Disable(job.ID, "alice", "outage INC-42", at))
	require.True(t, sim.Refuse(refusing.ID, true))

	// The SDK reads the job list (its own model) and the disable check.
	list, err := sdk.ShowJobListByProjectId(&model.ShowJobListByProjectIdRequest{ProjectId: job.ProjectID, PageIndex: 1, PageSize: 10})
	require.NoError(t, err)
	require.Equal(t, int32(3), *list.Total)
	require.True(t, *(*list.Jobs)[0].Disabled)
	show, err := sdk.ShowDisable(&model.ShowDisableRequest{JobId: job.ID})
	require.NoError(t, err)
	require.Equal(t, int32(1), *show.Result.Disabled)
	require.Equal(t, "alice", *show.Result.Forbiddener)
	require.Equal(t, "outage INC-42", *show.Result.Reson)

	for _, id := range []string{job.ID, refusing.ID} {
		_, err = b.client.Recover(t.Context(), id, "")
		require.NoError(t, err, "both answer success")
	}
	got, _ := sim.Job(job.ID)
	require.False(t, got.Disabled, "recover enabled the job")
	require.Equal(t, "alice", got.DisabledBy, "the last disable is kept")
	got, _ = sim.Job(refusing.ID)
	require.True(t, got.Disabled, "a refusing job stays disabled")
	require.Equal(t, 1, sim.Recovered(refusing.ID), "the simulator counts the answer it gave")

	show, err = sdk.ShowDisable(&model.ShowDisableRequest{JobId: job.ID})
	require.NoError(t, err)
	require.Equal(t, int32(0), *show.Result.Disabled)

	// A job the catalog does not hold: 422 DEVCB.00031006, as v1 routes say it.
	status, body, _ := send(t, sim, http.MethodGet, "/v1/job/"+jobA+"/check/disable", nil)
	require.Equal(t, http.StatusUnauthorized, status, "reads are signed like recovers")
	_ = body
	_, err = sdk.ShowDisable(&model.ShowDisableRequest{JobId: jobA})
	require.ErrorContains(t, err, codeartssim.CodeJobNotFoundV1)
}

func TestReadsGetTheAnswerFaults(t *testing.T) {
	sim := startSim(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 5}))
	p := sim.Projects()[0]
	sim.ScriptReads(2, codeartssim.StandardOutcome(http.StatusTooManyRequests), codeartssim.BackendThrottle)
	path := "/v3/" + p + "/jobs?page_index=1&page_size=10"
	status, _, _ := send(t, sim, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, status)
	status, body, hdr := send(t, sim, http.MethodGet, path, nil)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, codeartssim.CodeThrottled, body["error_code"])
	require.NotEmpty(t, hdr.Get("Retry-After"))
	status, body, _ = send(t, sim, http.MethodGet, path, nil)
	require.Equal(t, http.StatusInternalServerError, status)
	require.Equal(t, codeartssim.CodeTooManyRequests, body["error_code"])
	status, _, _ = send(t, sim, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, status)

	sim.SetOutage(true)
	status, _, _ = send(t, sim, http.MethodGet, path, nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	sim.SetOutage(false)
	sim.Configure(codeartssim.WithRoute404(true))
	status, body, _ = send(t, sim, http.MethodGet, path, nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, codeartssim.CodeNoSuchAPI, body["error_code"])
}

func TestGenerateJobsIsReproducible(t *testing.T) {
	seed := codeartssim.JobSeed{Projects: 4, Jobs: 40, Disabled: 0.25, Seed: 3, DisabledAt: time.Unix(1_800_000_000, 0)}
	a, b := codeartssim.GenerateJobs(seed, time.Time{}), codeartssim.GenerateJobs(seed, time.Time{})
	require.Equal(t, a, b)
	n := 0
	for _, j := range a {
		if j.Disabled {
			n++
			require.NotEmpty(t, j.DisabledBy)
			require.False(t, j.DisabledAt.After(seed.DisabledAt))
		}
	}
	require.Equal(t, 10, n)
}
