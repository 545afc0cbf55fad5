// Package test renders the Helm chart with the pinned helm binary and checks
// the objects it makes: the pod passes the restricted Pod Security Standard
// (evaluated with k8s.io/pod-security-admission), probes and the drain fit,
// configuration and secrets are wired where the worker reads them, no secret
// value lands outside a Secret, autoscalers exclude each other, and a
// misspelt value key fails the render. Every manifest decodes strictly into
// the typed objects of the newest supported Kubernetes here and of the
// oldest (1.25) in ./oldest, a module of its own (one go.mod holds one
// k8s.io/api); each toggle, on with the rest at defaults, reaches what it
// is for (toggles_test.go).
//
// It is its own Go module so that the Kubernetes types stay out of the
// worker's go.mod. Run it with `make chart-test` (which installs helm into
// ./bin and sets HELM), or `HELM=/path/to/helm go test ./...` here.
package test
