{{/* The pod template shared by the Deployment and the StatefulSet. */}}
{{- define "consentgate.podTemplate" -}}
metadata:
  labels:
    {{- include "consentgate.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if eq .Values.configReload "rollout" }}
    checksum/config: {{ include "consentgate.config" . | sha256sum }}
    {{- else if ne .Values.configReload "inPlace" }}
    {{- fail "configReload must be inPlace or rollout" }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "consentgate.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ include "consentgate.gracePeriod" . }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: consentgate
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve", "--config", "/etc/consentgate/config.yaml"]
      ports:
        - name: http
          containerPort: {{ .Values.service.targetPort }}
          protocol: TCP
        - name: admin
          containerPort: {{ .Values.service.adminPort }}
          protocol: TCP
      env:
        - name: CONSENTGATE_COOKIELESS_SECRET
          valueFrom:
            secretKeyRef:
              name: {{ include "consentgate.secretName" . }}
              key: {{ .Values.cookieless.secretKey }}
        {{- if .Values.admin.tokenSecret.name }}
        - name: CONSENTGATE_ADMIN_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ .Values.admin.tokenSecret.name }}
              key: {{ .Values.admin.tokenSecret.key }}
        {{- end }}
        {{- if .Values.spool.dir }}
        - name: CONSENTGATE_DELIVERY_SPOOL_DIR
          value: {{ .Values.spool.dir | quote }}
        {{- end }}
        - name: GOMEMLIMIT
          valueFrom:
            resourceFieldRef:
              resource: limits.memory
              divisor: "1"
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 2
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 2
        failureThreshold: 2
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 1
        failureThreshold: 30
      lifecycle:
        preStop:
          sleep:
            seconds: {{ .Values.preStopSleepSeconds }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/consentgate
          readOnly: true
        - name: data
          mountPath: /var/lib/consentgate
  volumes:
    - name: config
      configMap:
        name: {{ include "consentgate.fullname" . }}
    {{- if not .Values.persistence.enabled }}
    - name: data
      emptyDir:
        sizeLimit: {{ .Values.spool.sizeLimit | default (include "consentgate.spoolVolumeSize" .) }}
    {{- end }}
  {{- if .Values.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ .Values.topologySpread.maxSkew }}
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "consentgate.selectorLabels" . | nindent 10 }}
    - maxSkew: {{ .Values.topologySpread.maxSkew }}
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "consentgate.selectorLabels" . | nindent 10 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
