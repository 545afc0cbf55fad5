{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "crw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "crw.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "crw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "crw.labels" -}}
helm.sh/chart: {{ include "crw.chart" . }}
{{ include "crw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "crw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "crw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crw.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "crw.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/*
crw.seconds: a Go duration ("20s", "1m30s", "500ms", "2h") in whole seconds,
rounded up. Numbers are taken as seconds.
*/}}
{{- define "crw.seconds" -}}
{{- $d := toString . -}}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?$" $d -}}
{{- ceil (float64 $d) | int -}}
{{- else -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" $d) -}}
{{- fail (printf "%q is not a duration (e.g. 20s, 1m30s)" $d) -}}
{{- end -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" $d -1 -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 -}}
{{- $u := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . "" -}}
{{- $mul := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 -}}
{{- $total = addf $total (mulf $n (get $mul $u)) -}}
{{- end -}}
{{- ceil $total | int -}}
{{- end -}}
{{- end }}

{{/* The termination grace period, checked against the drain. */}}
{{- define "crw.terminationGracePeriod" -}}
{{- $drain := include "crw.seconds" (.Values.config.drainTimeout | default "20s") | int -}}
{{- $api := include "crw.seconds" (.Values.config.apiTimeout | default "10s") | int -}}
{{- $min := add $drain $api -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $min 15 -}}
{{- else -}}
{{- $g := .Values.terminationGracePeriodSeconds | int -}}
{{- if le $g $min -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.drainTimeout + config.apiTimeout (%ds), or in-flight requests are killed instead of drained" $g $min) -}}
{{- end -}}
{{- $g -}}
{{- end -}}
{{- end }}

{{/* The Secret of credentials.mode existingSecret. */}}
{{- define "crw.credentialsSecret" -}}
{{- .Values.credentials.existingSecret.name | default (printf "%s-credentials" (include "crw.fullname" .)) -}}
{{- end }}

{{/* The smallest number of replicas that runs. */}}
{{- define "crw.minReplicas" -}}
{{- if .Values.keda.enabled -}}
{{- .Values.keda.minReplicaCount | int -}}
{{- else if .Values.autoscaling.enabled -}}
{{- .Values.autoscaling.minReplicas | int -}}
{{- else -}}
{{- .Values.replicaCount | int -}}
{{- end -}}
{{- end }}

{{/* A config value as an environment string ("" = leave the default). */}}
{{- define "crw.envValue" -}}
{{- $v := . -}}
{{- if kindIs "invalid" $v -}}
{{- else if kindIs "slice" $v -}}
{{- join "," $v -}}
{{- else if kindIs "float64" $v -}}
{{- if eq $v (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end -}}
{{- else -}}
{{- toString $v -}}
{{- end -}}
{{- end }}

{{/* The status page's port when it listens beyond loopback, else "". */}}
{{- define "crw.uiPort" -}}
{{- $a := toString .Values.config.uiAddr -}}
{{- if and (ne (toString .Values.config.ui) "false") $a (not (regexMatch "^(127\\.[0-9.]+|localhost|\\[::1\\]):" $a)) -}}
{{- regexReplaceAll "^.*:" $a "" -}}
{{- end -}}
{{- end }}

{{/* Checks across values that the schema cannot express. */}}
{{- define "crw.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are exclusive: both would scale the same Deployment (KEDA makes its own HPA)" }}
{{- end }}
{{- if and .Values.keda.enabled (not .Values.keda.natsMonitoringEndpoint) }}
{{- fail "keda.natsMonitoringEndpoint is required with keda.enabled (host:port of the NATS monitoring endpoint, e.g. nats-headless.nats.svc.cluster.local:8222)" }}
{{- end }}
{{- $c := .Values.credentials }}
{{- if eq $c.mode "oidc" }}
{{- if or (not $c.oidc.idpId) (not $c.oidc.audience) }}
{{- fail "credentials.oidc.idpId and credentials.oidc.audience are required with credentials.mode oidc" }}
{{- end }}
{{- if not .Values.config.projectId }}
{{- fail "config.projectId is required with credentials.mode oidc (the token names no project)" }}
{{- end }}
{{- end }}
{{- if and (eq $c.mode "podIdentity") (ne (not $c.podIdentity.credentialsUri) (not $c.podIdentity.tokenAudience)) }}
{{- fail "credentials.podIdentity.credentialsUri and tokenAudience are set together (or both left empty for the CCE add-on to inject them)" }}
{{- end }}
{{- if and (eq $c.mode "devSecret") (or (not $c.devSecret.ak) (not $c.devSecret.sk)) }}
{{- fail "credentials.devSecret.ak and sk are required with credentials.mode devSecret" }}
{{- end }}
{{- $n := .Values.nats }}
{{- if and (or $n.passwordKey $n.tokenKey $n.credsKey $n.nkeyKey) (not $n.existingSecret) }}
{{- fail "nats.existingSecret is required when nats.passwordKey, tokenKey, credsKey or nkeyKey is set" }}
{{- end }}
{{- if and $n.passwordKey (not $n.user) }}
{{- fail "nats.user is required with nats.passwordKey" }}
{{- end }}
{{- if ne (not $n.tls.certKey) (not $n.tls.keyKey) }}
{{- fail "nats.tls.certKey and nats.tls.keyKey are set together" }}
{{- end }}
{{- if .Values.config.uiActions }}
{{- if not .Values.ui.tokenSecret }}
{{- fail "config.uiActions needs ui.tokenSecret: a Secret holding the bearer token the page's actions require (without one the page stays read-only)" }}
{{- end }}
{{- if or (not .Values.networkPolicy.enabled) (not .Values.networkPolicy.uiFrom) }}
{{- fail "config.uiActions needs a NetworkPolicy naming who may reach the status page: networkPolicy.enabled=true and networkPolicy.uiFrom (e.g. [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}}])" }}
{{- end }}
{{- end }}
{{- if and (or $n.passwordKey $n.tokenKey $n.credsKey $n.nkeyKey) (not $n.tls.existingSecret) (not (hasPrefix "tls://" $n.url)) (ne (toString .Values.config.allowInsecure) "true") }}
{{- fail "nats credentials over a plaintext nats.url: the worker refuses to send them in clear; use a tls:// URL or nats.tls.existingSecret (or config.allowInsecure=true to accept it)" }}
{{- end }}
{{- if regexMatch "://[^/@,]+@" $n.url }}
{{- fail "nats.url must not hold credentials (they would land in a ConfigMap): use nats.user with nats.existingSecret" }}
{{- end }}
{{- end }}

{{/*
The namespaces of the NATS servers nats.url names, one per line, for the
NetworkPolicy's egress when networkPolicy.nats.namespaceSelector is empty:
a Service name as a pod resolves it. "nats" is in the release's namespace;
"nats.msg", "nats.msg.svc", "nats.msg.svc.cluster.local" and
"nats-0.nats-headless.msg.svc…" are in "msg". A host the chart cannot
place (an IP address, a name outside the cluster) fails the render: a
policy that admits the wrong namespace cuts the worker off from NATS.
*/}}
{{- define "crw.natsNamespaces" -}}
{{- $seen := dict -}}
{{- range $u := splitList "," .Values.nats.url -}}
{{- $host := lower (regexReplaceAll "[:/].*$" (regexReplaceAll "^[a-z]+://" (trim $u) "") "") -}}
{{- $labels := splitList "." $host -}}
{{- $ns := "" -}}
{{- if regexMatch "^[0-9.]+$|^\\[" $host -}}
{{- else if eq (len $labels) 1 -}}
{{- $ns = $.Release.Namespace -}}
{{- else if has "svc" $labels -}}
{{- range $i, $l := $labels -}}
{{- if and (eq $l "svc") (gt $i 0) (not $ns) -}}
{{- $ns = index $labels (sub $i 1) -}}
{{- end -}}
{{- end -}}
{{- else if eq (len $labels) 2 -}}
{{- $ns = index $labels 1 -}}
{{- end -}}
{{- if not $ns -}}
{{- fail (printf "networkPolicy: cannot tell the namespace of NATS at %q (nats.url): set networkPolicy.nats.namespaceSelector (and podSelector) for a NATS in the cluster, or networkPolicy.nats.cidrs for one outside it" $host) -}}
{{- end -}}
{{- $_ := set $seen $ns true -}}
{{- end -}}
{{- range $ns, $_ := $seen }}
{{ $ns }}
{{- end -}}
{{- end -}}
