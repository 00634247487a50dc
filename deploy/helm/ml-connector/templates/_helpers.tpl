{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "mlc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; the component suffixes below are appended to it. */}}
{{- define "mlc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mlc.ingress.fullname" -}}{{ include "mlc.fullname" . }}-ingress{{- end -}}
{{- define "mlc.writer.fullname" -}}{{ include "mlc.fullname" . }}-writer{{- end -}}
{{- define "mlc.writer.headless" -}}{{ include "mlc.fullname" . }}-writer-headless{{- end -}}
{{- define "mlc.configName" -}}{{ include "mlc.fullname" . }}-config{{- end -}}

{{/* Name of the Secret the pods read: existingSecret, or the one this chart creates. */}}
{{- define "mlc.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "mlc.fullname" . }}-secrets
{{- end -}}
{{- end -}}

{{- define "mlc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mlc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mlc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ml-connector
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "ingress"). */}}
{{- define "mlc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlc.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference; call with (dict "ctx" $ "image" .Values.ingress.image). */}}
{{- define "mlc.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The writer's gRPC address as the ingress dials it. */}}
{{- define "mlc.writerHost" -}}
{{- printf "%s.%s.svc" (include "mlc.writer.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "mlc.writerAddress" -}}
{{- printf "%s.%s.svc:%d" (include "mlc.writer.fullname" .) .Release.Namespace (int .Values.writer.grpcPort) -}}
{{- end -}}

{{/* Hardened container securityContext (shared by both containers). */}}
{{- define "mlc.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ int .Values.securityContext.runAsUser }}
runAsGroup: {{ int .Values.securityContext.runAsGroup }}
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mlc.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int .Values.securityContext.runAsUser }}
runAsGroup: {{ int .Values.securityContext.runAsGroup }}
fsGroup: {{ int .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}
