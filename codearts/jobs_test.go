package codearts

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

func TestListProjectJobsBothShapes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		giveShape codeartssim.ListShape
		givePage  int
		wantShape string
	}{
		{"sdk model", codeartssim.ShapeSDK, 1, "jobs"},
		{"result.job_list", codeartssim.ShapeResult, 0, "result.job_list"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, b := setup(t, nil, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 2, Jobs: 9, Disabled: 0.5}),
				codeartssim.WithListShape(tt.giveShape))
			proj := b.sim.Projects()[0]
			p, err := c.ListProjectJobs(t.Context(), proj, tt.givePage, 3)
			require.NoError(t, err)
			require.Equal(t, tt.wantShape, p.Shape)
			require.Equal(t, 5, p.Total)
			want := b.sim.Jobs()[:3]
			require.Len(t, p.Jobs, 3)
			for i, j := range p.Jobs {
				require.Equal(t, want[i].ID, j.ID)
				require.Equal(t, want[i].Name, j.Name)
				require.Equal(t, want[i].Disabled, j.Disabled)
			}
		})
	}
}

func TestListJobsAcrossProjects(t *testing.T) {
	c, b := setup(t, nil, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 3, Jobs: 7, Disabled: 1}))
	p, err := c.ListJobs(t.Context(), 2, 3)
	require.NoError(t, err)
	require.Equal(t, 7, p.Total)
	last := b.sim.Jobs()[6]
	require.Equal(t, []JobSummary{{ID: last.ID, Name: last.Name, ProjectID: last.ProjectID, Creator: last.Creator, Disabled: true}}, p.Jobs)
}

func TestJobStateReadsShowDisable(t *testing.T) {
	c, b := setup(t, nil, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 2, Disabled: 0}))
	jobs := b.sim.Jobs()
	at := time.Date(2026, 12, 3, 9, 30, 0, 123e6, time.UTC)
	b.sim.Disable(jobs[0].ID, "alice", "outage INC-42", at)

	st, err := c.JobState(t.Context(), jobs[0].ID, "")
	require.NoError(t, err)
	require.Equal(t, JobState{Disabled: true, Name: jobs[0].Name, DisabledBy: "alice", Reason: "outage INC-42", DisabledAt: at}, st)
	st, err = c.JobState(t.Context(), jobs[1].ID, "")
	require.NoError(t, err)
	require.False(t, st.Disabled)

	_, err = c.Recover(t.Context(), jobs[0].ID, "")
	require.NoError(t, err)
	st, err = c.JobState(t.Context(), jobs[0].ID, "")
	require.NoError(t, err)
	require.False(t, st.Disabled, "recover enabled it")
}

func TestReadsAnswerLikeRecover(t *testing.T) {
	c, b := setup(t, nil, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 2}),
		codeartssim.WithRetryAfter(3*time.Second))
	proj := b.sim.Projects()[0]
	b.sim.ScriptReads(1,
		codeartssim.StandardOutcome(http.StatusTooManyRequests),
		codeartssim.BackendThrottle,
		codeartssim.StandardOutcome(http.StatusBadGateway),
		codeartssim.NoSuchAPI,
	)
	for _, want := range []struct {
		status     int
		code       string
		retryAfter time.Duration
	}{
		{429, codeartssim.CodeThrottled, 3 * time.Second},
		{500, codeartssim.CodeTooManyRequests, 0},
		{502, codeartssim.CodeBackendUnavailable, 0},
		{404, codeartssim.CodeNoSuchAPI, 0},
	} {
		_, err := c.ListProjectJobs(t.Context(), proj, 1, 10)
		var apiErr *APIError
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, want.status, apiErr.StatusCode)
		require.Equal(t, want.code, apiErr.ErrorCode)
		require.NotEmpty(t, apiErr.RequestID)
		require.InDelta(t, want.retryAfter.Seconds(), apiErr.RetryAfter.Seconds(), 1)
	}
	b.sim.Configure(codeartssim.WithHTMLErrors(1))
	_, err := c.JobState(t.Context(), b.sim.Jobs()[0].ID, "")
	var apiErr *APIError
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusBadGateway, apiErr.StatusCode)
	require.Contains(t, apiErr.ErrorMsg, "502 Bad Gateway")
	b.sim.Configure(codeartssim.WithHTMLErrors(0), codeartssim.WithErrorOn200(1))
	_, err = c.ListJobs(t.Context(), 0, 10)
	require.True(t, errors.As(err, &apiErr), "a 200 with an error code is no answer")
	require.Equal(t, codeartssim.CodeInternal, apiErr.ErrorCode)

	_, err = c.ListJobs(t.Context(), 0, 101)
	require.ErrorContains(t, err, "page size 101 is not 1 to 100")
}

func TestParsePageDefensively(t *testing.T) {
	for _, tt := range []struct {
		name    string
		give    string
		want    Page
		wantErr string
	}{
		{"sdk", `{"jobs":[{"id":"a","disabled":true}],"total":4}`, Page{Jobs: []JobSummary{{ID: "a", Disabled: true}}, Total: 4, Shape: "jobs"}, ""},
		{"result", `{"result":{"job_list":[{"id":"a","disabled":false,"project_id":"p"}],"total":"4"},"status":"success"}`,
			Page{Jobs: []JobSummary{{ID: "a", ProjectID: "p"}}, Total: 4, Shape: "result.job_list"}, ""},
		{"string body", `"{\"jobs\":[{\"job_id\":\"a\",\"disabled\":1}]}"`, Page{Jobs: []JobSummary{{ID: "a", Disabled: true}}, Total: -1, Shape: "jobs"}, ""},
		{"disabled as text", `{"jobs":[{"id":"a","disabled":"true"},{"id":"b","disabled":"0"},{"id":"c"}]}`,
			Page{Jobs: []JobSummary{{ID: "a", Disabled: true}, {ID: "b"}, {ID: "c"}}, Total: -1, Shape: "jobs"}, ""},
		{"empty page", `{"result":{"total":10,"job_list":null}}`, Page{Total: 10, Shape: "result.job_list"}, ""},
		{"no id", `{"jobs":[{"job_name":"x"}]}`, Page{}, "job 0 has no id"},
		{"bad disabled", `{"jobs":[{"id":"a","disabled":"maybe"}]}`, Page{}, "is not a boolean"},
		{"neither", `{"status":"success"}`, Page{}, "neither jobs nor result.job_list"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePage([]byte(tt.give))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseJobState(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		give string
		want JobState
	}{
		{"milliseconds", `{"result":{"disabled":1,"forbiddener":"a","reson":"r","forbidden_time":1796290200000},"status":"success"}`,
			JobState{Disabled: true, DisabledBy: "a", Reason: "r", DisabledAt: at}},
		{"seconds and reason", `{"result":{"disabled":true,"reason":"r","forbidden_time":1796290200}}`, JobState{Disabled: true, Reason: "r", DisabledAt: at}},
		{"text time", `{"result":{"disabled":"1","forbidden_time":"2026-12-03 09:30:00"}}`, JobState{Disabled: true, DisabledAt: at}},
		{"enabled", `{"result":{"disabled":0,"forbidden_time":0}}`, JobState{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJobState([]byte(tt.give))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	_, err := ParseJobState([]byte(`{"result":{}}`))
	require.ErrorContains(t, err, "no result.disabled")
}
