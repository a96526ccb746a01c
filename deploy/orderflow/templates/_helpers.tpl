{{/*
Names and the pieces every template shares. A service is addressed by its
key in .Values.services (order, invoicing, shipping).
*/}}

{{- define "orderflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of a service's Deployment, Service and the rest. */}}
{{- define "orderflow.serviceName" -}}
{{ printf "%s-%s" (include "orderflow.fullname" .root) .svc.name }}
{{- end -}}

{{/* The common labels; `component` names the service or the piece. */}}
{{- define "orderflow.labels" -}}
app.kubernetes.io/part-of: orderflow
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{/* The labels that select one service's pods. */}}
{{- define "orderflow.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{/* Kafka's bootstrap address. */}}
{{- define "orderflow.bootstrap" -}}
{{- if .Values.kafka.bootstrapServers -}}
{{ .Values.kafka.bootstrapServers }}
{{- else -}}
{{ printf "%s-kafka-bootstrap:%v" .Values.kafka.clusterName .Values.kafka.port }}
{{- end -}}
{{- end -}}

{{/* A service's Kafka principal: the KafkaUser, and the Secret Strimzi makes for it. */}}
{{- define "orderflow.principal" -}}
{{ .svc.name }}
{{- end -}}

{{/* A service's CloudNativePG cluster. */}}
{{- define "orderflow.pgCluster" -}}
{{ printf "%s-%s" (include "orderflow.fullname" .root) .db.database }}
{{- end -}}

{{/* The consumers' replica ceiling: the partition count, whatever else is asked. */}}
{{- define "orderflow.maxConsumerReplicas" -}}
{{- min .svc.autoscaling.maxReplicas .root.Values.topic.partitions -}}
{{- end -}}

{{/*
The Kafka client credentials of a service, as environment variables: the
services' declared SASL settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*),
kept equal by tests/tests/chart.rs.
*/}}
{{- define "orderflow.kafkaCredentialsEnv" -}}
- name: KAFKA_SECURITY_PROTOCOL
  value: SASL_PLAINTEXT
- name: KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: KAFKA_SASL_USERNAME
  value: {{ include "orderflow.principal" . | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "orderflow.principal" . }}
      key: password
{{- end -}}
