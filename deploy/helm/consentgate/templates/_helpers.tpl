{{/* Chart name. */}}
{{- define "consentgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-consentgate, or the release name if it holds the chart name. */}}
{{- define "consentgate.fullname" -}}
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

{{/* Selector labels: stable for the life of a release. */}}
{{- define "consentgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "consentgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Common labels. */}}
{{- define "consentgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "consentgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: consentgate
{{- end -}}

{{- define "consentgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "consentgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding cookieless.secret; fails when none is configured. */}}
{{- define "consentgate.secretName" -}}
{{- if .Values.cookieless.existingSecret -}}
{{- .Values.cookieless.existingSecret -}}
{{- else if .Values.cookieless.secret -}}
{{- include "consentgate.fullname" . -}}
{{- else -}}
{{- fail "cookieless.secret or cookieless.existingSecret is required: every replica must share one key (generate it once, e.g. openssl rand -base64 32); the chart never generates one per pod" -}}
{{- end -}}
{{- end -}}

{{/* The config file: the user's config with the settings the chart owns. */}}
{{- define "consentgate.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- if and (hasKey $cfg "cookieless") (hasKey (get $cfg "cookieless") "secret") -}}
{{- fail "config.cookieless.secret must not be set: it would land in a ConfigMap; use cookieless.secret or cookieless.existingSecret" -}}
{{- end -}}
{{- $timeouts := get $cfg "timeouts" | default dict -}}
{{- $delivery := get $cfg "delivery" | default dict -}}
{{- if or (hasKey $timeouts "drain") (hasKey $timeouts "shutdown") (hasKey $delivery "drain") -}}
{{- fail "set drainSeconds, shutdownSeconds and deliveryDrainSeconds, not config.timeouts.drain/shutdown or config.delivery.drain: the chart derives the termination grace period from them" -}}
{{- end -}}
{{- $spool := get $delivery "spool" | default dict -}}
{{- if hasKey $spool "max_bytes" -}}
{{- fail "set spool.maxBytesPerUpstream, not config.delivery.spool.max_bytes: the chart sizes the spool volume from it" -}}
{{- end -}}
{{- $_ := set $spool "max_bytes" (int64 .Values.spool.maxBytesPerUpstream) -}}
{{- $_ := set $delivery "spool" $spool -}}
{{- $_ := set $delivery "drain" (printf "%ds" (int .Values.deliveryDrainSeconds)) -}}
{{- $_ := set $cfg "delivery" $delivery -}}
{{- $_ := set $timeouts "drain" (printf "%ds" (int .Values.drainSeconds)) -}}
{{- $_ := set $timeouts "shutdown" (printf "%ds" (int .Values.shutdownSeconds)) -}}
{{- $_ := set $cfg "timeouts" $timeouts -}}
{{- $_ := set $cfg "listen" (printf ":%d" (int .Values.service.targetPort)) -}}
{{- if .Values.admin.expose -}}
{{- if not .Values.admin.tokenSecret.name -}}
{{- fail "admin.expose needs admin.tokenSecret: the gateway refuses an admin listener beyond loopback without admin.token" -}}
{{- end -}}
{{- $_ := set $cfg "admin_listen" (printf ":%d" (int .Values.service.adminPort)) -}}
{{- else -}}
{{- $_ := set $cfg "admin_listen" (printf "127.0.0.1:%d" (int .Values.service.adminPort)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Termination grace period: longer than preStop + drain + shutdown + delivery drain. */}}
{{- define "consentgate.gracePeriod" -}}
{{- $need := add (int .Values.preStopSleepSeconds) (int .Values.drainSeconds) (int .Values.shutdownSeconds) (int .Values.deliveryDrainSeconds) -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if eq $grace 0 -}}
{{- add $need 10 -}}
{{- else if le $grace $need -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + drainSeconds + shutdownSeconds + deliveryDrainSeconds (%d): the kubelet would kill in-flight requests and queued deliveries" $grace $need) -}}
{{- else -}}
{{- $grace -}}
{{- end -}}
{{- end -}}

{{/* Size of the spool volume: the spool budget of every upstream with
queued delivery plus 64 MiB, so that the gateway's own back-pressure (503
when an upstream's budget is full) comes before the kubelet's eviction of
an over-full emptyDir. spool.sizeLimit or persistence.size replace it. */}}
{{- define "consentgate.spoolVolumeSize" -}}
{{- add (mul (int64 .Values.spool.maxBytesPerUpstream) (int64 .Values.spool.upstreams)) 67108864 -}}
{{- end -}}
