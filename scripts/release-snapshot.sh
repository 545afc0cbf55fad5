#!/usr/bin/env bash
# Builds the release artifacts of .goreleaser.yaml without goreleaser (see
# README "Releases"): for each platform a static, stamped binary in an
# archive with the README, CHANGELOG and runbook, a CycloneDX SBOM per
# archive (cyclonedx-gomod, built from the Go module proxy into ./bin), and
# checksums.txt; then checks that the host's binary prints the version.
#
#   scripts/release-snapshot.sh VERSION COMMIT [GOOS/GOARCH ...]
#
# Names and layout are goreleaser's (dist/<project>_<version>_<os>_<arch>.tar.gz),
# so a release pipeline with goreleaser publishes the same files.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:?version}
commit=${2:?commit}
shift 2
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)

project=codearts-recover-worker
module=github.com/codearts-recover-worker/codearts-recover-worker
ldflags="-s -w -X main.version=${version} -X ${module}/internal/buildinfo.Commit=${commit}"
sbom=${SBOM_TOOL:-./bin/cyclonedx-gomod}
dist=dist

rm -rf "$dist"
mkdir -p "$dist"
for p in "${platforms[@]}"; do
	os=${p%/*} arch=${p#*/}
	name="${project}_${version#v}_${os}_${arch}"
	dir="$dist/$name"
	mkdir -p "$dir"
	echo "--- $name"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$dir/worker" ./cmd/worker
	cp README.md CHANGELOG.md "$dir/"
	mkdir -p "$dir/docs" && cp docs/runbook.md "$dir/docs/"
	# Owner and times fixed, so the same commit gives the same archive.
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" \
		-C "$dist" -czf "$dist/$name.tar.gz" "$name"
	# The SBOM reads the module list embedded in the binary.
	"$sbom" bin -json -output "$dist/$name.tar.gz.sbom.json" -version "$version" "$dir/worker"
done
(cd "$dist" && sha256sum ./*.tar.gz ./*.sbom.json | sed 's| \./| |' > checksums.txt)

host="$(go env GOOS)/$(go env GOARCH)"
for p in "${platforms[@]}"; do
	[ "$p" = "$host" ] || continue
	bin="$dist/${project}_${version#v}_${p%/*}_${p#*/}/worker"
	got=$("$bin" version -o json)
	echo "$got"
	echo "$got" | grep -q "\"version\": \"${version}\"" || { echo "release: $bin does not print version ${version}" >&2; exit 1; }
done
ls -l "$dist"
