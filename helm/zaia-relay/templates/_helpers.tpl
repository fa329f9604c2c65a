{{/* Names, labels and the relay configuration shared by the templates. */}}

{{- define "zaia-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: `<release>-zaia-relay`, or the release name when it already contains the chart's. */}}
{{- define "zaia-relay.fullname" -}}
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

{{- define "zaia-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zaia-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zaia-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "zaia-relay.labels" -}}
helm.sh/chart: {{ include "zaia-relay.chart" . }}
{{ include "zaia-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zaia-relay
{{- end }}

{{/*
Labels of the `helm test` Pod: not the selector labels, so the Service, the
PodDisruptionBudget and the NetworkPolicy's podSelector leave it alone.
*/}}
{{- define "zaia-relay.testSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{- define "zaia-relay.testLabels" -}}
helm.sh/chart: {{ include "zaia-relay.chart" . }}
app.kubernetes.io/name: {{ include "zaia-relay.name" . }}-test
{{ include "zaia-relay.testSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zaia-relay
{{- end }}

{{- define "zaia-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zaia-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "zaia-relay.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "zaia-relay.secretName" -}}
{{- .Values.secret.existingSecret | default (include "zaia-relay.fullname" .) }}
{{- end }}

{{- define "zaia-relay.storeUrl" -}}
{{- ((.Values.config).store).url | default "sqlite:///var/lib/zaia-relay/state.db" }}
{{- end }}

{{/* "true" when the store is PostgreSQL (then several replicas may share it). */}}
{{- define "zaia-relay.postgres" -}}
{{- if regexMatch "^postgres(ql)?(\\+[a-z0-9]+)?://" (include "zaia-relay.storeUrl" .) }}true{{ end }}
{{- end }}

{{/* "true" when the store is SQLite: a single writer on the chart's volume. */}}
{{- define "zaia-relay.sqlite" -}}
{{- if hasPrefix "sqlite:" (include "zaia-relay.storeUrl" .) }}true{{ end }}
{{- end }}

{{/*
Checks that span several values; values.schema.json checks the same where it can, and
these messages say what to do when the schema is skipped (--skip-schema-validation).
*/}}
{{- define "zaia-relay.validate" -}}
{{- $url := include "zaia-relay.storeUrl" . }}
{{- if and (gt (int .Values.replicaCount) 1) (not (include "zaia-relay.postgres" .)) }}
{{- fail (printf "replicaCount is %d, but config.store.url is not a postgresql:// URL: SQLite allows one replica only (one writer on one volume). Use replicaCount: 1, or a PostgreSQL store." (int .Values.replicaCount)) }}
{{- end }}
{{- if and (include "zaia-relay.sqlite" .) (not (hasPrefix "sqlite:///var/lib/zaia-relay/" $url)) }}
{{- fail "config.store.url: a SQLite database must be under /var/lib/zaia-relay/ (the chart's volume; the root filesystem is read-only), e.g. sqlite:///var/lib/zaia-relay/state.db" }}
{{- end }}
{{- if not .Values.secret.existingSecret }}
{{- range $name, $key := .Values.secret.env }}
{{- if not (hasKey $.Values.secret.stringData $key) }}
{{- fail (printf "secret.env.%s names the key %q, which secret.stringData does not have: add it there, or set secret.existingSecret" $name $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* relay.yaml: the `config` value, with the listen address the container port implies. */}}
{{- define "zaia-relay.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $server := deepCopy ($config.server | default dict) }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- $_ := set $config "server" $server }}
{{- /* Sections in the order of config/relay.example.yaml, for a readable file. */}}
{{- $order := list "sources" "store" "server" "log" "alerts" "rules" "sinks" "silences" }}
{{- $chunks := list }}
{{- range $section := $order }}
{{- if hasKey $config $section }}
{{- $chunks = append $chunks (toYaml (dict $section (get $config $section))) }}
{{- end }}
{{- end }}
{{- range $section, $value := $config }}
{{- if not (has $section $order) }}
{{- $chunks = append $chunks (toYaml (dict $section $value)) }}
{{- end }}
{{- end }}
{{- join "\n" $chunks }}
{{- end }}
