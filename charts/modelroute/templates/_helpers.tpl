{{/*
Names, labels and the operator's RBAC rules, shared by the templates.

With the default values and the release name "modelroute", every object is named
"modelroute-operator", as in manifests/: tests/helm/test_manifests_agree.py renders the
chart and compares it with manifests/ object by object.
*/}}

{{/*
Prefix of every object's name: fullnameOverride, else the release name when it already
contains "modelroute", else "<release>-modelroute". 54 characters leave room for "-operator".
*/}}
{{- define "modelroute.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's Deployment, ServiceAccount, ClusterRole, Roles and bindings. */}}
{{- define "modelroute.operatorName" -}}
{{- printf "%s-operator" (include "modelroute.fullname" .) -}}
{{- end -}}

{{/* "modelroute-0.1.0", for the helm.sh/chart label. */}}
{{- define "modelroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of the operator pod. app.kubernetes.io/name is always "modelroute": the
router pods the operator creates carry it too (with component "router").
*/}}
{{- define "modelroute.selectorLabels" -}}
app.kubernetes.io/name: modelroute
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object the chart renders (templates add app.kubernetes.io/component). */}}
{{- define "modelroute.labels" -}}
{{ include "modelroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "modelroute.chart" . }}
{{- end -}}

{{- define "modelroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelroute.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "<repository>:<tag>", the tag defaulting to the chart's appVersion. */}}
{{- define "modelroute.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .appVersion) -}}
{{- end -}}

{{/*
Namespace of an optional monitoring object: its own `namespace` value, else the release's.
Call with (dict "values" .Values.serviceMonitor "root" $).
*/}}
{{- define "modelroute.namespaceOf" -}}
{{- .values.namespace | default .root.Release.Namespace -}}
{{- end -}}

{{/*
A file from files/, or a clear failure when the chart was packaged without it.
Call with (dict "root" $ "path" "files/x" "value" "grafanaDashboard.enabled").
*/}}
{{- define "modelroute.requiredFile" -}}
{{- $content := .root.Files.Get .path -}}
{{- if not $content -}}
{{- fail (printf "%s is true but the chart has no %s" .value .path) -}}
{{- end -}}
{{- $content -}}
{{- end -}}

{{/*
The operator's permissions: exactly the verbs it uses. tests/operator/test_operator_e2e.py
checks every request the operator makes against manifests/20-rbac.yaml, and
tests/helm checks that these rules are the same, in the same order.

All are namespaced: in the ClusterRole when the operator watches every namespace, else in
a Role per watched namespace. Leader election has its own Role (role-leader-election.yaml).
*/}}
{{- define "modelroute.namespacedRules" -}}
# The resource it reconciles: watched; status written through its subresource. patch only
# to remove the finalizer and annotations kopf left on routes of earlier versions; update
# on the finalizers subresource is what the API server checks for the children's
# blockOwnerDeletion.
- apiGroups: [modelroute.io]
  resources: [modelroutes]
  verbs: [list, watch, patch]
- apiGroups: [modelroute.io]
  resources: [modelroutes/status]
  verbs: [patch]
- apiGroups: [modelroute.io]
  resources: [modelroutes/finalizers]
  verbs: [update]
# Children, one set per region: watched (label app.kubernetes.io/managed-by), written with
# server-side apply (patch; create when the apply creates), read by name before a name is
# first used (get: is it someone else's?), pruned (delete).
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
# Secrets a route names: watched so a missing or changed one shows in status at once. Only
# key names are kept; values are dropped on arrival and never logged.
- apiGroups: [""]
  resources: [secrets]
  verbs: [list, watch]
# Events users see in `kubectl describe mr`.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* The leader-election Lease: the operator's name, in the release namespace. */}}
{{- define "modelroute.leaseName" -}}
{{- include "modelroute.operatorName" . -}}
{{- end -}}

{{/*
Labels of an optional monitoring object: the chart's, component "monitoring", then the
user's extra labels (which win). Call with (dict "root" $ "extra" .Values.x.labels "add" (dict ...)).
*/}}
{{- define "modelroute.monitoringLabels" -}}
{{- $chart := include "modelroute.labels" .root | fromYaml -}}
{{- $labels := merge (dict) (.extra | default dict) (.add | default dict) $chart (dict "app.kubernetes.io/component" "monitoring") -}}
{{- toYaml $labels -}}
{{- end -}}
