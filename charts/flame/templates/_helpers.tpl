{{- define "flame.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flame.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "flame.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "flame.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "flame.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (printf "%s-session-manager" (include "flame.fullname" .)) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "flame.smSecret" -}}
{{- .Values.tls.sessionManagerSecret | default (printf "%s-session-manager-tls" (include "flame.fullname" .)) -}}
{{- end -}}
{{- define "flame.cacheSecret" -}}
{{- .Values.tls.objectCacheSecret | default (printf "%s-object-cache-tls" (include "flame.fullname" .)) -}}
{{- end -}}
{{- define "flame.emSecret" -}}
{{- .Values.tls.executorManagerSecret | default (printf "%s-executor-manager-tls" (include "flame.fullname" .)) -}}
{{- end -}}

{{/* the in-cluster addresses */}}
{{- define "flame.smHost" -}}
{{ include "flame.fullname" . }}-session-manager.{{ .Release.Namespace }}.svc
{{- end -}}
{{- define "flame.cacheHost" -}}
{{ include "flame.fullname" . }}-object-cache.{{ .Release.Namespace }}.svc
{{- end -}}
{{- define "flame.smEndpoint" -}}
{{ ternary "https" "http" .Values.tls.enabled }}://{{ include "flame.smHost" . }}:{{ .Values.sessionManager.port }}
{{- end -}}
{{- define "flame.cacheEndpoint" -}}
{{ ternary "grpcs" "grpc" .Values.tls.enabled }}://{{ include "flame.cacheHost" . }}:{{ .Values.objectCache.port }}
{{- end -}}

{{- define "flame.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
startupProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 2
  failureThreshold: 60
{{- end -}}
