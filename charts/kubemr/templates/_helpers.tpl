{{/* The release's full name (at most 63 characters). */}}
{{- define "kubemr.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubemr.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubemr.labels" -}}
{{ include "kubemr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubemr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubemr.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubemr.leaseName" -}}
{{- default (include "kubemr.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "kubemr.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kubemr.jobImage" -}}
{{- $repository := default .Values.image.repository .Values.jobDefaults.image.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.jobDefaults.image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{- /*
Exactly what the operator calls (docs/operator.md); tests/operator/test_chart.py checks
the operator works with these rules and nothing more.
*/ -}}
{{- define "kubemr.rules" -}}
- apiGroups: ["kubemr.io"]
  resources: ["mapreducejobs"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: ["kubemr.io"]
  resources: ["mapreducejobs/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "create", "delete"]
- apiGroups: [""]
  resources: ["services", "secrets", "configmaps"]
  verbs: ["get", "create", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
