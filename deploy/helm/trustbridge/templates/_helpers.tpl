{{/* Names and labels shared by every template of the chart. */}}

{{- define "trustbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: <release>-trustbridge, or the release name when it holds it. */}}
{{- define "trustbridge.fullname" -}}
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

{{- define "trustbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trustbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trustbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trustbridge.labels" -}}
helm.sh/chart: {{ include "trustbridge.chart" . }}
{{ include "trustbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The bundled Redis: its own name, so trustbridge's selector never matches it. */}}
{{- define "trustbridge.redisName" -}}
{{- printf "%s-redis" (include "trustbridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trustbridge.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "trustbridge.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trustbridge.redisLabels" -}}
helm.sh/chart: {{ include "trustbridge.chart" . }}
{{ include "trustbridge.redisSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "trustbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trustbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trustbridge.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "trustbridge.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{- define "trustbridge.keysSecret" -}}
{{- default (printf "%s-keys" (include "trustbridge.fullname" .)) .Values.keys.existingSecret }}
{{- end }}

{{/* The admin token Secret's name; rendering fails when the admin listener is on without one. */}}
{{- define "trustbridge.adminTokenSecret" -}}
{{- required "admin.enabled listens on 0.0.0.0, which needs admin.tokenSecret.name (a Secret holding the admin token)" .Values.admin.tokenSecret.name }}
{{- end }}

{{/* Probe and scrape ports may only name the admin listener when it is enabled
     (values.schema.json already limits them to http or admin). */}}
{{- define "trustbridge.checkPort" -}}
{{- if and (eq .port "admin") (not .admin) }}
{{- fail (printf "%s is admin but admin.enabled is false" .what) }}
{{- end }}
{{- end }}
