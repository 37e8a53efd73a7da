{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "consentsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name. */}}
{{- define "consentsync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "consentsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "consentsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "consentsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "consentsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "consentsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "consentsync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "consentsync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* One env var from an existing Secret's key; nothing when the name is empty. */}}
{{- define "consentsync.secretEnv" -}}
{{- $ref := index . 1 -}}
{{- if $ref.name }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ required (printf "secrets: a key is needed for %s" (index . 0)) $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end -}}
{{- end -}}

{{/* The environment every consentsync container gets. */}}
{{- define "consentsync.env" -}}
{{- $_ := required "secrets.databaseURL.name: name the existing Secret holding DATABASE_URL" .Values.secrets.databaseURL.name }}
{{- $_ := required "secrets.redisURL.name: name the existing Secret holding REDIS_URL" .Values.secrets.redisURL.name }}
{{- include "consentsync.secretEnv" (list "DATABASE_URL" .Values.secrets.databaseURL) }}
{{- include "consentsync.secretEnv" (list "REDIS_URL" .Values.secrets.redisURL) }}
{{- include "consentsync.secretEnv" (list "CONSENTSYNC_ADMIN_TOKEN" .Values.secrets.adminToken) }}
{{- include "consentsync.secretEnv" (list "CONSENTSYNC_VIEWER_TOKEN" .Values.secrets.viewerToken) }}
- name: CONSENTSYNC_CONFIG
  value: /etc/consentsync/consentsync.yaml
- name: OPS_ADDR
  value: {{ printf "0.0.0.0:%v" .Values.ops.port | quote }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{- define "consentsync.envFrom" -}}
{{- range .Values.secrets.envFrom }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{/* Probes on the ops port. */}}
{{- define "consentsync.probes" -}}
livenessProbe:
  httpGet:
    path: {{ .Values.probes.liveness.path }}
    port: ops
  initialDelaySeconds: {{ .Values.probes.liveness.initialDelaySeconds }}
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: {{ .Values.probes.readiness.path }}
    port: ops
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end -}}

{{- define "consentsync.migrateFlag" -}}
{{- if .Values.migrations.job }}
- -migrate=false
{{- end }}
{{- end -}}
