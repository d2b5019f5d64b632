{{/* Labels shared by every object; the argument is the component's name. */}}
{{- define "sworn.labels" -}}
app.kubernetes.io/name: {{ . }}
app.kubernetes.io/part-of: sworn
{{- end }}

{{/* An image reference from {repository, tag}. */}}
{{- define "sworn.image" -}}
{{ .repository }}:{{ .tag }}
{{- end }}
