package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The example --config file (deploy/config/worker.yaml) is valid for run:
// every key is a run flag, every value parses, and the whole validates.
func TestExampleConfigIsValid(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/config/worker.yaml")
	require.NoError(t, err)
	// The files it names exist where the chart mounts them; here, in a
	// temporary directory.
	dir := t.TempDir()
	doc := string(raw)
	for _, path := range []string{"/etc/nats/auth/user.creds", "/etc/nats/tls/ca.crt"} {
		require.Contains(t, doc, path)
		local := filepath.Join(dir, filepath.Base(path))
		require.NoError(t, os.WriteFile(local, []byte("x"), 0o600))
		doc = strings.ReplaceAll(doc, path, local)
	}
	file := filepath.Join(dir, "worker.yaml")
	require.NoError(t, os.WriteFile(file, []byte(doc), 0o600))

	fs, o := testFlags()
	require.NoError(t, fs.Parse([]string{"--config", file}))
	require.NoError(t, layerConfig(fs, func(string) (string, bool) { return "", false }))
	require.NoError(t, o.validate())
	require.Equal(t, 64, o.pool.Concurrency, "the file's values are read")
	require.Equal(t, 3, o.nats.Replicas)
	require.Equal(t, []string{"cn-north-4", "cn-south-1"}, o.api.Regions)
}

// .goreleaser.yaml, the Makefile and scripts/release-snapshot.sh stamp the
// version where `worker version` reads it (main.version and
// internal/buildinfo.Commit) and build the same platforms.
func TestReleaseConfigsAgree(t *testing.T) {
	const (
		stampVersion = "-X main.version="
		stampCommit  = "-X github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo.Commit="
	)
	raw, err := os.ReadFile("../../.goreleaser.yaml")
	require.NoError(t, err)
	var gr struct {
		Version int `yaml:"version"`
		Builds  []struct {
			Main    string   `yaml:"main"`
			Binary  string   `yaml:"binary"`
			Goos    []string `yaml:"goos"`
			Goarch  []string `yaml:"goarch"`
			Ldflags []string `yaml:"ldflags"`
			Env     []string `yaml:"env"`
		} `yaml:"builds"`
		Archives []struct {
			NameTemplate string `yaml:"name_template"`
		} `yaml:"archives"`
		Sboms []struct {
			Artifacts string `yaml:"artifacts"`
			Cmd       string `yaml:"cmd"`
		} `yaml:"sboms"`
		Checksum struct {
			NameTemplate string `yaml:"name_template"`
		} `yaml:"checksum"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &gr))
	require.Equal(t, 2, gr.Version)
	require.Len(t, gr.Builds, 1)
	b := gr.Builds[0]
	require.Equal(t, "./cmd/worker", b.Main)
	require.Equal(t, []string{"linux", "darwin"}, b.Goos)
	require.Equal(t, []string{"amd64", "arm64"}, b.Goarch)
	require.Contains(t, b.Env, "CGO_ENABLED=0")
	ld := strings.Join(b.Ldflags, " ")
	require.Contains(t, ld, stampVersion+"{{.Version}}")
	require.Contains(t, ld, stampCommit+"{{.FullCommit}}")
	require.Equal(t, "cyclonedx-gomod", gr.Sboms[0].Cmd)
	require.Equal(t, "checksums.txt", gr.Checksum.NameTemplate)

	script, err := os.ReadFile("../../scripts/release-snapshot.sh")
	require.NoError(t, err)
	require.Contains(t, string(script), "-X main.version=${version} -X ${module}/internal/buildinfo.Commit=${commit}")
	require.Contains(t, string(script), "platforms=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)")
	require.Contains(t, string(script), "checksums.txt")
	// The archive names are goreleaser's.
	require.Equal(t, "{{ .ProjectName }}_{{ .Version }}_{{ .Os }}_{{ .Arch }}", gr.Archives[0].NameTemplate)
	require.Contains(t, string(script), `name="${project}_${version#v}_${os}_${arch}"`)

	mk, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	ldLine := regexp.MustCompile(`(?m)^LDFLAGS := (.*)$`).FindSubmatch(mk)
	require.NotNil(t, ldLine)
	require.Contains(t, string(ldLine[1]), stampVersion+"$(VERSION)")
	require.Contains(t, string(ldLine[1]), stampCommit+"$(COMMIT)")
}
