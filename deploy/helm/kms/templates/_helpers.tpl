{{/* Names and labels. */}}
{{- define "kms.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms.fullname" -}}
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

{{- define "kms.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kms.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kms
{{- end }}

{{/* Selector labels of kmsd pods. */}}
{{- define "kms.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kms.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Selector labels of the bundled MariaDB. */}}
{{- define "kms.mariadb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kms.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: mariadb
{{- end }}

{{- define "kms.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kms.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
kms.image (dict "image" IMAGE "tag" DEFAULT): repository@digest, else
repository:tag, the tag defaulting to DEFAULT.
*/}}
{{- define "kms.image" -}}
{{- $i := .image }}
{{- if $i.digest }}
{{- printf "%s@%s" $i.repository $i.digest }}
{{- else }}
{{- printf "%s:%s" $i.repository (toString (default .tag $i.tag)) }}
{{- end }}
{{- end }}

{{- define "kms.mariadb.fullname" -}}
{{- printf "%s-mariadb" (include "kms.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms.rootKeySecret" -}}
{{- default (printf "%s-root-key" (include "kms.fullname" .)) .Values.rootKey.existingSecret }}
{{- end }}

{{- define "kms.mariadbSecret" -}}
{{- default (include "kms.mariadb.fullname" .) .Values.mariadb.existingSecret }}
{{- end }}

{{/* The claim of the data volume (SQLite store or MariaDB). */}}
{{- define "kms.claimName" -}}
{{- default (printf "%s-data" (include "kms.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* Kind of PersistentVolume the chart makes: nfs, hostPath, local or "". */}}
{{- define "kms.pvType" -}}
{{- $p := .Values.persistence }}
{{- if $p.existingClaim }}
{{- else if $p.nfs.server }}nfs
{{- else if $p.hostPath.path }}hostPath
{{- else if $p.local.path }}local
{{- end }}
{{- end }}

{{/* Cluster-scoped PersistentVolume name: unique per namespace and release. */}}
{{- define "kms.pvName" -}}
{{- printf "%s-%s-data" .Release.Namespace (include "kms.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Deployment strategy (see values.yaml). */}}
{{- define "kms.strategy" -}}
{{- if .Values.strategy }}
{{- toYaml .Values.strategy }}
{{- else if eq .Values.store.type "sqlite" }}
type: Recreate
{{- else }}
type: RollingUpdate
rollingUpdate:
  maxSurge: 1
  maxUnavailable: 0
{{- end }}
{{- end }}

{{- define "kms.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kms.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end }}
