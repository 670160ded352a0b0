{{/*
Expand the name of the chart.
*/}}
{{- define "proxy-session-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "proxy-session-gateway.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "proxy-session-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels: the selector labels plus chart, version and manager (never use these in selectors).
*/}}
{{- define "proxy-session-gateway.labels" -}}
helm.sh/chart: {{ include "proxy-session-gateway.chart" . }}
{{ include "proxy-session-gateway.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (Deployment selectors are immutable).
*/}}
{{- define "proxy-session-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "proxy-session-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use.
*/}}
{{- define "proxy-session-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "proxy-session-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: `repository@digest` when a digest is set, else `repository:tag`
(the tag defaulting to the chart's appVersion).
*/}}
{{- define "proxy-session-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Path of the mounted tokens file (GATEWAY_AUTH_TOKENS_FILE).
*/}}
{{- define "proxy-session-gateway.tokensFile" -}}
{{- printf "%s/%s" (.Values.auth.mountPath | trimSuffix "/") .Values.auth.secretKey }}
{{- end }}

{{/*
Paths of the shared cache layer's mounted files (GATEWAY_REDIS_PASSWORD_FILE,
GATEWAY_CACHE_ENCRYPTION_KEY_FILE): the Secret's keys of the same names.
*/}}
{{- define "proxy-session-gateway.redisPasswordFile" -}}
{{- printf "%s/redis-password" (.Values.sharedCache.mountPath | trimSuffix "/") }}
{{- end }}

{{- define "proxy-session-gateway.encryptionKeysFile" -}}
{{- printf "%s/encryption-keys" (.Values.sharedCache.mountPath | trimSuffix "/") }}
{{- end }}

{{/*
Path of the mounted private CA bundle (GATEWAY_REDIS_CA_FILE): the CA Secret's key.
*/}}
{{- define "proxy-session-gateway.redisCaFile" -}}
{{- printf "%s/%s" (.Values.sharedCache.caMountPath | trimSuffix "/") .Values.sharedCache.caSecretKey }}
{{- end }}

{{/*
Non-empty when the shared cache layer's Secret has keys to mount as files. The volume is
left out otherwise: a Secret volume with no `items` would project every key, redis-url too.
*/}}
{{- define "proxy-session-gateway.sharedCacheFiles" -}}
{{- with .Values.sharedCache }}
{{- if and .enabled (or .passwordInSecret .encryptionKeysInSecret) }}true{{ end }}
{{- end }}
{{- end }}

{{/*
PromQL label matchers selecting this release's series (alerts).
*/}}
{{- define "proxy-session-gateway.promSelector" -}}
{{- .Values.prometheusRule.selector | default (printf "namespace=%q,job=%q" .Release.Namespace (include "proxy-session-gateway.fullname" .)) }}
{{- end }}

{{/*
Render-time checks: settings the chart derives Kubernetes fields from must agree with them.
*/}}
{{- define "proxy-session-gateway.validate" -}}
{{- $port := toString .Values.service.targetPort }}
{{- with get .Values.config "GATEWAY_PORT" }}
{{- if ne (toString .) $port }}
{{- fail (printf "config.GATEWAY_PORT (%s) must equal service.targetPort (%s): the probes and the Service use the container port" . $port) }}
{{- end }}
{{- end }}
{{- /* The gateway's defaults when the settings are not given (app/settings.py). */}}
{{- $drain := float64 (get .Values.config "GATEWAY_SHUTDOWN_DRAIN_SECONDS" | default "5") }}
{{- $grace := float64 (get .Values.config "GATEWAY_SHUTDOWN_GRACE_SECONDS" | default "20") }}
{{- $needed := addf (float64 .Values.lifecycle.preStopSleepSeconds) $drain $grace }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed lifecycle.preStopSleepSeconds + GATEWAY_SHUTDOWN_DRAIN_SECONDS + GATEWAY_SHUTDOWN_GRACE_SECONDS (%v)" .Values.terminationGracePeriodSeconds $needed) }}
{{- end }}
{{- with .Values.sharedCache }}
{{- if and .enabled (not .existingSecret) }}
{{- fail "sharedCache.existingSecret is required when sharedCache.enabled is true: name an existing Secret with the key redis-url (and, optionally, redis-password and encryption-keys)" }}
{{- end }}
{{- if and .enabled $.Values.auth.existingSecret (eq (.mountPath | trimSuffix "/") ($.Values.auth.mountPath | trimSuffix "/")) }}
{{- fail (printf "sharedCache.mountPath (%s) must differ from auth.mountPath: a directory holds one mounted Secret" .mountPath) }}
{{- end }}
{{- if and .enabled .caSecret }}
{{- $ca := .caMountPath | trimSuffix "/" }}
{{- if and (include "proxy-session-gateway.sharedCacheFiles" $) (eq $ca (.mountPath | trimSuffix "/")) }}
{{- fail (printf "sharedCache.caMountPath (%s) must differ from sharedCache.mountPath: a directory holds one mounted Secret" .caMountPath) }}
{{- end }}
{{- if and $.Values.auth.existingSecret (eq $ca ($.Values.auth.mountPath | trimSuffix "/")) }}
{{- fail (printf "sharedCache.caMountPath (%s) must differ from auth.mountPath: a directory holds one mounted Secret" .caMountPath) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
OTEL_RESOURCE_ATTRIBUTES: the pod, its namespace and node (from the downward API, through
the OTEL_K8S_* variables set before it), then `otel.resourceAttributes`.
*/}}
{{- define "proxy-session-gateway.otelResourceAttributes" -}}
{{- $attributes := list "k8s.pod.name=$(OTEL_K8S_POD_NAME)" "k8s.namespace.name=$(OTEL_K8S_NAMESPACE_NAME)" "k8s.node.name=$(OTEL_K8S_NODE_NAME)" -}}
{{- range $key, $value := .Values.otel.resourceAttributes -}}
{{- $attributes = append $attributes (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $attributes -}}
{{- end -}}
