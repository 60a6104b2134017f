{{/* Names, labels, images, security contexts and the shared environment of every workload. */}}

{{- define "fraud-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fraud-platform.fullname" -}}
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

{{- define "fraud-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "fraud-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fraud-platform.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Standard labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "fraud-platform.labels" -}}
{{ include "fraud-platform.selectorLabels" . }}
helm.sh/chart: {{ include "fraud-platform.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: fraudstream
{{- end -}}

{{/* Image reference from an images.<name> entry: a digest pins it, else the tag. */}}
{{- define "fraud-platform.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* Pod security context meeting the "restricted" Pod Security Standard. */}}
{{- define "fraud-platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context meeting the "restricted" Pod Security Standard. */}}
{{- define "fraud-platform.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment of every workload: the ConfigMap plus secrets by reference.
     (dict "root" $ "kafkaUser" "fraudstream-api" ["redis" true] ["api" true])
     Each workload gets only the secrets it uses: Kafka, PostgreSQL and S3 for all; the Redis
     password with "redis" (the scorer and the API, the only ones the network policies let
     reach Redis); the API's two tokens with "api" (the writer's, which `fraudstream serve`
     requires, and the analyst's read-only one). */}}
{{- define "fraud-platform.env" -}}
- name: FRAUDSTREAM_KAFKA_SASL_USERNAME
  value: {{ .kafkaUser | quote }}
- name: FRAUDSTREAM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .kafkaUser }}
      key: password
- name: FRAUDSTREAM_POSTGRES_USER
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.postgres.existingSecret }}
      key: username
- name: FRAUDSTREAM_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.postgres.existingSecret }}
      key: password
- name: FRAUDSTREAM_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.s3.existingSecret }}
      key: {{ .root.Values.s3.accessKeyKey }}
- name: FRAUDSTREAM_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.s3.existingSecret }}
      key: {{ .root.Values.s3.secretKeyKey }}
{{- if .redis }}
- name: FRAUDSTREAM_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.redis.existingSecret }}
      key: {{ .root.Values.redis.passwordKey }}
{{- end }}
{{- if .api }}
- name: FRAUDSTREAM_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.api.existingSecret }}
      key: {{ .root.Values.api.tokenKey }}
- name: FRAUDSTREAM_API_READ_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.api.existingSecret }}
      key: {{ .root.Values.api.readTokenKey }}
{{- end }}
{{- end -}}

{{/* Volumes every workload mounts: scratch space (the root filesystem is read-only) and the
     Kafka cluster CA. */}}
{{- define "fraud-platform.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "fraud-platform.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  mountPath: /etc/fraudstream/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Init containers of every workload (values `setup`): the schema, and the topics where no
     operator manages them. Both commands are idempotent and safe to run concurrently.
     (dict "root" $ "image" <image values> "kafkaUser" <user>) */}}
{{- define "fraud-platform.setupContainers" -}}
{{- $steps := list -}}
{{- if .root.Values.setup.migrate }}{{ $steps = append $steps (list "migrate" (list "db" "migrate")) }}{{ end -}}
{{- if .root.Values.setup.topics }}{{ $steps = append $steps (list "topics" (list "topics" "ensure")) }}{{ end -}}
{{- range $steps }}
- name: {{ index . 0 }}
  image: {{ include "fraud-platform.image" $.image | quote }}
  imagePullPolicy: {{ $.root.Values.images.pullPolicy }}
  command: ["fraudstream"]
  args: {{ index . 1 | toJson }}
  envFrom:
    - configMapRef:
        name: {{ include "fraud-platform.fullname" $.root }}-env
  env:
    {{- include "fraud-platform.env" (dict "root" $.root "kafkaUser" $.kafkaUser) | nindent 4 }}
  resources:
    requests: {cpu: 50m, memory: 192Mi}
    limits: {cpu: 500m, memory: 384Mi}
  securityContext:
    {{- include "fraud-platform.containerSecurityContext" $.root | nindent 4 }}
  volumeMounts:
    {{- include "fraud-platform.volumeMounts" $.root | nindent 4 }}
{{- end }}
{{- end -}}
