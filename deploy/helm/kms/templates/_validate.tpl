{{/*
kms.validate fails the rendering on values that cannot work together, with
a message saying what to change. values.schema.json checks single values.
*/}}
{{- define "kms.validate" -}}
{{- $v := .Values }}
{{- $store := $v.store.type }}
{{- $p := $v.persistence }}
{{- if and (gt (int $v.replicaCount) 1) (eq $store "sqlite") }}
{{- fail (printf "replicaCount=%d needs a shared SQL store: SQLite is one file that only one kmsd may write. Set store.type=mariadb (bundled MariaDB) or store.type=external (store.external.existingSecret), or replicaCount=1." (int $v.replicaCount)) }}
{{- end }}
{{- if and (eq $store "external") (not $v.store.external.existingSecret) }}
{{- fail "store.type=external needs store.external.existingSecret: a Secret whose key store.external.key holds the DSN (mysql://user:password@host:3306/db or postgres://...)" }}
{{- end }}
{{- $sources := 0 }}
{{- range (list $p.existingClaim $p.nfs.server $p.hostPath.path $p.local.path) }}{{ if . }}{{ $sources = add1 $sources }}{{ end }}{{ end }}
{{- if gt $sources 1 }}
{{- fail "persistence: choose one of existingClaim, nfs.server/nfs.path, hostPath.path, local.path (or none, for a claim on persistence.storageClass)" }}
{{- end }}
{{- if ne (empty $p.nfs.server) (empty $p.nfs.path) }}
{{- fail "persistence.nfs needs both server (the seed's nfsServerIP) and path (nfsPath)" }}
{{- end }}
{{- range $what, $path := dict "persistence.nfs.path" $p.nfs.path "persistence.hostPath.path" $p.hostPath.path "persistence.local.path" $p.local.path }}
{{- if and $path (not (hasPrefix "/" $path)) }}
{{- fail (printf "%s must be an absolute path, not %q" $what $path) }}
{{- end }}
{{- end }}
{{- if and $p.local.path (not $p.local.nodeName) }}
{{- fail "persistence.local.path needs persistence.local.nodeName: a local volume lives on one node" }}
{{- end }}
{{- if and (eq $store "sqlite") $p.nfs.server (eq (default "" $v.strategy.type) "RollingUpdate") }}
{{- fail "store.type=sqlite on NFS cannot use a RollingUpdate strategy: two kmsd processes would write one SQLite file over NFS, whose locks SQLite cannot trust. Leave strategy empty (Recreate) or use store.type=mariadb." }}
{{- end }}
{{- if and (eq $v.tls.mode "secret") (not $v.tls.secretName) }}
{{- fail "tls.mode=secret needs tls.secretName: a kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and (eq $v.tls.mode "ppml") (not $v.tls.ppml.keysSecret) }}
{{- fail "tls.mode=ppml needs tls.ppml.keysSecret (ssl-keys, made by generate-keys.sh or kmsctl)" }}
{{- end }}
{{- if le (int $v.terminationGracePeriodSeconds) (int $v.preStopSleepSeconds) }}
{{- fail "terminationGracePeriodSeconds must exceed preStopSleepSeconds plus shutdownTimeout, or kmsd is killed before it drains" }}
{{- end }}
{{- end }}
